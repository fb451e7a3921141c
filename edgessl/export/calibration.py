"""Calibration images for INT8 export: a seeded sample, preprocessed exactly as at inference.

By default the sample comes from the checkpoint's own training data (the train split of a
labeled dataset), so calibration never sees the validation images the export is scored on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.checkpoint import ModelCard
from edgessl.errors import ConfigError, DataError, EdgesslError

CALIB_SEED = 0


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration images and the preprocessing the model expects.

    Attributes:
        paths: the sampled image files.
        source: the folder they were sampled from (for the report).
        image_size: model input side in pixels.
        mean, std: normalisation of RGB values in [0, 1].
    """

    paths: tuple[Path, ...]
    source: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def batches(self, batch_size: int = 16) -> Iterator[np.ndarray]:
        """Yield float32 batches [B, 3, S, S] (the last may be smaller), decoded lazily."""
        from edgessl.data.preprocess import preprocess_batch

        for i in range(0, len(self.paths), batch_size):
            chunk = self.paths[i:i + batch_size]
            yield preprocess_batch(chunk, self.image_size, self.mean, self.std)


def _training_images(card: ModelCard) -> tuple[list[Path], str]:
    """The checkpoint's training images: the train split if labeled, else every image."""
    from edgessl.data.images import find_images
    from edgessl.data.labeled import load_labeled

    root = card.data.get("path")
    if not root:
        raise DataError("the checkpoint does not record its training data; "
                        "pass --calib with a folder of representative images")
    if not Path(root).is_dir():
        raise DataError(f"the checkpoint's training data '{root}' is gone; "
                        "pass --calib with a folder of representative images")
    try:
        data = load_labeled(root, card.data.get("val_fraction", 0.2), card.data.get("seed", 0))
    except DataError:
        return find_images(root, "training data folder"), str(root)
    return [p for p, _ in data.train], str(root)


def calibration_set(card: ModelCard, calib: str | Path | None, calib_size: int = 300,
                    seed: int = CALIB_SEED) -> CalibrationSet:
    """A seeded sample of up to ``calib_size`` images for INT8 calibration.

    Args:
        card: the checkpoint's model card (image size, mean/std, training data).
        calib: a folder of images (searched recursively; labels ignored), or None for the
            checkpoint's training data.
        calib_size: how many images to sample (all when fewer exist).
        seed: the sampling seed.

    Raises:
        ConfigError: if ``calib_size`` < 1.
        DataError: if no usable image is found.
    """
    from edgessl.data.images import find_images

    if calib_size < 1:
        raise ConfigError(f"--calib-size must be ≥ 1, got {calib_size}")
    if calib is not None:
        paths, source = find_images(calib, "calibration folder"), str(calib)
    else:
        paths, source = _training_images(card)
    paths = sorted(paths)
    if len(paths) > calib_size:
        paths = sorted(random.Random(seed).sample(paths, calib_size))
    return CalibrationSet(tuple(paths), source, card.image_size, tuple(card.mean),
                          tuple(card.std))


def require_calibration(calibration: CalibrationSet | None) -> CalibrationSet:
    """``calibration``, or the error every int8 quantizer gives when there is none."""
    if calibration is None or len(calibration) == 0:
        raise EdgesslError("int8 export needs calibration images; pass --calib")
    return calibration
