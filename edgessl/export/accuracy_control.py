"""INT8 with NNCF, plain or accuracy-aware, for OpenVINO and ONNX models; which layers stayed float.

Accuracy-aware mode (``--max-drop``) runs ``nncf.quantize_with_accuracy_control``: quantize
everything, measure top-1 on the labeled validation images, and return the layers that cost
the most accuracy to floating point, one group at a time, until the drop is within the bound.
The export then checks the bound itself against PyTorch (``check_max_drop``) and fails with
one line when it is not met.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import TYPE_CHECKING

import numpy as np

from edgessl.errors import ConfigError, EdgesslError
from edgessl.export.request import AccuracyData
from edgessl.export.schemes import NNCF_SCHEMES

if TYPE_CHECKING:
    from edgessl.export.request import ExportRequest
    from edgessl.export.schemes import SchemeChoice

# Layers whose inputs a quantizer feeds in an INT8 model; any of them without one stayed float.
COMPUTE_OPS = {"Convolution", "GroupConvolution", "MatMul", "Conv", "Gemm", "ConvTranspose"}


def accuracy_data(card, data) -> AccuracyData:
    """The val split (``data`` or the checkpoint's own) as arrays, for ``--max-drop``."""
    from edgessl.data.preprocess import preprocess_batch
    from edgessl.export.validate import validation_samples

    paths, labels = validation_samples(card, data)
    inputs = preprocess_batch(paths, card.image_size, card.mean, card.std).astype(np.float32)
    return AccuracyData(inputs, labels, str(data or card.data.get("path")))


def import_nncf():
    """Import NNCF without the warning torch logs when NNCF probes for a CUDA toolkit."""
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        import nncf
        import torch.utils.cpp_extension  # noqa: F401 - NNCF imports it later; warn-free here
    finally:
        quiet.setLevel(level)
    return nncf


def _top1(outputs: list[np.ndarray], labels: np.ndarray) -> float:
    return float(np.mean(np.concatenate(outputs).argmax(1) == labels))


def _validation_fn():
    """NNCF's validation_fn: (model, items) -> top-1, for OpenVINO and ONNX models alike."""

    def validate(model, items) -> float:
        items = list(items)
        if hasattr(model, "SerializeToString"):  # onnx.ModelProto: NNCF's ONNX backend
            import onnxruntime as ort

            session = ort.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            outputs = [session.run(None, {name: x})[0] for x, _ in items]
        else:  # openvino.CompiledModel
            outputs = [np.asarray(model(x)[0]) for x, _ in items]
        return _top1(outputs, np.array([y for _, y in items]))

    return validate


def nncf_quantize(model, request: ExportRequest, choice: SchemeChoice) -> tuple[object, dict]:
    """Quantize an ``openvino.Model`` or ``onnx.ModelProto`` with NNCF as ``request`` says.

    Returns:
        (the quantized model, the scheme entries for the metadata and report).

    Raises:
        ConfigError: an ignored-layer pattern that matches no layer.
        EdgesslError: no calibration images.
    """
    from edgessl.data.preprocess import preprocess

    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )

    from edgessl.export.calibration import require_calibration

    calibration, quant = require_calibration(request.calibration), request.quant

    feed = _feeder(model)

    def transform(path):
        # One image per item: NNCF statistics are defined per sample and batch 1 is exact.
        return feed(preprocess(path, calibration.image_size, calibration.mean,
                               calibration.std)[None])

    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix(NNCF_SCHEMES[choice.name]),
        disable_bias_correction=quant.bias_correction is False,
        weights_quantization_params=None if quant.per_channel
        else QuantizationParameters(per_channel=False))
    kwargs = {
        "preset": None if quant.preset is None else nncf.QuantizationPreset(quant.preset),
        "subset_size": len(calibration), "fast_bias_correction": True,
        "model_type": nncf.ModelType.TRANSFORMER if request.model_type == "transformer" else None,
        "ignored_scope": nncf.IgnoredScope(patterns=list(quant.ignored)) if quant.ignored
        else None,
        "advanced_parameters": advanced,
    }
    dataset = nncf.Dataset(list(calibration.paths), transform)
    nncf.set_log_level(logging.ERROR)  # its INFO lines are about NNCF internals
    # NNCF draws progress bars on stdout; useful on long calibrations, noise under -q.
    quiet = not logging.getLogger("edgessl").isEnabledFor(logging.INFO)
    try:
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            if quant.max_drop is None:
                quantized = nncf.quantize(model, dataset, **kwargs)
            else:
                quantized = _with_accuracy_control(nncf, model, dataset, request, kwargs,
                                                   feed)
    except nncf.ValidationError as exc:
        raise ConfigError(f"--ignore: {str(exc).strip().splitlines()[0][:200]}; pass layer "
                          "names from the report's kept_in_float or from the model") from None
    extra = {"quantizer": f"nncf {nncf.__version__}", "overflow_fix": NNCF_SCHEMES[choice.name],
             "preset": quant.preset or ("mixed" if request.model_type == "transformer"
                                        else "performance"),
             "per_channel": quant.per_channel,
             "bias_correction": "off" if quant.bias_correction is False else "fast",
             "model_type": request.model_type, "ignored": list(quant.ignored),
             "calib_images": len(calibration)}
    if quant.max_drop is not None:
        extra["accuracy_control"] = {"max_drop": quant.max_drop,
                                     "val_images": len(request.accuracy.labels),
                                     "data": request.accuracy.source}
    return quantized, extra


def _feeder(model):
    """What NNCF's engine takes: an array for OpenVINO, {input name: array} for ONNX."""
    if hasattr(model, "SerializeToString"):
        name = model.graph.input[0].name
        return lambda x: {name: x}
    return lambda x: x


def _with_accuracy_control(nncf, model, calib_dataset, request: ExportRequest, kwargs: dict,
                           feed):
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    acc = request.accuracy
    items = [(acc.inputs[i:i + 1], int(acc.labels[i])) for i in range(len(acc.labels))]
    validation = nncf.Dataset(items, lambda item: feed(item[0]))
    advanced = kwargs.pop("advanced_parameters")
    return nncf.quantize_with_accuracy_control(
        model, calib_dataset, validation, _validation_fn(),
        max_drop=request.quant.max_drop, drop_type=nncf.DropType.ABSOLUTE,
        advanced_quantization_parameters=advanced,
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            ranking_subset_size=min(len(items), 300)),
        **kwargs)


def kept_in_float_openvino(ov_model) -> tuple[list[str], int]:
    """(names of compute layers without an input quantizer, number of compute layers)."""
    float_layers, total = [], 0
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() not in COMPUTE_OPS:
            continue
        total += 1
        source = op.input(0).get_source_output().get_node()
        if source.get_type_name() != "FakeQuantize":
            float_layers.append(op.get_friendly_name())
    return float_layers, total


def kept_in_float_onnx(proto) -> tuple[list[str], int]:
    """(names of Conv/MatMul/Gemm nodes whose input is not dequantized, number of them)."""
    producer = {out: node.op_type for node in proto.graph.node for out in node.output}
    nodes = [n for n in proto.graph.node if n.op_type in COMPUTE_OPS]
    return [n.name for n in nodes if producer.get(n.input[0]) != "DequantizeLinear"], len(nodes)


def check_max_drop(report: dict, max_drop: float) -> None:
    """Raise when the artifact's top-1 drop against PyTorch exceeds ``max_drop``.

    Raises:
        EdgesslError: one line with the measured drop and what to try.
    """
    drop = report["top1_drop_points"] / 100
    if drop <= max_drop + 1e-12:
        return
    kept = report.get("kept_in_float", [])
    raise EdgesslError(
        f"int8 cannot meet --max-drop {max_drop:g}: the best model NNCF found loses "
        f"{drop * 100:.2f} points ({report['top1_pytorch']:.2%} fp32 -> "
        f"{report['top1_artifact']:.2%} int8 on {report['val_images']} val images, "
        f"{len(kept)} of {report.get('compute_layers', '?')} layers kept in float); raise "
        "--max-drop, calibrate on more images (--calib-size) or export --precision fp16")
