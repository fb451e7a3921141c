"""OpenVINO IR export of a text classifier: static [1, L] inputs, fp32, fp16 or INT8, validated.

The IR is converted from the same fp32 ONNX graph as the ONNX export (``edgessl.text.export``;
``openvino.convert_model`` reads ONNX without torch), so both formats start from one traced
graph. The folder holds ``model.xml`` + ``model.bin`` (inputs ``input_ids`` and
``attention_mask``, int64 [1, L]; output ``logits`` [1, C]), ``tokenizer.json`` and the sidecar
``text_model.json``; ``edgessl.text.runtime`` runs it with OpenVINO, without torch, and the
export is validated through that code path against PyTorch, as the ONNX one is.

Precisions (``OV_PRECISIONS``):

- ``fp32``: the converted graph as it is.
- ``fp16``: weights stored as fp16 (``compress_to_fp16``), half the file; the CPU plugin
  decompresses them and computes in f32 (the runtime asks for f32 inference).
- ``int8``: see ``quantize_int8_ov``: NNCF post-training quantization with
  ``ModelType.TRANSFORMER`` on a calibration set of the training texts, then INT8 weight
  compression of what quantization leaves in float (the embedding tables).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from edgessl.errors import ConfigError
from edgessl.registry import Registry
from edgessl.text.export import TextExportResult, ValidationSet, write_text_export
from edgessl.text.model import TextClassifier
from edgessl.text.runtime import INPUT_NAMES, encode_texts

log = logging.getLogger("edgessl")

OV_MODEL_FILE = "model.xml"
CALIBRATION_SIZE = 128  # texts; NNCF's statistics settle well before its default 300
# Op types whose inputs INT8 may quantize; every other op is reported as float.
COMPUTE_OPS = ("MatMul", "Gather", "Add", "MVN", "Softmax", "Gelu")
NNCF_LOGGERS = ("nncf",)


def _convert(onnx_path: Path):
    import openvino as ov

    return ov.convert_model(str(onnx_path))


def save_fp32(onnx_path: Path, out: Path) -> dict:
    """fp32: the converted graph as it is."""
    import openvino as ov

    ov.save_model(_convert(onnx_path), str(out), compress_to_fp16=False)
    return {"scheme": "fp32"}


def save_fp16(onnx_path: Path, out: Path) -> dict:
    """fp16: constants stored in half precision; computation stays f32 on the CPU."""
    import openvino as ov

    ov.save_model(_convert(onnx_path), str(out), compress_to_fp16=True)
    return {"scheme": "fp16-weights", "weights": "fp16 (compress_to_fp16)",
            "compute": "f32 on CPU (the runtime sets INFERENCE_PRECISION_HINT f32)"}


def _int8_input(node) -> bool:
    """An input of ``node`` is an int8 activation (FakeQuantize) or an int8 weight
    (a u8/i8 Constant decompressed by Convert/Subtract/Multiply)."""
    for value in node.inputs():
        source = value.get_source_output().get_node()
        for _ in range(4):  # walk up a decompression chain: Multiply <- Subtract <- Convert
            kind = source.get_type_name()
            if kind == "FakeQuantize":
                return True
            if kind == "Constant":
                if source.get_element_type().get_type_name() in ("i8", "u8"):
                    return True
                break
            if kind not in ("Convert", "Subtract", "Multiply", "Reshape"):
                break
            source = source.input_value(0).get_node()
    return False


def int8_ops(model) -> dict[str, dict[str, int]]:
    """Per compute op type, how many of its ops read int8 inputs and how many stay float,
    read back from the quantized graph (what actually runs, not what was asked for)."""
    counts: dict[str, dict[str, int]] = {}
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        if kind in COMPUTE_OPS:
            row = counts.setdefault(kind, {"int8": 0, "float": 0})
            row["int8" if _int8_input(node) else "float"] += 1
    return counts


def quantize_int8_ov(onnx_path: Path, out: Path, calibration: list[dict]) -> dict:
    """INT8 with NNCF: ``nncf.quantize(model_type=TRANSFORMER)``, then INT8 weight compression.

    ``ModelType.TRANSFORMER`` quantizes the inputs of every MatMul: the Q/K/V, attention
    output and feed-forward projections (weights int8 symmetric per output channel,
    activations int8 per tensor from calibration statistics, SmoothQuant first moving
    activation outliers into the weights) and the attention products Q·Kᵀ and weights·V.
    It keeps in float what int8 is known to break in transformers: LayerNorm (MVN; a mean
    and variance over a few outlier hidden units would round to nothing), GELU and Softmax
    (non-linear, with small values that matter, such as the attention weights of all but
    the top token), and the residual Adds, which carry the outlier features of the residual
    stream: quantizing them with one scale per tensor is what collapses static INT8 of BERT
    (a published CoNLL F1 went 0.94 -> 0.10). The embedding tables (a Gather, most of a
    small BERT's bytes) are not touched by ``nncf.quantize``; ``nncf.compress_weights``
    (INT8 asymmetric, per row) then stores them as int8, dequantized on lookup. The counts
    of int8 and float ops are read back from the graph (``int8_ops``) into the sidecar.

    Args:
        calibration: NNCF inputs, one {input_ids, attention_mask} [1, L] dict per text.
    """
    import nncf
    import openvino as ov

    quiet = [logging.getLogger(n) for n in NNCF_LOGGERS]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        quantized = nncf.quantize(_convert(onnx_path), nncf.Dataset(calibration),
                                  model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(calibration))
        compressed = nncf.compress_weights(quantized, mode=nncf.CompressWeightsMode.INT8_ASYM)
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
    ov.save_model(compressed, str(out), compress_to_fp16=False)
    return {"scheme": "int8-static", "method": "nncf.quantize(model_type=TRANSFORMER) + "
                                               "nncf.compress_weights(INT8_ASYM)",
            "weights": "int8, symmetric per output channel (MatMul); int8 asymmetric per row "
                       "(embedding tables)",
            "activations": "int8 per tensor, calibrated (MatMul inputs only)",
            "calibration_texts": len(calibration), "ops": int8_ops(compressed),
            "kept_float": ["LayerNorm (MVN)", "Softmax", "GELU", "residual Add"]}


def calibration_inputs(model: TextClassifier, texts) -> list[dict]:
    """NNCF calibration inputs: each text tokenised, truncated and padded to [1, L]."""
    ids, mask = encode_texts(model.tokenizer, list(texts), model.max_length, model.pad_id)
    return [{INPUT_NAMES[0]: ids[i:i + 1], INPUT_NAMES[1]: mask[i:i + 1]}
            for i in range(len(ids))]


OV_PRECISIONS: Registry = Registry("OpenVINO text precision")
OV_PRECISIONS.register("fp32", save_fp32)
OV_PRECISIONS.register("fp16", save_fp16)
OV_PRECISIONS.register("int8", quantize_int8_ov)


def export_text_openvino(model: TextClassifier, out: str | Path, precision: str = "fp32",
                         texts=None, calibration_texts=None, card: dict | None = None,
                         force: bool = False, calibration_size: int = CALIBRATION_SIZE,
                         fuse_tokenizer: bool = False) -> TextExportResult:
    """Export ``model`` to an OpenVINO IR folder (see the module docstring), atomically.

    Args:
        model: the classifier (eval mode is set here).
        out: the folder to write.
        precision: "fp32", "fp16" or "int8" (``OV_PRECISIONS``).
        texts: texts to validate on, or a ValidationSet; None = a few fixed sentences.
        calibration_texts: INT8's calibration texts (the training texts); None = the
            validation texts.
        calibration_size: at most this many of them are used (a seeded sample).
        card: the classifier's card, for the encoder record and metrics in the sidecar.
        force: replace ``out`` if it exists.
        fuse_tokenizer: put the tokenizer inside the IR (``edgessl.text.fused_tokenizer``):
            the model then takes one string; ``tokenizer.json`` still travels beside it.

    Raises:
        ConfigError: an unknown precision, a calibration size below 1, or a tokenizer that
            cannot be fused (openvino-tokenizers missing, or its ids differ).
        EdgesslError: the exporter fails, or an fp32 export disagrees with PyTorch.
    """
    convert = OV_PRECISIONS.get(precision)
    if calibration_size < 1:
        raise ConfigError(f"calibration size must be 1 or more, got {calibration_size}")
    check_on = ValidationSet.of(texts)
    if precision == "int8":
        pool = list(calibration_texts) if calibration_texts else list(check_on.texts)
        if len(pool) > calibration_size:
            chosen = np.random.default_rng(0).choice(len(pool), calibration_size, replace=False)
            pool = [pool[i] for i in sorted(chosen)]
        convert = functools.partial(convert, calibration=calibration_inputs(model, pool))
    if fuse_tokenizer:
        from edgessl.text.runtime import load_tokenizer_extension

        load_tokenizer_extension()  # before any work
        convert = functools.partial(_fused, convert, model, check_on.texts)
    return write_text_export(model, out, precision, convert, OV_MODEL_FILE, check_on, card,
                             force)


def _fused(convert, model: TextClassifier, texts, onnx_path: Path, out: Path) -> dict:
    """``convert``, then the checked tokenizer joined in front of the IR it wrote."""
    from edgessl.text.fused_tokenizer import fuse_into

    scheme = convert(onnx_path, out)
    fusion = fuse_into(out, model.tokenizer, model.max_length, model.pad_id, texts)
    return {**scheme, "tokenizer_fusion": fusion}
