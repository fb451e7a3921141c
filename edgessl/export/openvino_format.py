"""OpenVINO IR export (``model.xml`` + ``model.bin``, dynamic batch); INT8 by NNCF.

The PyTorch model is captured with ``torch.export`` and converted by ``openvino.convert_model``;
fp32 weights are kept fp32 (``compress_to_fp16=False``) so the artifact matches PyTorch.
INT8 is NNCF post-training quantization (``nncf.quantize``, performance preset: symmetric
8-bit activations, per-channel weights, with fast bias correction).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edgessl.errors import EdgesslError

if TYPE_CHECKING:
    from edgessl.export.calibration import CalibrationSet
    from edgessl.export.formats import ExportRequest

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_openvino(request: ExportRequest) -> Path:
    """Write ``request.out_dir / (request.stem + ".xml")`` and its ``.bin`` with edgessl metadata.

    Returns:
        The path of the ``.xml`` file.
    """
    import openvino as ov

    from edgessl.artifact import META_KEY

    ov_model = torch_to_openvino(request.model, request.meta.image_size)
    if request.precision == "fp32":
        extra = {"scheme": "fp32"}
    else:
        ov_model, extra = quantize_openvino(ov_model, request.calibration)
    meta = dataclasses.replace(request.meta, extra={**(request.meta.extra or {}), **extra})
    ov_model.set_rt_info(meta.to_json(), META_KEY)
    out = request.out_dir / f"{request.stem}.xml"
    ov.save_model(ov_model, str(out), compress_to_fp16=False)
    return out


def torch_to_openvino(model, image_size: int):
    """The classifier as an ``openvino.Model`` with input [?, 3, S, S] -> output [?, C]."""
    import openvino as ov
    import torch

    example = torch.zeros(2, 3, image_size, image_size)  # batch 2: batch 1 would specialise
    try:
        # torch.export rather than the default TorchScript tracing, which is deprecated and warns.
        program = torch.export.export(model, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        ov_model = ov.convert_model(program)
    except Exception as exc:  # noqa: BLE001 - torch.export and the converter raise many types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EdgesslError(f"OpenVINO {ov.get_version()} cannot convert this backbone "
                           f"({first}); try --format onnx or another backbone") from exc
    ov_model.reshape({ov_model.inputs[0]: ov.PartialShape([-1, 3, image_size, image_size])})
    ov_model.inputs[0].get_tensor().set_names({INPUT_NAME})
    ov_model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return ov_model


def quantize_openvino(ov_model, calibration: CalibrationSet | None):
    """NNCF post-training INT8 quantization of ``ov_model`` on the calibration images.

    Returns:
        (the quantized model, the scheme description recorded in the metadata).
    """
    from edgessl.data.preprocess import preprocess

    nncf = _import_nncf()

    if calibration is None or len(calibration) == 0:
        raise EdgesslError("int8 export needs calibration images; pass --calib")

    def transform(path):
        # One image per item: NNCF statistics are defined per sample and batch 1 is exact.
        return preprocess(path, calibration.image_size, calibration.mean, calibration.std)[None]

    nncf.set_log_level(logging.ERROR)  # its INFO lines are about NNCF internals
    # NNCF draws progress bars on stdout; they are useful on long calibrations, noise under -q.
    quiet = not logging.getLogger("edgessl").isEnabledFor(logging.INFO)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        quantized = nncf.quantize(ov_model, nncf.Dataset(list(calibration.paths), transform),
                                  preset=nncf.QuantizationPreset.PERFORMANCE,
                                  subset_size=len(calibration))
    extra = {"scheme": "nncf-performance", "quantizer": f"nncf.quantize {nncf.__version__}",
             "preset": "performance", "activations": "int8 symmetric per-tensor",
             "weights": "int8 symmetric per-channel", "calib_images": len(calibration)}
    return quantized, extra


def _import_nncf():
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
