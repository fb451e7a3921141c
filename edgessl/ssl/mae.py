"""MAE: masked autoencoders, reconstructing the pixels of masked patches from the visible ones.

He, Chen, Xie, Li, Dollár, Girshick. "Masked Autoencoders Are Scalable Vision Learners",
CVPR 2022, https://arxiv.org/abs/2111.06377 (the vision analogue of BERT's masked pretraining).

Each image keeps a random ``1 - mask_ratio`` of its patch tokens. The encoder (the backbone
ViT's patch embedding, position embedding, blocks and norm) sees only those tokens (and the
class token); a light transformer decoder gets the encoded tokens plus a shared mask token at
every masked position, with fixed 2D sin-cos position embeddings, and predicts each masked
patch's pixels. The loss is the mean squared error on masked patches only, against targets
normalised per patch (``norm_pix_loss``). Only the encoder (the backbone) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from torch import nn

from edgessl.config import Range, check_fields
from edgessl.errors import ConfigError
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.base import SSLMethod


@dataclass(frozen=True)
class MAEConfig:
    """MAE's own settings (paper's mask ratio; a decoder sized for small ViTs).

    Attributes:
        mask_ratio: fraction of patches hidden from the encoder.
        decoder_dim: width of the decoder (paper: 512 for ViT-B/L/H).
        decoder_depth: transformer blocks in the decoder (paper: 8).
        decoder_heads: attention heads of the decoder (paper: 16).
        norm_pix_loss: normalise each target patch to zero mean and unit variance (the
            paper's better-representations setting).
    """

    FIELD_LABEL = "mae "

    mask_ratio: Annotated[float, Range(ge=0, lt=1, note="paper: 0.75")] = 0.75
    decoder_dim: Annotated[int, Range(ge=1, le=8192)] = 128
    decoder_depth: Annotated[int, Range(ge=1, le=64)] = 2
    decoder_heads: Annotated[int, Range(ge=1, le=256)] = 4
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        if self.decoder_dim % self.decoder_heads:
            raise ConfigError(f"mae decoder_dim ({self.decoder_dim}) must be divisible by "
                              f"decoder_heads ({self.decoder_heads})")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Images [N, C, H, W] -> patches [N, L, patch*patch*C], row-major over the patch grid."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // patch, patch, w // patch, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // patch) * (w // patch), -1)


def unpatchify(patches: torch.Tensor, patch: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``patchify``: [N, L, patch*patch*C] with L = grid[0]*grid[1] -> [N, C, H, W]."""
    n, gh, gw = patches.shape[0], grid[0], grid[1]
    x = patches.reshape(n, gh, gw, patch, patch, -1)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, -1, gh * patch, gw * patch)


def random_masking(n: int, length: int, mask_ratio: float,
                   device: torch.device | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A different random mask per image, drawn from torch's global (CPU) RNG.

    The noise is drawn on the CPU whatever ``device`` is, so seeding and ``--resume`` cover it;
    under DDP it is the global batch's noise, sliced to this process's images.

    Returns:
        ids_keep [N, K] (indices of the K = round(L * (1 - mask_ratio)) kept patches, at
        least 1), mask [N, L] (1.0 = masked, 0.0 = kept, in patch order) and ids_restore
        [N, L] (the position of each patch in the kept-then-masked order).
    """
    from edgessl.ssl.distributed import rank, world_size

    keep = max(1, round(length * (1 - mask_ratio)))
    # Under DDP every process draws the noise of the whole global batch (the RNG streams are
    # identical) and keeps its own rows, so masks equal those of one process on that batch.
    noise = torch.rand(n * world_size(), length)[rank() * n:(rank() + 1) * n].to(device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(n, length, device=device)
    mask[:, :keep] = 0
    return ids_shuffle[:, :keep], mask.gather(1, ids_restore), ids_restore


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      norm_pix: bool = True) -> torch.Tensor:
    """Mean squared error over the masked patches only.

    Args:
        pred: predicted patches [N, L, P].
        target: true patches [N, L, P] (``patchify`` of the views).
        mask: [N, L], 1.0 where a patch was masked.
        norm_pix: normalise each target patch by its own mean and (unbiased) variance first.

    Returns:
        sum over masked patches of mean_P (pred - target)^2, divided by the number of masked
        patches.
    """
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1.0)


def sincos_pos_embed(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding [grid[0]*grid[1], dim] (half the width per axis)."""
    if dim % 4:
        raise ConfigError(f"mae decoder_dim must be a multiple of 4 for 2D sin-cos position "
                          f"embeddings, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    ys, xs = torch.meshgrid(torch.arange(grid[0], dtype=torch.float64),
                            torch.arange(grid[1], dtype=torch.float64), indexing="ij")

    def axis(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([axis(xs), axis(ys)], dim=1).float()


class MAEDecoder(nn.Module):
    """Encoded visible tokens (+ prefix tokens) -> predicted pixels of every patch."""

    def __init__(self, in_dim: int, patch_pixels: int, config: MAEConfig) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        dim = config.decoder_dim
        sincos_pos_embed(dim, (1, 1))  # fail early on a width the embedding cannot use
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.Sequential(*[Block(dim, config.decoder_heads, mlp_ratio=4.0,
                                            qkv_bias=True) for _ in range(config.decoder_depth)])
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_pixels)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor, prefix: int,
                grid: tuple[int, int]) -> torch.Tensor:
        """latent [N, prefix + K, D_enc] -> predictions [N, L, patch_pixels] in patch order."""
        x = self.embed(latent)
        n, length = ids_restore.shape
        visible = x[:, prefix:]
        masked = self.mask_token.expand(n, length - visible.shape[1], -1)
        tokens = torch.cat([visible, masked], dim=1)
        tokens = tokens.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))
        tokens = tokens + sincos_pos_embed(x.shape[-1], grid).to(tokens)[None]
        x = self.norm(self.blocks(torch.cat([x[:, :prefix], tokens], dim=1)))
        return self.pred(x[:, prefix:])


def require_vit(backbone: nn.Module):
    """The timm VisionTransformer inside ``backbone``, or a ConfigError saying what to pass."""
    from timm.models.vision_transformer import VisionTransformer

    model = getattr(backbone, "model", backbone)
    if not isinstance(model, VisionTransformer):
        spec = getattr(backbone, "spec", None)
        name = spec.name if spec is not None else type(model).__name__
        raise ConfigError(f"mae needs a ViT backbone (a timm VisionTransformer), not '{name}'; "
                          "pass --backbone vit_tiny (or vit_small, vit_base, vit_tiny32)")
    return model


class MAE(SSLMethod):
    """ViT encoder on the visible patches + light decoder predicting the masked pixels.

    ``forward`` returns as features the backbone's pooled output (``forward_head``: the class
    token, or the mean of the visible tokens for average-pooled ViTs) of the *masked* pass,
    detached: collapse detection needs no extra full forward pass. Each image is masked
    independently, so nothing is gathered under DDP.
    """

    name = "mae"
    Config = MAEConfig
    # Paper: random resized crop (0.2, 1) and horizontal flip only, no colour augmentation.
    augment = AugmentConfig(crop_scale=(0.2, 1.0), hflip=0.5, jitter=0.0, jitter_p=0.0,
                            grayscale_p=0.0, blur_p=0.0)
    num_views = 1
    # Paper: AdamW, lr 1.5e-4 x batch / 256 (weight decay 0.05, betas (0.9, 0.95)). 1e-3 at
    # batch 256 suits the short runs of tiny ViTs on small data that edgessl targets; not tuned.
    optimizer = "adamw"
    lr = 1e-3
    needs_vit = True

    def __init__(self, backbone: nn.Module, config: MAEConfig = MAEConfig()) -> None:
        super().__init__(backbone)
        vit = require_vit(backbone)
        self.config = config
        self.patch = vit.patch_embed.patch_size[0]
        self.decoder = MAEDecoder(vit.embed_dim, self.patch * self.patch * 3, config)

    def encode(self, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encoder tokens [N, prefix + K, D] of the kept patches (and class/register tokens)."""
        vit = self.backbone.model
        # timm's _pos_embed adds the (interpolated) position embedding and prepends the
        # class/register tokens, whatever the ViT variant; masking comes after it, as in MAE.
        x = vit._pos_embed(vit.patch_embed(images))
        prefix = vit.num_prefix_tokens
        patches = x[:, prefix:].gather(1, ids_keep[..., None].expand(-1, -1, x.shape[-1]))
        x = vit.norm_pre(torch.cat([x[:, :prefix], patches], dim=1))
        return vit.norm(vit.blocks(x))

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss for one view [N, 3, H, W]; also pooled features [N, D] of the masked pass."""
        images = views[0]
        n, _, h, w = images.shape
        grid = (h // self.patch, w // self.patch)
        ids_keep, mask, ids_restore = random_masking(n, grid[0] * grid[1],
                                                     self.config.mask_ratio, images.device)
        latent = self.encode(images, ids_keep)
        pred = self.decoder(latent, ids_restore, self.backbone.model.num_prefix_tokens, grid)
        loss = masked_patch_loss(pred, patchify(images, self.patch), mask,
                                 self.config.norm_pix_loss)
        features = self.backbone.model.forward_head(latent, pre_logits=True)
        return loss, features.detach()
