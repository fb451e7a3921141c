"""Backbones: any timm model (created without its classifier) plus edgessl's own small ones.

``BACKBONES`` maps edgessl's own names to factories; every other name is looked up in timm.
Adding a backbone is one factory plus one ``BACKBONES.register`` line.
"""

from __future__ import annotations

from edgessl.backbones.factory import (
    BACKBONES,
    Backbone,
    BackboneSpec,
    create_backbone,
    list_backbones,
)

__all__ = ["BACKBONES", "Backbone", "BackboneSpec", "create_backbone", "list_backbones"]
