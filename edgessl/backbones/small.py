"""edgessl's own small backbones, built from timm's ResNet and ViT so exporters treat them alike.

Also the small-image stem (``apply_small_image_stem``): the CIFAR-style change of an ImageNet
CNN for images of 64 px or less. It is applied only where an architecture asks for it, never
to a network a user brought (see ``edgessl.backbones.factory``).
"""

from __future__ import annotations

import torch


def _patch_based(model: torch.nn.Module) -> bool:
    """Whether ``model`` cuts images into patches (ViTs, MLP-Mixers): a stride-1 patch conv
    would change its token count and break it."""
    from timm.layers import PatchEmbed

    return hasattr(model, "patch_embed") or any(isinstance(m, PatchEmbed)
                                                for m in model.modules())


def apply_small_image_stem(model: torch.nn.Module) -> list[str]:
    """Remove early downsampling in place: the first strided conv gets stride 1, max-pool goes.

    Models already built for small images (``built_for_small_images = True``) and patch-based
    models are left alone. Weight shapes do not change, so the same weights load either way:
    only features do, which is why edgessl applies this only where the architecture asks for
    it (edgessl's own CNNs, timm CNNs built by edgessl, factories with a ``small_stem``
    parameter, ``wrap_module(..., small_stem=True)``).

    Returns:
        What was changed (empty when nothing was), for the model card and the log.
    """
    changes: list[str] = []
    if getattr(model, "built_for_small_images", False) or _patch_based(model):
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


def _small(model: torch.nn.Module, small_stem: bool) -> torch.nn.Module:
    if small_stem:
        apply_small_image_stem(model)
    return model


def resnet_tiny(small_stem: bool = False):
    """A narrow ResNet-10 (channels 32-64-128-256, one BasicBlock a stage, ~1.2 M parameters).

    Sized for the quickstart and CPU pretraining of small images; a timm ``ResNet`` underneath.
    ``small_stem``: stride-1 first conv and no max-pool (edgessl asks for it at ≤ 64 px).
    """
    from timm.models.resnet import BasicBlock, ResNet

    return _small(ResNet(BasicBlock, (1, 1, 1, 1), num_classes=0, channels=(32, 64, 128, 256),
                         stem_width=32), small_stem)


def resnet_tiny_s2():
    """resnet_tiny with a stride-2 stem conv and no max-pool: the CPU choice for 32 px images.

    At 32 px its first stage runs on 16x16 maps (the small-image stem keeps 32x32), which
    makes SimCLR steps about 5x cheaper on a CPU. In a 30-minute CPU budget on CIFAR it
    reaches 60-100 epochs instead of ~12 and a better backbone
    (``benchmarks/results/cifar_recipe_sweep.jsonl``). Same weights layout as resnet_tiny.
    """
    model = resnet_tiny()
    model.maxpool = torch.nn.Identity()
    model.built_for_small_images = True  # its stem is already chosen (no small_stem parameter)
    return model


def resnet_micro(small_stem: bool = False):
    """A 4-stage ResNet with 8-16-32-64 channels (~0.08 M parameters) for tests.

    ``small_stem``: as for ``resnet_tiny``.
    """
    from timm.models.resnet import BasicBlock, ResNet

    return _small(ResNet(BasicBlock, (1, 1, 1, 1), num_classes=0, channels=(8, 16, 32, 64),
                         stem_width=8), small_stem)


def vit_tiny32():
    """A ViT for 32 px images: patch 4 (8x8 tokens), width 192, depth 6, 3 heads (~2.7 M params).

    DeiT-Tiny's width with CIFAR-style patches, so INT8 results are those of a realistically
    sized transformer (timm's ``test_vit`` has 0.37 M parameters and 16 px patches). Its input
    side is fixed at 32 px; it is already built for small images, so the small-image stem
    leaves it alone.
    """
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(img_size=32, patch_size=4, embed_dim=192, depth=6, num_heads=3,
                              num_classes=0)
    model.built_for_small_images = True
    return model


# Widths, depths and heads of DeiT-Ti/S and ViT-B (Touvron et al. 2021; Dosovitskiy et al. 2021).
VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}
PATCH_16_FROM = 128  # images of this side or more get 16 px patches


def _patch_for(image_size: int) -> int:
    return 16 if image_size >= PATCH_16_FROM else image_size // 8


def _patch_fits(image_size: int) -> bool:
    return image_size >= 16 and image_size % _patch_for(image_size) == 0


def vit_patch_size(image_size: int) -> int:
    """Patch side in pixels for ``vit_tiny``/``vit_small``/``vit_base`` at ``image_size`` px.

    16 px patches from 128 px up (ImageNet ViTs: 14x14 tokens at 224 px); below 128 px
    ``image_size // 8``, an 8x8 token grid at any size (16 px -> 2, 32 -> 4, 64 -> 8,
    96 -> 12). The image side must be a multiple of the patch side.

    Raises:
        ConfigError: images under 16 px, or a side the patch does not divide (the message
            names the nearest sizes that work).
    """
    from edgessl.errors import ConfigError

    if image_size < 16:
        raise ConfigError(f"edgessl's ViTs need images of at least 16 px (2 px patches), got "
                          f"{image_size} px; pass --image-size 16 or more")
    patch = _patch_for(image_size)
    if image_size % patch:
        below = next(s for s in range(image_size - 1, 15, -1) if _patch_fits(s))
        above = next(s for s in range(image_size + 1, image_size + 17) if _patch_fits(s))
        raise ConfigError(f"edgessl's ViTs cut {image_size} px images into {patch} px patches "
                          f"(16 px from {PATCH_16_FROM} px up, else side/8), which does not "
                          f"divide {image_size}; pass --image-size {below} or {above}")
    return patch


def _vit(size: str, image_size: int):
    from timm.models.vision_transformer import VisionTransformer

    width, depth, heads = VIT_SIZES[size]
    # dynamic_img_size: smaller inputs (DINO's local crops) interpolate the position
    # embedding; at the built size the graph is the fixed-size one, so ONNX export is as before.
    model = VisionTransformer(img_size=image_size, patch_size=vit_patch_size(image_size),
                              embed_dim=width, depth=depth, num_heads=heads, num_classes=0,
                              dynamic_img_size=True)
    model.built_for_small_images = True  # its patch is already chosen for the image size
    return model


def vit_tiny(image_size: int = 32):
    """A DeiT-Tiny ViT (width 192, depth 12, 3 heads, ~5.4 M params), patch set by image size.

    The patch side comes from ``vit_patch_size`` (an 8x8 token grid below 128 px). Other input
    sides that the patch divides work too: position embeddings are interpolated.
    """
    return _vit("tiny", image_size)


def vit_small(image_size: int = 32):
    """A DeiT-Small ViT (width 384, depth 12, 6 heads, ~21 M params), patch set by image size.

    See ``vit_tiny``.
    """
    return _vit("small", image_size)


def vit_base(image_size: int = 32):
    """A ViT-Base (width 768, depth 12, 12 heads, ~85 M params), patch set by image size.

    See ``vit_tiny``.
    """
    return _vit("base", image_size)
