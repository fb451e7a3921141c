"""What every SSL method shares: the method interface, MLP heads and EMA (momentum) updates."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from edgessl.config import from_dict
from edgessl.ssl.augment import AugmentConfig


class SSLMethod(nn.Module):
    """Base of an SSL method: a backbone plus heads, trained on augmented views of a batch.

    A method file defines a subclass with:
        name: registry name.
        Config: a frozen dataclass of the method's own settings (all fields defaulted).
        augment: its augmentation preset (AugmentConfig; ``local_crops`` > 0 for multi-crop).
        num_views: global views per image (local crops come on top, see AugmentConfig).
        optimizer: default optimiser family, "sgd" (CNN recipes) or "adamw" (ViT recipes).
        lr: default peak learning rate for that optimiser at batch size 256.
        vit_lr: AdamW learning rate at batch 256 used instead when the method's optimiser is
            SGD and the backbone is a ViT (ViTs train poorly with SGD: VICReg on vit_tiny
            reached NaN within 6 steps with SGD in bf16).
        needs_vit: True when only timm VisionTransformer backbones work (MAE).
        min_batch: fewest images a step (each process's share of it) can take. 2 for every
            method: contrastive losses need another image to compare with, VICReg's
            variance and batch norm (in the heads and most backbones) need two or more, and
            with one image the loss is 0 or NaN without any error. Pretraining refuses
            smaller batches and folders before it starts.
        forward(views) -> (loss, features): the loss of one batch; ``views`` is a list of
            normalised float tensors [N, 3, h, w] (global views first, then local crops);
            ``features`` are the backbone's pooled features [N, D] of the first view, detached
            (used for collapse detection).
        export_backbone(): the backbone to save and evaluate (default: ``backbone``).
        after_step(progress): momentum/teacher updates after each optimiser step,
            ``progress`` = finished steps / total steps in [0, 1].

    All state that training changes (EMA targets, centres, queues) must be parameters or
    registered buffers, so ``state_dict`` carries it through checkpoints and ``--resume``.
    Targets that are not trained by gradients have ``requires_grad=False``. Under DDP a loss
    that compares samples with each other uses ``edgessl.ssl.distributed.gather``.
    """

    name = ""
    Config: type = object
    augment = AugmentConfig()
    num_views = 2
    optimizer = "sgd"
    lr = 0.5
    vit_lr = 5e-4
    needs_vit = False
    min_batch = 2
    ddp_find_unused_parameters = False  # True when some steps leave parameters without grad

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def training_step(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as calling the module (kept for callers that do not go through DDP)."""
        return self(views)

    def chance_loss(self, batch_size: int) -> float | None:
        """The loss of a backbone that has learned nothing, at a global batch of
        ``batch_size`` (contrastive losses: the log of the number of candidates); None where
        the loss has no such level (BYOL, VICReg, DINO, MAE)."""
        return None

    def after_step(self, progress: float) -> None:
        """Momentum/teacher updates; nothing for methods without a target network."""

    def export_backbone(self) -> nn.Module:
        """The backbone that is saved and evaluated (DINO keeps its teacher's)."""
        return self.backbone


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2, last_bn: bool = False,
        bias_last: bool = True) -> nn.Sequential:
    """Linear-BN-ReLU blocks then a final Linear (+ optional affine-free BN), as SSL heads use."""
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim, bias=bias_last and not last_bn))
    if last_bn:
        mods.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*mods)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with gradients off, for momentum (EMA) targets and teachers."""
    import copy

    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def cosine_momentum(base: float, progress: float, final: float = 1.0) -> float:
    """EMA momentum rising from ``base`` to ``final`` on a half cosine (BYOL, DINO, MoCo v3)."""
    progress = min(max(progress, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, parameters and float buffers."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        if t.dtype.is_floating_point:
            t.mul_(momentum).add_(o, alpha=1 - momentum)
        else:
            t.copy_(o)


# BYOL's augmentations, which MoCo v3 uses too. AugmentConfig has no solarisation and applies
# one blur probability to both views, so BYOL's asymmetric blur (1.0 / 0.1) averages to 0.5.
# Jitter 0.5 gives brightness/contrast 0.4 and hue 0.1 as in the paper (saturation 0.4, not
# 0.2). Crops keep edgessl's small-image scale (0.2, 1) rather than ImageNet's (0.08, 1).
BYOL_AUGMENT = AugmentConfig(crop_scale=(0.2, 1.0), jitter=0.5, jitter_p=0.8, grayscale_p=0.2,
                             blur_p=0.5)


class MomentumMethod(SSLMethod):
    """An online backbone + projector + predictor and an EMA target of backbone + projector.

    BYOL and MoCo v3 share this structure. A subclass builds ``projector`` and ``predictor``,
    then calls ``init_target``; its config's ``base_momentum`` starts the EMA schedule, which
    rises to 1 on a half cosine. The target modules are submodules with
    ``requires_grad=False``, so checkpoints and ``--resume`` carry them. Views pass through the
    networks one at a time, as in both papers, so batch-norm statistics are those of one view.
    """

    def init_target(self) -> None:
        self.target_backbone = frozen_copy(self.backbone)
        self.target_projector = frozen_copy(self.projector)

    def momentum(self, progress: float) -> float:
        """EMA momentum after ``progress`` (0-1) of training: base_momentum -> 1.0."""
        return cosine_momentum(self.config.base_momentum, progress)

    def predict_and_target(self, views: list[torch.Tensor]):
        """Backbone features, online predictions and target projections of the two views."""
        feats = [self.backbone(v) for v in views[:2]]
        predictions = [self.predictor(self.projector(h)) for h in feats]
        with torch.no_grad():
            targets = [self.target_projector(self.target_backbone(v)) for v in views[:2]]
        return feats, predictions, targets

    def after_step(self, progress: float) -> None:
        """Move the target towards the online backbone and projector."""
        m = self.momentum(progress)
        ema_update(self.target_backbone, self.backbone, m)
        ema_update(self.target_projector, self.projector, m)


def build_method_config(method_cls, options: dict[str, Any]):
    """The method's frozen Config from ``options`` (unknown options are errors)."""
    return from_dict(method_cls.Config, options,
                     where=f"{method_cls.name} options (--opt / [method_options])")
