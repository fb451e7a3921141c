"""BYOL: bootstrap your own latent, predicting a slowly moving target network without negatives.

Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Pires, Guo, Azar, Piot,
Kavukcuoglu, Munos, Valko. "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning", NeurIPS 2020, https://arxiv.org/abs/2006.07733.

The online network (backbone, projector, predictor) predicts the target network's projection
of the other view; the target (an EMA copy of backbone and projector) gets no gradients. The
loss is 2 - 2 cos(prediction, target projection), symmetrised over the two views. The EMA
momentum rises from ``base_momentum`` to 1 on a half cosine. Only the online backbone is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.config import MAX_WIDTH, Range, check_fields
from edgessl.ssl.base import BYOL_AUGMENT, MomentumMethod, mlp


@dataclass(frozen=True)
class BYOLConfig:
    """BYOL's own settings (heads at a quarter of the paper's widths).

    Attributes:
        base_momentum: EMA momentum of the target at the start of training; it rises to 1.0
            on a half cosine (paper: 0.996 for 1000 epochs; 0.99 suits short runs).
        proj_hidden: hidden width of the 2-layer projector (paper: 4096).
        proj_dim: output width of projector and predictor (paper: 256).
        pred_hidden: hidden width of the 2-layer predictor (paper: 4096).
    """

    FIELD_LABEL = "byol "

    base_momentum: Annotated[float, Range(ge=0, le=1, note="typically 0.99-0.996")] = 0.99
    proj_hidden: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 1024
    proj_dim: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 256
    pred_hidden: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 1024

    def __post_init__(self) -> None:
        check_fields(self)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 2 - 2 cos(p_i, z_i); no gradient flows into ``z``.

    Args:
        p: online predictions [N, D].
        z: target projections [N, D] of the other view.

    Returns:
        Scalar in [0, 4]; equal to the mean squared distance of the normalised vectors.
    """
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


class BYOL(MomentumMethod):
    """Online backbone + projector + predictor, regressed onto an EMA target on two views.

    The target is ``target_backbone`` + ``target_projector`` (see ``MomentumMethod``). No
    sample is compared with another, so nothing is gathered under DDP (batch norm statistics
    are per process, as without SyncBatchNorm).
    """

    name = "byol"
    Config = BYOLConfig
    augment = BYOL_AUGMENT
    num_views = 2
    # Plain SGD (momentum 0.9), as edgessl's pretraining loop uses; the paper uses LARS.
    # 0.12 at batch 256 is lightly's CIFAR benchmark rate for BYOL (0.06 at 128); not tuned.
    optimizer = "sgd"
    lr = 0.12

    def __init__(self, backbone: nn.Module, config: BYOLConfig = BYOLConfig()) -> None:
        super().__init__(backbone)
        self.config = config
        self.projector = mlp(backbone.num_features, config.proj_hidden, config.proj_dim)
        self.predictor = mlp(config.proj_dim, config.pred_hidden, config.proj_dim)
        self.init_target()

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss for one batch of two views [N, 3, H, W] each; also the first view's features."""
        feats, (p1, p2), (z1, z2) = self.predict_and_target(views)
        return byol_loss(p1, z2) + byol_loss(p2, z1), feats[0].detach()
