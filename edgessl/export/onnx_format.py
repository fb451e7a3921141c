"""ONNX export: torch.export-based exporter (opset 18, dynamic batch); INT8 by ONNX Runtime QDQ.

INT8 is static post-training quantization (``onnxruntime.quantization.quantize_static``) in QDQ
format with per-channel weights, calibrated with min/max over the calibration images. The
scheme (activation/weight types) is recorded in the artifact's metadata ``extra.scheme``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgessl.errors import EdgesslError

if TYPE_CHECKING:
    from edgessl.export.calibration import CalibrationSet
    from edgessl.export.formats import ExportRequest

log = logging.getLogger("edgessl")

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
CALIB_BATCH = 16
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")

# Activation/weight types per scheme. U8S8 is the default: measured on a trained resnet_micro
# (digits, 16 px, 300 calibration images) it matches S8S8's logits exactly (ReLU activations use
# the same 256 levels either way) while S8S8 ran 2.6x slower in ONNX Runtime on x86 (slower than
# fp32). On x86 CPUs with AVX2/AVX-512 but no VNNI, U8S8 products can saturate; "U8S8-reduced"
# (7-bit weights) avoids that for such targets, at a small accuracy cost (-0.3 points there).
SCHEMES = {
    "U8S8": {"activation_type": "QUInt8", "weight_type": "QInt8", "reduce_range": False},
    "U8S8-reduced": {"activation_type": "QUInt8", "weight_type": "QInt8", "reduce_range": True},
    "S8S8": {"activation_type": "QInt8", "weight_type": "QInt8", "reduce_range": False},
}
DEFAULT_SCHEME = "U8S8"


def export_onnx(request: ExportRequest) -> Path:
    """Write ``request.out_dir / (request.stem + ".onnx")`` at fp32 or int8 with edgessl metadata.

    Returns:
        The path of the ``.onnx`` file.
    """
    out = request.out_dir / f"{request.stem}.onnx"
    if request.precision == "fp32":
        proto = _torch_to_onnx(request.model, request.meta.image_size)
        _save_with_meta(proto, out, request.meta, {"scheme": "fp32", "opset": OPSET})
        return out
    fp32 = request.out_dir / f".{request.stem}.fp32.onnx"
    try:
        _save_with_meta(_torch_to_onnx(request.model, request.meta.image_size), fp32, None, {})
        scheme = quantize_onnx(fp32, out, request.calibration, DEFAULT_SCHEME)
    finally:
        fp32.unlink(missing_ok=True)
    import onnx

    _save_with_meta(onnx.load(str(out)), out, request.meta, {**scheme, "opset": OPSET})
    return out


@contextlib.contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Raise the given loggers to WARNING for the block (the exporter logs every pass at INFO)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _torch_to_onnx(model, image_size: int):
    """The classifier as an ONNX ModelProto with input [batch, 3, S, S] -> output [batch, C]."""
    import torch

    example = torch.zeros(2, 3, image_size, image_size)  # batch 2: batch 1 would specialise
    try:
        with _quiet(EXPORTER_LOGGERS):
            program = torch.onnx.export(
                model, (example,), None, dynamo=True, opset_version=OPSET, verbose=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], external_data=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},), optimize=True,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many internal error types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EdgesslError(f"the ONNX exporter (torch {torch.__version__}) cannot export this "
                           f"backbone ({first}); try --format openvino or another backbone"
                           ) from exc
    return program.model_proto


def _save_with_meta(proto, path: Path, meta, extra: dict) -> None:
    """Embed ``meta`` (with ``extra`` merged into meta.extra) and save ``proto`` to ``path``."""
    import onnx

    from edgessl.artifact import META_KEY

    if meta is not None:
        meta = dataclasses.replace(meta, extra={**(meta.extra or {}), **extra})
        del proto.metadata_props[:]
        proto.metadata_props.add(key=META_KEY, value=meta.to_json())
        proto.producer_name = "edgessl"
        proto.producer_version = meta.edgessl_version
    onnx.save(proto, str(path))


def quantize_onnx(fp32: Path, out: Path, calibration: CalibrationSet | None,
                  scheme: str = DEFAULT_SCHEME) -> dict:
    """Quantize the fp32 ONNX model ``fp32`` to QDQ INT8 at ``out`` (static, per-channel).

    Args:
        fp32: an fp32 ONNX model with input ``INPUT_NAME``.
        out: where to write the quantized model.
        calibration: the calibration images.
        scheme: a key of ``SCHEMES``.

    Returns:
        The scheme description recorded in the artifact's metadata.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None or len(calibration) == 0:
        raise EdgesslError("int8 export needs calibration images; pass --calib")
    settings = SCHEMES[scheme]
    pre = out.with_name(f".{out.stem}.pre.onnx")

    class Reader(CalibrationDataReader):
        """Feeds the calibration images to ONNX Runtime's calibrator, batch by batch."""

        def __init__(self) -> None:
            self._batches = calibration.batches(CALIB_BATCH)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    try:
        # Shape inference and graph cleanup first, as ONNX Runtime recommends for quantization.
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(out), Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=settings["reduce_range"],
            activation_type=getattr(QuantType, settings["activation_type"]),
            weight_type=getattr(QuantType, settings["weight_type"]),
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        pre.unlink(missing_ok=True)
    return {"scheme": scheme, "quantizer": "onnxruntime.quantize_static", "quant_format": "QDQ",
            "per_channel": True, "calibration": "minmax", "calib_images": len(calibration),
            **{k: settings[k] for k in ("activation_type", "weight_type", "reduce_range")}}
