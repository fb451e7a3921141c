"""Validation of an exported artifact against the PyTorch model on the checkpoint's val split.

Both models see the same preprocessed inputs (``edgessl.data.preprocess``), so differences
measure the export and quantization only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgessl.checkpoint import ModelCard
from edgessl.errors import CheckpointError, DataError
from edgessl.io import require_finite
from edgessl.runtime_specs import artifact_size_mib

log = logging.getLogger("edgessl")

BATCH_SIZE = 64
UNLABELED_SAMPLE = 256


def validation_samples(card: ModelCard, data: str | Path | None) -> tuple[list[Path], np.ndarray]:
    """The val split's image paths and labels, indexed like the checkpoint's labels (or the
    data's classes, for a backbone checkpoint).

    Uses the same ``load_labeled`` call (val_fraction, seed) as fine-tuning did.

    Raises:
        DataError: when there is no labeled data or its classes differ from the checkpoint's.
    """
    from edgessl.data.labeled import load_labeled

    root = data if data is not None else card.data.get("path")
    if not root:
        raise DataError("the checkpoint does not record its data; pass --data with a labeled "
                        "folder to validate the export on")
    if data is None and not Path(root).is_dir():
        raise DataError(f"the checkpoint's data '{root}' is gone; pass --data with a labeled "
                        "folder of the same classes to validate the export on")
    labeled = load_labeled(root, card.data.get("val_fraction", 0.2), card.data.get("seed", 0))
    if card.labels and set(labeled.classes) != set(card.labels):
        differ = sorted(set(labeled.classes) ^ set(card.labels))
        raise DataError(f"classes in '{root}' differ from the checkpoint's labels "
                        f"({', '.join(differ[:5])}); pass --data with the same classes")
    # A backbone checkpoint has no labels: its embeddings are scored against the data's classes.
    index = {name: i for i, name in enumerate(card.labels or labeled.classes)}
    paths = [p for p, _ in labeled.val]
    labels = np.array([index[labeled.classes[y]] for _, y in labeled.val], dtype=np.int64)
    return paths, labels


def _outputs(run, paths: list[Path], card: ModelCard, raw: bool, batch_size: int) -> np.ndarray:
    """Run ``run`` over the images: uint8 [B, S, S, 3] when ``raw``, else float32 [B, 3, S, S]
    computed from the same pixels exactly as ``edgessl.data.preprocess.to_chw`` does."""
    from edgessl.export.preprocessing import raw_batch

    mean, std = np.asarray(card.mean, np.float32), np.asarray(card.std, np.float32)
    out = []
    for i in range(0, len(paths), batch_size):
        pixels = raw_batch(paths[i:i + batch_size], card.image_size)
        n = len(pixels)
        # The last batch is padded with copies of its last image: an artifact exported with
        # --static-batch takes batches of exactly that size (the copies' outputs are dropped).
        pixels = np.concatenate([pixels, np.repeat(pixels[-1:], batch_size - n, axis=0)])
        if raw:
            out.append(run(pixels)[:n])
        else:
            with np.errstate(all="ignore"):  # a zero std gives inf: caught in the outputs
                x = (pixels.astype(np.float32) / 255.0 - mean) / std
            out.append(run(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))[:n])
    return np.concatenate(out).astype(np.float64)


def validation_set(card: ModelCard, data: str | Path | None = None,
                   task: str = "classify") -> tuple[list[Path], np.ndarray | None]:
    """The images (and labels) an export is validated on: the labeled val samples; for an
    embedding model of unlabeled data, a seeded image sample with labels None (parity is
    still measured, top-1 is not).

    Called before any export work, so a --data folder with other classes, or none at all,
    fails in a second instead of after minutes of calibration.

    Raises:
        DataError: no labeled data, or classes that differ from the checkpoint's.
    """
    try:
        return validation_samples(card, data)
    except DataError:
        if task != "embed":
            raise
    import random

    from edgessl.data.images import find_images

    root = data if data is not None else card.data.get("path")
    if not root or not Path(root).is_dir():
        raise DataError("no images to validate the embedding model on; pass --data")
    paths = sorted(find_images(root, "validation folder"))
    if len(paths) > UNLABELED_SAMPLE:
        paths = sorted(random.Random(0).sample(paths, UNLABELED_SAMPLE))
    return paths, None


def _predictions(out: np.ndarray, labels: np.ndarray, task: str) -> np.ndarray:
    """Predicted classes: argmax of scores, or for embeddings the label of each image's nearest
    other val image by cosine (leave-one-out 1-NN)."""
    if task == "classify":
        return out.argmax(1)
    unit = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return labels[sim.argmax(1)]


def validate_artifact(loaded, model, card: ModelCard, data: str | Path | None = None,
                      task: str = "classify",
                      samples: tuple[list[Path], np.ndarray | None] | None = None) -> dict:
    """Compare an exported artifact with the PyTorch module on the validation images.

    Args:
        loaded: the artifact loaded in its runtime (a ``LoadedModel``).
        model: the PyTorch module that was exported, in eval mode.
        card: the checkpoint's model card.
        data: a labeled folder to validate on; None for the checkpoint's own data.
        task: "classify" (top-1 by argmax) or "embed" (top-1 by leave-one-out 1-NN).
        samples: ``validation_set``'s answer when already known (else it is read here).

    Returns:
        A dict: ``val_images``; ``max_abs_diff``, ``mean_abs_diff`` and ``cosine`` (mean
        per-image cosine similarity) of the outputs; ``top1_artifact`` and ``top1_pytorch``
        (fractions); ``top1_agreement`` (fraction of images where both predict the same
        class); ``top1_drop_points`` (PyTorch minus artifact, percentage points);
        ``size_mib``; ``load_seconds``; ``execution`` (runtime, device, provider, version);
        ``top1_method``.

    Raises:
        CheckpointError: PyTorch's outputs hold NaN or infinity (the checkpoint is broken).
        EdgesslError: the artifact's outputs do, where PyTorch's do not.
    """
    import torch

    paths, labels = samples if samples is not None else validation_set(card, data, task)
    meta = loaded.meta
    batch_size = int((meta.extra or {}).get("static_batch") or BATCH_SIZE)

    def run_torch(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).float().numpy()

    ref = _outputs(run_torch, paths, card, False, BATCH_SIZE)
    require_finite(ref, f"PyTorch's outputs for the checkpoint on {len(paths)} val images",
                   "the checkpoint is broken (NaN weights, or a mean/std in its card that "
                   "makes the inputs infinite): fix or re-train it before exporting",
                   CheckpointError)
    got = _outputs(loaded.run, paths, card, meta.raw_input, batch_size)
    require_finite(got, f"the exported artifact's outputs on {len(paths)} val images",
                   "PyTorch's are finite, so the conversion broke them: try another "
                   "--precision or --format, and please report it with --debug output")
    diff = np.abs(got - ref)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1)
    cosine = np.sum(got * ref, axis=1) / np.maximum(norms, 1e-12)
    if labels is None:  # unlabeled images (a backbone pretrained on an unlabeled pool)
        top1 = {"top1_artifact": None, "top1_pytorch": None, "top1_agreement": None,
                "top1_drop_points": None, "top1_method": "none (unlabeled data)"}
    else:
        pred_ref, pred_got = _predictions(ref, labels, task), _predictions(got, labels, task)
        top1_ref, top1_got = float(np.mean(pred_ref == labels)), float(np.mean(pred_got == labels))
        top1 = {"top1_artifact": top1_got, "top1_pytorch": top1_ref,
                "top1_agreement": float(np.mean(pred_ref == pred_got)),
                "top1_drop_points": round((top1_ref - top1_got) * 100, 4),
                "top1_method": "argmax" if task == "classify"
                else "leave-one-out 1-NN (cosine) on val"}
    ex = loaded.execution
    return {
        "val_images": len(paths),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine": float(cosine.mean()),
        **top1,
        "size_mib": round(artifact_size_mib(loaded.path), 4),
        "load_seconds": round(loaded.load_seconds, 4),
        "execution": {"runtime": ex.runtime, "device": ex.device, "provider": ex.provider,
                      "version": ex.version},
    }
