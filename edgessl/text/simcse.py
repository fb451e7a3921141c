"""Unsupervised SimCSE: dropout noise as the only augmentation of a sentence.

Gao, Yao & Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings". Each
sentence of a batch is encoded twice in train mode; the two dropout masks differ, so the two
embeddings form a positive pair, and the other N - 1 sentences of the batch are its
negatives.
The loss is InfoNCE over cosine similarities divided by a temperature of 0.05 (the paper's):
for row i, cross-entropy of softmax_j(cos(z_i, z'_j) / t) against j = i, so a model that
has learned nothing scores log(N).

Two departures from the paper, both to keep what is saved the encoder itself: the
embedding is the encoder's own pooling (mean pooling for BERT-family sentence encoders such
as all-MiniLM-L6-v2, the last token for GPT-2) rather than [CLS], and there is no MLP on top
during training (the paper drops it at test time anyway). The batch is encoded as one
forward of [x; x], which draws independent dropout masks for the two copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F

from edgessl.config import Range, check_fields
from edgessl.text.ssl_base import TextSSLMethod


@dataclass(frozen=True)
class SimCSEConfig:
    """SimCSE's settings.

    Attributes:
        temperature: divides the cosine similarities (the paper's 0.05).
    """

    FIELD_LABEL = "simcse "
    temperature: Annotated[float, Range(gt=0, le=10)] = 0.05

    def __post_init__(self) -> None:
        check_fields(self)


def simcse_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of embeddings z1, z2 [N, H] (row i of each is one sentence): mean over i of
    -log softmax_j(cos(z1_i, z2_j) / temperature)[i]."""
    sims = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).t() / temperature
    return F.cross_entropy(sims, torch.arange(len(z1), device=z1.device))


class SimCSE(TextSSLMethod):
    """Unsupervised SimCSE on the encoder's pooled embeddings (see the module docstring)."""

    name = "simcse"
    Config = SimCSEConfig
    lr = 3e-5  # the paper's for BERT-base at batch 64
    advice = ("check --lr (the default is 3e-5), train more --steps, and give it more "
              "varied lines: repeated or near-identical lines cannot be told apart")

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = self.encoder(torch.cat([ids, ids]), torch.cat([mask, mask]))
        z1, z2 = z.chunk(2)
        return simcse_loss(z1, z2, self.options.temperature)

    def chance_loss(self, batch_size: int) -> float:
        return math.log(batch_size)
