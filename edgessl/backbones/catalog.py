"""What backbones there are: edgessl's own (size, feature width at an image size) and timm's.

Nothing is downloaded and no weights are allocated: edgessl's backbones are built on the meta
device to count their parameters, timm's names and pretrained tags come from its registry, and
whether weights are already in the local cache is read from disk. ``edgessl backbones`` prints
these lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from edgessl.backbones.factory import (
    BACKBONES,
    SMALL_IMAGE_MAX,
    BackboneSpec,
    create_backbone,
)
from edgessl.errors import ConfigError, EdgesslError


@dataclass(frozen=True)
class BackboneInfo:
    """One of edgessl's backbones as built at ``image_size``.

    Attributes:
        name: registry name (``--backbone scratch:NAME``, ``--backbone NAME --weights F``).
        available: whether it can be built for (and run at) the image size.
        params: parameters (count); None when not available.
        num_features: width D of the pooled features [N, D]; None when not available.
        note: how it treats small images, or why it is not available at the image size.
        description: first sentence of its factory's docstring.
    """

    name: str
    available: bool
    params: int | None
    num_features: int | None
    note: str
    description: str


@dataclass(frozen=True)
class TimmModelInfo:
    """A timm model name, its pretrained tags and which of them are cached locally."""

    name: str
    pretrained: tuple[str, ...]
    cached: tuple[str, ...]


def _note(backbone) -> str:
    model = backbone.model
    if getattr(model, "built_for_small_images", False):
        size = getattr(getattr(model, "patch_embed", None), "img_size", None)
        return f"built for {size[0]} px" if size else "built for small images"
    if backbone.spec.small_stem:
        return "small-image stem at ≤ 64 px (stride-1 first conv, no max-pool)"
    if backbone.spec.image_size <= SMALL_IMAGE_MAX:
        return "its own stem (no small_stem parameter: built as its factory returns it)"
    return "ImageNet stem (images over 64 px)"


def _fixed_size_mismatch(backbone, image_size: int) -> str | None:
    """Why a model with a fixed input side (e.g. vit_tiny32) cannot take ``image_size``."""
    embed = getattr(backbone.model, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if not getattr(embed, "strict_img_size", False) or size is None:
        return None
    if tuple(size) == (image_size, image_size):
        return None
    return f"it takes only {size[0]} px images"


def _describe(name: str, factory, image_size: int) -> BackboneInfo:
    doc = (factory.__doc__ or "").strip().split("\n\n")[0]
    description = " ".join(doc.split()).split(". ")[0].rstrip(".")
    try:
        # The meta device: parameters without memory, so even vit_base lists at once.
        with torch.device("meta"):
            backbone = create_backbone(BackboneSpec.for_images(name, image_size))
        reason = _fixed_size_mismatch(backbone, image_size)
    except EdgesslError as exc:  # the factory rejects the size (ViTs under 16 px, ...)
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken factory must not hide the others
        reason = f"{type(exc).__name__}: {exc}"
    if reason is not None:
        return BackboneInfo(name, False, None, None, f"not available at {image_size} px: "
                            f"{reason}", description)
    return BackboneInfo(name, True, sum(p.numel() for p in backbone.parameters()),
                        backbone.num_features, _note(backbone), description)


def describe_backbones(image_size: int = 32) -> list[BackboneInfo]:
    """edgessl's registered backbones with their size and feature width at ``image_size``.

    A backbone that cannot be used at ``image_size`` is listed with ``available=False`` and
    the reason in ``note``, so one such backbone does not make the whole listing fail.

    Raises:
        ConfigError: ``image_size`` below 1.
    """
    if image_size < 1:
        raise ConfigError(f"--image-size must be ≥ 1, got {image_size}")
    return [_describe(name, factory, image_size) for name, factory in BACKBONES.items()]


def _cached_weights() -> tuple[set[str], set[str]]:
    """Hugging Face repos and torch-hub files present in the local caches (no network)."""
    from huggingface_hub import scan_cache_dir

    try:
        repos = {r.repo_id for r in scan_cache_dir().repos}
    except Exception:  # noqa: BLE001 - no cache folder yet, or an unreadable one
        repos = set()
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    files = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    return repos, files


def find_timm_models(pattern: str) -> list[TimmModelInfo]:
    """timm model names matching the shell-style ``pattern``, with their pretrained tags.

    Raises:
        ConfigError: nothing matches (with close names where there are some).
    """
    import difflib

    import timm
    from timm.models import get_pretrained_cfg

    names = timm.list_models(pattern)
    if not names:
        close = difflib.get_close_matches(pattern.strip("*"), timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"no timm model matches '{pattern}'.{hint} Patterns are shell-style, "
                          "e.g. 'resnet*' or '*vit_small*'")
    tags: dict[str, list[str]] = {}
    for full in timm.list_pretrained(pattern if "." in pattern else pattern + ".*"):
        arch, _, tag = full.partition(".")
        tags.setdefault(arch, []).append(tag)
    repos, files = _cached_weights()

    def cached(arch: str, tag: str) -> bool:
        cfg = get_pretrained_cfg(f"{arch}.{tag}")
        url_file = (cfg.url or "").rsplit("/", 1)[-1] if cfg else ""
        return bool(cfg) and (cfg.hf_hub_id in repos or bool(url_file) and url_file in files)

    return [TimmModelInfo(n, tuple(tags.get(n, ())),
                          tuple(t for t in tags.get(n, ()) if cached(n, t))) for n in names]
