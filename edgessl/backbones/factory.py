"""Creating backbones by name, with the small-image stem where an architecture asks for it.

The small-image stem (stride-1 first conv, no max-pool: ``apply_small_image_stem``) changes
features but no weight shape, so applying it to the wrong network goes unnoticed. edgessl
applies it at ≤ 64 px only to architectures that declare they support it: factories with a
``small_stem`` parameter (edgessl's resnet_tiny and resnet_micro) and timm CNNs, which edgessl
builds itself. Other registered factories (a user's network) are built exactly as they return
it; ``wrap_module(..., small_stem=True)`` and a ``small_stem`` parameter are the opt-ins. The
``BackboneSpec`` of a built ``Backbone`` records what was built, not what was asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from edgessl.backbones import small
from edgessl.backbones.small import apply_small_image_stem
from edgessl.errors import unknown_choice
from edgessl.registry import Registry

# Factories return a model without classifier (with a ``num_features`` attribute). Those with
# an ``image_size`` parameter get the training resolution (ViTs choose their patch from it);
# those with a ``small_stem`` parameter are asked for the small-image stem at ≤ 64 px; others
# are called bare and their model is used as it is.
BACKBONES: Registry[Callable[..., Any]] = Registry("backbone")
BACKBONES.register("resnet_tiny", small.resnet_tiny)
BACKBONES.register("resnet_tiny_s2", small.resnet_tiny_s2)
BACKBONES.register("resnet_micro", small.resnet_micro)
BACKBONES.register("vit_tiny32", small.vit_tiny32)
BACKBONES.register("vit_tiny", small.vit_tiny)
BACKBONES.register("vit_small", small.vit_small)
BACKBONES.register("vit_base", small.vit_base)

SMALL_IMAGE_MAX = 64
__all__ = ["BACKBONES", "SMALL_IMAGE_MAX", "Backbone", "BackboneSpec", "apply_small_image_stem",
           "create_backbone", "create_timm_model", "list_backbones", "timm_backbone"]


def _takes(factory: Callable, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and C callables have no signature
        return False


def takes_image_size(factory: Callable) -> bool:
    """Whether a registered factory builds for an image size (an ``image_size`` parameter)."""
    return _takes(factory, "image_size")


def supports_small_stem(name: str) -> bool:
    """Whether edgessl may give ``name`` the small-image stem: a registered factory with a
    ``small_stem`` parameter, or a timm model (patch-based ones are left alone when built)."""
    name = name.removeprefix("timm:")
    if name in BACKBONES:
        return _takes(BACKBONES.get(name), "small_stem")
    return True


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to rebuild a backbone's architecture (weights come separately).

    Attributes:
        name: an edgessl backbone name or a timm model name (``timm:`` prefix optional).
        image_size: input side in pixels.
        small_stem: stride-1 first conv and no max-pool, as in the CIFAR literature. In a
            built ``Backbone.spec`` (and so in model cards) it says whether the stem is part
            of the model; in a spec passed to ``create_backbone`` it asks for it.
        features: which features the backbone returns, an entry of
            ``edgessl.backbones.pooling.FEATURE_POOLS``: "final" (the last layer's, pooled) or
            "stages" (every stage's, pooled and joined; the pretrained starts use it).
    """

    name: str
    image_size: int
    small_stem: bool
    features: str = "final"

    @classmethod
    def for_images(cls, name: str, image_size: int) -> BackboneSpec:
        """The spec edgessl picks for ``image_size``: the small-image stem at 64 px or less,
        for architectures that support it (``supports_small_stem``)."""
        name = name.removeprefix("timm:")
        return cls(name=name, image_size=image_size,
                   small_stem=image_size <= SMALL_IMAGE_MAX and supports_small_stem(name))

    def to_dict(self) -> dict:
        return asdict(self)


def timm_backbone(model, spec: BackboneSpec) -> Backbone:
    """A timm model (built by edgessl) as a Backbone: the small-image stem where ``spec`` asks
    for it and the model can take it, and a spec that says whether it did."""
    applied = bool(spec.small_stem and apply_small_image_stem(model))
    return Backbone(model, replace(spec, small_stem=applied))


def _build(spec: BackboneSpec) -> Backbone:
    if spec.name not in BACKBONES:
        import timm

        if not timm.is_model(spec.name):
            raise unknown_choice("backbone", spec.name, list_backbones(spec.name))
        return timm_backbone(create_timm_model(spec.name, spec.image_size, pretrained=False),
                             spec)
    factory = BACKBONES.get(spec.name)
    kwargs: dict[str, Any] = {}
    if takes_image_size(factory):
        kwargs["image_size"] = spec.image_size
    if _takes(factory, "small_stem"):
        kwargs["small_stem"] = spec.small_stem
        return Backbone(factory(**kwargs), spec)
    model = factory(**kwargs)
    # A factory without the parameter is asked for the stem only by a spec made by hand or by
    # a card from before cards recorded what was built: that model got the stem wherever
    # apply_small_image_stem gives one, so it is rebuilt the same way (and recorded truly).
    applied = bool(spec.small_stem and apply_small_image_stem(model))
    return Backbone(model, replace(spec, small_stem=applied))


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
        A ``Backbone`` module mapping images [N, 3, H, W] to features [N, D], whose ``spec``
        records what was built (``small_stem`` False where the architecture kept its stem).
    """
    return _build(spec)


class Backbone(torch.nn.Module):
    """A feature extractor: images [N, 3, H, W] -> pooled features [N, num_features].

    ``spec.features`` picks what the features are (``edgessl.backbones.pooling``).

    Raises:
        ConfigError: ``spec.features`` unknown, or not something ``model`` can give.
    """

    def __init__(self, model: torch.nn.Module, spec: BackboneSpec) -> None:
        super().__init__()
        from edgessl.backbones.pooling import FEATURE_POOLS
        from edgessl.errors import ConfigError

        pool = FEATURE_POOLS.get(spec.features)
        if not pool.supports(model):
            raise ConfigError(f"backbone '{spec.name}' cannot give '{spec.features}' features "
                              f"({pool.description}); use features 'final'")
        self.model = model
        self.spec = spec
        self._pool = pool.forward
        self.num_features = (int(model.num_features) if pool.forward is None
                             else _measured_width(self, spec.image_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pool is not None:
            return self._pool(self.model, x)
        features = self.model(x)
        if features.ndim > 2:  # models without global pooling
            features = features.flatten(2).mean(-1)
        return features


def _measured_width(backbone: Backbone, image_size: int) -> int:
    """The feature width of ``backbone`` from one pass of a blank image (in eval mode, so no
    BatchNorm statistic changes), at a side small enough to cost milliseconds."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            side = min(image_size, 64)
            return int(backbone(torch.zeros(1, 3, side, side)).shape[1])
    finally:
        backbone.train(was_training)
