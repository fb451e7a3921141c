"""SSL methods, one file each; ``METHODS`` maps a name to the method class.

A method class has ``name``, ``Config`` (frozen dataclass of its settings), ``augment``
(its default AugmentConfig), ``num_views``, ``training_step(views) -> (loss, features)`` and
``after_step(progress)``. Adding a method is one file plus one ``METHODS.register`` line.
"""

from __future__ import annotations

from edgessl.registry import Registry
from edgessl.ssl import simclr

METHODS = Registry("SSL method")
METHODS.register("simclr", simclr.SimCLR)
