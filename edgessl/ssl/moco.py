"""MoCo v3: contrastive learning against a momentum encoder, without a queue.

Chen, Xie, He. "An Empirical Study of Training Self-Supervised Vision Transformers",
ICCV 2021, https://arxiv.org/abs/2104.02057.

The online branch (backbone, 3-layer projector, 2-layer predictor) maps each view to a query;
a momentum encoder (an EMA copy of backbone and projector) maps the other view to a key. The
InfoNCE loss matches each query with its own image's key among the keys of the whole (global)
batch, symmetrised over the two views. Keys come from the momentum encoder without gradients;
the momentum rises from ``base_momentum`` to 1 on a half cosine over training. Only the online
backbone is kept after pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.config import MAX_WIDTH, Range, check_fields
from edgessl.ssl.base import BYOL_AUGMENT, MomentumMethod, mlp
from edgessl.ssl.distributed import gather, rank


@dataclass(frozen=True)
class MoCoV3Config:
    """MoCo v3's own settings (heads at a quarter of the paper's ResNet-50 widths).

    Attributes:
        temperature: tau of the InfoNCE loss (0.2, as in the paper's ViT recipe and
            solo-learn's ResNet one; the authors' ResNet-50 code uses 1.0).
        base_momentum: EMA momentum of the momentum encoder at the start of training; it rises
            to 1.0 on a half cosine (paper: 0.99, cosine schedule).
        proj_hidden: hidden width of the 3-layer projector (paper: 4096).
        proj_dim: output width of projector and predictor (paper: 256).
        pred_hidden: hidden width of the 2-layer predictor (paper: 4096).
    """

    FIELD_LABEL = "moco "

    temperature: Annotated[float, Range(gt=0, le=10)] = 0.2
    base_momentum: Annotated[float, Range(ge=0, le=1, note="typically 0.99-0.996")] = 0.99
    proj_hidden: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 1024
    proj_dim: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 256
    pred_hidden: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 1024

    def __post_init__(self) -> None:
        check_fields(self)


def moco_contrastive_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of local queries against the keys of all processes, scaled by 2 * tau.

    Args:
        q: queries [N, D] of this process (with gradients).
        k: keys [N, D] of this process, from the momentum encoder (no gradients needed).
        temperature: tau.

    Returns:
        Scalar: 2 tau * mean_i -log(exp(q_i . k_i / tau) / sum_j exp(q_i . k_j / tau)) over
        normalised vectors, j running over the global batch; query i of rank r has its key at
        global index r * N + i. The 2 tau factor (from the paper's code) makes the gradient
        scale insensitive to tau.
    """
    q = F.normalize(q, dim=1)
    k = gather(F.normalize(k, dim=1).detach())
    logits = q @ k.t() / temperature
    labels = torch.arange(q.shape[0], device=q.device) + rank() * q.shape[0]
    return F.cross_entropy(logits, labels) * (2 * temperature)


class MoCoV3(MomentumMethod):
    """Backbone + projector + predictor, contrasted with a momentum encoder on two views.

    The momentum encoder is ``target_backbone`` + ``target_projector`` (see
    ``MomentumMethod``); keys of all processes are gathered under DDP.
    """

    name = "moco"
    Config = MoCoV3Config
    augment = BYOL_AUGMENT  # the paper uses BYOL's augmentations
    num_views = 2
    # Plain SGD (momentum 0.9), as edgessl's pretraining loop uses; the paper's ResNet recipe
    # is LARS. 0.12 at batch 256 is the SGD rate lightly's CIFAR benchmarks use for momentum
    # methods (0.06 at batch 128); not tuned here.
    optimizer = "sgd"
    lr = 0.12

    def chance_loss(self, batch_size: int) -> float:
        """Two InfoNCE terms over N keys, each scaled by 2 tau: 4 tau log N when uniform."""
        import math

        return 4 * self.config.temperature * math.log(batch_size)

    def __init__(self, backbone: nn.Module, config: MoCoV3Config = MoCoV3Config()) -> None:
        super().__init__(backbone)
        self.config = config
        self.projector = mlp(backbone.num_features, config.proj_hidden, config.proj_dim,
                             layers=3, last_bn=True)
        self.predictor = mlp(config.proj_dim, config.pred_hidden, config.proj_dim, layers=2)
        self.init_target()

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss for one batch of two views [N, 3, H, W] each; also the first view's features."""
        feats, (q1, q2), (k1, k2) = self.predict_and_target(views)
        t = self.config.temperature
        loss = moco_contrastive_loss(q1, k2, t) + moco_contrastive_loss(q2, k1, t)
        return loss, feats[0].detach()
