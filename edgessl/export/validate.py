"""Validation of an exported artifact against the PyTorch model on the checkpoint's val split.

Both models see the same preprocessed inputs (``edgessl.data.preprocess``), so differences
measure the export and quantization only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgessl.checkpoint import ModelCard
from edgessl.errors import DataError

log = logging.getLogger("edgessl")

BATCH_SIZE = 64


def artifact_files(path: Path) -> list[Path]:
    """The files an artifact consists of: the ``.onnx``, or the ``.xml`` and its ``.bin``."""
    path = Path(path)
    files = [path]
    if path.suffix.lower() == ".xml":
        files.append(path.with_suffix(".bin"))
    return [f for f in files if f.is_file()]


def artifact_size_mib(path: Path) -> float:
    """The artifact's size on disk in MiB (``.xml`` + ``.bin`` for OpenVINO)."""
    return sum(f.stat().st_size for f in artifact_files(path)) / 2**20


def validation_samples(card: ModelCard, data: str | Path | None) -> tuple[list[Path], np.ndarray]:
    """The val split's image paths and labels, indexed like the checkpoint's labels.

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
    if set(labeled.classes) != set(card.labels):
        differ = sorted(set(labeled.classes) ^ set(card.labels))
        raise DataError(f"classes in '{root}' differ from the checkpoint's labels "
                        f"({', '.join(differ[:5])}); pass --data with the same classes")
    index = {name: i for i, name in enumerate(card.labels)}
    paths = [p for p, _ in labeled.val]
    labels = np.array([index[labeled.classes[y]] for _, y in labeled.val], dtype=np.int64)
    return paths, labels


def _logits(run, paths: list[Path], card: ModelCard) -> np.ndarray:
    from edgessl.data.preprocess import preprocess_batch

    out = []
    for i in range(0, len(paths), BATCH_SIZE):
        batch = preprocess_batch(paths[i:i + BATCH_SIZE], card.image_size, card.mean, card.std)
        out.append(run(batch))
    return np.concatenate(out).astype(np.float64)


def validate_artifact(loaded, model, card: ModelCard, data: str | Path | None = None) -> dict:
    """Compare an exported artifact with the PyTorch model on the validation images.

    Args:
        loaded: the artifact loaded in its runtime (a ``LoadedModel``).
        model: the PyTorch classifier in eval mode.
        card: the checkpoint's model card.
        data: a labeled folder to validate on; None for the checkpoint's own data.

    Returns:
        A dict: ``val_images``; ``max_abs_diff``, ``mean_abs_diff`` and ``cosine`` (mean
        per-image cosine similarity) of the logits; ``top1_artifact`` and ``top1_pytorch``
        (fractions); ``top1_agreement`` (fraction of images where both predict the same
        class); ``top1_drop_points`` (PyTorch minus artifact, percentage points);
        ``size_mib``; ``load_seconds``; ``execution`` (runtime, device, provider, version).
    """
    import torch

    paths, labels = validation_samples(card, data)

    def run_torch(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).float().numpy()

    ref = _logits(run_torch, paths, card)
    got = _logits(loaded.run, paths, card)
    diff = np.abs(got - ref)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1)
    cosine = np.sum(got * ref, axis=1) / np.maximum(norms, 1e-12)
    pred_ref, pred_got = ref.argmax(1), got.argmax(1)
    top1_ref = float(np.mean(pred_ref == labels))
    top1_got = float(np.mean(pred_got == labels))
    ex = loaded.execution
    return {
        "val_images": len(paths),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine": float(cosine.mean()),
        "top1_artifact": top1_got,
        "top1_pytorch": top1_ref,
        "top1_agreement": float(np.mean(pred_ref == pred_got)),
        "top1_drop_points": round((top1_ref - top1_got) * 100, 4),
        "size_mib": round(artifact_size_mib(loaded.path), 4),
        "load_seconds": round(loaded.load_seconds, 4),
        "execution": {"runtime": ex.runtime, "device": ex.device, "provider": ex.provider,
                      "version": ex.version},
    }
