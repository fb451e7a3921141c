"""Pretraining features: resume of every method, kNN, history, collapse, optimiser, devices."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal

import numpy as np
import pytest
import torch
from cli_helpers import flat_digits
from safetensors.torch import load_file, save_file

from edgessl.backbones import Backbone, BackboneSpec, create_backbone
from edgessl.checkpoint import ModelCard, read_card
from edgessl.errors import ConfigError, DeviceUnavailableError, Interrupted
from edgessl.models import save_model
from edgessl.ssl import METHODS
from edgessl.ssl.moco import MoCoV3, MoCoV3Config
from edgessl.ssl.monitor import KnnData, embedding_spread, knn_top1
from edgessl.ssl.optim import build_optimizer, scaled_lr
from edgessl.ssl.pretrain import PretrainConfig, pretrain

# 32 images in batches of 16: 2 steps per epoch.
TINY = dict(image_size=16, epochs=2, batch_size=16, device="cpu")
# Every method with a target network or other training state, its heads shrunk so that a step
# costs little on 2 CPU cores: (backbone, method_options, augment_overrides, optimiser family).
RESUMABLE = {
    "moco": ("resnet_micro", dict(proj_hidden=32, proj_dim=16, pred_hidden=32), {}, "sgd"),
    "byol": ("resnet_micro", dict(proj_hidden=32, proj_dim=16, pred_hidden=32), {}, "sgd"),
    # 2 local crops keep multi-crop in play; the last layer is frozen for the first step.
    "dino": ("resnet_micro", dict(out_dim=64, hidden_dim=32, bottleneck_dim=16),
             dict(local_crops=2), "adamw"),
    "vicreg": ("resnet_micro", dict(expander_dim=32), {}, "sgd"),
    "mae": ("vit_tiny", dict(decoder_dim=32, decoder_depth=1, decoder_heads=2), {}, "adamw"),
}
# Columns that measure the machine, not the training.
TIMINGS = ("seconds", "images_per_second")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_folder(digits_dir, tmp_path_factory):
    """32 unlabeled digits at 16 px in one flat folder."""
    return flat_digits(digits_dir, tmp_path_factory.mktemp("features") / "images", 32)


@pytest.fixture(scope="module")
def small_labeled(digits_dir, tmp_path_factory):
    """train/ (4 per class) and val/ (2 per class) of digits at 16 px, for a cheap kNN."""
    root = tmp_path_factory.mktemp("features") / "labeled"
    for split, n in (("train", 4), ("val", 2)):
        for cls in sorted(p for p in (digits_dir / split).iterdir() if p.is_dir()):
            (root / split / cls.name).mkdir(parents=True)
            for path in sorted(cls.glob("*.png"))[:n]:
                shutil.copy(path, root / split / cls.name / path.name)
    return root


def _stop_at_step(monkeypatch, method_cls, stop_step: int) -> None:
    """Send this process a real SIGINT after the method's own update of step ``stop_step``."""
    original = method_cls.after_step
    steps = {"n": 0}

    def after_step(self, progress):
        original(self, progress)
        steps["n"] += 1
        if steps["n"] == stop_step:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(method_cls, "after_step", after_step)


def _without_timings(rows) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


@pytest.mark.parametrize("method", list(RESUMABLE))
def test_stopped_then_resumed_equals_uninterrupted(method, small_folder, tmp_path,
                                                   monkeypatch):
    backbone, options, augment, optimizer = RESUMABLE[method]
    cfg = dict(data=str(small_folder), method=method, backbone=backbone,
               method_options=options, augment_overrides=augment, **TINY)
    full = pretrain(PretrainConfig(out=str(tmp_path / "full"), **cfg))
    cut = tmp_path / "cut"
    _stop_at_step(monkeypatch, METHODS.get(method), 3)  # first step of epoch 2
    with pytest.raises(Interrupted, match="--resume"):
        pretrain(PretrainConfig(out=str(cut), **cfg))
    monkeypatch.undo()
    before = json.loads((cut / "history.json").read_text())
    assert [row["epoch"] for row in before] == [1]
    resumed = pretrain(PretrainConfig(out=str(cut), resume=True, **cfg))

    assert resumed.losses == pytest.approx(full.losses, rel=1e-5)
    assert resumed.history[0] == before[0]  # the epoch before the stop keeps its row
    got, want = _without_timings(resumed.history), _without_timings(full.history)
    assert [r.pop("loss") for r in got] == pytest.approx([r.pop("loss") for r in want],
                                                         rel=1e-5)
    assert [r.pop("embedding_spread") for r in got] == pytest.approx(
        [r.pop("embedding_spread") for r in want], rel=1e-4)
    assert got == want  # epoch, lr, knn_top1, collapsed
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    training = read_card(cut).training
    assert training["complete"] is True
    # The method's optimiser, and its base LR scaled to the batch (lr=None).
    assert training["optimizer"] == optimizer
    assert training["lr"] == pytest.approx(METHODS.get(method).lr * 16 / 256)
    assert training["channels_last"] is (backbone != "vit_tiny")


# --- kNN ---------------------------------------------------------------------------------


def knn_by_loops(bank, bank_labels, query, query_labels, k, temperature=0.07) -> float:
    """Weighted kNN vote written out per query (Wu et al. 2018), in float64 numpy."""
    classes = max(bank_labels.max(), query_labels.max()) + 1
    correct = 0
    for q, label in zip(query, query_labels, strict=True):
        sims = bank @ q
        votes = np.zeros(classes)
        for j in np.argsort(-sims)[:k]:
            votes[bank_labels[j]] += math.exp(sims[j] / temperature)
        correct += int(votes.argmax() == label)
    return 100.0 * correct / len(query)


@pytest.mark.parametrize("k", [1, 5, 500])
def test_knn_top1_matches_a_brute_force_vote(k):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))

    def sample(n):
        labels = rng.integers(0, 5, n)
        x = centres[labels] + 1.5 * rng.normal(size=(n, 16))
        return x / np.linalg.norm(x, axis=1, keepdims=True), labels

    bank, bank_labels = sample(300)
    query, query_labels = sample(1100)  # more than one chunk of 1024 queries
    got = knn_top1(torch.tensor(bank, dtype=torch.float32), torch.tensor(bank_labels),
                   torch.tensor(query, dtype=torch.float32), torch.tensor(query_labels), k=k)
    want = knn_by_loops(bank, bank_labels, query, query_labels, min(k, 300))
    assert got == pytest.approx(want, abs=1e-9)
    assert 20 < got < 100  # neither chance nor trivial: the test can tell them apart


def test_knn_data_loads_train_and_val(digits_dir):
    data = KnnData.load(digits_dir, 16)
    assert data.classes == tuple(str(i) for i in range(10))
    assert data.bank.dtype == torch.uint8 and data.bank.shape[1:] == (3, 16, 16)
    assert data.query.shape == (359, 3, 16, 16) and data.query_labels.shape == (359,)
    assert len(data.bank) == len(data.bank_labels) > len(data.query)
    assert set(data.bank_labels.tolist()) == set(range(10))


@pytest.fixture(scope="module")
def knn_run(small_folder, small_labeled, tmp_path_factory):
    """SimCLR for 3 epochs with kNN every 2nd epoch (and the last)."""
    out = tmp_path_factory.mktemp("knn") / "run"
    result = pretrain(PretrainConfig(data=str(small_folder), backbone="resnet_micro",
                                     eval_data=str(small_labeled), eval_every=2, knn_k=5,
                                     out=str(out), **{**TINY, "epochs": 3}))
    return result, out


def test_knn_only_on_due_epochs_and_the_last(knn_run):
    result, out = knn_run
    knn = [row["knn_top1"] for row in result.history]
    assert knn[0] is None and all(0 <= v <= 100 for v in knn[1:])
    training = read_card(out).training
    assert training["knn_top1"] == knn[-1]
    # SimCLR's defaults: SGD at its base LR 0.5 scaled to the batch of 16; CNNs in NHWC.
    assert training["optimizer"] == "sgd" and training["lr"] == pytest.approx(0.5 * 16 / 256)
    assert training["channels_last"] is True


# --- history -----------------------------------------------------------------------------


def test_history_files(knn_run):
    result, out = knn_run
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == ("epoch,loss,lr,knn_top1,embedding_spread,collapsed,seconds,"
                        "images_per_second")
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert rows[0][3] == "" and float(rows[1][3]) == result.history[1]["knn_top1"]
    assert [float(r[1]) for r in rows] == pytest.approx(result.losses)
    assert [r[5] for r in rows] == ["False"] * 3
    assert json.loads((out / "history.json").read_text()) == list(result.history)
    assert (out / "history.png").read_bytes()[:8] == PNG_MAGIC


# --- collapse ----------------------------------------------------------------------------


def test_embedding_spread_is_one_when_spread_and_zero_when_collapsed():
    torch.manual_seed(0)
    assert embedding_spread(torch.randn(512, 64)) == pytest.approx(1.0, abs=0.05)
    assert embedding_spread(torch.full((512, 64), 3.0)) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(embedding_spread(torch.randn(1, 64)))  # one sample has no spread


def test_collapsed_features_are_flagged(small_folder, tmp_path, monkeypatch, caplog):
    forward = Backbone.forward

    def constant(self, x):  # every image maps to (almost) the same point
        h = forward(self, x)
        return h * 0 + 1 + 1e-5 * torch.randn_like(h)

    monkeypatch.setattr(Backbone, "forward", constant)
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        result = pretrain(PretrainConfig(data=str(small_folder), backbone="resnet_micro",
                                         out=str(tmp_path / "o"), **{**TINY, "epochs": 1}))
    assert "COLLAPSE WARNING at epoch 1" in caplog.text
    assert result.history[0]["collapsed"] is True
    assert result.history[0]["embedding_spread"] < 0.01


# --- optimiser, clipping, memory layout ---------------------------------------------------


@pytest.mark.parametrize("name, cls, default_wd", [("sgd", torch.optim.SGD, 1e-4),
                                                    ("adamw", torch.optim.AdamW, 0.05)])
def test_no_weight_decay_on_norms_and_biases(name, cls, default_wd):
    backbone = create_backbone(BackboneSpec.for_images("resnet_micro", 16))
    model = MoCoV3(backbone, MoCoV3Config(proj_hidden=32, proj_dim=16, pred_hidden=32))
    trainable = [p for p in model.parameters() if p.requires_grad]
    for wd, expected in ((None, default_wd), (0.3, 0.3)):
        optimizer = build_optimizer(model, name, 0.1, wd)
        assert isinstance(optimizer, cls)
        decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
        assert len(decay) == len(trainable)  # the frozen momentum encoder is left out
        assert any(p.ndim == 1 for p in trainable) and any(p.ndim > 1 for p in trainable)
        for p in trainable:
            assert decay[id(p)] == (0.0 if p.ndim <= 1 else expected), p.shape


def test_lr_scales_with_the_batch():
    assert scaled_lr(0.5, 256) == 0.5 and scaled_lr(0.5, 64) == 0.125


def test_grad_clip_caps_the_gradient_norm(small_folder, tmp_path, monkeypatch):
    calls = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *args, **kwargs):
        params = [p for p in parameters if p.grad is not None]
        before = clip(params, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        calls.append((max_norm, float(before), float(after)))
        return before

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    result = pretrain(PretrainConfig(data=str(small_folder), backbone="resnet_micro",
                                     grad_clip=0.05, out=str(tmp_path / "o"),
                                     **{**TINY, "epochs": 1}))
    assert math.isfinite(result.losses[0])
    assert len(calls) == 2  # every step
    for max_norm, before, after in calls:
        assert max_norm == 0.05 and before > 0.05  # the cap was active
        assert after == pytest.approx(0.05, rel=1e-3)
    assert read_card(result.path).training["grad_clip"] == 0.05


def test_channels_last_gives_the_same_loss(small_folder, tmp_path):
    cfg = dict(data=str(small_folder), backbone="resnet_micro", **{**TINY, "epochs": 1})
    nhwc = pretrain(PretrainConfig(channels_last=True, out=str(tmp_path / "a"), **cfg))
    nchw = pretrain(PretrainConfig(channels_last=False, out=str(tmp_path / "b"), **cfg))
    assert nhwc.losses[0] == pytest.approx(nchw.losses[0], abs=1e-4)
    assert read_card(nhwc.path).training["channels_last"] is True
    assert read_card(nchw.path).training["channels_last"] is False


# --- devices and config errors ------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_gpu_is_a_one_line_error(device, small_folder, tmp_path):
    with pytest.raises(DeviceUnavailableError, match="use --device cpu") as err:
        pretrain(PretrainConfig(data=str(small_folder), device=device, out=str(tmp_path / "o")))
    assert "\n" not in str(err.value) and f"--device {device}" in str(err.value)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("field, value, expected", [
    ("precision", "fp23", "Did you mean 'fp32'"),
    ("optimizer", "adamm", "Did you mean 'adamw'"),
    ("device", "tpu", "choose auto, cpu, cuda or cuda:N"),
])
def test_unknown_setting_is_a_config_error(field, value, expected, small_folder, tmp_path):
    with pytest.raises(ConfigError, match=expected) as err:
        pretrain(PretrainConfig(data=str(small_folder), out=str(tmp_path / "o"),
                                **{field: value}))
    assert "\n" not in str(err.value)


# --- starting from existing weights ------------------------------------------------------


def _distinct_backbone():
    """resnet_micro at 16 px with weights no fresh initialisation has."""
    backbone = create_backbone(BackboneSpec.for_images("resnet_micro", 16))
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.5)
    return backbone


@pytest.mark.parametrize("source", ["checkpoint", "weights_file"])
def test_pretraining_starts_from_given_weights(source, small_folder, tmp_path):
    backbone = _distinct_backbone()
    if source == "checkpoint":
        given = save_model(backbone, ModelCard(kind="backbone", backbone=backbone.spec.to_dict(),
                                               method="simclr"), tmp_path / "ckpt")
        flags = dict(backbone=str(given))
    else:
        given = tmp_path / "weights.safetensors"
        save_file(backbone.model.state_dict(), str(given))  # timm's names, no prefix
        flags = dict(backbone="resnet_micro", weights=str(given))
    # One step at a negligible LR and no weight decay: the parameters stay the given ones
    # (BatchNorm's running statistics do move, so only parameters are compared).
    result = pretrain(PretrainConfig(data=str(small_folder), lr=1e-10, weight_decay=0.0,
                                     out=str(tmp_path / "o"),
                                     **{**TINY, "epochs": 1, "batch_size": 32}, **flags))
    saved = load_file(str(result.path / "model.safetensors"))
    for name, p in backbone.named_parameters():
        torch.testing.assert_close(saved[name], p.detach(), rtol=0, atol=1e-6, msg=name)
    assert read_card(result.path).training["initialised_from"] == str(given.resolve())


def test_a_weights_file_as_backbone_needs_its_architecture(small_folder, tmp_path):
    weights = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(1)}, str(weights))
    with pytest.raises(ConfigError, match="pass --backbone NAME --weights FILE"):
        pretrain(PretrainConfig(data=str(small_folder), backbone=str(weights),
                                out=str(tmp_path / "o"), **{**TINY, "epochs": 1}))
