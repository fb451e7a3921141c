"""The export-format table: name -> ExportFormat. Adding a format is one file plus one line here.

Export, validation, deploy and benchmark all read this table: a format's suffix, the precisions
it exports and the runtime that runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgessl.artifact import ArtifactMeta
from edgessl.export import onnx_format, openvino_format
from edgessl.export.schemes import QuantizeConfig
from edgessl.registry import Registry

if TYPE_CHECKING:
    from edgessl.export.accuracy_control import AccuracyData
    from edgessl.export.calibration import CalibrationSet


@dataclass(frozen=True)
class ExportRequest:
    """What a format's export function gets.

    Attributes:
        model: the PyTorch module to export in eval mode, images [N, 3, S, S] -> [N, C] or
            [N, D] (see ``edgessl.export.targets``).
        meta: the metadata to embed; the function adds its quantization scheme to ``extra``.
        out_dir: the (temporary) folder to write into.
        stem: the artifact's file name without suffix ("model").
        precision: "fp32", "fp16" or "int8".
        calibration: calibration images for int8, None otherwise.
        quant: INT8 settings (scheme, knobs, max_drop).
        model_type: "cnn" or "transformer" (resolved from ``quant.model_type``).
        accuracy: labeled validation images for ``quant.max_drop``, None otherwise.
        embed_preprocessing: give the artifact a uint8 [N, S, S, 3] input.
        static_batch: fix the batch axis to this size; None = dynamic.
        simplify: simplify the graph (ONNX, onnxslim) where outputs do not change.
    """

    model: Any
    meta: ArtifactMeta
    out_dir: Path
    stem: str
    precision: str
    calibration: CalibrationSet | None = None
    quant: QuantizeConfig = QuantizeConfig()
    model_type: str = "cnn"
    accuracy: AccuracyData | None = None
    embed_preprocessing: bool = False
    static_batch: int | None = None
    simplify: bool = False


@dataclass(frozen=True)
class ExportOutput:
    """What a format's export function wrote.

    Attributes:
        path: the artifact (``.onnx``, ``.xml``).
        fp32_size_mib: size of the same graph at fp32 (for the compression ratio).
        details: report entries (scheme and its reason, layers kept in float, simplify).
    """

    path: Path
    fp32_size_mib: float
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: the ``--format`` name.
        suffix: the artifact's file suffix (".onnx", ".xml").
        precisions: the ``--precision`` values it supports.
        runtime: the name in ``edgessl.runtimes.registry.RUNTIMES`` that runs it.
        export: writes the artifact for an ExportRequest.
        quantizer: who quantizes to int8, "ort" or "nncf"; under max_drop always "nncf".
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    runtime: str
    export: Callable[[ExportRequest], ExportOutput]
    quantizer: str = "nncf"

    def quantizer_for(self, quant: QuantizeConfig) -> str:
        """The int8 quantizer used: NNCF for accuracy control, else the format's own."""
        return "nncf" if quant.max_drop is not None else self.quantizer


FORMATS: Registry[ExportFormat] = Registry("export format")
FORMATS.register("onnx", ExportFormat("onnx", ".onnx", ("fp32", "fp16", "int8"), "onnxruntime",
                                      onnx_format.export_onnx, quantizer="ort"))
FORMATS.register("openvino", ExportFormat("openvino", ".xml", ("fp32", "fp16", "int8"),
                                          "openvino", openvino_format.export_openvino))
