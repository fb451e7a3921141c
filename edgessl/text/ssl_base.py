"""What every text SSL method shares: the interface ``pretrain_text`` trains through.

A method file (``simcse.py``, ``mlm.py``) defines a subclass of ``TextSSLMethod`` and
``edgessl.text.pretrain.TEXT_METHODS`` registers it: adding a method is one file plus one
registration line.
"""

from __future__ import annotations

import torch
from torch import nn

from edgessl.config import from_dict


class TextSSLMethod(nn.Module):
    """Base of a text SSL method: an encoder (plus any head), trained on batches of lines.

    A subclass defines:
        name: registry name.
        Config: a frozen dataclass of the method's own settings (all fields defaulted).
        lr: default peak AdamW learning rate when continuing a pretrained encoder.
        advice: what to change when the loss stays at chance (shown in the warning).
        forward(ids, mask) -> loss: the loss of one batch of token ids and attention mask,
            int64 [N, W], right-padded.
        chance_loss(batch_size): the loss of an encoder that has learned nothing.

    Attributes:
        encoder: the ``TextEncoder`` that is saved (its base model) and fine-tuned later.
    """

    name = ""
    Config: type = object
    lr = 3e-5
    min_batch = 2
    advice = ""

    def __init__(self, loaded, options) -> None:
        super().__init__()
        self.encoder = loaded.encoder
        self.options = options

    def chance_loss(self, batch_size: int) -> float | None:
        return None

    def fresh_parameters(self) -> list[str]:
        """Names of the parameters this method created rather than loaded (a new head)."""
        return []

    def head_state(self) -> dict[str, torch.Tensor]:
        """Tensors saved beside the encoder's (Hugging Face names), e.g. an MLM head."""
        return {}


def build_method_options(method_cls, options: dict):
    """The method's frozen Config from ``options`` (unknown options are errors)."""
    return from_dict(method_cls.Config, options or {},
                     where=f"{method_cls.name} options (--opt)")
