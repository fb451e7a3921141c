"""Classification metrics on a labeled split: top-1, per-class accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np
import torch

from edgessl.data.preprocess import preprocess_batch


def predict_logits(model: torch.nn.Module, paths, image_size: int, mean, std,
                   batch_size: int = 256) -> np.ndarray:
    """Logits [N, C] of ``model`` on image files, with the shared inference preprocessing."""
    model.eval()
    outputs = []
    with torch.inference_mode():
        for i in range(0, len(paths), batch_size):
            batch = preprocess_batch(paths[i:i + batch_size], image_size, mean, std)
            outputs.append(model(torch.from_numpy(batch)).float().numpy())
    return np.concatenate(outputs)


def classification_metrics(predictions: np.ndarray, targets: np.ndarray,
                           classes: tuple[str, ...]) -> dict:
    """Top-1 (fraction), per-class accuracy and confusion matrix (rows = true class)."""
    n = len(classes)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (targets, predictions), 1)
    support = confusion.sum(1)
    per_class = {c: (float(confusion[i, i] / support[i]) if support[i] else None)
                 for i, c in enumerate(classes)}
    return {
        "top1": float((predictions == targets).mean()),
        "samples": int(len(targets)),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
        "classes": list(classes),
    }
