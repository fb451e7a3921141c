"""DINO: self-distillation with no labels, a student matching an EMA teacher over multi-crops.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021, https://arxiv.org/abs/2104.14294.

Student and teacher are backbone + DINO head (3-layer MLP, L2-normalised bottleneck, a
weight-normalised linear layer onto ``out_dim`` prototypes). The teacher is an EMA of the
student and sees only the two global views; the student sees all views (global + local
crops). The loss is the cross-entropy between the teacher's centred, sharpened softmax
(temperature warmed up from ``teacher_temp_start`` to ``teacher_temp``) and the student's
softmax (``student_temp``), averaged over all (teacher view i, student view j != i) pairs.
Centring (a running mean of teacher outputs subtracted before the softmax) and sharpening
together prevent collapse. Only the student backbone is kept after pretraining.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.config import MAX_WIDTH, Range, check_fields
from edgessl.errors import ConfigError
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.base import SSLMethod, cosine_momentum, ema_update, frozen_copy
from edgessl.ssl.distributed import all_reduce_mean


@dataclass(frozen=True)
class DINOConfig:
    """DINO's own settings (paper defaults except ``out_dim`` and the hidden width).

    Attributes:
        out_dim: prototypes of the last layer (paper: 65536; 4096 keeps the head cheap on CPU
            and small data, the paper's ablation loses little at 4096).
        hidden_dim: hidden width of the 3-layer head MLP (paper: 2048); 0 = min(2048,
            4 x backbone width), so a 64-wide test backbone gets a 256-wide head.
        bottleneck_dim: width of the L2-normalised bottleneck before the last layer.
        student_temp: softmax temperature of the student.
        teacher_temp: teacher temperature after warm-up (paper: 0.04-0.07).
        teacher_temp_start: teacher temperature at the start of training.
        teacher_temp_warmup: fraction of training over which the teacher temperature rises
            linearly from ``teacher_temp_start`` to ``teacher_temp`` (paper: 30 of 100 epochs).
        center_momentum: momentum of the running centre of teacher outputs.
        base_momentum: EMA momentum of the teacher at the start; it rises to 1.0 on a half
            cosine.
        freeze_last_layer: fraction of training during which the last layer gets no gradient
            (paper: the first epoch of 100), which stabilises the start.
    """

    FIELD_LABEL = "dino "

    out_dim: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 4096
    hidden_dim: Annotated[int, Range(ge=0, le=MAX_WIDTH, note="0 = automatic")] = 0
    bottleneck_dim: Annotated[int, Range(ge=1, le=MAX_WIDTH)] = 256
    student_temp: Annotated[float, Range(gt=0, le=10)] = 0.1
    teacher_temp: Annotated[float, Range(gt=0, le=10)] = 0.07
    teacher_temp_start: Annotated[float, Range(gt=0, le=10)] = 0.04
    teacher_temp_warmup: Annotated[float, Range(ge=0, le=1, note="a fraction of training")] = 0.3
    center_momentum: Annotated[float, Range(ge=0, le=1)] = 0.9
    base_momentum: Annotated[float, Range(ge=0, le=1)] = 0.996
    freeze_last_layer: Annotated[float, Range(ge=0, le=1, note="a fraction of training")] = 0.01

    def __post_init__(self) -> None:
        check_fields(self)


class DINOHead(nn.Module):
    """Linear-GELU-Linear-GELU-Linear to a bottleneck, L2 norm, then a weight-normalised
    linear layer without bias onto ``out_dim`` prototypes: features [N, D] -> logits [N, K].

    The last layer's rows are normalised to unit length at every call (weight norm with the
    gain fixed at 1, the paper's ``norm_last_layer``).
    """

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_weight = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.last_weight, std=0.02)

    def forward(self, x: torch.Tensor, freeze_last: bool = False) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)
        # A detached weight gets no gradient (grad None), so the optimiser skips it entirely,
        # weight decay included, as the paper's "cancel_gradients_last_layer" does.
        w = self.last_weight.detach() if freeze_last else self.last_weight
        return F.linear(z, F.normalize(w, dim=-1))


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temp: float, teacher_temp: float) -> torch.Tensor:
    """Cross-entropy of teacher and student distributions over all pairs of different views.

    Args:
        student: student logits [N, K] for every view (global views first).
        teacher: teacher logits [N, K] for the global views (same order as in ``student``).
        center: running centre [1, K] of teacher logits.
        student_temp, teacher_temp: softmax temperatures.

    Returns:
        Mean over pairs (i, j), i < len(teacher), j != i, of
        mean_n sum_k -softmax((t_i - c) / teacher_temp) * log_softmax(s_j / student_temp).
    """
    targets = [F.softmax((t - center) / teacher_temp, dim=-1).detach() for t in teacher]
    log_probs = [F.log_softmax(s / student_temp, dim=-1) for s in student]
    total, pairs = 0.0, 0
    for i, q in enumerate(targets):
        for j, log_p in enumerate(log_probs):
            if j != i:
                total = total + (-q * log_p).sum(-1).mean()
                pairs += 1
    return total / pairs


def fit_to_backbone(x: torch.Tensor, backbone: nn.Module) -> torch.Tensor:
    """Resize views [N, 3, h, w] to a side a timm ViT accepts; other backbones take any size.

    ViTs built with ``dynamic_img_size`` (edgessl's vit_tiny/small/base) need a multiple of
    their patch: the nearest one (local crops of 8 px multiples usually are already). Fixed
    size ViTs (vit_tiny32, timm's ``vit_*`` models) get the view upsampled to their input size,
    which costs as much as a global view.
    """
    from timm.models.vision_transformer import VisionTransformer

    model = getattr(backbone, "model", None)
    if not isinstance(model, VisionTransformer):
        return x
    side = x.shape[-1]
    if model.dynamic_img_size:
        patch = model.patch_embed.patch_size[0]
        target = max(patch, patch * math.floor(side / patch + 0.5))
    else:
        target = model.patch_embed.img_size[0]
    if target == side:
        return x
    return F.interpolate(x, size=(target, target), mode="bilinear", align_corners=False,
                         antialias=target < side)


def multi_crop_features(backbone: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
    """Backbone features [sum N_v, D] of all views, one forward pass per run of equal sizes."""
    views = [fit_to_backbone(v, backbone) for v in views]
    out, start = [], 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape == views[start].shape:
            end += 1
        out.append(backbone(torch.cat(views[start:end])))
        start = end
    return torch.cat(out)


class DINO(SSLMethod):
    """Student backbone + DINO head, distilled from an EMA teacher on multi-crop views.

    The teacher is ``teacher_backbone`` + ``teacher_head`` (requires_grad False); ``center``
    and ``progress`` are buffers, so checkpoints carry the centre and the point of the teacher
    temperature and last-layer schedules, and ``--resume`` is exact. Under DDP the centre
    update averages the teacher batch mean over processes; the loss itself compares each
    sample only with itself, so nothing else is gathered.

    Works with CNNs too (global pooling takes any input size); AdamW at ``lr`` is the ViT
    recipe (the paper's ResNet-50 used LARS) and is used for both here.
    """

    name = "dino"
    Config = DINOConfig
    # Paper: global crops (0.4, 1), 6-10 local crops (0.05, 0.4) at 96/224 of the side;
    # colour jitter 0.4/0.4/0.2/0.1 (0.5 here: 0.4/0.4/0.4/0.1), grayscale 0.2; its global views
    # are asymmetric (blur 1.0 / 0.1 + solarise 0.2), one AugmentConfig averages blur to 0.5.
    # 6 local crops at 32 px are 16 px each: a step costs ~1.5x a two-view step.
    augment = AugmentConfig(crop_scale=(0.4, 1.0), jitter=0.5, jitter_p=0.8, grayscale_p=0.2,
                            blur_p=0.5, local_crops=6, local_size=0.4375,
                            local_crop_scale=(0.05, 0.4))
    num_views = 2
    # Paper: AdamW, lr 0.0005 x batch / 256 (and weight decay 0.04 -> 0.4; edgessl's loop uses
    # one weight decay, 0.04 is the paper's start).
    optimizer = "adamw"
    lr = 5e-4
    ddp_find_unused_parameters = True  # the frozen last layer has no gradient at first

    def __init__(self, backbone: nn.Module, config: DINOConfig = DINOConfig()) -> None:
        super().__init__(backbone)
        self.config = config
        width = backbone.num_features
        hidden = config.hidden_dim or min(2048, 4 * width)
        self.head = DINOHead(width, hidden, config.bottleneck_dim, config.out_dim)
        self.teacher_backbone = frozen_copy(backbone)
        self.teacher_head = frozen_copy(self.head)
        self.register_buffer("center", torch.zeros(1, config.out_dim))
        self.register_buffer("progress", torch.zeros(()))

    def teacher_temperature(self, progress: float | None = None) -> float:
        """Teacher temperature after ``progress`` (0-1; default the saved progress)."""
        c = self.config
        p = float(self.progress) if progress is None else progress
        if c.teacher_temp_warmup <= 0 or p >= c.teacher_temp_warmup:
            return c.teacher_temp
        return c.teacher_temp_start + (c.teacher_temp - c.teacher_temp_start) * (
            p / c.teacher_temp_warmup)

    def momentum(self, progress: float) -> float:
        """Teacher EMA momentum after ``progress`` (0-1) of training: base_momentum -> 1.0."""
        return cosine_momentum(self.config.base_momentum, progress)

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """center = m * center + (1 - m) * mean of teacher logits [M, K] over all processes."""
        m = self.config.center_momentum
        batch_center = all_reduce_mean(teacher_logits.mean(0, keepdim=True))
        self.center.mul_(m).add_(batch_center, alpha=1 - m)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss for global views then local views [N, 3, h, w]; also the first view's features.

        The centre is updated here, after the loss used the previous one (as in the paper).
        """
        if len(views) < 2:
            raise ConfigError(f"dino needs at least 2 views per image, got {len(views)}")
        n, n_global = views[0].shape[0], self.num_views
        freeze_last = float(self.progress) < self.config.freeze_last_layer
        h = multi_crop_features(self.backbone, views)
        student = self.head(h, freeze_last=freeze_last).split(n)
        with torch.no_grad():
            t = self.teacher_head(multi_crop_features(self.teacher_backbone,
                                                      views[:n_global]))
        loss = dino_loss(list(student), list(t.split(n)), self.center,
                         self.config.student_temp, self.teacher_temperature())
        self.update_center(t)
        return loss, h[:n].detach()

    def export_backbone(self) -> nn.Module:
        """The teacher's backbone: the paper evaluates (and keeps) the teacher."""
        return self.teacher_backbone

    def after_step(self, progress: float) -> None:
        """Move the teacher towards the student; record progress for the schedules."""
        m = self.momentum(progress)
        ema_update(self.teacher_backbone, self.backbone, m)
        ema_update(self.teacher_head, self.head, m)
        self.progress.fill_(progress)
