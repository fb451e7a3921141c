"""The runtime table: name -> loader module; ``load_any`` picks the runtime from the path."""

from __future__ import annotations

from pathlib import Path

from edgessl.errors import CheckpointError
from edgessl.registry import Registry
from edgessl.runtimes import onnxruntime_rt, openvino_rt, torch_rt
from edgessl.runtimes.base import LoadedModel

RUNTIMES = Registry("runtime")
RUNTIMES.register("pytorch", torch_rt)
RUNTIMES.register("onnxruntime", onnxruntime_rt)
RUNTIMES.register("openvino", openvino_rt)


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
