"""VICReg: variance-invariance-covariance regularisation of two views' embeddings.

Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022, https://arxiv.org/abs/2105.04906.

Backbone and a 3-layer MLP expander map both views to embeddings. The loss pulls the two
embeddings of an image together (invariance, mean squared error), keeps the standard deviation
of every embedding dimension above ``gamma`` (variance hinge, which prevents collapse) and
decorrelates the dimensions (squared off-diagonal covariances). No negatives, no target
network. Only the backbone is kept after pretraining.

The terms are normalised as in the authors' code, with which the default weights were tuned:
invariance is averaged over samples *and* dimensions, the variance term is averaged over the
two branches and the covariance term summed over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.config import MAX_WIDTH, Range, check_fields
from edgessl.errors import ConfigError
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.base import SSLMethod, mlp
from edgessl.ssl.distributed import gather


@dataclass(frozen=True)
class VICRegConfig:
    """VICReg's own settings (expander at a quarter of the paper's 8192 width).

    Attributes:
        invariance_weight: lambda, weight of the invariance (MSE) term.
        variance_weight: mu, weight of the variance hinge.
        covariance_weight: nu, weight of the covariance term.
        gamma: target standard deviation of each embedding dimension.
        eps: added to the variance before the square root, for stable gradients near 0.
        expander_dim: hidden and output width of the 3-layer expander (paper: 8192).
    """

    FIELD_LABEL = "vicreg "

    invariance_weight: Annotated[float, Range(ge=0, le=1e4)] = 25.0
    variance_weight: Annotated[float, Range(ge=0, le=1e4)] = 25.0
    covariance_weight: Annotated[float, Range(ge=0, le=1e4)] = 1.0
    gamma: Annotated[float, Range(gt=0, le=100)] = 1.0
    eps: Annotated[float, Range(gt=0, le=1, note="default 1e-4")] = 1e-4
    expander_dim: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 2048

    def __post_init__(self) -> None:
        check_fields(self)


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared error of paired embeddings [N, D], averaged over samples and dimensions."""
    return F.mse_loss(z1, z2)


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Mean over dimensions of relu(gamma - sqrt(var_j + eps)), var unbiased over the batch."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal entries of the covariance of z [N, D], divided by D."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.t() @ z) / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


class VICRegLoss(nn.Module):
    """lambda * invariance + mu * variance + nu * covariance of two batches of embeddings.

    Pass the *global* batch (``gather``-ed) under DDP: the variance and covariance are batch
    statistics, so they must see the same samples one process would.
    """

    def __init__(self, config: VICRegConfig = VICRegConfig()) -> None:
        super().__init__()
        self.config = config

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        c = self.config
        if z1.shape[0] < 2:
            raise ConfigError("vicreg needs at least 2 images per batch for its variance and "
                              "covariance terms; raise --batch-size")
        variance = (variance_loss(z1, c.gamma, c.eps) + variance_loss(z2, c.gamma, c.eps)) / 2
        covariance = covariance_loss(z1) + covariance_loss(z2)
        return (c.invariance_weight * invariance_loss(z1, z2)
                + c.variance_weight * variance
                + c.covariance_weight * covariance)


class VICReg(SSLMethod):
    """Backbone + expander, trained with the VICReg loss on two views.

    Under DDP the embeddings of all processes are gathered (with gradients), so the batch
    statistics are those of the global batch and the loss equals one process's loss on it.
    Views pass through the networks one at a time, as in the paper.
    """

    name = "vicreg"
    Config = VICRegConfig
    # The paper uses BYOL's augmentations; see byol.py for how one AugmentConfig approximates
    # them (no solarisation, blur averaged over the two views, small-image crop scale).
    augment = AugmentConfig(crop_scale=(0.2, 1.0), jitter=0.5, jitter_p=0.8, grayscale_p=0.2,
                            blur_p=0.5)
    num_views = 2
    # Plain SGD (momentum 0.9), as edgessl's pretraining loop uses; the paper uses LARS
    # (base 0.2). The loss is ~25x an MSE, so SGD wants a smaller rate than SimCLR's; 0.05
    # at batch 256 is a conservative choice, not tuned here.
    optimizer = "sgd"
    lr = 0.05

    def __init__(self, backbone: nn.Module, config: VICRegConfig = VICRegConfig()) -> None:
        super().__init__(backbone)
        self.config = config
        self.expander = mlp(backbone.num_features, config.expander_dim, config.expander_dim,
                            layers=3, bias_last=False)
        self.loss_fn = VICRegLoss(config)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss for one batch of two views [N, 3, H, W] each; also the first view's features."""
        feats = [self.backbone(v) for v in views[:2]]
        z1, z2 = (self.expander(h) for h in feats)
        return self.loss_fn(gather(z1), gather(z2)), feats[0].detach()
