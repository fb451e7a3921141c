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
    refuse_export_folder(path)
    raise CheckpointError(
        f"'{path}' is not a model edgessl can run; pass an edgessl checkpoint folder, "
        "a .onnx file or an OpenVINO .xml file"
    )


def refuse_export_folder(path: Path) -> None:
    """Name the model file of an export folder given where a model is expected.

    Raises:
        CheckpointError: ``path`` is a folder holding exactly one model file.
    """
    inside = models_in_folder(path)
    if len(inside) == 1:
        raise CheckpointError(f"'{path}' is a folder holding the model '{inside[0]}'; pass "
                              "that file")


def models_in_folder(path: Path) -> list[Path]:
    """The artifacts directly in the folder ``path`` (an export folder: its one model file);
    none for a file or a folder that cannot be listed."""
    from edgessl.runtime_specs import runtime_for_suffix

    try:
        entries = sorted(path.iterdir()) if path.is_dir() else []
    except OSError:
        return []
    return [p for p in entries if p.is_file() and (spec := runtime_for_suffix(p.suffix))
            is not None and spec.format is not None]


def load_any(path: str | Path, device: str = "CPU") -> LoadedModel:
    """Load ``path`` with the runtime that fits it (see ``runtime_name_for``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model '{path}' does not exist; check the path")
    return RUNTIMES.get(runtime_name_for(path)).load(path, device=device)
