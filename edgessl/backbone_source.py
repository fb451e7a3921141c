"""Where a backbone comes from: an edgessl checkpoint, a weights file, timm's hub, or scratch.

``resolve_backbone`` is shared by ``edgessl finetune`` and ``edgessl pretrain`` (to start SSL
from existing weights), so ``--backbone``/``--weights``/``--weights-key`` mean the same in both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgessl.backbones import Backbone, BackboneSpec, create_backbone
from edgessl.backbones.pretrained import (
    PretrainedStart,
    default_size,
    find_start,
    load_pretrained_into,
)
from edgessl.backbones.weights import LoadReport
from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD, is_checkpoint
from edgessl.errors import CheckpointError, ConfigError, printable

log = logging.getLogger("edgessl")


@dataclass
class BackboneSource:
    """A ready backbone and where it came from.

    Attributes:
        backbone: the module (weights loaded).
        method: "scratch", "pretrained", "timm-pretrained", "weights-file" or the SSL method of the
            checkpoint.
        mean, std: normalisation the backbone was trained with.
        source: checkpoint path, weights file or hub name, None for scratch.
        report: what a weights file matched (None unless one was loaded).
        pretrained: the pretrained start the weights descend from (its ``record()``), or None.
    """

    backbone: Backbone
    method: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str | None
    report: LoadReport | None = None
    pretrained: dict | None = None


def _from_checkpoint(path: Path, image_size: int | None) -> BackboneSource:
    from edgessl.models import Classifier, load_model

    model, card = load_model(path)
    if image_size is not None and image_size != card.image_size:
        raise CheckpointError(f"checkpoint '{path}' was trained at {card.image_size} px but "
                              f"--image-size {image_size} was given; omit --image-size")
    backbone = model.backbone if isinstance(model, Classifier) else model
    return BackboneSource(backbone, card.method, card.mean, card.std, str(path.resolve()),
                          pretrained=card.pretrained)


def _from_pretrained(start: PretrainedStart, image_size: int | None) -> BackboneSource:
    """A registered pretrained start (``edgessl.backbones.pretrained``), verified and loaded.

    The architecture is kept exactly as the weights were trained (no small-image stem): the
    images are resized to ``image_size`` instead, by default the start's ``default_size``. The
    backbone returns the start's ``features`` (every stage pooled, for the EfficientNet-Lites).
    """
    from edgessl.backbones.factory import create_timm_model

    size = image_size or default_size(start)
    spec = BackboneSpec(name=start.arch, image_size=size, small_stem=False,
                        features=start.features)
    model = create_timm_model(start.arch, size, pretrained=False)
    loaded = load_pretrained_into(model, start)
    log.info("starting from pretrained %s v%s (%s, %s): %d tensors, checked", start.name,
             start.version, start.trained_on.split(" (")[0], start.licence, loaded)
    return BackboneSource(Backbone(model, spec), "pretrained", start.mean, start.std,
                          f"pretrained:{start.name}", pretrained=start.record())


def _normalisation(backbone: Backbone) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean/std (what SSL codebases train with), or a timm tag's when one is named.

    ``timm:vit_small_patch16_224.augreg_in21k`` says the weights are timm's for that tag, whose
    normalisation may differ (mean 0.5); a bare name says nothing about where weights came from.
    """
    cfg = getattr(backbone.model, "pretrained_cfg", None) or {}
    if "." not in backbone.spec.name or not cfg:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def _from_weights_file(path: Path, image_size: int | None, arch: str,
                       key: str | None) -> BackboneSource:
    """``arch`` with weights from a .safetensors/.pt file (never unpickling code)."""
    from edgessl.backbones.weights import load_backbone_weights

    backbone = create_backbone(BackboneSpec.for_images(arch, image_size or 32))
    report = load_backbone_weights(backbone, path, key)
    mean, std = _normalisation(backbone)
    return BackboneSource(backbone, "weights-file", mean, std, str(path.resolve()), report)


def hub_cache(name: str) -> str:
    """Where timm looks for (and downloads) the pretrained weights of ``name``."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import constants

        # the hub reads HF_HOME / HF_HUB_CACHE when imported: this is the folder it uses
        return f"{constants.HF_HUB_CACHE} (repo {cfg.hf_hub_id}; set by HF_HOME or HF_HUB_CACHE)"
    import torch

    return f"{Path(torch.hub.get_dir()) / 'checkpoints'} (set by TORCH_HOME)"


def _has_hub_weights(name: str) -> bool:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return cfg is not None and bool(cfg.hf_hub_id or cfg.url or cfg.file)


def _unknown_backbone(name: str) -> ConfigError:
    """A --backbone that is no checkpoint, file, start, edgessl or timm name: what it can be."""
    import difflib

    import timm

    from edgessl.backbones import BACKBONES
    from edgessl.backbones.pretrained import PRETRAINED

    names = [*PRETRAINED.names(), *BACKBONES]
    close = difflib.get_close_matches(name, [*names, *timm.list_models()], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown backbone '{printable(name)}': not a checkpoint folder, weights file, "
        f"pretrained start or timm model.{hint} Pretrained starts: "
        f"{', '.join(PRETRAINED.names())}; 'scratch:NAME' for random weights of an edgessl "
        "or timm architecture ('edgessl backbones' lists them)")


def _from_timm_hub(name: str, image_size: int) -> BackboneSource:
    import timm

    from edgessl.backbones.factory import create_timm_model

    if not timm.is_model(name):
        raise _unknown_backbone(name)
    spec = BackboneSpec.for_images(name, image_size)
    if not _has_hub_weights(name):
        raise CheckpointError(f"timm has no pretrained weights for '{name}': use "
                              f"'scratch:{name}' for random initialisation, or pass --weights "
                              "FILE")
    try:
        model = create_timm_model(name, image_size, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        raise CheckpointError(
            f"could not get pretrained weights for timm model '{name}' ({type(exc).__name__}): "
            f"they are not in the cache {hub_cache(name)} and could not be downloaded: run "
            "once with network access (or copy them into that cache), pass a local copy with "
            f"--backbone timm:{name} --weights FILE, or use 'scratch:{name}' for random "
            "initialisation") from None
    from edgessl.backbones.factory import timm_backbone

    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    # the small-image stem where the model can take it; the spec says whether it did
    return BackboneSource(timm_backbone(model, spec), "timm-pretrained", mean, std,
                          f"timm:{name}")


def _check_flags(text: str, kind: str, weights: str | None, key: str | None) -> None:
    """Refuse --weights/--weights-key where they cannot apply (never ignore them silently)."""
    text = printable(text)
    if weights is not None and kind == "checkpoint":
        raise ConfigError(f"--backbone '{text}' is an edgessl checkpoint with weights of its "
                          "own; drop --weights, or pass an architecture (timm:NAME or an "
                          "edgessl backbone name) as --backbone")
    if weights is not None and kind == "file":
        raise ConfigError(f"--backbone '{text}' is a weights file already; pass the "
                          "architecture as --backbone NAME with --weights FILE")
    if weights is not None and kind == "scratch":
        raise ConfigError(f"--backbone '{text}' means random weights, so --weights does not "
                          "apply; pass --backbone NAME (e.g. timm:resnet18) with --weights FILE")
    if weights is not None and kind == "pretrained":
        raise ConfigError(f"--backbone '{text}' is a pretrained start with weights of its own; "
                          "drop --weights, or pass its architecture as --backbone timm:NAME "
                          "with --weights FILE")
    if key is not None and weights is None and kind != "file":
        raise ConfigError("--weights-key picks part of a weights file; pass --weights FILE "
                          "(or a weights file as --backbone)")


def resolve_backbone(text: str, image_size: int | None, arch: str,
                     weights: str | Path | None = None,
                     weights_key: str | None = None) -> BackboneSource:
    """Turn ``--backbone`` (with ``--weights``/``--weights-key``) into a backbone.

    Args:
        text: a checkpoint folder; a pretrained start (``edgessl.backbones.PRETRAINED``, e.g.
            ``efficientnet_lite0.in1k``); a weights file for ``arch`` (.safetensors, or .pt/.pth/.th
            holding tensors only); ``scratch`` (random ``arch``) or ``scratch:NAME``; or an
            architecture (``timm:NAME``, a timm name, or an edgessl backbone name) that gets
            ``weights`` when given and timm's hub weights otherwise.
        image_size: input side in pixels; None = the checkpoint's, or 32.
        arch: architecture for plain ``scratch`` and for a weights file given as ``text``.
        weights: a weights file (same formats) for the architecture ``text`` names. Layouts of
            the common SSL codebases load (see ``edgessl.backbones.weights``).
        weights_key: the part of the file to take: a nested dict ("student") or a name prefix
            ("module.momentum_encoder"); None = the teacher where there is one.

    Raises:
        ConfigError: an unknown name, or --weights where it cannot apply.
        CheckpointError: weights that are missing, unsafe, or do not fit the architecture.
    """
    from edgessl.backbones import BACKBONES
    from edgessl.backbones.weights import WEIGHTS_SUFFIXES

    path = Path(text).expanduser()
    if is_checkpoint(path):
        _check_flags(text, "checkpoint", weights, weights_key)
        return _from_checkpoint(path, image_size)
    if path.suffix.lower() in WEIGHTS_SUFFIXES:
        _check_flags(text, "file", weights, weights_key)
        return _from_weights_file(path, image_size, arch, weights_key)
    if not text.startswith("timm:") and (path.exists() or "/" in text):
        raise CheckpointError(f"'{printable(text)}' is not an edgessl checkpoint (no "
                              "card.json); pass a folder made by edgessl pretrain, a timm name, "
                              "or 'scratch'")
    start = find_start(text)
    if start is not None:
        _check_flags(text, "pretrained", weights, weights_key)
        return _from_pretrained(start, image_size)
    size = image_size or 32
    if text == "scratch" or text.startswith("scratch:"):
        _check_flags(text, "scratch", weights, weights_key)
        name = text.partition(":")[2] or arch
        backbone = create_backbone(BackboneSpec.for_images(name, size))
        return BackboneSource(backbone, "scratch", IMAGENET_MEAN, IMAGENET_STD, None)
    _check_flags(text, "name", weights, weights_key)
    name = text.removeprefix("timm:")
    if weights is not None:
        return _from_weights_file(Path(weights).expanduser(), image_size, name, weights_key)
    if name in BACKBONES:
        raise ConfigError(f"edgessl backbone '{name}' has no published weights: use "
                          f"'scratch:{name}' for random initialisation, add --weights FILE, "
                          "or pass a checkpoint folder made by edgessl pretrain")
    return _from_timm_hub(name, size)
