"""ONNX export: torch.export-based exporter (opset 18, dynamic batch); fp16; INT8 QDQ.

fp16 converts weights and activations to float16 with float32 inputs and outputs
(``keep_io_types``), so callers feed the same tensors as at fp32. INT8 is static post-training
quantization in QDQ format: ONNX Runtime's ``quantize_static`` by default (per-channel weights,
min/max, entropy or percentile calibration), NNCF's accuracy-aware quantization under
``--max-drop``. The scheme (activation/weight types, 7-bit weights) is chosen for the target
CPU by ``edgessl.export.schemes`` and recorded in the metadata ``extra.scheme``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgessl.errors import ConfigError, EdgesslError

if TYPE_CHECKING:
    from edgessl.export.request import ExportOutput, ExportRequest
    from edgessl.export.schemes import SchemeChoice

log = logging.getLogger("edgessl")

OPSET = 18
INPUT_NAME = "input"
CALIB_BATCH = 16
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")
# ONNX Runtime ops quantized in a transformer: the matrix products only (as NNCF's transformer
# model type does); LayerNorm, Softmax, GELU and residual adds stay float.
TRANSFORMER_OPS = ["MatMul", "Gemm", "Conv"]


def output_name(output: str) -> str:
    """The graph output's name for an ``--output`` ("logits", "probabilities", "embedding")."""
    return output.removesuffix("-l2")


def export_onnx(request: ExportRequest) -> ExportOutput:
    """Write ``request.out_dir / (request.stem + ".onnx")`` with edgessl metadata.

    Returns:
        The ``.onnx`` path, the fp32 graph's size and the report details.
    """
    import onnx

    from edgessl.export.preprocessing import embed_onnx, fix_batch_onnx
    from edgessl.export.request import ExportOutput

    meta = request.meta
    out = request.out_dir / f"{request.stem}.onnx"
    proto = torch_to_onnx(request.model, meta.image_size, output_name(meta.output))
    details: dict = {}
    if request.simplify:
        from edgessl.export.simplify import simplify_onnx

        proto, details["simplify"] = simplify_onnx(proto, _sample(request))
    fp32 = request.out_dir / f".{request.stem}.fp32.onnx"
    try:
        onnx.save(proto, str(fp32))
        fp32_size = fp32.stat().st_size / 2**20
        if request.precision == "fp16":
            proto, extra = to_fp16(proto), {"scheme": "fp16", "weights": "float16",
                                            "io": "float32"}
        elif request.precision == "int8":
            proto, extra = _quantize(fp32, out, request)
        else:
            extra = {"scheme": "fp32"}
    finally:
        fp32.unlink(missing_ok=True)
    if request.precision == "int8":
        from edgessl.export.accuracy_control import kept_in_float_onnx

        details["kept_in_float"], details["compute_layers"] = kept_in_float_onnx(proto)
    if request.embed_preprocessing:
        embed_onnx(proto, meta.mean, meta.std)
    if request.static_batch:
        fix_batch_onnx(proto, request.static_batch)
    _save_with_meta(proto, out, meta, {**extra, "opset": OPSET})
    _check(out)
    return ExportOutput(out, fp32_size, {**details, "scheme_details": extra})


def _sample(request: ExportRequest):
    """A batch to compare outputs on: calibration images, else seeded noise."""
    import numpy as np

    if request.calibration is not None and len(request.calibration):
        return next(request.calibration.batches(8))
    size = request.meta.image_size
    return np.random.default_rng(0).standard_normal((4, 3, size, size), dtype=np.float32)


def _check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise EdgesslError(f"the exported ONNX model fails onnx.checker ({first}); "
                           "please report this with --debug output") from exc


def to_fp16(proto):
    """The model with float16 weights and compute, float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=True)
    _topological_sort(half.graph)  # the converter appends its input casts at the end
    return half


def _topological_sort(graph) -> None:
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        for node in pending:
            if node not in rest:
                ordered.append(node)
                ready.update(node.output)
        if len(rest) == len(pending):
            raise EdgesslError("fp16 conversion left a graph with a cycle; export fp32")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def _quantize(fp32: Path, out: Path, request: ExportRequest):
    """INT8 QDQ: NNCF under max_drop, else ONNX Runtime. Returns (proto, scheme entries)."""
    import onnx

    from edgessl.export.schemes import choose_scheme

    quantizer = request.quantizer
    choice = choose_scheme(quantizer, request.quant)
    if quantizer == "nncf":
        from edgessl.export.accuracy_control import nncf_quantize

        proto, extra = nncf_quantize(onnx.load(str(fp32)), request, choice)
    else:
        extra = quantize_onnx(fp32, out, request, choice)
        proto = onnx.load(str(out))
    return proto, {**choice.entries(), **extra}


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


def torch_to_onnx(model, image_size: int, output: str):
    """The module as an ONNX ModelProto with input [batch, 3, S, S] -> output [batch, C]."""
    import torch

    example = torch.zeros(2, 3, image_size, image_size)  # batch 2: batch 1 would specialise
    try:
        with _quiet(EXPORTER_LOGGERS):
            program = torch.onnx.export(
                model, (example,), None, dynamo=True, opset_version=OPSET, verbose=False,
                input_names=[INPUT_NAME], output_names=[output], external_data=False,
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

    meta = dataclasses.replace(meta, extra={**(meta.extra or {}), **extra})
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=meta.to_json())
    proto.producer_name = "edgessl"
    proto.producer_version = meta.edgessl_version
    onnx.save(proto, str(path))


def _matching_nodes(path: Path, patterns: tuple[str, ...]) -> list[str]:
    """Node names of the model at ``path`` that match any of the regular expressions."""
    import onnx

    names = [n.name for n in onnx.load(str(path)).graph.node]
    found = []
    for pattern in patterns:
        hits = [n for n in names if re.search(pattern, n)]
        if not hits:
            raise ConfigError(f"--ignore '{pattern}' matches no layer; names look like "
                              f"{', '.join(names[:3])}")
        found += hits
    return sorted(set(found))


def quantize_onnx(fp32: Path, out: Path, request: ExportRequest, choice: SchemeChoice) -> dict:
    """Quantize the fp32 ONNX model ``fp32`` to QDQ INT8 at ``out`` with ONNX Runtime.

    Args:
        fp32: an fp32 ONNX model with input ``INPUT_NAME``.
        out: where to write the quantized model.
        request: calibration images and the INT8 settings.
        choice: the scheme (a key of ``ORT_SCHEMES``).

    Returns:
        The scheme entries recorded in the artifact's metadata.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgessl.export.calibration import require_calibration
    from edgessl.export.schemes import ORT_SCHEMES

    calibration, quant = require_calibration(request.calibration), request.quant
    settings = ORT_SCHEMES[choice.name]
    method = quant.calib_method or "minmax"
    pre = out.with_name(f".{out.stem}.pre.onnx")

    class Reader(CalibrationDataReader):
        """Feeds the calibration images to ONNX Runtime's calibrator, batch by batch."""

        def __init__(self) -> None:
            self._batches = calibration.batches(CALIB_BATCH)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    transformer = request.model_type == "transformer"
    try:
        # Shape inference and graph cleanup first, as ONNX Runtime recommends for quantization.
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(out), Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=quant.per_channel,
            reduce_range=settings["reduce_range"],
            activation_type=getattr(QuantType, settings["activation_type"]),
            weight_type=getattr(QuantType, settings["weight_type"]),
            calibrate_method={"minmax": CalibrationMethod.MinMax,
                              "entropy": CalibrationMethod.Entropy,
                              "percentile": CalibrationMethod.Percentile}[method],
            op_types_to_quantize=TRANSFORMER_OPS if transformer else None,
            nodes_to_exclude=_matching_nodes(pre, quant.ignored) if quant.ignored else None,
        )
    finally:
        pre.unlink(missing_ok=True)
    return {"quantizer": "onnxruntime.quantize_static", "quant_format": "QDQ",
            "per_channel": quant.per_channel, "calibration": method,
            "model_type": request.model_type, "ignored": list(quant.ignored),
            "calib_images": len(calibration),
            **{k: settings[k] for k in ("activation_type", "weight_type", "reduce_range")}}
