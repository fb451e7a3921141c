"""What an export format's function receives and returns (the data, no behaviour).

Formats (``onnx_format``, ``openvino_format``), quantizers and the format table all use these
types; keeping them apart from the table lets a format module import them without importing
the table that lists it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgessl.artifact import ArtifactMeta
from edgessl.export.schemes import QuantizeConfig

if TYPE_CHECKING:
    from edgessl.export.calibration import CalibrationSet


@dataclass(frozen=True)
class AccuracyData:
    """Labeled validation images for accuracy-aware quantization.

    Attributes:
        inputs: float32 [N, 3, S, S], preprocessed as at inference.
        labels: int64 [N], indices into the checkpoint's labels.
        source: where they came from (for the report).
    """

    inputs: np.ndarray
    labels: np.ndarray
    source: str


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
        quantizer: who quantizes to int8: "ort" or "nncf" (``ExportFormat.quantizer_for``).
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
    quantizer: str = "nncf"
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
