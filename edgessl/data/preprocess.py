"""Inference preprocessing in numpy and Pillow only, shared by every runtime.

PyTorch, ONNX Runtime and OpenVINO models all see exactly the same input, so accuracy and
parity comparisons between them measure the model, not the preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgessl.data.images import open_rgb, to_rgb


def resize_center_crop(img, size: int):
    """Resize the shorter side to ``size`` (bilinear) and crop the centre ``size`` x ``size``.

    Only the centre square is resampled (Pillow's ``box``), so the work and memory are those
    of a ``size`` x ``size`` image whatever the input's shape: resizing the whole image first
    made a 1 x 2,000,000 pixel PNG a 448-megapixel intermediate at 224 px.
    """
    from PIL import Image

    w, h = img.size
    if (w, h) != (size, size):
        # the crop of the resized image that this always was, mapped back to the source
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        left, top = (nw - size) // 2, (nh - size) // 2
        sx, sy = w / nw, h / nh
        img = img.resize((size, size), Image.Resampling.BILINEAR,
                         box=(left * sx, top * sy, (left + size) * sx, (top + size) * sy))
    return img


def to_chw(img, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """An RGB image (already at its final size) -> float32 array [3, H, W], normalised."""
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess(image, image_size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A path or PIL image -> float32 [3, image_size, image_size] normalised with mean/std."""
    if isinstance(image, (str, Path)):
        image = open_rgb(image, min_side=image_size)
    else:
        image = to_rgb(image)
    return to_chw(resize_center_crop(image, image_size), mean, std)


def preprocess_batch(images, image_size: int, mean, std) -> np.ndarray:
    """Many paths or PIL images -> float32 [N, 3, image_size, image_size]."""
    return np.stack([preprocess(i, image_size, mean, std) for i in images])
