"""Backbones: any timm model (created without its classifier) plus edgessl's own small ones.

``BACKBONES`` maps edgessl's own names to factories; every other name is looked up in timm.
Adding a backbone is one factory plus one ``BACKBONES.register`` line. ``wrap_module`` makes
any ``torch.nn.Module`` a backbone (Python API); ``describe_backbones`` and
``find_timm_models`` list what there is (``edgessl backbones``).
"""

from __future__ import annotations

from edgessl.backbones.catalog import (
    BackboneInfo,
    TimmModelInfo,
    describe_backbones,
    find_timm_models,
)
from edgessl.backbones.factory import (
    BACKBONES,
    Backbone,
    BackboneSpec,
    create_backbone,
    list_backbones,
)
from edgessl.backbones.wrap import wrap_module

__all__ = ["BACKBONES", "Backbone", "BackboneInfo", "BackboneSpec", "TimmModelInfo",
           "create_backbone", "describe_backbones", "find_timm_models", "list_backbones",
           "wrap_module"]
