"""SSL methods: the NT-Xent loss against an independent formula, and a pretraining run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgessl.errors import ConfigError, OutputExistsError
from edgessl.models import load_model
from edgessl.ssl import METHODS
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.pretrain import PretrainConfig, pretrain
from edgessl.ssl.simclr import NTXentLoss


def ntxent_by_formula(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """NT-Xent written out per anchor, as in the SimCLR paper (Algorithm 1)."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = [math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[positive]) / tau) / sum(sims))
    return total / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_ntxent_matches_formula(tau):
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    got = NTXentLoss(tau)(torch.tensor(z1), torch.tensor(z2)).item()
    assert got == pytest.approx(ntxent_by_formula(z1, z2, tau), rel=1e-6)


def test_ntxent_is_low_for_identical_views():
    z = torch.eye(4)
    assert NTXentLoss(0.1)(z, z).item() < 1e-3


def test_unknown_method_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'simclr'"):
        METHODS.get("simclrr")


TINY_PRETRAIN = dict(backbone="resnet_micro", image_size=16, epochs=2, batch_size=64,
                     augment=AugmentConfig(hflip=0.0, blur_p=0.0))


@pytest.mark.parametrize("method", METHODS.names())
def test_pretrain_writes_checkpoint_with_card(method, digits_dir, tmp_path):
    out = tmp_path / method
    backbone = "vit_tiny" if METHODS.get(method).needs_vit else "resnet_micro"
    result = pretrain(PretrainConfig(data=str(digits_dir / "val"), method=method, out=str(out),
                                     **{**TINY_PRETRAIN, "backbone": backbone}))
    assert len(result.losses) == 2 and all(math.isfinite(v) for v in result.losses)
    model, card = load_model(out)
    assert card.kind == "backbone" and card.method == method
    # the card says what was built: edgessl's ViTs choose their patch and get no stem
    assert card.backbone == {"name": backbone, "image_size": 16,
                             "small_stem": backbone == "resnet_micro", "features": "final"}
    assert [row["epoch"] for row in result.history] == [1, 2]
    for name in ("history.csv", "history.json", "history.png"):
        assert (out / name).stat().st_size > 0
    assert card.training["final_loss"] == result.losses[-1]
    # val/ is a folder of class folders: what finetune would hold out of it is left out
    assert card.data["images"] + card.data["excluded_val_images"] == 359
    assert len(card.data["fingerprint"]) == 16
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, model.num_features)
    with pytest.raises(OutputExistsError):
        pretrain(PretrainConfig(data=str(digits_dir), out=str(out), **TINY_PRETRAIN))


def test_pretrain_is_reproducible(digits_dir, tmp_path):
    cfg = dict(data=str(digits_dir / "val"), **{**TINY_PRETRAIN, "epochs": 1})
    a = pretrain(PretrainConfig(out=str(tmp_path / "a"), **cfg))
    b = pretrain(PretrainConfig(out=str(tmp_path / "b"), **cfg))
    assert a.losses == b.losses


def test_pretrain_any_timm_model_with_small_image_stem(digits_dir, tmp_path):
    result = pretrain(PretrainConfig(data=str(digits_dir / "val"), out=str(tmp_path / "t"),
                                     **{**TINY_PRETRAIN, "backbone": "timm:test_resnet",
                                        "epochs": 1}))
    model, card = load_model(result.path)
    assert card.backbone == {"name": "test_resnet", "image_size": 16, "small_stem": True,
                             "features": "final"}
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.stride == (1, 1)
    assert not isinstance(getattr(model.model, "maxpool", None), torch.nn.MaxPool2d)
    # 16 px keeps spatial detail: the last feature map is larger than 1x1
    assert model.model.forward_features(torch.zeros(1, 3, 16, 16)).shape[-1] >= 2
