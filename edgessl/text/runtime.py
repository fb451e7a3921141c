"""Torch-free text classification: ``tokenizer.json`` + an ONNX model -> labels, probabilities.

An exported text model is a folder (``edgessl.text.export``)::

    model.onnx        inputs input_ids, attention_mask int64 [1, L] -> logits [1, C]
    tokenizer.json    the encoder's tokenizer (Hugging Face ``tokenizers`` format)
    text_model.json   labels, L, the pad id, pooling, the encoder's record, validation

This module needs only numpy, ``tokenizers`` and ``onnxruntime`` (never torch or
transformers), so a device or bundle classifies raw strings with a few MB of wheels.
``encode_texts`` is also what training and export use, so all three tokenise identically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.errors import CheckpointError, DataError, printable
from edgessl.limits import MAX_CLASSES, MAX_LABEL_CHARS

SIDECAR_FILE = "text_model.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SIDECAR_FORMAT = "edgessl-text-onnx/1"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
MAX_SEQUENCE = 8192  # longer than any encoder edgessl loads (512 for BERT, 1024 for GPT-2)


def encode_texts(tokenizer, texts: list[str], length: int, pad_id: int,
                 pad_to_length: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, int64 [N, W], of ``texts``.

    Each text is truncated to ``length`` tokens (special tokens included) and padded on the
    right with ``pad_id``: to ``length`` (W = L, the static shape of an export) or, with
    ``pad_to_length`` False, to the longest text (training; results are the same, since
    pooling and attention ignore positions where the mask is 0).
    """
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=length)
    encoded = tokenizer.encode_batch(list(texts))
    width = length if pad_to_length else max((len(e.ids) for e in encoded), default=1)
    ids = np.full((len(encoded), max(width, 1)), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    return ids, mask


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class TextPrediction:
    """One text's class: its label, index and the probabilities of all classes [C]."""

    label: str
    index: int
    probabilities: np.ndarray


def read_sidecar(folder: Path) -> dict:
    """The folder's ``text_model.json``, checked field by field.

    Raises:
        CheckpointError: missing, not JSON, or a field of the wrong kind.
    """
    path = folder / SIDECAR_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"'{printable(folder)}' has no {SIDECAR_FILE}; it is not a text "
                              "model exported by edgessl") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"'{printable(path)}' cannot be read as JSON ({exc}); export "
                              "the model again") from None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    length, pad = (meta.get("max_length"), meta.get("pad_id")) if labels else (None, None)
    if (meta.get("format") != SIDECAR_FORMAT or not isinstance(labels, list)
            or not 2 <= len(labels) <= MAX_CLASSES
            or not all(isinstance(x, str) and len(x) <= MAX_LABEL_CHARS for x in labels)
            or not isinstance(length, int) or not 1 <= length <= MAX_SEQUENCE
            or not isinstance(pad, int) or pad < 0):
        raise CheckpointError(f"'{printable(path)}' is not an edgessl text model description "
                              f"(format {SIDECAR_FORMAT}: labels, max_length, pad_id); export "
                              "the model again")
    return meta


class TextPredictor:
    """Classifies raw strings with an exported text model folder, without torch.

    Args:
        folder: the export folder (``model.onnx``, ``tokenizer.json``, ``text_model.json``).
        threads: ONNX Runtime intra-op threads; None = its default.
    """

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from edgessl.safety import check_onnx_external_data

        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"text model '{printable(folder)}' is not a folder; give "
                                  "the folder edgessl exported")
        self.meta = read_sidecar(folder)
        model = folder / MODEL_FILE
        for needed in (model, folder / TOKENIZER_FILE):
            if not needed.is_file():
                raise CheckpointError(f"'{printable(folder)}' has no {needed.name}; export "
                                      "the model again")
        check_onnx_external_data(model)
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        except Exception as exc:  # noqa: BLE001 - the Rust library raises plain Exception
            raise CheckpointError(f"'{printable(folder / TOKENIZER_FILE)}' is not a tokenizer "
                                  f"file ({str(exc)[:200]})") from None
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(model), options,
                                            providers=["CPUExecutionProvider"])
        self.labels: tuple[str, ...] = tuple(self.meta["labels"])
        self.max_length: int = self.meta["max_length"]
        self.pad_id: int = self.meta["pad_id"]

    def logits(self, text: str) -> np.ndarray:
        """Logits [C] of one text (tokenised, truncated and padded to the static [1, L])."""
        if not isinstance(text, str):
            raise DataError(f"a text model classifies strings, got {type(text).__name__}")
        ids, mask = encode_texts(self.tokenizer, [text], self.max_length, self.pad_id)
        return self.session.run([OUTPUT_NAME], {INPUT_NAMES[0]: ids,
                                                INPUT_NAMES[1]: mask})[0][0]

    def predict(self, texts: list[str] | str) -> list[TextPrediction]:
        """The class of each text (one at a time: the model's batch is fixed at 1)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        found = []
        for text in texts:
            probs = softmax(self.logits(text).astype(np.float64))
            index = int(np.argmax(probs))
            found.append(TextPrediction(self.labels[index], index, probs))
        return found
