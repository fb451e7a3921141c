"""A text classifier (encoder + linear head) and its checkpoint folder.

A checkpoint folder holds ``model.safetensors`` (encoder and head), ``card.json`` (see
``edgessl.text.finetune``), ``labels.json``, ``tokenizer.json`` and ``encoder/config.json``
(the encoder's architecture, so the folder loads without the original encoder folder).
Weights are safetensors only: loading never unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgessl.errors import CheckpointError, printable
from edgessl.io import atomic_dir, write_json
from edgessl.text.encoders import CONFIG_FILE, TextEncoder, build_encoder, read_config
from edgessl.text.runtime import encode_texts

CARD_FORMAT = "edgessl-text-classifier/1"
CARD_FILE, LABELS_FILE, WEIGHTS_FILE = "card.json", "labels.json", "model.safetensors"
TOKENIZER_FILE, ENCODER_DIR = "tokenizer.json", "encoder"
LENGTH_STEP = 8  # sequence lengths are rounded up to a multiple of 8 (friendlier to kernels)


class TextClassifier(torch.nn.Module):
    """Encoder plus linear head: ids, mask [N, L] -> logits [N, C].

    Attributes:
        labels: class names, index = logit position.
        max_length: L, the longest input in tokens (special tokens included); longer texts
            are truncated, and the export's static shape is [1, L].
        pad_id: the id of padded positions; tokenizer: a ``tokenizers.Tokenizer``.
    """

    def __init__(self, encoder: TextEncoder, labels, max_length: int, pad_id: int,
                 tokenizer) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.hidden_size, len(labels))
        self.labels = tuple(labels)
        self.max_length, self.pad_id, self.tokenizer = int(max_length), int(pad_id), tokenizer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(input_ids, attention_mask))

    def tokenize(self, texts, pad_to_length: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """ids, mask int64 [N, W] (W = L with ``pad_to_length``, else the longest text)."""
        ids, mask = encode_texts(self.tokenizer, list(texts), self.max_length, self.pad_id,
                                 pad_to_length)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def _batched(self, fn, texts, batch_size: int) -> torch.Tensor:
        """``fn(ids, mask)`` over ``texts`` in batches of similar length, in input order."""
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        parts = []
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                parts.append(fn(*self.tokenize([texts[i] for i in chunk])))
        out = torch.cat(parts)
        return out[torch.from_numpy(np.argsort(order))]

    def embed(self, texts, batch_size: int = 64) -> torch.Tensor:
        """Pooled encoder outputs [N, H] (eval mode, no gradients)."""
        self.eval()
        return self._batched(self.encoder, texts, batch_size)

    def logits(self, texts, batch_size: int = 64) -> torch.Tensor:
        """Logits [N, C] (eval mode, no gradients)."""
        self.eval()
        return self._batched(self, texts, batch_size)

    def predict(self, texts, batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.logits(texts, batch_size).argmax(1).tolist()]


def choose_length(tokenizer, texts, limit: int) -> int:
    """L for ``texts``: their longest tokenisation, rounded up to 8, at most ``limit``."""
    tokenizer.no_padding()
    tokenizer.no_truncation()
    longest = max((len(e.ids) for e in tokenizer.encode_batch(list(texts))), default=1)
    return int(min(limit, -(-longest // LENGTH_STEP) * LENGTH_STEP))


def save_text_classifier(model: TextClassifier, card: dict, out: str | Path,
                         force: bool = False) -> Path:
    """Write ``model`` and ``card`` as a checkpoint folder, atomically.

    Raises:
        OutputExistsError: ``out`` exists and ``force`` is False.
    """
    from safetensors.torch import save_file

    out = Path(out)
    with atomic_dir(out, force=force) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        write_json(tmp / CARD_FILE, card)
        write_json(tmp / LABELS_FILE, list(model.labels))
        (tmp / ENCODER_DIR).mkdir()
        (tmp / ENCODER_DIR / CONFIG_FILE).write_text(
            model.encoder.model.config.to_json_string(), encoding="utf-8")
        model.tokenizer.no_padding()
        model.tokenizer.no_truncation()
        model.tokenizer.save(str(tmp / TOKENIZER_FILE))
    return out


def read_text_card(path: str | Path) -> dict:
    """The ``card.json`` of a text classifier folder.

    Raises:
        CheckpointError: missing, unreadable or not a text classifier's card.
    """
    file = Path(path) / CARD_FILE
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"'{printable(path)}' has no {CARD_FILE}; it is not a text "
                              "classifier saved by edgessl") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"'{printable(file)}' cannot be read as JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise CheckpointError(f"'{printable(file)}' is not a text classifier card (format "
                              f"{CARD_FORMAT}); it was saved by something else")
    return card


def load_text_classifier(path: str | Path) -> tuple[TextClassifier, dict]:
    """Load a text classifier folder (from ``save_text_classifier``) in eval mode.

    Raises:
        CheckpointError: a foreign or incomplete folder, or weights that do not fit.
    """
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    path = Path(path)
    card = read_text_card(path)
    config = read_config(path / ENCODER_DIR)
    try:
        state = load_file(str(path / WEIGHTS_FILE))
        tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
    except Exception as exc:  # noqa: BLE001 - safetensors and tokenizers raise several types
        raise CheckpointError(f"'{printable(path)}' is incomplete or damaged ({str(exc)[:200]}); "
                              "save the classifier again") from None
    model = TextClassifier(build_encoder(config, card["encoder"]["family"]), card["labels"],
                           card["max_length"], card["pad_id"], tokenizer)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in '{printable(path)}' do not fit its card "
                              f"({str(exc).splitlines()[0][:200]})") from None
    return model.eval(), card
