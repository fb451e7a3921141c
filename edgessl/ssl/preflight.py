"""Checks that stop a pretraining run with one line instead of a traceback or a wrong result.

Before training: an image size the backbone or the augmentations cannot take (found by a dry
run on the meta device, so every backbone is covered without a table of sizes), a batch too
small for the method, and a ``--resume`` whose settings differ from the saved run's. During
training: a loss or weights that stop being finite.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path

import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelCard
from edgessl.errors import CheckpointError, ConfigError, DataError, EdgesslError, printable
from edgessl.ssl.augment import AugmentConfig, BatchViews

log = logging.getLogger("edgessl")

# The search for a size that works stops here: beyond it a backbone is not for small images.
LARGEST_SIZE_TRIED = 512


def _reason(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, EdgesslError) else f"{type(exc).__name__}: {exc}"
    text = printable(" ".join(text.split()))
    return text if len(text) <= 160 else text[:157] + "..."


def _views_problem(size: int, augment: AugmentConfig, views: int) -> str | None:
    """Why the augmentations fail at ``size`` px (a blur wider than the image, ...), or None.

    Small sizes run on two real blank images (microseconds) with the random generators
    restored afterwards, so seeded runs stay as they were; larger ones on the meta device
    (shapes only: no memory, but ~0.4 s of shape functions).
    """
    real = size <= 256
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[]) if real else torch.device("meta"))
        try:
            BatchViews(augment, size, IMAGENET_MEAN, IMAGENET_STD, views)(
                torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
        except Exception as exc:  # noqa: BLE001 - any failure is the size's
            return f"the augmentations fail at {size} px: {_reason(exc)}"
    return None


def _meta_backbone(name: str, size: int, cache: dict):
    """``name`` built for ``size`` on the meta device (parameters without memory), reusing a
    model of ``cache`` when the architecture does not depend on the size."""
    from edgessl.backbones.factory import BACKBONES, takes_image_size

    spec = BackboneSpec.for_images(name, size)
    sized = spec.name not in BACKBONES or takes_image_size(BACKBONES.get(spec.name))
    key = (spec.small_stem, size if sized else None)
    if key not in cache:
        cache[key] = create_backbone(spec).eval()
    return cache[key]


def _size_problem(name: str, size: int, augment: AugmentConfig, views: int,
                  cache: dict | None = None, own_errors: bool = False) -> str | None:
    """Why ``name`` at ``size`` px (with ``augment``) cannot train, or None.

    The backbone runs on the meta device: only shapes are checked, so even a large backbone
    costs no memory and no compute. With ``own_errors``, an EdgesslError of the backbone's
    factory (which names the sizes that work, as edgessl's ViTs do) is raised as it is.
    """
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
        try:
            backbone = _meta_backbone(name, size, {} if cache is None else cache)
            features = backbone(torch.zeros(2, 3, size, size))
        except EdgesslError as exc:  # the factory's own words (ViT patch sizes)
            if own_errors:
                raise
            return _reason(exc)
        except Exception as exc:  # noqa: BLE001 - any failure is the size's
            return f"the backbone fails at {size} px: {_reason(exc)}"
    if features.ndim != 2 or features.shape[1] < 1:
        return f"the backbone gives features of shape {list(features.shape)} at {size} px"
    return _views_problem(size, augment, views)


def smallest_image_size(name: str, augment: AugmentConfig, views: int = 2) -> int | None:
    """The smallest side (px) at which ``name`` trains with ``augment``; None up to 512 px."""
    cache: dict = {}
    return next((s for s in range(1, LARGEST_SIZE_TRIED + 1)
                 if _size_problem(name, s, augment, views, cache) is None), None)


def require_image_size(name: str, size: int, augment: AugmentConfig, views: int = 2) -> None:
    """Refuse an image size the backbone ``name`` or the augmentations cannot take.

    Raises:
        ConfigError: one line with the reason and the smallest size that works (or the
            factory's own error, which names the sizes that work).
    """
    problem = _size_problem(name, size, augment, views, own_errors=True)
    if problem is None:
        return
    smallest = smallest_image_size(name, augment, views)
    if smallest is None:
        hint = (f"no size up to {LARGEST_SIZE_TRIED} px works; choose another --backbone")
    elif smallest > size:
        hint = f"the smallest size that works is {smallest} px: pass --image-size {smallest}"
    else:
        hint = (f"it works from {smallest} px, but not at {size} px: pass --image-size "
                f"{smallest} or another size it accepts")
    raise ConfigError(f"--image-size {size} does not work with backbone '{printable(name)}' "
                      f"({problem}); {hint}")


def require_batch(method, images: int, batch_size: int, processes: int, root: Path,
                  given: bool = True) -> int:
    """The batch a step takes (all ``images`` when fewer than ``batch_size``), or a one-line
    error when that leaves a process fewer than ``method.min_batch`` images.

    ``given``: whether ``batch_size`` is the user's ``--batch-size`` (else the default), so
    the warning names what was asked for.

    A step drops its incomplete last batch, so the effective batch is what every step sees.
    """
    need = method.min_batch * processes
    why = (f"{method.name} needs at least {method.min_batch} images per step"
           f"{' in each process' if processes > 1 else ''} (its loss compares the images of a "
           "batch and batch norm needs two or more)")
    if images < need:
        raise DataError(f"the unlabeled data folder '{printable(root)}' has {images} usable "
                        f"image{'s' if images != 1 else ''}; {why}: add images (at least "
                        f"{need}; hundreds or more to learn anything)")
    if batch_size < need:
        raise ConfigError(f"--batch-size {batch_size} is too small: {why}; pass --batch-size "
                          f"{need} or more (256 is the default)")
    if images < batch_size:
        log.warning("only %d images in %s: each step takes all of them, not %s %d (hundreds "
                    "of images or more are needed to learn features that carry over to new "
                    "images)", images, root, "--batch-size" if given else "the default batch of",
                    batch_size)
    return min(batch_size, images)


# Card fields a resumed run may change: progress and timing, and how (not what) it computes.
# Everything else in the card (method, backbone, data, every training setting, augmentations,
# method options) must be as saved, so new card fields are checked without a change here.
RESUME_MAY_CHANGE = frozenset({
    "command", "created", "edgessl_version", "data.path",
    "training.epochs_done", "training.complete", "training.final_loss",
    "training.loss_per_epoch", "training.knn_top1", "training.seconds",
    "training.device", "training.processes", "training.precision", "training.channels_last",
})
_FLAGS = {"method": "--method", "backbone.name": "--backbone", "backbone.image_size":
          "--image-size", "backbone.small_stem": "the small-image stem",
          "data.fingerprint": "the data (its image files)", "data.images": "the image count",
          "training.initialised_from": "the initial weights (--backbone/--weights)"}


def _flatten(data, prefix: str = "") -> dict:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _setting(key: str) -> str:
    if key in _FLAGS:
        return _FLAGS[key]
    for part, flag in (("training.augment.", "--aug "), ("training.method_options.", "--opt ")):
        if key.startswith(part):
            return flag + key.removeprefix(part)
    if key.startswith("training.") and key.count(".") == 1:
        return "--" + key.removeprefix("training.").replace("_", "-")
    return key


def _shown(value) -> str:
    text = printable(json.dumps(value, default=str))
    return text if len(text) <= 40 else text[:37] + "..."


def resume_differences(saved: ModelCard, new: ModelCard) -> list[str]:
    """"SETTING was SAVED, now NEW" for each card field that differs and may not change."""
    # JSON round trip: the saved card came from JSON (lists), the new one has tuples.
    old = _flatten(json.loads(json.dumps(saved.to_dict(), default=str)))
    now = _flatten(json.loads(json.dumps(new.to_dict(), default=str)))
    keys = [k for k in dict.fromkeys([*old, *now]) if k not in RESUME_MAY_CHANGE]
    return [f"{_setting(k)} was {_shown(old.get(k))}, now {_shown(now.get(k))}"
            for k in keys if old.get(k) != now.get(k)]


def require_same_run(out: Path, saved: ModelCard, new: ModelCard) -> None:
    """Refuse to resume ``out`` with settings that change the run.

    Device, processes, precision, memory layout, the data folder's path (not its images) and
    the kNN monitoring may change; a run with more epochs is a new run (its LR schedule
    differs), started from the checkpoint with ``--backbone FOLDER``.

    Raises:
        CheckpointError: one line naming each differing setting with both values.
    """
    diffs = resume_differences(saved, new)
    if diffs:
        raise CheckpointError(f"cannot resume '{printable(out)}' with other settings: "
                              f"{'; '.join(diffs)}. Resume with the flags it was started "
                              "with, or pass --force instead of --resume to start over")


def diverged(what: str, epoch: int, step: int, lr: float, out: Path,
             checkpoint: bool) -> ConfigError:
    """The error for a loss or weights that stopped being finite (nothing more is saved)."""
    kept = (f"the last good checkpoint in '{printable(out)}' is kept. Start again with "
            "--force" if checkpoint else "nothing was saved. Start again")
    return ConfigError(f"training diverged: {what} at epoch {epoch}, step {step} (lr "
                       f"{lr:.4g}), most likely a learning rate too high for this batch and "
                       f"backbone; {kept}, with a lower --lr (e.g. {lr / 4:.3g}) or "
                       "--grad-clip 1.0")


def finite_weights(module: torch.nn.Module) -> bool:
    """Whether every parameter and floating-point buffer of ``module`` is finite."""
    tensors = [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]
    return all(bool(torch.isfinite(t).all()) for t in tensors)
