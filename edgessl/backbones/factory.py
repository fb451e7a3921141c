"""Creating backbones by name, with the small-image stem for images of 64 px or less."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from edgessl.backbones import small
from edgessl.errors import unknown_choice
from edgessl.registry import Registry

# Factories return a timm model without classifier; those with an ``image_size`` parameter get
# the training resolution (ViTs choose their patch from it), the others are called bare.
BACKBONES: Registry[Callable[..., Any]] = Registry("backbone")
BACKBONES.register("resnet_tiny", small.resnet_tiny)
BACKBONES.register("resnet_tiny_s2", small.resnet_tiny_s2)
BACKBONES.register("resnet_micro", small.resnet_micro)
BACKBONES.register("vit_tiny32", small.vit_tiny32)
BACKBONES.register("vit_tiny", small.vit_tiny)
BACKBONES.register("vit_small", small.vit_small)
BACKBONES.register("vit_base", small.vit_base)

SMALL_IMAGE_MAX = 64


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to rebuild a backbone's architecture (weights come separately).

    Attributes:
        name: an edgessl backbone name or a timm model name (``timm:`` prefix optional).
        image_size: input side in pixels.
        small_stem: stride-1 first conv and no max-pool, as in the CIFAR literature.
    """

    name: str
    image_size: int
    small_stem: bool

    @classmethod
    def for_images(cls, name: str, image_size: int) -> BackboneSpec:
        """The spec edgessl picks for ``image_size``: small stem at 64 px or less."""
        name = name.removeprefix("timm:")
        return cls(name=name, image_size=image_size, small_stem=image_size <= SMALL_IMAGE_MAX)

    def to_dict(self) -> dict:
        return asdict(self)


def apply_small_image_stem(model) -> list[str]:
    """Remove early downsampling in place: first strided conv gets stride 1, max-pool goes.

    Returns:
        A list of what was changed, for the model card and the log.
    """
    changes = []
    if getattr(model, "built_for_small_images", False):  # e.g. vit_tiny32's 4 px patches
        return changes
    if hasattr(model, "patch_embed"):  # a transformer: a stride-1 patch conv would break it
        return changes
    if isinstance(getattr(model, "maxpool", None), torch.nn.MaxPool2d):
        model.maxpool = torch.nn.Identity()
        changes.append("maxpool removed")
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
            changes.append(f"{name} stride 1")
            break
    return changes


def _build_raw(name: str, image_size: int):
    if name in BACKBONES:
        factory = BACKBONES.get(name)
        if "image_size" in inspect.signature(factory).parameters:
            return factory(image_size=image_size)
        return factory()
    import timm

    if not timm.is_model(name):
        raise unknown_choice("backbone", name, list_backbones(name))
    return create_timm_model(name, image_size, pretrained=False)


def create_timm_model(name: str, image_size: int, pretrained: bool):
    """``timm.create_model`` without classifier; transformers are built for ``image_size``.

    ViT-like models fix their position embeddings to one input size, so they get
    ``img_size=image_size`` (timm resamples pretrained position embeddings to it); CNNs take
    any size and do not accept the argument.
    """
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, img_size=image_size)
    except TypeError:  # a model without an img_size argument (CNNs)
        return timm.create_model(name, pretrained=pretrained, num_classes=0)


def list_backbones(near: str | None = None) -> list[str]:
    """edgessl's backbones and timm's model names (those close to ``near`` when given)."""
    import difflib

    import timm

    names = BACKBONES.names()
    timm_names = timm.list_models()
    if near is None:
        return names + timm_names
    return names + difflib.get_close_matches(near, timm_names, n=8, cutoff=0.6)


def create_backbone(spec: BackboneSpec):
    """Build the backbone described by ``spec`` with freshly initialised weights.

    Returns:
        A ``Backbone`` module mapping images [N, 3, H, W] to features [N, D].
    """
    model = _build_raw(spec.name, spec.image_size)
    if spec.small_stem:
        apply_small_image_stem(model)
    return Backbone(model, spec)


class Backbone(torch.nn.Module):
    """A feature extractor: images [N, 3, H, W] -> pooled features [N, num_features]."""

    def __init__(self, model: torch.nn.Module, spec: BackboneSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.num_features = int(model.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model(x)
        if features.ndim > 2:  # models without global pooling
            features = features.flatten(2).mean(-1)
        return features
