"""The export-format table: name -> ExportFormat. Adding a format is one file plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgessl.artifact import ArtifactMeta
from edgessl.export import onnx_format, openvino_format
from edgessl.registry import Registry

if TYPE_CHECKING:
    from edgessl.export.calibration import CalibrationSet


@dataclass(frozen=True)
class ExportRequest:
    """What a format's export function gets.

    Attributes:
        model: the PyTorch classifier in eval mode, images [N, 3, S, S] -> logits [N, C].
        meta: the metadata to embed; the function adds its quantization scheme to ``extra``.
        out_dir: the (temporary) folder to write into.
        stem: the artifact's file name without suffix ("model").
        precision: "fp32" or "int8".
        calibration: calibration images for int8, None for fp32.
    """

    model: Any
    meta: ArtifactMeta
    out_dir: Path
    stem: str
    precision: str
    calibration: CalibrationSet | None = None


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: the ``--format`` name.
        suffix: the artifact's file suffix (".onnx", ".xml").
        precisions: the ``--precision`` values it supports.
        runtime: the name in ``edgessl.runtimes.registry.RUNTIMES`` that runs it.
        export: writes the artifact for an ExportRequest and returns its path.
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    runtime: str
    export: Callable[[ExportRequest], Path]


FORMATS: Registry[ExportFormat] = Registry("export format")
FORMATS.register("onnx", ExportFormat("onnx", ".onnx", ("fp32", "int8"), "onnxruntime",
                                      onnx_format.export_onnx))
FORMATS.register("openvino", ExportFormat("openvino", ".xml", ("fp32", "int8"), "openvino",
                                          openvino_format.export_openvino))
