"""OpenVINO IR export (``model.xml`` + ``model.bin``, dynamic batch); fp16 weights; INT8 by NNCF.

The PyTorch model is captured with ``torch.export`` and converted by ``openvino.convert_model``.
fp32 keeps fp32 weights (``compress_to_fp16=False``) so the artifact matches PyTorch; fp16
stores the weights as float16 (half the size; the CPU decompresses them at load). INT8 is NNCF
post-training quantization (``nncf.quantize``; ``quantize_with_accuracy_control`` under
``--max-drop``) with the overflow fix (7-bit weights) chosen for the target CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edgessl.errors import EdgesslError
from edgessl.io import disk_errors

if TYPE_CHECKING:
    from edgessl.export.request import ExportOutput, ExportRequest

log = logging.getLogger("edgessl")

INPUT_NAME = "input"


def export_openvino(request: ExportRequest) -> ExportOutput:
    """Write ``request.out_dir / (request.stem + ".xml")`` and its ``.bin`` with edgessl metadata.

    Returns:
        The ``.xml`` path, the fp32 IR's size and the report details.
    """
    import openvino as ov

    from edgessl.artifact import META_KEY
    from edgessl.export.preprocessing import embed_openvino, fix_batch_openvino
    from edgessl.export.request import ExportOutput

    meta = request.meta
    ov_model = torch_to_openvino(request.model, meta.image_size, meta.output.removesuffix("-l2"))
    fp32_size = _fp32_size_mib(ov_model, request.out_dir)
    details: dict = {}
    if request.precision == "int8":
        from edgessl.export.accuracy_control import kept_in_float_openvino

        ov_model, extra = quantize_openvino(ov_model, request)
        details["kept_in_float"], details["compute_layers"] = kept_in_float_openvino(ov_model)
    elif request.precision == "fp16":
        extra = {"scheme": "fp16", "weights": "float16 (compressed)", "io": "float32"}
    else:
        extra = {"scheme": "fp32"}
    if request.embed_preprocessing:
        ov_model = embed_openvino(ov_model, meta.mean, meta.std)
    if request.static_batch:
        fix_batch_openvino(ov_model, request.static_batch)
    meta = dataclasses.replace(meta, extra={**(meta.extra or {}), **extra})
    ov_model.set_rt_info(meta.to_json(), META_KEY)
    out = request.out_dir / f"{request.stem}.xml"
    with disk_errors(out):  # OpenVINO says "basic_ios::clear" for a full disk
        ov.save_model(ov_model, str(out), compress_to_fp16=request.precision == "fp16")
    return ExportOutput(out, fp32_size, {**details, "scheme_details": extra})


def _fp32_size_mib(ov_model, out_dir: Path) -> float:
    """Size of the model saved as an fp32 IR (the reference of the compression ratio).

    Saved in the output's temporary folder, not the system's: a full disk there is the
    output's, reported as such, and whatever happens the folder is removed with the output.
    """
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix=".fp32-", dir=out_dir) as tmp:
        xml = Path(tmp) / "fp32.xml"
        with disk_errors(xml):
            ov.save_model(ov_model, str(xml), compress_to_fp16=False)
        return (xml.stat().st_size + xml.with_suffix(".bin").stat().st_size) / 2**20


def torch_to_openvino(model, image_size: int, output: str = "logits"):
    """The module as an ``openvino.Model`` with input [?, 3, S, S] -> output [?, C]."""
    import openvino as ov
    import torch

    example = torch.zeros(2, 3, image_size, image_size)  # batch 2: batch 1 would specialise
    try:
        # torch.export rather than the default TorchScript tracing, which is deprecated and warns.
        program = torch.export.export(model, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        ov_model = ov.convert_model(program)
    except Exception as exc:  # noqa: BLE001 - torch.export and the converter raise many types
        # Some aten ops have no OpenVINO rule (timm ViTs resample their position embedding
        # with antialiased bicubic, which the ONNX exporter folds into a constant); OpenVINO's
        # ONNX frontend then reads the same graph from the ONNX exporter.
        log.info("OpenVINO cannot convert the torch program (%s); converting via ONNX",
                 _reason(exc))
        ov_model = _via_onnx(model, image_size, output, exc)
    ov_model.reshape({ov_model.inputs[0]: ov.PartialShape([-1, 3, image_size, image_size])})
    ov_model.inputs[0].get_tensor().set_names({INPUT_NAME})
    ov_model.outputs[0].get_tensor().set_names({output})
    return ov_model


def _reason(exc: Exception) -> str:
    """The informative line of a converter error ("No conversion rule found for ...")."""
    lines = [ln.strip(" -") for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "conversion rule" in ln or "not supported" in ln]
    return (useful or lines or [type(exc).__name__])[0][:200]


def _via_onnx(model, image_size: int, output: str, first_error: Exception):
    import onnx
    import openvino as ov

    from edgessl.export.onnx_format import torch_to_onnx

    with tempfile.TemporaryDirectory(prefix="edgessl-ov-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            onnx.save(torch_to_onnx(model, image_size, output), str(path))
            return ov.convert_model(str(path))
        except Exception as exc:  # noqa: BLE001 - as above
            raise EdgesslError(f"OpenVINO {ov.get_version()} cannot convert this backbone "
                               f"({_reason(first_error)}); try --format onnx or another "
                               "backbone") from exc


def quantize_openvino(ov_model, request: ExportRequest):
    """NNCF INT8 quantization of ``ov_model`` (plain or accuracy-aware) with an ISA-safe scheme.

    Returns:
        (the quantized model, the scheme entries recorded in the metadata).
    """
    from edgessl.export.accuracy_control import nncf_quantize
    from edgessl.export.schemes import choose_scheme

    choice = choose_scheme("nncf", request.quant)
    quantized, extra = nncf_quantize(ov_model, request, choice)
    return quantized, {**choice.entries(), **extra}
