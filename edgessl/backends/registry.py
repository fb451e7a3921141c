"""The runtimes' loader modules, one per entry of the runtime table
(``edgessl.runtime_specs.RUNTIME_SPECS``); ``load_any`` picks the runtime from the path."""

from __future__ import annotations

import importlib
from pathlib import Path

from edgessl.backends.base import LoadedModel
from edgessl.errors import CheckpointError
from edgessl.registry import Registry
from edgessl.runtime_specs import RUNTIME_SPECS

RUNTIMES = Registry("runtime")
for _name, _spec in RUNTIME_SPECS.items():
    RUNTIMES.register(_name, importlib.import_module(_spec.module))


def runtime_name_for(path: str | Path) -> str:
    """Which runtime runs ``path``: a checkpoint folder, a .onnx file or an OpenVINO .xml."""
    path = Path(path)
    for name, module in RUNTIMES.items():
        if module.accepts(path):
            return name
    raise CheckpointError(
        f"'{path}' is not a model edgessl can run; pass an edgessl checkpoint folder, "
        "a .onnx file or an OpenVINO .xml file"
    )


def load_any(path: str | Path, device: str = "CPU") -> LoadedModel:
    """Load ``path`` with the runtime that fits it (see ``runtime_name_for``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model '{path}' does not exist; check the path")
    return RUNTIMES.get(runtime_name_for(path)).load(path, device=device)
