"""ONNX export of a text classifier: static [1, L] inputs, fp32 or dynamic INT8, validated.

The folder written holds ``model.onnx`` (inputs ``input_ids`` and ``attention_mask``, int64
[1, L]; output ``logits`` float32 [1, C]), the tokenizer's ``tokenizer.json`` and a sidecar
``text_model.json`` (labels, L, pad id, pooling, the encoder's record, the quantization
recipe and the validation against PyTorch); ``edgessl.text.runtime`` reads it without torch.
Shapes are static because NPUs and many edge compilers need them; L is the classifier's
``max_length`` (from its training data, at most the encoder's limit).

After writing, the model is run through ``TextPredictor`` (the deployed code path, tokenizer
included) on sample texts and compared with PyTorch: the largest logit difference and the
top-1 agreement go into the sidecar. An fp32 export that disagrees is an error.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgessl import __version__
from edgessl.errors import ConfigError, EdgesslError
from edgessl.io import atomic_dir, write_json
from edgessl.registry import Registry
from edgessl.text.model import TextClassifier
from edgessl.text.runtime import (
    INPUT_NAMES,
    MODEL_FILE,
    OUTPUT_NAME,
    SAMPLE_TEXTS,
    SIDECAR_FILE,
    SIDECAR_FORMAT,
    TOKENIZER_FILE,
    TextPredictor,
)

log = logging.getLogger("edgessl")

OPSET = 18
FP32_TOLERANCE = 1e-3  # largest |logit difference| of an fp32 export, relative to max |logit|
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")
DEFAULT_SAMPLES = SAMPLE_TEXTS


def torch_to_onnx(model: TextClassifier, path: Path) -> None:
    """Write ``model`` as fp32 ONNX with static int64 [1, L] inputs to ``path``."""
    length = model.max_length
    ids = torch.full((1, length), model.pad_id, dtype=torch.long)
    mask = torch.zeros((1, length), dtype=torch.long)
    mask[0, : max(1, length // 2)] = 1  # a partial mask: the graph must not assume all ones
    ids[0, : max(1, length // 2)] = 1
    # ERROR: the exporter's optimiser warns of constant folds it skips; the export is checked
    # against PyTorch afterwards, which is what says whether it is right.
    with quiet_loggers(EXPORTER_LOGGERS, logging.ERROR):
        try:
            torch.onnx.export(model.eval(), (ids, mask), str(path), dynamo=True,
                              opset_version=OPSET, input_names=list(INPUT_NAMES),
                              output_names=[OUTPUT_NAME], external_data=False, optimize=True,
                              verbose=False)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many internal error types
            text = str(exc).strip()
            first = text.splitlines()[0][:200] if text else type(exc).__name__
            raise EdgesslError(f"the ONNX exporter (torch {torch.__version__}) cannot export "
                               f"this text encoder ({first}); please report it with --debug"
                               ) from exc


@contextlib.contextmanager
def quiet_loggers(names, at_least: int = logging.WARNING) -> Iterator[None]:
    """Hold the loggers ``names`` ("" = the root logger) at ``at_least`` or above meanwhile:
    the exporter and ONNX Runtime's quantizer log a line per tensor."""
    loggers = [logging.getLogger(n or None) for n in names]
    levels = [lg.level for lg in loggers]
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(max(level, at_least))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def keep_fp32(fp32: Path, out: Path) -> dict:
    """fp32: the exported graph as it is."""
    shutil.move(fp32, out)
    return {"scheme": "fp32"}


def to_half(fp32: Path, out: Path) -> dict:
    """fp16: float16 weights and compute, int64 inputs and float32 logits as before (the same
    conversion as the image ONNX export's, ``edgessl.export.onnx_format.to_fp16``). For GPUs
    and NPUs with fp16 units; ONNX Runtime's CPU provider runs fp16 slower than fp32."""
    import onnx

    from edgessl.export.onnx_format import to_fp16

    onnx.save(to_fp16(onnx.load(str(fp32))), str(out))
    return {"scheme": "fp16", "weights": "float16", "compute": "float16",
            "io": "int64 token ids in, float32 logits out"}


# The ops dynamic INT8 quantizes; everything else stays float (see quantize_int8).
INT8_OPS = ["MatMul", "Gather"]


def quantize_int8(fp32: Path, out: Path) -> dict:
    """Dynamic INT8 (ONNX Runtime ``quantize_dynamic``): int8 weights (one scale per output
    channel), activations quantized to uint8 at run time, per tensor, from each input's own
    min/max. Per-channel weights cost about 10% of the INT8 speed-up on this CPU and halve
    the flips of near-tied predictions against fp32 (97% instead of 94% top-1 agreement on
    the built-in set's val split with a MiniLM probe).

    Quantized: the MatMuls with a constant weight (the Q/K/V, attention output and feed-forward
    projections, over 95% of a BERT layer's compute) and the embedding tables (a ``Gather``
    whose rows are dequantized on lookup; they are most of a small BERT's size: 47 of
    MiniLM's 90 MB). Kept in float, because int8 is known to break transformers there:
    LayerNorm (its mean and variance over outliers of a few hundred hidden units would be
    rounded to nothing), GELU and Softmax (non-linear, with small values that matter, e.g.
    the attention weights of all but the top token), the residual adds (they carry the outlier
    features of the residual stream; quantizing them with one scale per tensor is what
    collapses static INT8 of BERT), and the attention score MatMuls Q·Kᵀ and weights·V (two
    activations, no constant weight: ``MatMulConstBOnly``). Dynamic scales need no
    calibration set, and each sentence gets its own activation ranges.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # one INFO line per tensor ("Quantization parameters ... not specified"), and a WARNING to
    # pre-process the model first, which does not apply to these matrix products
    with quiet_loggers(("",), logging.ERROR):
        quantize_dynamic(str(fp32), str(out), op_types_to_quantize=INT8_OPS,
                         weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"MatMulConstBOnly": True})
    return {"scheme": "int8-dynamic", "method": "onnxruntime.quantization.quantize_dynamic",
            "weights": "int8, symmetric, per output channel",
            "activations": "uint8, dynamic per tensor",
            "quantized_ops": ["MatMul with a constant weight", "Gather (embedding tables)"],
            "kept_float": ["LayerNormalization", "Softmax", "GELU (Erf)", "residual Add",
                           "attention score MatMuls (no constant weight)", "classifier Gemm"]}


PRECISIONS: Registry = Registry("ONNX text precision")
PRECISIONS.register("fp32", keep_fp32)
PRECISIONS.register("fp16", to_half)
PRECISIONS.register("int8", quantize_int8)


@dataclass(frozen=True)
class TextExportResult:
    """The export folder, the model file's size (MiB) and the sidecar written beside it."""

    folder: Path
    size_mib: float
    sidecar: dict

    @property
    def validation(self) -> dict:
        return self.sidecar["validation"]


def validate_export(folder: Path, model: TextClassifier, texts, labels=None) -> dict:
    """Run the export through the torch-free runtime and compare with PyTorch on ``texts``.

    Args:
        labels: the true class index of each text, or None; with them the top-1 accuracy of
            both is measured too.

    Returns:
        ``max_abs_logit_diff``, ``max_abs_logit`` (PyTorch's), ``top1_agreement``, ``texts``
        (how many), the ``runtime`` that ran the export, and with ``labels``
        ``top1_artifact`` and ``top1_pytorch``.
    """
    texts = list(texts)
    predictor = TextPredictor(folder, threads=1)
    exported = np.stack([predictor.logits(t) for t in texts])
    reference = model.logits(texts).numpy()
    check = {"texts": len(texts), "runtime": predictor.runtime,
             "max_abs_logit_diff": float(np.abs(exported - reference).max()),
             "max_abs_logit": float(np.abs(reference).max()),
             "top1_agreement": float((exported.argmax(1) == reference.argmax(1)).mean())}
    if labels is not None:
        truth = np.asarray(list(labels))
        check["top1_artifact"] = float((exported.argmax(1) == truth).mean())
        check["top1_pytorch"] = float((reference.argmax(1) == truth).mean())
    return check


def _sidecar(model: TextClassifier, card: dict | None, precision: str, scheme: dict,
             model_file: str) -> dict:
    card = card or {}
    scheme = dict(scheme)
    fusion = scheme.pop("tokenizer_fusion", None)  # the tokenizer inside the model's graph
    inputs = ({"tokenizer": "fused", "tokenizer_fusion": fusion,
               "input_names": [fusion["input"]], "input_shape": fusion["input_shape"]}
              if fusion else {"tokenizer": "file", "input_names": list(INPUT_NAMES),
                              "input_shape": [1, model.max_length]})
    return {
        "format": SIDECAR_FORMAT, "model_file": model_file, "tokenizer_file": TOKENIZER_FILE,
        "labels": list(model.labels), "max_length": model.max_length, "pad_id": model.pad_id,
        "pooling": model.encoder.pooling, **inputs, "output_name": OUTPUT_NAME,
        "precision": precision, "quantization": scheme, "opset": OPSET,
        "encoder": card.get("encoder"), "classifier": {k: card.get(k) for k in ("mode", "metrics")},
        "edgessl_version": __version__,
    }


@dataclass(frozen=True)
class ValidationSet:
    """Texts to check an export on (a few dozen are plenty) and, if known, their labels."""

    texts: tuple[str, ...] = DEFAULT_SAMPLES
    labels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.texts or not all(isinstance(t, str) for t in self.texts):
            raise ConfigError("validation texts must be one or more strings")
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ConfigError("validation labels must match the validation texts one to one")

    @classmethod
    def of(cls, texts) -> ValidationSet:
        """Texts, a ValidationSet, or None (a few fixed sentences)."""
        if isinstance(texts, ValidationSet):
            return texts
        return cls(tuple(texts)) if texts else cls()


def write_text_export(model: TextClassifier, out: str | Path, precision: str, convert,
                      model_file: str, check_on: ValidationSet, card: dict | None,
                      force: bool) -> TextExportResult:
    """The steps every text format shares: ONNX fp32 from PyTorch, ``convert(onnx, dest)``
    into ``model_file``, the tokenizer and sidecar beside it, validation through the runtime
    (an fp32 export that disagrees with PyTorch is an error), all in one atomic folder."""
    with atomic_dir(out, force=force) as tmp:
        fp32 = tmp / ".fp32.onnx"
        torch_to_onnx(model, fp32)
        scheme = convert(fp32, tmp / model_file)
        fp32.unlink(missing_ok=True)
        model.tokenizer.no_padding()
        model.tokenizer.no_truncation()
        model.tokenizer.save(str(tmp / TOKENIZER_FILE))
        sidecar = _sidecar(model, card, precision, scheme, model_file)
        write_json(tmp / SIDECAR_FILE, sidecar)
        sidecar["validation"] = check = validate_export(tmp, model, check_on.texts,
                                                        check_on.labels)
        tolerance = FP32_TOLERANCE * max(1.0, check["max_abs_logit"])
        # Judged on the logits: a top-1 flip between two near-equal logits is not an error.
        if precision == "fp32" and check["max_abs_logit_diff"] > tolerance:
            raise EdgesslError(f"the fp32 {model_file} export disagrees with PyTorch (largest "
                               f"logit difference {check['max_abs_logit_diff']:.3g}, top-1 "
                               f"agreement {check['top1_agreement']:.0%}); please report it "
                               "with --debug")
        write_json(tmp / SIDECAR_FILE, sidecar, force=True)
        stem = Path(model_file).stem
        size = sum(f.stat().st_size for f in tmp.glob(f"{stem}.*")) / 2**20
    log.info("exported %s %s text model to %s (%.1f MiB, top-1 agreement with PyTorch %.0f%%)",
             precision, Path(model_file).suffix, out, size, 100 * check["top1_agreement"])
    return TextExportResult(Path(out), size, sidecar)


def export_text_onnx(model: TextClassifier, out: str | Path, precision: str = "fp32",
                     texts=None, card: dict | None = None,
                     force: bool = False) -> TextExportResult:
    """Export ``model`` to an ONNX folder (see the module docstring), atomically.

    Args:
        model: the classifier (eval mode is set here).
        out: the folder to write.
        precision: "fp32" or "int8" (``PRECISIONS``).
        texts: texts to validate on, or a ValidationSet (texts and labels); None = a few
            fixed sentences.
        card: the classifier's card, for the encoder record and metrics in the sidecar.
        force: replace ``out`` if it exists.

    Raises:
        ConfigError: an unknown precision.
        EdgesslError: the exporter fails, or an fp32 export disagrees with PyTorch.
    """
    convert = PRECISIONS.get(precision)
    return write_text_export(model, out, precision, convert, MODEL_FILE,
                             ValidationSet.of(texts), card, force)
