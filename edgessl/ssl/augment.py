"""View augmentations for SSL, applied to whole batches with per-image random parameters.

Each image of a uint8 batch [N, 3, H, W] gets its own random resized crop (with optional
rotation and flip, as one affine resample), colour jitter, grayscale and blur, as in SimCLR's
recipe. Working on the batch instead of image by image keeps augmentation at a few percent of
a CPU training step (per-image torchvision pipelines cost as much as the model on small
images). Randomness comes from torch's global generator, so seeding and ``--resume`` cover it.

Multi-crop (SwAV, DINO): with ``local_crops`` > 0, each batch also gets that many small views
of small regions, cropped from ``local_crop_scale`` of the image and resampled to
``local_view_size`` pixels, after the full-size (global) views.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

import torch
import torch.nn.functional as F

from edgessl.config import Range, check_fields, from_dict


@dataclass(frozen=True)
class AugmentConfig:
    """The augmentations that make two views of one image (SimCLR's recipe by default).

    Attributes:
        crop_scale: area range of the random resized crop, as fractions of the image.
        crop_ratio: aspect-ratio range of the crop.
        hflip: probability of a horizontal flip (0 for data where mirroring changes meaning).
        jitter: colour-jitter strength s (brightness/contrast/saturation 0.8s, hue 0.2s).
        jitter_p: probability of applying colour jitter.
        grayscale_p: probability of converting to grayscale.
        blur_p: probability of a Gaussian blur (sigma 0.1-2 px at 224 px, scaled to the size).
        rotate: maximum rotation in degrees (0 = off), for data such as handwriting or aerial
            images where small rotations keep the meaning.
        local_crops: small (local) views per image on top of the global views (0 = off;
            DINO uses 6-10).
        local_size: side of the local views as a fraction of the global side (DINO's
            96/224 = 0.4375), rounded to a multiple of 8 px, see ``local_view_size``.
        local_crop_scale: area range of the local crops, as fractions of the image (DINO's
            (0.05, 0.4)); the global views use ``crop_scale``.
    """

    FIELD_LABEL = "augment "  # no flags of its own: --aug KEY=VALUE and [augment] keys

    crop_scale: Annotated[tuple[float, float], Range(gt=0, le=1, ordered=True)] = (0.2, 1.0)
    crop_ratio: Annotated[tuple[float, float], Range(gt=0, le=10, ordered=True)] = (3 / 4, 4 / 3)
    hflip: Annotated[float, Range(ge=0, le=1, note="a probability")] = 0.5
    # Brightness, contrast and saturation factors are 1 ± 0.8 s: above 1.25 they go negative.
    jitter: Annotated[float, Range(ge=0, le=1.25)] = 0.5
    jitter_p: Annotated[float, Range(ge=0, le=1, note="a probability")] = 0.8
    grayscale_p: Annotated[float, Range(ge=0, le=1, note="a probability")] = 0.2
    blur_p: Annotated[float, Range(ge=0, le=1, note="a probability")] = 0.5
    rotate: Annotated[float, Range(ge=0, le=180, note="degrees")] = 0.0
    local_crops: Annotated[int, Range(ge=0, le=32, note="0 = no multi-crop")] = 0
    local_size: Annotated[float, Range(gt=0, le=1, note="DINO: 0.4375 = 96/224")] = 0.4375
    local_crop_scale: Annotated[tuple[float, float],
                                Range(gt=0, le=1, ordered=True, note="DINO: (0.05, 0.4)")
                                ] = (0.05, 0.4)

    def __post_init__(self) -> None:
        check_fields(self)


def local_view_size(size: int, fraction: float) -> int:
    """Side in pixels of the local views for global views of ``size`` pixels.

    ``size * fraction`` rounded half up to a multiple of 8 px, at least 8 px and at most
    ``size``: 224 px -> 96 (DINO's local crops), 64 -> 32, 32 -> 16, 16 -> 8. Multiples of 8
    are divisible by the patch sizes of edgessl's small-image ViTs at 16, 32 and 64 px (2, 4,
    8); DINO resizes local views for ViTs whose patch does not divide them (see
    ``edgessl.ssl.dino``).
    """
    return min(size, max(8, 8 * math.floor(size * fraction / 8 + 0.5)))


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n) * (high - low) + low


def _bernoulli(n: int, p: float) -> torch.Tensor:
    return torch.rand(n) < p


def crop_flip_rotate(x: torch.Tensor, cfg: AugmentConfig, size: int) -> torch.Tensor:
    """Random resized crop (+ rotation, + flip) of each image, resampled to ``size``."""
    n = x.shape[0]
    area = _uniform(n, *cfg.crop_scale)
    log_ratio = _uniform(n, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]))
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the image side
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = torch.rand(n) * (1 - w) + w / 2  # crop centre, in [0, 1]
    cy = torch.rand(n) * (1 - h) + h / 2
    angle = _uniform(n, -cfg.rotate, cfg.rotate) * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    flip = torch.where(_bernoulli(n, cfg.hflip), -1.0, 1.0)
    theta = torch.stack([
        torch.stack([w * cos * flip, -h * sin, 2 * cx - 1], 1),
        torch.stack([w * sin * flip, h * cos, 2 * cy - 1], 1),
    ], 1)
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images by ``turns`` (fractions of a full circle) in YIQ space."""
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                           [0.211, -0.523, 0.312]])
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    a = turns * 2 * math.pi
    cos, sin = torch.cos(a)[:, None, None], torch.sin(a)[:, None, None]
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], i * cos - q * sin, i * sin + q * cos], 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq)


def colour(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Colour jitter (brightness, contrast, saturation, hue) and random grayscale, in [0, 1]."""
    n, s = x.shape[0], cfg.jitter
    if s > 0 and cfg.jitter_p > 0:
        on = _bernoulli(n, cfg.jitter_p)[:, None, None, None]
        y = x * _uniform(n, 1 - 0.8 * s, 1 + 0.8 * s)[:, None, None, None]
        mean = _gray(y).mean((1, 2, 3), keepdim=True)
        y = (y - mean) * _uniform(n, 1 - 0.8 * s, 1 + 0.8 * s)[:, None, None, None] + mean
        g = _gray(y)
        y = (y - g) * _uniform(n, 1 - 0.8 * s, 1 + 0.8 * s)[:, None, None, None] + g
        y = _rotate_hue(y.clamp(0, 1), _uniform(n, -0.2 * s, 0.2 * s))
        x = torch.where(on, y.clamp(0, 1), x)
    if cfg.grayscale_p > 0:
        x = torch.where(_bernoulli(n, cfg.grayscale_p)[:, None, None, None],
                        _gray(x).expand_as(x), x)
    return x


def blur(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Gaussian blur with a random sigma per image (probability ``cfg.blur_p``)."""
    if cfg.blur_p <= 0:
        return x
    n, c, size, _ = x.shape
    scale = size / 224
    sigma = _uniform(n, 0.1, 2.0) * scale + 1e-3
    radius = max(1, int(math.ceil(3 * 2.0 * scale)))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [n*c, k]
    y = x.reshape(1, n * c, size, size)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * c)
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * c).reshape(n, c, size, size)
    return torch.where(_bernoulli(n, cfg.blur_p)[:, None, None, None], y, x)


class BatchViews:
    """uint8 images [N, 3, H, W] -> augmented, normalised float views.

    Returns ``n_views`` global views [N, 3, size, size], then ``cfg.local_crops`` local views
    [N, 3, s, s] with s = ``local_view_size(size, cfg.local_size)``, cropped from
    ``cfg.local_crop_scale`` of the image; both kinds get the same colour and blur
    augmentations (blur sigma scales with the view side).

    Args:
        cfg: the augmentations.
        size: side of the global views in pixels.
        mean, std: normalisation after augmentation.
        n_views: global views per image.
    """

    def __init__(self, cfg: AugmentConfig, size: int, mean, std, n_views: int = 2) -> None:
        self.cfg, self.size, self.n_views = cfg, size, n_views
        self.local_cfg = replace(cfg, crop_scale=cfg.local_crop_scale)
        self.local_size = local_view_size(size, cfg.local_size)
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def view(self, images: torch.Tensor, local: bool = False) -> torch.Tensor:
        """One augmented view of each image: global, or local when ``local`` is True."""
        cfg, size = (self.local_cfg, self.local_size) if local else (self.cfg, self.size)
        x = images.float() / 255.0
        x = crop_flip_rotate(x, cfg, size).clamp(0, 1)
        x = blur(colour(x, cfg), cfg)
        return (x - self.mean) / self.std

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        views = [self.view(images) for _ in range(self.n_views)]
        return views + [self.view(images, local=True) for _ in range(self.cfg.local_crops)]


def build_augment(preset: AugmentConfig, overrides: dict[str, Any]) -> AugmentConfig:
    """The method's preset with ``overrides`` applied (unknown fields are errors)."""
    if not overrides:
        return preset
    return from_dict(AugmentConfig, {**asdict(preset), **overrides},
                     where="augment (--aug / [augment])")
