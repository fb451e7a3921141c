"""Image datasets as uint8 tensors for training: decoded once, kept in memory when small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgessl.data.images import open_rgb
from edgessl.data.preprocess import resize_center_crop

PRELOAD_LIMIT_BYTES = 1 << 30  # decode up to 1 GiB of pixels once instead of every epoch


def load_uint8(path: Path, image_size: int) -> torch.Tensor:
    """One image -> uint8 tensor [3, image_size, image_size] (shorter side resized, centre crop)."""
    img = resize_center_crop(open_rgb(path, min_side=image_size), image_size)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


class ImageDataset(torch.utils.data.Dataset):
    """Images (with optional labels) as uint8 [3, S, S] tensors passed through ``transform``.

    Args:
        paths: image files (already checked readable).
        image_size: side S in pixels.
        labels: one int per path, or None for unlabeled data (label -1).
        transform: callable on a uint8 tensor, returning a tensor or a list of views.
    """

    def __init__(self, paths, image_size: int, labels=None, transform=None) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = list(labels) if labels is not None else [-1] * len(self.paths)
        self.image_size = image_size
        self.transform = transform
        self._cache: torch.Tensor | None = None
        if len(self.paths) * 3 * image_size * image_size <= PRELOAD_LIMIT_BYTES:
            self._cache = torch.stack([load_uint8(p, image_size) for p in self.paths])

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> torch.Tensor:
        if self._cache is not None:
            return self._cache[index]
        return load_uint8(self.paths[index], self.image_size)

    def __getitem__(self, index: int):
        x = self.image(index)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index]


def normalize_fn(mean, std):
    """uint8 [.., 3, H, W] -> float normalised, as a torchvision-v2 compatible callable."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
