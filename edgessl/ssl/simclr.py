"""SimCLR: contrastive learning of visual representations with the NT-Xent loss.

Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, https://arxiv.org/abs/2002.05709.

Two augmented views of each image pass through backbone and an MLP projection head; the
normalised-temperature cross-entropy pulls the two views of an image together and pushes the
other 2N-2 embeddings in the batch away. Only the backbone is kept after pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.config import MAX_WIDTH, Range, check_fields
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.base import SSLMethod
from edgessl.ssl.distributed import gather


@dataclass(frozen=True)
class SimCLRConfig:
    """SimCLR's own settings.

    Attributes:
        temperature: tau of the NT-Xent loss.
        proj_hidden: hidden width of the projection head (0 = backbone width).
        proj_dim: output width of the projection head.
    """

    FIELD_LABEL = "simclr "

    temperature: Annotated[float, Range(gt=0, le=10)] = 0.2
    proj_hidden: Annotated[int, Range(ge=0, le=MAX_WIDTH, note="0 = backbone width")] = 0
    proj_dim: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 128

    def __post_init__(self) -> None:
        check_fields(self)


class NTXentLoss(nn.Module):
    """Normalised-temperature cross-entropy over 2N embeddings of N positive pairs.

    For z = normalise([z1; z2]) and s_ij = z_i . z_j / tau, the loss of row i is
    -log(exp(s_i,p(i)) / sum_{k != i} exp(s_ik)), with p(i) the other view of i's image,
    averaged over all 2N rows.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        n = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        logits = z @ z.t() / self.temperature
        logits.fill_diagonal_(float("-inf"))
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, targets)


def projection_head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """SimCLR's 2-layer MLP projector with batch norm."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out_dim),
    )


class SimCLR(SSLMethod):
    """Backbone + projection head, trained with NT-Xent on two views.

    Under DDP the embeddings of all processes are gathered (with gradients), so the negatives
    are the whole global batch and the loss equals one process's loss on that batch.
    """

    name = "simclr"
    Config = SimCLRConfig
    augment = AugmentConfig()
    num_views = 2
    optimizer = "sgd"
    lr = 0.5

    def chance_loss(self, batch_size: int) -> float:
        """Uniform similarities: each view picks its partner among 2N - 1 others."""
        import math

        return math.log(2 * batch_size - 1)

    def __init__(self, backbone: nn.Module, config: SimCLRConfig = SimCLRConfig()) -> None:
        super().__init__(backbone)
        hidden = config.proj_hidden or backbone.num_features
        self.projector = projection_head(backbone.num_features, hidden, config.proj_dim)
        self.loss_fn = NTXentLoss(config.temperature)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss for one batch of two views [N, 3, H, W] each; also the first view's features."""
        x = torch.cat(views[:2])
        h = self.backbone(x)
        z1, z2 = self.projector(h).chunk(2)
        return self.loss_fn(gather(z1), gather(z2)), h[: views[0].shape[0]].detach()
