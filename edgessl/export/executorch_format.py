"""ExecuTorch: a ``.pte`` program lowered to the XNNPACK backend, fp32 or int8 (PT2E).

ExecuTorch is what PyTorch models ship to phones with (Android, iOS, embedded Linux): the
``.pte`` runs in its C++ runtime, or from Python through the ``executorch`` wheel. The module is
captured with ``torch.export`` at a fixed input shape (batch ``request.static_batch``: 1 unless
``--static-batch`` says otherwise), quantized for int8 through PyTorch's PT2E flow with
ExecuTorch's ``XNNPACKQuantizer`` (symmetric signed 8-bit weights, per channel unless
``--per-tensor``, calibrated on the calibration images), and lowered with the XNNPACK
partitioner; operators XNNPACK lacks stay on ExecuTorch's portable kernels and are listed in
the report. A ``.pte`` has no field for metadata, so edgessl's travels beside it as
``<stem>.json`` (the runtime table lists it as the artifact's companion file).

Needs the optional extra: ``pip install 'edgessl[executorch]'``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from edgessl.backends.executorch_rt import INSTALL_HINT, executorch_version
from edgessl.errors import DeviceUnavailableError, EdgesslError

if TYPE_CHECKING:
    from edgessl.export.request import ExportOutput, ExportRequest

log = logging.getLogger("edgessl")

DELEGATE_CALL = "executorch_call_delegate"


def require_executorch():
    """The ``executorch`` package, or a DeviceUnavailableError saying how to install it."""
    try:
        import executorch
        import executorch.exir  # noqa: F401 - the exporter itself
    except ImportError as exc:
        raise DeviceUnavailableError(f"--format executorch needs the executorch package, which "
                                     f"is not installed ({exc}): {INSTALL_HINT}") from None
    return executorch


def _with_preprocessing(model, mean, std):
    """``model`` taking uint8 [N, S, S, 3] pixels: scaled and normalised inside the program."""
    import torch

    class Embedded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
            self.register_buffer("scale", 1 / (torch.tensor(std).view(1, 3, 1, 1) * 255))

        def forward(self, x):
            x = x.permute(0, 3, 1, 2).float()
            return self.model((x - self.mean) * self.scale)

    return Embedded().eval()


def _example(request: ExportRequest):
    import torch

    size, batch = request.meta.image_size, request.static_batch or 1
    if request.embed_preprocessing:
        return torch.zeros(batch, size, size, 3, dtype=torch.uint8)
    return torch.zeros(batch, 3, size, size)


def _quantized(module, example, request: ExportRequest, choice):
    """The PT2E-quantized module (XNNPACK quantizer), calibrated on the calibration images."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgessl.export.calibration import require_calibration

    calibration = require_calibration(request.calibration)
    config = get_symmetric_quantization_config(is_per_channel=request.quant.per_channel)
    quantizer = XNNPACKQuantizer().set_global(config)
    prepared = prepare_pt2e(torch.export.export(module, (example,)).module(), quantizer)
    batch, seen = example.shape[0], 0
    with torch.no_grad():
        for images in calibration.batches(batch):
            if images.shape[0] != batch:  # the graph was captured for a fixed batch
                continue
            x = torch.from_numpy(images)
            if request.embed_preprocessing:
                x = _to_pixels(x, request.meta.mean, request.meta.std)
            prepared(x)
            seen += batch
    if not seen:
        raise EdgesslError(f"no calibration batch of {batch} images; give more --calib images "
                           "or a smaller --static-batch")
    log.info("calibrated ExecuTorch int8 (%s) on %d images", choice.name, seen)
    return convert_pt2e(prepared)


COMPUTE_TARGETS = ("conv2d", "linear", "matmul", "mm", "addmm", "bmm", "convolution")


def kept_in_float(quantized) -> tuple[list[str], int]:
    """(compute layers of a PT2E-converted module whose weight is not dequantized from int8,
    number of compute layers): what the XNNPACK quantizer left in float."""
    def op(node) -> str:
        return str(node.target).split(".")[-2] if "." in str(node.target) else str(node.target)

    layers = [n for n in quantized.graph.nodes
              if n.op == "call_function" and op(n) in COMPUTE_TARGETS]
    floats = [n.name for n in layers
              if not (len(n.args) > 1 and getattr(n.args[1], "op", "") == "call_function"
                      and "dequantize" in str(n.args[1].target))]
    return floats, len(layers)


def _to_pixels(x, mean, std):
    """Normalised float [N, 3, S, S] back to uint8 pixels [N, S, S, 3] (embedded input)."""
    import torch

    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    pixels = ((x * std_t + mean_t) * 255).round().clamp(0, 255)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _lowered(module, example):
    """(the ``.pte`` bytes, what XNNPACK took): torch.export, then lowering to XNNPACK."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(torch.export.export(module, (example,)),
                                       partitioner=[XnnpackPartitioner()])
    graph = edge.exported_program().graph_module.graph
    calls = [n for n in graph.nodes if n.op == "call_function"]
    delegated = sum(1 for n in calls if DELEGATE_CALL in str(n.target))
    portable = sorted({str(n.target).split("::")[-1].removeprefix("aten.")
                       for n in calls if DELEGATE_CALL not in str(n.target)
                       and "getitem" not in str(n.target)})
    return edge.to_executorch().buffer, {"backend": "XnnpackBackend",
                                         "delegated_subgraphs": delegated,
                                         "portable_ops": portable}


def _fp32_weights_mib(module) -> float:
    """The fp32 size of the module's weights: the reference of an int8 program's ratio."""
    return sum(t.numel() * 4 for t in (*module.parameters(), *module.buffers())
               if t.is_floating_point()) / 2**20


def export_executorch(request: ExportRequest) -> ExportOutput:
    """Write ``request.out_dir / (stem + ".pte")`` and its metadata ``stem + ".json"``.

    Raises:
        DeviceUnavailableError: the executorch package is missing (with how to install it).
        EdgesslError: an int8 export without a full calibration batch.
    """
    from edgessl.export.request import ExportOutput

    executorch = require_executorch()
    module = request.model.eval()
    if request.embed_preprocessing:
        module = _with_preprocessing(module, request.meta.mean, request.meta.std)
    example = _example(request)
    details: dict = {}
    if request.precision == "int8":
        from edgessl.export.schemes import choose_scheme

        choice = choose_scheme(request.quantizer, request.quant)
        quantized = _quantized(module, example, request, choice)
        details["kept_in_float"], details["compute_layers"] = kept_in_float(quantized)
        program, lowering = _lowered(quantized, example)
        extra = {**choice.entries(), "quantizer": "PT2E XNNPACKQuantizer",
                 "per_channel": request.quant.per_channel, "weights": "int8 symmetric",
                 "activations": "int8"}
    else:
        program, lowering = _lowered(module, example)
        extra = {"scheme": "fp32"}
    extra = {**extra, **lowering,
             "executorch": getattr(executorch, "__version__", "") or executorch_version()}
    if lowering["portable_ops"]:
        log.info("ExecuTorch: XNNPACK runs %d subgraphs; on portable kernels: %s",
                 lowering["delegated_subgraphs"], ", ".join(lowering["portable_ops"]))
    out = request.out_dir / f"{request.stem}.pte"  # in the export's temporary folder
    out.write_bytes(program)
    meta = dataclasses.replace(request.meta, extra={**(request.meta.extra or {}), **extra})
    out.with_suffix(".json").write_text(meta.to_json(), encoding="utf-8")
    fp32_size = (_fp32_weights_mib(request.model) if request.precision == "int8"
                 else out.stat().st_size / 2**20)
    return ExportOutput(out, fp32_size, {**details, "scheme_details": extra})
