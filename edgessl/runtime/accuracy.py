"""A model's inputs and its top-1: the val split it was trained with, the timed batch, scoring.

One definition for the host benchmark and a deploy bundle's runner: both measure with these.
Imports numpy and the light data modules only (this module travels in deploy bundles).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgessl.errors import ConfigError, DataError
from edgessl.io import require_finite
from edgessl.runtime.model import run_in_fixed_batches

EVAL_BATCH = 64
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SEED = 0


def split_settings(meta) -> tuple[float, int]:
    """val_fraction and seed the model was trained with, so a split root gives the same val."""
    extra = meta.extra or {}
    for source in (extra.get("data") or {}, extra):
        if isinstance(source, dict) and "val_fraction" in source:
            return float(source["val_fraction"]), int(source.get("seed", DEFAULT_SEED))
    return DEFAULT_VAL_FRACTION, DEFAULT_SEED


def static_batch(meta) -> int | None:
    """The fixed batch size of an artifact exported with one (exporters record it in extra)."""
    value = (meta.extra or {}).get("static_batch")
    return int(value) if value else None


def label_mapping(model_labels: Sequence[str], classes: Sequence[str], where: str) -> np.ndarray:
    """Index array mapping dataset label -> model output position, matched by class name.

    Raises:
        DataError: when the model's labels and the dataset's classes differ.
    """
    if set(model_labels) != set(classes) or len(model_labels) != len(classes):
        only_model = sorted(set(model_labels) - set(classes))
        only_data = sorted(set(classes) - set(model_labels))
        raise DataError(
            f"labels of '{where}' differ from the dataset's classes (only in model: "
            f"{', '.join(only_model) or '-'}; only in data: {', '.join(only_data) or '-'}); "
            "pass --data with the classes the model was trained on"
        )
    position = {name: i for i, name in enumerate(model_labels)}
    return np.array([position[c] for c in classes], dtype=np.int64)


def require_labels(model) -> None:
    """ConfigError for a model that outputs embeddings: top-1 needs class scores."""
    if not model.meta.labels:
        raise ConfigError(f"'{model.path}' outputs embeddings (task '{model.meta.task}'), not "
                          "class scores; top-1 needs a classifier: drop --data or pass one")


def load_val(root: str | Path, meta):
    """The labeled folder ``root`` split as the model was trained (``split_settings``)."""
    from edgessl.data.labeled import load_labeled

    return load_labeled(root, *split_settings(meta))


def top1_accuracy(model, data, fixed_batch: int | None = None) -> tuple[float, int]:
    """Top-1 accuracy of ``model`` on ``data.val`` (a LabeledData): (fraction, image count).

    Labels are matched by class name, so a model whose label order differs still scores right.
    A model with a fixed batch (exported with one, or compiled for ``fixed_batch``) gets full
    batches, the last one padded and the padding ignored.
    """
    meta = model.meta
    require_labels(model)
    to_model = label_mapping(meta.labels, data.classes, str(model.path))
    fixed = fixed_batch or static_batch(meta)
    step = fixed or EVAL_BATCH
    correct = 0
    for start in range(0, len(data.val), step):
        chunk = data.val[start:start + step]
        x = model_inputs(meta, [p for p, _ in chunk])
        scores = run_in_fixed_batches(model.run, x, fixed)
        require_finite(scores, f"the scores of '{model.path}' on val images", "the model is "
                       "broken (NaN weights, or a mean/std that makes its input infinite): "
                       "export it again from a sound checkpoint")  # argmax of NaN is 0
        predicted = scores.argmax(axis=1)
        correct += int((predicted == to_model[[y for _, y in chunk]]).sum())
    return correct / len(data.val), len(data.val)


def model_inputs(meta, images) -> np.ndarray:
    """Images (paths or PIL images) as the model's input: float32 [N, 3, S, S] normalised, or
    uint8 [N, S, S, 3] resized pixels for artifacts that normalise inside the graph."""
    from edgessl.data.preprocess import preprocess_batch

    if not getattr(meta, "raw_input", False):
        return preprocess_batch(images, meta.image_size, meta.mean, meta.std)
    from edgessl.data.images import open_rgb, to_rgb
    from edgessl.data.preprocess import resize_center_crop

    pil = [open_rgb(i) if isinstance(i, (str, Path)) else to_rgb(i) for i in images]
    return np.stack([np.asarray(resize_center_crop(i, meta.image_size), np.uint8) for i in pil])


def input_batch(meta, batch_size: int, sources: Sequence | None = None) -> np.ndarray:
    """The timed input (see ``model_inputs``) of ``batch_size`` images: ``sources`` (image
    files, repeated to fill the batch) when given, else seeded noise (the same for every model
    of the same size)."""
    if not sources:
        rng, s = np.random.default_rng(0), meta.image_size
        if getattr(meta, "raw_input", False):
            return rng.integers(0, 256, (batch_size, s, s, 3), dtype=np.uint8)
        return rng.standard_normal((batch_size, 3, s, s), dtype=np.float32)
    return model_inputs(meta, [sources[i % len(sources)] for i in range(batch_size)])
