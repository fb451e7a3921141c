"""View augmentations for SSL, configured by a frozen dataclass (presets per method)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """The augmentations that make two views of one image (SimCLR's recipe by default).

    Attributes:
        crop_scale: area range of RandomResizedCrop, as fractions of the image.
        hflip: probability of a horizontal flip (0 for data where mirroring changes meaning).
        jitter: colour-jitter strength s (brightness/contrast/saturation 0.8s, hue 0.2s).
        jitter_p: probability of applying colour jitter.
        grayscale_p: probability of converting to grayscale.
        blur_p: probability of a Gaussian blur (kernel ~10% of the image side).
        rotate: maximum rotation in degrees (random affine; 0 = off), for data such as
            handwriting or aerial images where small rotations keep the meaning.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    hflip: float = 0.5
    jitter: float = 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    rotate: float = 0.0


def view_transform(cfg: AugmentConfig, image_size: int, mean, std):
    """A torchvision v2 transform: uint8 [3, H, W] -> one augmented, normalised float view."""
    import torch
    from torchvision.transforms import v2

    s = cfg.jitter
    kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)
    rotation = [v2.RandomAffine(degrees=cfg.rotate)] if cfg.rotate > 0 else []
    return v2.Compose([
        *rotation,
        v2.RandomResizedCrop(image_size, scale=cfg.crop_scale, antialias=True),
        v2.RandomHorizontalFlip(cfg.hflip),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=cfg.jitter_p),
        v2.RandomGrayscale(cfg.grayscale_p),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=cfg.blur_p),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ])


class MultiView:
    """Apply ``transform`` ``n`` times to one image, returning the list of views."""

    def __init__(self, transform, n: int = 2) -> None:
        self.transform = transform
        self.n = n

    def __call__(self, x):
        return [self.transform(x) for _ in range(self.n)]
