"""The export-format table: name -> ExportFormat. Adding a format is one file plus one line here.

Export, validation, deploy and benchmark all read this table: a format's suffix, the precisions
it exports and the runtime that runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgessl.export import executorch_format, onnx_format, openvino_format
from edgessl.export.request import ExportOutput, ExportRequest
from edgessl.export.schemes import QuantizeConfig
from edgessl.registry import Registry
from edgessl.runtime_specs import runtime_for_format

__all__ = ["FORMATS", "ExportFormat", "ExportOutput", "ExportRequest"]


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: the ``--format`` name.
        precisions: the ``--precision`` values it supports.
        export: writes the artifact for an ExportRequest.
        quantizer: who quantizes to int8: "ort", "nncf" or "pt2e"; under max_drop "nncf"
            for the formats NNCF can quantize (ONNX, OpenVINO).
        fixed_batch: the batch size its artifacts take when ``--static-batch`` is not given;
            None = a dynamic batch axis.
    """

    name: str
    precisions: tuple[str, ...]
    export: Callable[[ExportRequest], ExportOutput]
    quantizer: str = "nncf"
    fixed_batch: int | None = None

    @property
    def runtime(self) -> str:
        """The runtime that runs its artifacts (from ``edgessl.runtime_specs``)."""
        return runtime_for_format(self.name).name

    @property
    def suffix(self) -> str:
        """The artifact's file suffix (".onnx", ".xml"), as its runtime opens it."""
        return runtime_for_format(self.name).suffixes[0]

    def quantizer_for(self, quant: QuantizeConfig) -> str:
        """The int8 quantizer used: NNCF for accuracy control where NNCF can quantize the
        format, else the format's own."""
        if quant.max_drop is not None and self.quantizer in ("ort", "nncf"):
            return "nncf"
        return self.quantizer


FORMATS: Registry[ExportFormat] = Registry("export format")
FORMATS.register("onnx", ExportFormat("onnx", ("fp32", "fp16", "int8"),
                                      onnx_format.export_onnx, quantizer="ort"))
FORMATS.register("openvino", ExportFormat("openvino", ("fp32", "fp16", "int8"),
                                          openvino_format.export_openvino))
FORMATS.register("executorch", ExportFormat("executorch", ("fp32", "int8"),
                                            executorch_format.export_executorch,
                                            quantizer="pt2e", fixed_batch=1))
