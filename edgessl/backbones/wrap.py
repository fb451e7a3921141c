"""Any ``torch.nn.Module`` as an edgessl backbone, for the Python API.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU())
    >>> backbone = wrap_module(net, image_size=32)          # features [N, 16]
    >>> model = edgessl.ssl.simclr.SimCLR(backbone)          # pretrain it, or
    >>> classifier = edgessl.models.Classifier(backbone, 10)  # fine-tune it

A wrapped backbone trains, fine-tunes and exports like edgessl's own. One limit: a checkpoint
saved from it cannot be rebuilt by name from its ``card.json`` (``edgessl finetune --backbone
FOLDER``, ``edgessl export``), since no factory of that name exists; ``load_model`` then
fails with "unknown backbone". To make a custom network work by name everywhere, register a
factory instead: ``BACKBONES.register("mynet", make_mynet)`` (the factory returns a module
with a ``num_features`` attribute).

edgessl never changes the architecture of a network you bring: a registered factory's module
and a wrapped module are used as they are, at any image size. edgessl's own CNNs and timm's
get the small-image stem at ≤ 64 px (stride-1 first conv, no max-pool); to opt in for yours,
give the factory a ``small_stem`` parameter (edgessl passes True at ≤ 64 px; the factory may
call ``edgessl.backbones.factory.apply_small_image_stem``), or pass ``small_stem=True`` here.
Model cards record whether the stem was applied.
"""

from __future__ import annotations

import torch

from edgessl.backbones.factory import Backbone, BackboneSpec, apply_small_image_stem
from edgessl.errors import ConfigError


def _output_width(module: torch.nn.Module, image_size: int) -> int:
    """Feature width of ``module`` from one forward pass of two blank images."""
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = module.training
    module.eval()  # BatchNorm in training mode would change its running statistics
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, 3, image_size, image_size, device=device, dtype=dtype))
    except Exception as exc:  # noqa: BLE001 - any failure of a user's module
        raise ConfigError(f"the wrapped module fails on images [2, 3, {image_size}, "
                          f"{image_size}] ({type(exc).__name__}: {exc}); pass the image_size "
                          "it was built for") from None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim not in (2, 4):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the wrapped module returns {shape}; a backbone returns features "
                          "[N, D] or feature maps [N, D, H, W] (pool tokens [N, L, D] inside "
                          "the module, e.g. take the class token)")
    return int(out.shape[1])


def wrap_module(module: torch.nn.Module, image_size: int, name: str = "custom",
                num_features: int | None = None, small_stem: bool = False) -> Backbone:
    """Wrap ``module`` (images [N, 3, H, W] -> [N, D] or [N, D, H', W']) as a Backbone.

    Feature maps are averaged over space by ``Backbone.forward``, so the result always gives
    pooled features [N, D]. ``module`` gains a ``num_features`` attribute (Backbone reads it).

    Args:
        module: the network; left as it is unless ``small_stem`` is True.
        image_size: input side in pixels it is used at.
        name: recorded in the spec and in model cards (it cannot be rebuilt from that name
            unless a factory of that name is registered in ``BACKBONES``).
        num_features: the feature width D; None = measured with a forward pass.
        small_stem: opt in to the small-image stem: ``module``'s first strided convolution
            gets stride 1 and a ``maxpool`` attribute that is a MaxPool2d goes, in place
            (CIFAR-style, for images of ≤ 64 px). Off by default: the module is not changed.

    Returns:
        A ``Backbone`` usable by the SSL methods, ``Classifier`` and the exporters.

    Raises:
        ConfigError: not a module, a failing forward pass, an output that is not [N, D] or
            [N, D, H, W], a ``num_features`` that disagrees with the output, or
            ``small_stem`` for a module it cannot change (patch-based, or no strided conv).
    """
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(f"wrap_module needs a torch.nn.Module, got a {type(module).__name__}")
    if image_size < 1:
        raise ConfigError(f"image_size must be ≥ 1 pixel, got {image_size}")
    if small_stem and not apply_small_image_stem(module):
        raise ConfigError("small_stem=True, but the module has no strided convolution or "
                          "max-pool the small-image stem can change (or it cuts images into "
                          "patches); omit small_stem")
    width = _output_width(module, image_size)
    if num_features is not None and num_features != width:
        raise ConfigError(f"num_features is {num_features} but the module returns {width} "
                          "features; omit num_features to use the measured width")
    if getattr(module, "num_features", None) != width:
        module.num_features = width
    return Backbone(module, BackboneSpec(name=name, image_size=image_size,
                                         small_stem=small_stem))
