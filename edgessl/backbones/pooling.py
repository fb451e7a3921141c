"""Which features a backbone returns: the last layer's, or every stage's pooled and joined.

A network's last layer is tuned to the task it was trained on (ImageNet's classes); earlier
stages hold more generic edges, textures and parts. On data far from the training set the
earlier stages carry much of what transfers, so a linear probe on the global averages of every
stage, joined to the last layer's, beats the last layer alone. EfficientNet-Lite0 frozen +
logistic regression at 10 labels per class, 3 label subsets (``benchmarks/feature_pooling.py``):

    final layer (1280)            cifar10-subset 58.1, emoji 60.4, solar cells (elpv) 38.8
    every stage + final (2064)    cifar10-subset 61.0, emoji 62.7, solar cells (elpv) 41.8

Pooling a stage's output is a mean over its feature map: next to the convolutions it costs
nothing, and it exports as one ReduceMean per stage.

``FEATURE_POOLS`` is the registry: ``final`` (every architecture; the default) and ``stages``
(timm's EfficientNet family, which the pretrained starts are). A backbone's
``BackboneSpec.features`` names its entry, so model cards rebuild the same network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from edgessl.registry import Registry


@dataclass(frozen=True)
class FeaturePool:
    """One way to turn a network's activations into the backbone's feature vector.

    Attributes:
        description: one line for messages and listings.
        supports: whether a built model can give these features.
        forward: (model, images [N, 3, H, W]) -> features [N, D]; None = the model's own
            forward (its pooled last layer).
    """

    description: str
    supports: Callable[[torch.nn.Module], bool]
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None


def _is_timm_efficientnet(model: torch.nn.Module) -> bool:
    from timm.models.efficientnet import EfficientNet

    return isinstance(model, EfficientNet)


def _stages_forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm EfficientNet's ``forward_features``, keeping each stage's spatial mean."""
    x = model.bn1(model.conv_stem(x))
    pooled = []
    for stage in model.blocks:
        x = stage(x)
        pooled.append(x.mean((2, 3)))
    x = model.bn2(model.conv_head(x))
    pooled.append(x.mean((2, 3)))
    features = torch.cat(pooled, 1)
    if model.drop_rate > 0:  # as timm's forward_head applies it to the pooled features
        features = torch.nn.functional.dropout(features, model.drop_rate, model.training)
    return features


FEATURE_POOLS: Registry[FeaturePool] = Registry("feature pooling")
FEATURE_POOLS.register("final", FeaturePool(
    "the last layer's features, averaged over space", lambda model: True, None))
FEATURE_POOLS.register("stages", FeaturePool(
    "every stage's output and the last layer's, each averaged over space, joined",
    _is_timm_efficientnet, _stages_forward))
