"""edgessl's own small CNN backbones, built from timm's ResNet so exporters treat them alike."""

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
