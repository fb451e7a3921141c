"""MoCo v3, BYOL and VICReg: losses against formulas written out here, EMA targets, one step."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.errors import ConfigError
from edgessl.ssl import moco as moco_module
from edgessl.ssl.base import cosine_momentum
from edgessl.ssl.byol import BYOL, BYOLConfig, byol_loss
from edgessl.ssl.moco import MoCoV3, MoCoV3Config, moco_contrastive_loss
from edgessl.ssl.vicreg import (
    VICReg,
    VICRegConfig,
    VICRegLoss,
    covariance_loss,
    invariance_loss,
    variance_loss,
)

METHOD_CLASSES = [MoCoV3, BYOL, VICReg]
TARGET_PREFIXES = {MoCoV3: ("target_backbone.", "target_projector."),
                   BYOL: ("target_backbone.", "target_projector."), VICReg: ()}


def _random(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def tiny_backbone():
    return create_backbone(BackboneSpec.for_images("resnet_micro", 16))


def tiny_views(n: int = 8) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, 3, 16, 16, generator=g) for _ in range(2)]


# MoCo v3 ------------------------------------------------------------------------------------

def moco_ctr_by_formula(q: np.ndarray, k_all: np.ndarray, tau: float, offset: int) -> float:
    """2 tau * mean_i -log softmax_j(q_i . k_j / tau)[offset + i], normalised vectors."""
    total = 0.0
    for i in range(len(q)):
        qi = _unit(q[i])
        logits = [float(qi @ _unit(k)) / tau for k in k_all]
        log_denominator = math.log(sum(math.exp(s) for s in logits))
        total += -(logits[offset + i] - log_denominator)
    return 2 * tau * total / len(q)


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_moco_loss_matches_formula(tau):
    q, k = _random(6, 5, seed=1), _random(6, 5, seed=2)
    got = moco_contrastive_loss(torch.tensor(q), torch.tensor(k), tau).item()
    assert got == pytest.approx(moco_ctr_by_formula(q, k, tau, 0), rel=1e-5)


def test_moco_loss_labels_follow_rank(monkeypatch):
    """As rank 1 of 2, query i's positive is global key N + i among both processes' keys."""
    q, k, k_other = _random(4, 5, seed=1), _random(4, 5, seed=2), _random(4, 5, seed=3)
    other = torch.nn.functional.normalize(torch.tensor(k_other), dim=1)
    monkeypatch.setattr(moco_module, "rank", lambda: 1)
    monkeypatch.setattr(moco_module, "gather", lambda x: torch.cat([other, x]))
    got = moco_contrastive_loss(torch.tensor(q), torch.tensor(k), 0.2).item()
    expected = moco_ctr_by_formula(q, np.concatenate([k_other, k]), 0.2, offset=4)
    assert got == pytest.approx(expected, rel=1e-5)


def test_moco_loss_sends_no_gradient_into_keys():
    q = torch.randn(4, 5, requires_grad=True)
    k = torch.randn(4, 5, requires_grad=True)
    moco_contrastive_loss(q, k, 0.2).backward()
    assert q.grad is not None and k.grad is None


def test_momentum_schedule_endpoints():
    model = MoCoV3(tiny_backbone(), MoCoV3Config(base_momentum=0.99, proj_hidden=8,
                                                 proj_dim=8, pred_hidden=8))
    assert model.momentum(0.0) == pytest.approx(0.99)
    assert model.momentum(1.0) == pytest.approx(1.0)
    assert model.momentum(0.5) == pytest.approx(0.995)
    byol = BYOL(tiny_backbone(), BYOLConfig(proj_hidden=8, proj_dim=8, pred_hidden=8))
    assert byol.momentum(0.0) == pytest.approx(BYOLConfig().base_momentum)
    assert cosine_momentum(0.9, 1.0) == pytest.approx(1.0)


# BYOL ---------------------------------------------------------------------------------------

def test_byol_loss_matches_formula():
    p, z = _random(6, 5, seed=4), _random(6, 5, seed=5)
    expected = np.mean([2 - 2 * float(_unit(p[i]) @ _unit(z[i])) for i in range(6)])
    assert byol_loss(torch.tensor(p), torch.tensor(z)).item() == pytest.approx(expected, rel=1e-5)


def test_byol_loss_is_zero_for_aligned_vectors():
    z = torch.randn(4, 5)
    assert byol_loss(3 * z, z).item() == pytest.approx(0.0, abs=1e-6)


def test_byol_target_gets_no_gradients():
    model = BYOL(tiny_backbone(), BYOLConfig(proj_hidden=32, proj_dim=16, pred_hidden=32))
    loss, _ = model(tiny_views())
    loss.backward()
    targets = [*model.target_backbone.parameters(), *model.target_projector.parameters()]
    assert targets and all(not p.requires_grad and p.grad is None for p in targets)
    assert all(p.grad is not None for p in model.predictor.parameters())


# EMA update (both momentum methods) ---------------------------------------------------------

def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("cls", [MoCoV3, BYOL])
@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0])
def test_after_step_is_exact_ema(cls, progress):
    torch.manual_seed(0)
    model = cls(tiny_backbone(), cls.Config(proj_hidden=32, proj_dim=16, pred_hidden=32))
    with torch.no_grad():  # make online and target differ, parameters and BN buffers alike
        for online in (model.backbone, model.projector):
            for v in online.state_dict().values():
                if v.dtype.is_floating_point:
                    v.add_(torch.randn_like(v))
    pairs = [(model.target_backbone, model.backbone), (model.target_projector, model.projector)]
    before = [(_snapshot(t), _snapshot(o)) for t, o in pairs]
    model.after_step(progress)
    m = 0.99 + (1 - 0.99) * (1 - math.cos(math.pi * progress)) / 2
    for (target, _), (t_old, o_old) in zip(pairs, before, strict=True):
        for key, new in target.state_dict().items():
            if new.dtype.is_floating_point:
                expected = m * t_old[key] + (1 - m) * o_old[key]
                torch.testing.assert_close(new, expected, rtol=1e-5, atol=1e-6)
            else:  # e.g. BN's num_batches_tracked is copied
                assert torch.equal(new, o_old[key])
    if progress == 1.0:  # momentum 1: the target stays where it was
        for (target, _), (t_old, _) in zip(pairs, before, strict=True):
            for key, new in target.state_dict().items():
                if new.dtype.is_floating_point:
                    assert torch.equal(new, t_old[key])


# VICReg -------------------------------------------------------------------------------------

def variance_by_formula(z: np.ndarray, gamma: float, eps: float) -> float:
    """Mean over dimensions j of max(0, gamma - sqrt(Var(z[:, j]) + eps)), Var unbiased."""
    n, d = z.shape
    total = 0.0
    for j in range(d):
        mean = sum(z[i, j] for i in range(n)) / n
        var = sum((z[i, j] - mean) ** 2 for i in range(n)) / (n - 1)
        total += max(0.0, gamma - math.sqrt(var + eps))
    return total / d


def covariance_by_formula(z: np.ndarray) -> float:
    """(1/d) * sum over j != k of C(Z)_jk^2, C(Z) = 1/(n-1) sum_i (z_i - mean)(z_i - mean)^T."""
    n, d = z.shape
    mean = z.sum(0) / n
    cov = sum(np.outer(z[i] - mean, z[i] - mean) for i in range(n)) / (n - 1)
    return sum(cov[j, k] ** 2 for j in range(d) for k in range(d) if j != k) / d


def invariance_by_formula(z1: np.ndarray, z2: np.ndarray) -> float:
    """Squared distance of each pair, averaged over samples and dimensions."""
    n, d = z1.shape
    return sum(float(np.sum((z1[i] - z2[i]) ** 2)) for i in range(n)) / (n * d)


def test_vicreg_terms_match_formulas():
    z1, z2 = _random(8, 6, seed=6) * 0.7, _random(8, 6, seed=7) * 1.5
    t1, t2 = torch.tensor(z1), torch.tensor(z2)
    assert invariance_loss(t1, t2).item() == pytest.approx(invariance_by_formula(z1, z2),
                                                           rel=1e-5)
    for z, t in ((z1, t1), (z2, t2)):
        assert variance_loss(t, 1.0, 1e-4).item() == pytest.approx(
            variance_by_formula(z, 1.0, 1e-4), rel=1e-5)
        assert covariance_loss(t).item() == pytest.approx(covariance_by_formula(z), rel=1e-5)
    assert variance_by_formula(z1, 1.0, 1e-4) > 0  # the hinge is active for the 0.7 scale


def test_vicreg_loss_combines_terms_with_weights():
    z1, z2 = _random(8, 6, seed=8) * 0.5, _random(8, 6, seed=9)
    cfg = VICRegConfig(invariance_weight=3.0, variance_weight=5.0, covariance_weight=2.0)
    expected = (3.0 * invariance_by_formula(z1, z2)
                + 5.0 * (variance_by_formula(z1, 1.0, 1e-4)
                         + variance_by_formula(z2, 1.0, 1e-4)) / 2
                + 2.0 * (covariance_by_formula(z1) + covariance_by_formula(z2)))
    got = VICRegLoss(cfg)(torch.tensor(z1), torch.tensor(z2)).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_vicreg_collapse_is_penalised_by_variance():
    collapsed = torch.ones(8, 6) * 0.3
    loss = VICRegLoss()(collapsed, collapsed).item()
    # invariance and covariance are 0; variance is 25 * (1 - sqrt(1e-4)) = 24.75
    assert loss == pytest.approx(25 * (1 - math.sqrt(1e-4)), rel=1e-5)
    spread = torch.randn(64, 6, generator=torch.Generator().manual_seed(0)) * 2
    assert variance_loss(spread).item() == 0.0  # every std is above gamma = 1
    assert VICRegLoss()(spread, spread).item() < loss / 4  # only chance covariances remain


def test_vicreg_rejects_a_batch_of_one():
    with pytest.raises(ConfigError, match="batch-size"):
        VICRegLoss()(torch.randn(1, 4), torch.randn(1, 4))


# Every method -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", METHOD_CLASSES, ids=lambda c: c.name)
def test_one_training_step(cls):
    torch.manual_seed(0)
    model = cls(tiny_backbone()).train()  # default config: the heads users get
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    before = _snapshot(model.backbone)
    loss, features = model(tiny_views())
    assert loss.ndim == 0 and math.isfinite(loss.item())
    assert features.shape == (8, model.backbone.num_features) and not features.requires_grad
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.after_step(0.5)
    changed = [k for k, v in model.backbone.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(k.endswith("weight") for k in changed)
    keys = model.state_dict().keys()
    for prefix in TARGET_PREFIXES[cls]:
        target_keys = [k for k in keys if k.startswith(prefix)]
        assert target_keys, f"{prefix} missing from state_dict"
        assert not any(p.requires_grad for n, p in model.named_parameters()
                       if n.startswith(prefix))


@pytest.mark.parametrize("cls", METHOD_CLASSES, ids=lambda c: c.name)
def test_method_class_contract(cls):
    assert cls.name and cls.num_views == 2 and cls.optimizer in ("sgd", "adamw") and cls.lr > 0
    config = cls.Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, dataclasses.fields(config)[0].name, 1.0)


@pytest.mark.parametrize("cls, bad", [(MoCoV3, {"temperature": 0.0}),
                                      (MoCoV3, {"base_momentum": 1.5}),
                                      (BYOL, {"base_momentum": -0.1}),
                                      (VICReg, {"eps": 0.0})],
                         ids=["moco-temperature", "moco-momentum", "byol-momentum", "vicreg-eps"])
def test_config_rejects_bad_values(cls, bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        cls.Config(**bad)
