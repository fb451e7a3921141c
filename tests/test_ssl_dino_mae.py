"""DINO and MAE against independent formulas, multi-crop views, and one training step each."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.errors import ConfigError
from edgessl.ssl.augment import (
    AugmentConfig,
    BatchViews,
    blur,
    colour,
    crop_flip_rotate,
    local_view_size,
)
from edgessl.ssl.dino import DINO, DINOConfig, fit_to_backbone
from edgessl.ssl.mae import (
    MAE,
    MAEConfig,
    masked_patch_loss,
    patchify,
    random_masking,
    unpatchify,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def images(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


# --- multi-crop views -------------------------------------------------------------------------

def old_batch_views(x: torch.Tensor, cfg: AugmentConfig, size: int, n_views: int):
    """BatchViews as it was before multi-crop: crop, colour, blur, normalise, per view."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    out = []
    for _ in range(n_views):
        v = crop_flip_rotate(x.float() / 255, cfg, size).clamp(0, 1)
        out.append((blur(colour(v, cfg), cfg) - mean) / std)
    return out


def test_no_local_crops_gives_the_same_views_as_before():
    cfg = AugmentConfig()
    torch.manual_seed(3)
    got = BatchViews(cfg, 32, MEAN, STD, 2)(images())
    after = torch.rand(1)
    torch.manual_seed(3)
    expected = old_batch_views(images(), cfg, 32, 2)
    assert len(got) == 2
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
    assert torch.equal(after, torch.rand(1))  # same number of draws from the global RNG


def test_local_crops_count_shapes_and_global_views_unchanged():
    torch.manual_seed(5)
    plain = BatchViews(AugmentConfig(), 32, MEAN, STD, 2)(images())
    torch.manual_seed(5)
    views = BatchViews(AugmentConfig(local_crops=4), 32, MEAN, STD, 2)(images())
    assert [tuple(v.shape) for v in views] == [(8, 3, 32, 32)] * 2 + [(8, 3, 16, 16)] * 4
    assert all(torch.equal(a, b) for a, b in zip(plain, views[:2], strict=True))
    assert not torch.equal(views[2], views[3])


@pytest.mark.parametrize(("size", "fraction", "side"), [
    (224, 0.4375, 96), (64, 0.4375, 32), (32, 0.4375, 16), (16, 0.4375, 8), (8, 0.4375, 8),
    (96, 0.5, 48), (20, 1.0, 20), (6, 0.5, 6)])
def test_local_view_size_rule(size, fraction, side):
    assert local_view_size(size, fraction) == side


@pytest.mark.parametrize("bad", [dict(local_crops=-1), dict(local_size=0.0),
                                 dict(local_size=1.5), dict(local_crop_scale=(0.5, 0.2))])
def test_bad_multi_crop_settings(bad):
    with pytest.raises(ConfigError):
        AugmentConfig(**bad)


# --- DINO -------------------------------------------------------------------------------------

class PoolLinear(nn.Module):
    """A BN-free toy backbone for exact checks: global average pool then a linear layer."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_head(head, x: np.ndarray) -> np.ndarray:
    """DINO head in numpy: 3-layer GELU MLP, L2 normalise, weight-normalised last layer."""
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    for k, lin in enumerate(linears):
        x = x @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()
        if k < len(linears) - 1:
            x = gelu(x)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = head.last_weight.detach().double().numpy()
    return x @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T


def np_dino_loss(model: DINO, views: list[torch.Tensor]) -> tuple[float, np.ndarray]:
    """The paper's pseudo-code (Algorithm 1), extended to multi-crop: H(t_i, s_j), j != i."""
    def logits(backbone, head, v):
        with torch.no_grad():
            return np_head(head, backbone(v).double().numpy())

    s = [logits(model.backbone, model.head, v) for v in views]
    t = [logits(model.teacher_backbone, model.teacher_head, v) for v in views[:2]]
    c = model.center.double().numpy()
    tpt, tps = model.teacher_temperature(), model.config.student_temp
    total, pairs = 0.0, 0
    for i in range(2):
        for j in range(len(views)):
            if i == j:
                continue
            teacher = np_softmax((t[i] - c) / tpt)  # centre + sharpen
            student = np_softmax(s[j] / tps)
            total += float(-(teacher * np.log(student)).sum(axis=1).mean())
            pairs += 1
    new_center = 0.9 * c + 0.1 * np.concatenate(t).mean(axis=0, keepdims=True)
    return total / pairs, new_center


def toy_dino(seed: int = 0) -> DINO:
    torch.manual_seed(seed)
    model = DINO(PoolLinear(), DINOConfig(out_dim=32, hidden_dim=16, bottleneck_dim=8))
    with torch.no_grad():  # a teacher and centre that differ from the start
        for p in model.teacher_backbone.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        model.center.copy_(torch.randn_like(model.center) * 0.5)
    return model


@pytest.mark.parametrize(("local_crops", "progress"), [(0, 0.0), (3, 0.15), (2, 0.6)])
def test_dino_loss_and_centre_match_the_paper(local_crops, progress):
    model = toy_dino()
    model.progress.fill_(progress)
    torch.manual_seed(1)
    views = BatchViews(AugmentConfig(local_crops=local_crops), 16, MEAN, STD, 2)(images(4, 16))
    expected, new_center = np_dino_loss(model, views)
    loss, features = model(views)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert features.shape == (4, 6) and not features.requires_grad
    np.testing.assert_allclose(model.center.numpy(), new_center, rtol=1e-5, atol=1e-7)


def test_dino_teacher_temperature_schedule_is_saved_state():
    model = toy_dino()
    for progress, temp in [(0.0, 0.04), (0.15, 0.055), (0.3, 0.07), (0.9, 0.07)]:
        assert model.teacher_temperature(progress) == pytest.approx(temp)
    model.after_step(0.15)
    fresh = toy_dino(seed=1)
    assert fresh.teacher_temperature() == pytest.approx(0.04)
    fresh.load_state_dict(model.state_dict())
    assert fresh.teacher_temperature() == pytest.approx(0.055)
    assert torch.equal(fresh.center, model.center)


@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0])
def test_dino_teacher_ema_is_exact(progress):
    model = toy_dino()
    before = {k: v.clone() for k, v in model.teacher_backbone.state_dict().items()}
    student = model.backbone.state_dict()
    model.after_step(progress)
    m = 1 - (1 - 0.996) * (math.cos(math.pi * progress) + 1) / 2
    for k, v in model.teacher_backbone.state_dict().items():
        torch.testing.assert_close(v, m * before[k] + (1 - m) * student[k])
    assert all(not p.requires_grad for p in model.teacher_head.parameters())


def test_dino_last_layer_frozen_at_the_start():
    model = toy_dino()
    views = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    model(views)[0].backward()
    assert model.head.last_weight.grad is None and model.backbone.fc.weight.grad is not None
    model.zero_grad(set_to_none=True)
    model.after_step(0.5)
    model(views)[0].backward()
    assert model.head.last_weight.grad is not None


def test_fit_to_backbone_for_vits():
    from timm.models.vision_transformer import VisionTransformer

    def vit(dynamic: bool) -> nn.Module:
        holder = nn.Module()  # fit_to_backbone looks at ``backbone.model``, as Backbone has
        holder.model = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1,
                                         num_heads=2, num_classes=0, dynamic_img_size=dynamic)
        return holder

    x = torch.zeros(2, 3, 14, 14)
    assert fit_to_backbone(x, vit(True)).shape[-1] == 16  # nearest multiple of the patch
    assert fit_to_backbone(x, vit(False)).shape[-1] == 32  # the fixed input side
    assert fit_to_backbone(torch.zeros(2, 3, 16, 16), vit(True)).shape[-1] == 16
    assert fit_to_backbone(x, PoolLinear()) is x


# --- MAE --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("length", "ratio"), [(64, 0.75), (49, 0.75), (30, 0.75), (10, 0.5)])
def test_masking_keeps_round_fraction_and_differs_per_image(length, ratio):
    torch.manual_seed(0)
    ids_keep, mask, ids_restore = random_masking(6, length, ratio)
    keep = round(length * (1 - ratio))
    assert ids_keep.shape == (6, keep)
    assert (mask.sum(1) == length - keep).all()
    for row in range(6):  # kept ids are exactly the unmasked positions
        assert sorted(ids_keep[row].tolist()) == torch.nonzero(mask[row] == 0).flatten().tolist()
    assert len({tuple(m.tolist()) for m in mask}) == 6
    shuffle = ids_restore.argsort(1)
    assert torch.equal(shuffle[:, :keep], ids_keep)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_masked_patch_loss_matches_formula(norm_pix):
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(3, 5, 12)), rng.normal(size=(3, 5, 12)) * 2 + 1
    mask = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 1, 0], [1, 1, 1, 1, 1]], dtype=float)
    total, count = 0.0, 0
    for n in range(3):
        for k in range(5):
            if not mask[n, k]:
                continue
            t = target[n, k]
            if norm_pix:
                t = (t - t.mean()) / math.sqrt(t.var(ddof=1) + 1e-6)
            total += float(((pred[n, k] - t) ** 2).mean())
            count += 1
    got = masked_patch_loss(torch.tensor(pred), torch.tensor(target), torch.tensor(mask),
                            norm_pix)
    assert got.item() == pytest.approx(total / count, rel=1e-9)


def test_patchify_round_trip_and_layout():
    x = torch.randn(2, 3, 12, 8)
    patches = patchify(x, 4)
    assert patches.shape == (2, 6, 48)
    # Patch 1 is row 0, column 1; pixels in (row, column, channel) order.
    assert torch.equal(patches[0, 1], x[0, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1))
    assert torch.equal(unpatchify(patches, 4, (3, 2)), x)


def test_mae_needs_a_vit():
    with pytest.raises(ConfigError, match="mae needs a ViT backbone.*--backbone vit_tiny"):
        MAE(create_backbone(BackboneSpec.for_images("resnet_micro", 16)))


def shallow_vit(size: int = 16):
    from timm.models.vision_transformer import VisionTransformer

    from edgessl.backbones.factory import Backbone
    from edgessl.backbones.small import vit_patch_size

    model = VisionTransformer(img_size=size, patch_size=vit_patch_size(size), embed_dim=32,
                              depth=2, num_heads=2, num_classes=0, dynamic_img_size=True)
    return Backbone(model, BackboneSpec("vit_tiny", size, True))


def test_mae_loss_is_the_masked_patch_loss_of_its_mask():
    torch.manual_seed(0)
    model = MAE(shallow_vit(), MAEConfig(decoder_dim=16, decoder_heads=2)).eval()
    x = torch.randn(3, 3, 16, 16)
    torch.manual_seed(7)
    loss, features = model([x])
    torch.manual_seed(7)
    ids_keep, mask, ids_restore = random_masking(3, 64, 0.75)
    latent = model.encode(x, ids_keep)
    assert latent.shape == (3, 1 + 16, 32)  # class token + the 16 visible patches
    pred = model.decoder(latent, ids_restore, 1, (8, 8))
    expected = masked_patch_loss(pred, patchify(x, 2), mask, norm_pix=True)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert features.shape == (3, 32) and not features.requires_grad


# --- one training step each -------------------------------------------------------------------

def one_step(model: nn.Module, views: list[torch.Tensor]) -> tuple[float, float]:
    """Loss and the largest backbone weight change after one AdamW step + after_step."""
    before = [p.detach().clone() for p in model.backbone.parameters()]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss, _ = model(views)
    loss.backward()
    opt.step()
    model.after_step(0.1)
    change = max((p - b).abs().max().item()
                 for p, b in zip(model.backbone.parameters(), before, strict=True))
    return loss.item(), change


def test_dino_training_step_on_resnet_micro():
    torch.manual_seed(0)
    backbone = create_backbone(BackboneSpec.for_images("resnet_micro", 16))
    model = DINO(backbone, DINOConfig(out_dim=256)).train()
    views = BatchViews(DINO.augment, 16, MEAN, STD, DINO.num_views)(images(8, 16))
    assert len(views) == 2 + DINO.augment.local_crops
    loss, change = one_step(model, views)
    assert math.isfinite(loss) and change > 0
    assert 0 < loss <= math.log(256) + 1  # cross-entropy of near-uniform distributions


def test_mae_training_step_on_a_tiny_vit():
    torch.manual_seed(0)
    model = MAE(shallow_vit(), MAEConfig(decoder_dim=16, decoder_heads=2)).train()
    views = BatchViews(MAE.augment, 16, MEAN, STD, MAE.num_views)(images(8, 16))
    assert len(views) == 1
    loss, change = one_step(model, views)
    assert math.isfinite(loss) and change > 0
