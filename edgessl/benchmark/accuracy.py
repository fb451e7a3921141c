"""Accuracy and inputs for the benchmark: the model's val split, top-1, the timed batch."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgessl.errors import ConfigError, DataError

EVAL_BATCH = 64
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SEED = 0


def split_settings(meta) -> tuple[float, int]:
    """val_fraction and seed the model was trained with (so its val split is held out)."""
    extra = meta.extra or {}
    for source in (extra.get("data") or {}, extra):
        if isinstance(source, dict) and "val_fraction" in source:
            return float(source["val_fraction"]), int(source.get("seed", DEFAULT_SEED))
    return DEFAULT_VAL_FRACTION, DEFAULT_SEED


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
    if not model.meta.labels:
        raise ConfigError(f"'{model.path}' outputs embeddings (task '{model.meta.task}'), not "
                          "class scores; top-1 needs a classifier: drop --data or pass one")


def static_batch(meta) -> int | None:
    """The fixed batch size of an artifact exported with one (exporters record it in extra)."""
    value = (meta.extra or {}).get("static_batch")
    return int(value) if value else None


def top1_accuracy(model, data, fixed_batch: int | None = None) -> tuple[float, int]:
    """Top-1 accuracy of ``model`` on ``data.val`` (a LabeledData): (fraction, image count).

    Labels are matched by class name, so a model whose label order differs still scores right.
    A model with a fixed batch (exported with one, or compiled for ``fixed_batch``) gets full
    batches, the last one padded and the padding ignored.
    """
    from edgessl.data.preprocess import preprocess_batch

    meta = model.meta
    require_labels(model)
    to_model = label_mapping(meta.labels, data.classes, str(model.path))
    fixed = fixed_batch or static_batch(meta)
    step = fixed or EVAL_BATCH
    correct = 0
    for start in range(0, len(data.val), step):
        chunk = data.val[start:start + step]
        x = preprocess_batch([p for p, _ in chunk], meta.image_size, meta.mean, meta.std)
        if len(chunk) < step and fixed:  # fill a fixed batch, ignore the padding
            x = np.concatenate([x, np.repeat(x[:1], step - len(chunk), axis=0)])
        predicted = model.run(x)[:len(chunk)].argmax(axis=1)
        correct += int((predicted == to_model[[y for _, y in chunk]]).sum())
    return correct / len(data.val), len(data.val)


def input_batch(meta, batch_size: int, data=None) -> np.ndarray:
    """The timed input [batch_size, 3, S, S]: val images of ``data`` (repeated to fill the
    batch) when given, else seeded noise (the same for every model of the same size)."""
    if data is None:
        shape = (batch_size, 3, meta.image_size, meta.image_size)
        return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    from edgessl.data.preprocess import preprocess_batch

    paths = [data.val[i % len(data.val)][0] for i in range(batch_size)]
    return preprocess_batch(paths, meta.image_size, meta.mean, meta.std)


SplitLoader = Callable[[float, int], Any]  # (val_fraction, seed) -> LabeledData


def split_loader(root: str) -> SplitLoader:
    """Load ``root`` once per (val_fraction, seed): decoding every image is the slow part."""
    from edgessl.data.labeled import load_labeled

    @functools.cache
    def load(val_fraction: float, seed: int):
        return load_labeled(root, val_fraction=val_fraction, seed=seed)

    return load
