"""Masked-language-model continuation: BERT's pretraining task on the user's own text.

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding", section 3.1: 15% of the tokens of each line (never [CLS], [SEP] or padding)
are chosen; of those, 80% are replaced by [MASK], 10% by a random token and 10% kept, and
the model predicts the original token at each chosen position (cross-entropy). A model that
has learned nothing predicts uniformly and scores log(vocabulary size).

The head is BERT's: a dense layer, the encoder's activation and LayerNorm (the "transform"),
then a decoder whose weight is the word-embedding matrix (tied, as in BERT) plus a bias per
token. Sentence encoders such as all-MiniLM-L6-v2 ship as a ``BertModel`` without that head:
the decoder is still the encoder's own embeddings, but the transform and the bias are
created here (normal(0, initializer_range) weights, zero biases, LayerNorm at identity), and
``fresh_parameters`` names them. A folder saved from ``BertForMaskedLM`` (or by an earlier
edgessl MLM run) has them, and they are loaded. Only bidirectional encoders (the BERT family)
can be trained so; GPT-2 folders are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.config import Range, check_fields
from edgessl.errors import ConfigError, printable
from edgessl.text.ssl_base import TextSSLMethod

MASK_TOKENS = ("[MASK]", "<mask>")
IGNORE = -100  # cross-entropy's ignore_index: positions that are not predicted
# Head tensor -> its name in a BertForMaskedLM and in a RobertaForMaskedLM state dict.
HEAD_KEYS = {
    "dense.weight": ("cls.predictions.transform.dense.weight", "lm_head.dense.weight"),
    "dense.bias": ("cls.predictions.transform.dense.bias", "lm_head.dense.bias"),
    "norm.weight": ("cls.predictions.transform.LayerNorm.weight", "lm_head.layer_norm.weight"),
    "norm.bias": ("cls.predictions.transform.LayerNorm.bias", "lm_head.layer_norm.bias"),
    "bias": ("cls.predictions.bias", "lm_head.bias"),
}


@dataclass(frozen=True)
class MLMConfig:
    """Masked-LM settings (BERT's by default).

    Attributes:
        mask_prob: share of the tokens of a line chosen for prediction.
        replace_mask, replace_random: of the chosen, the shares replaced by the mask token
            and by a random token (the rest are kept as they are).
    """

    FIELD_LABEL = "mlm "
    mask_prob: Annotated[float, Range(gt=0, lt=1)] = 0.15
    replace_mask: Annotated[float, Range(ge=0, le=1)] = 0.8
    replace_random: Annotated[float, Range(ge=0, le=1)] = 0.1

    def __post_init__(self) -> None:
        check_fields(self)
        if self.replace_mask + self.replace_random > 1:
            raise ConfigError(f"mlm replace_mask + replace_random must be ≤ 1, got "
                              f"{self.replace_mask} + {self.replace_random}")


class MaskedLMHead(nn.Module):
    """hidden [M, H] -> logits [M, V]: transform, then the tied embeddings plus a bias."""

    def __init__(self, embeddings: nn.Embedding, config) -> None:
        from transformers.activations import ACT2FN

        super().__init__()
        hidden = int(config.hidden_size)
        self.dense = nn.Linear(hidden, hidden)
        self.act = ACT2FN[config.hidden_act]
        self.norm = nn.LayerNorm(hidden, eps=float(getattr(config, "layer_norm_eps", 1e-12)))
        self.bias = nn.Parameter(torch.zeros(embeddings.num_embeddings))
        self.embeddings = [embeddings]  # a list: shared with the encoder, not a submodule
        nn.init.normal_(self.dense.weight, std=float(getattr(config, "initializer_range",
                                                             0.02)))
        nn.init.zeros_(self.dense.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.act(self.dense(hidden)))
        return F.linear(x, self.embeddings[0].weight, self.bias)


def mask_token_id(tokenizer, where) -> int:
    """The id of the tokenizer's mask token.

    Raises:
        ConfigError: the tokenizer has none.
    """
    for token in MASK_TOKENS:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    raise ConfigError(f"the tokenizer of '{printable(where)}' has no mask token "
                      f"({' or '.join(MASK_TOKENS)}), so masked-LM training cannot run on it; "
                      "use --method simcse")


def mask_tokens(ids: torch.Tensor, maskable: torch.Tensor, cfg: MLMConfig, mask_id: int,
                vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of ids [N, W]: (corrupted ids, labels with IGNORE where not chosen).

    ``maskable`` [N, W] is True where a token may be chosen (real, non-special tokens). At
    least one position is chosen, so the loss of a batch of short lines is never empty.
    """
    chosen = (torch.rand(ids.shape) < cfg.mask_prob) & maskable
    if not chosen.any() and maskable.any():
        candidates = maskable.flatten().nonzero().flatten()
        pick = candidates[torch.randint(len(candidates), (1,))]
        chosen = chosen.flatten().index_fill(0, pick, True).view_as(ids)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape)
    to_mask = chosen & (roll < cfg.replace_mask)
    to_random = chosen & (roll >= cfg.replace_mask) & (roll < cfg.replace_mask
                                                        + cfg.replace_random)
    corrupted = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    corrupted = torch.where(to_random, torch.randint_like(ids, vocab_size), corrupted)
    return corrupted, labels


class MaskedLM(TextSSLMethod):
    """BERT-style masked-LM continuation of a BERT-family encoder (see the module docstring)."""

    name = "mlm"
    Config = MLMConfig
    lr = 5e-5  # BERT's fine-tuning / continued-pretraining scale
    advice = ("check --lr (the default is 5e-5), train more --steps, and give it more text: "
              "a fresh head needs a few hundred steps before the loss leaves log(vocab)")

    def __init__(self, loaded, options: MLMConfig) -> None:
        super().__init__(loaded, options)
        config = loaded.encoder.model.config
        if loaded.record["family"] != "bert":
            raise ConfigError(f"masked-LM training needs a bidirectional (BERT-family) "
                              f"encoder; '{printable(loaded.folder)}' is a "
                              f"{config.model_type} decoder: use --method simcse")
        self.mask_id = mask_token_id(loaded.tokenizer, loaded.folder)
        self.vocab_size = int(config.vocab_size)
        self.special_ids = sorted({*loaded.tokenizer.encode("").ids, loaded.pad_id,
                                   self.mask_id})
        self.layout = 0 if config.model_type == "bert" else 1
        self.head = MaskedLMHead(loaded.encoder.model.get_input_embeddings(), config)
        self._fresh = self._load_head(loaded.folder)

    def _load_head(self, folder) -> list[str]:
        """Copy a saved head from the folder's weights; returns the names left fresh."""
        from edgessl.text.encoders import read_weights

        state, _ = read_weights(folder)
        own, fresh = self.head.state_dict(), []
        with torch.no_grad():
            for name, keys in HEAD_KEYS.items():
                found = next((state[k] for k in keys if k in state), None)
                if found is not None and tuple(found.shape) == tuple(own[name].shape):
                    own[name].copy_(found)
                else:
                    fresh.append(keys[self.layout])
        return fresh

    def fresh_parameters(self) -> list[str]:
        return list(self._fresh)

    def head_state(self) -> dict[str, torch.Tensor]:
        own = self.head.state_dict()
        return {keys[self.layout]: own[name] for name, keys in HEAD_KEYS.items()}

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        special = torch.isin(ids, torch.tensor(self.special_ids, device=ids.device))
        corrupted, labels = mask_tokens(ids.cpu(), (mask.bool() & ~special).cpu(),
                                        self.options, self.mask_id, self.vocab_size)
        corrupted, labels = corrupted.to(ids.device), labels.to(ids.device)
        hidden = self.encoder.model(input_ids=corrupted, attention_mask=mask).last_hidden_state
        chosen = labels != IGNORE
        return F.cross_entropy(self.head(hidden[chosen]), labels[chosen])

    def chance_loss(self, batch_size: int) -> float:
        return math.log(self.vocab_size)
