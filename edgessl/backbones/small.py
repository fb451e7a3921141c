"""edgessl's own small backbones, built from timm's ResNet and ViT so exporters treat them alike."""

from __future__ import annotations


def resnet_tiny():
    """A narrow ResNet-10 (channels 32-64-128-256, one BasicBlock a stage, ~1.2 M parameters).

    Sized for the quickstart and CPU pretraining of small images; a timm ``ResNet`` underneath.
    """
    from timm.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, (1, 1, 1, 1), num_classes=0, channels=(32, 64, 128, 256),
                  stem_width=32)


def resnet_micro():
    """A 4-stage ResNet with 8-16-32-64 channels (~0.08 M parameters) for tests."""
    from timm.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, (1, 1, 1, 1), num_classes=0, channels=(8, 16, 32, 64), stem_width=8)


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
