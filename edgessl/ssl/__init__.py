"""SSL methods, one file each; ``METHODS`` maps a name to the method class.

Every method subclasses ``edgessl.ssl.base.SSLMethod`` (its docstring is the interface):
``name``, ``Config`` (frozen dataclass of its settings), ``augment`` (its augmentation
preset), ``num_views``, ``optimizer``/``lr`` defaults, ``forward(views) -> (loss, features)``
and ``after_step(progress)``. Adding a method is one file plus one ``METHODS.register`` line.
Method modules are imported when first asked for, so ``import edgessl`` stays free of torch.
"""

from __future__ import annotations

import importlib

from edgessl.registry import Registry


class _Lazy:
    """A registry entry that imports ``module:attr`` on first use."""

    def __init__(self, target: str) -> None:
        self.target = target


class _MethodRegistry(Registry):
    def get(self, name: str):
        entry = super().get(name)
        if isinstance(entry, _Lazy):
            module, _, attr = entry.target.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def items(self) -> list:
        return [(n, self.get(n)) for n in self.names()]


METHODS = _MethodRegistry("SSL method")
METHODS.register("simclr", _Lazy("edgessl.ssl.simclr:SimCLR"))
METHODS.register("moco", _Lazy("edgessl.ssl.moco:MoCoV3"))
METHODS.register("byol", _Lazy("edgessl.ssl.byol:BYOL"))
METHODS.register("dino", _Lazy("edgessl.ssl.dino:DINO"))
METHODS.register("vicreg", _Lazy("edgessl.ssl.vicreg:VICReg"))
METHODS.register("mae", _Lazy("edgessl.ssl.mae:MAE"))
