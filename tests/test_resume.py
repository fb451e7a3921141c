"""Pretraining checkpoints every epoch; a stopped run resumes to the same result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from edgessl.checkpoint import TRAIN_STATE_FILE, read_card
from edgessl.errors import CheckpointError, OutputExistsError
from edgessl.models import load_model
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.pretrain import Interrupted, PretrainConfig, pretrain
from edgessl.ssl.simclr import SimCLR

TINY = dict(backbone="resnet_micro", image_size=16, epochs=2, batch_size=64,
            augment=AugmentConfig(hflip=0.0, blur_p=0.0))


def _stop_at_step(monkeypatch, stop_step: int) -> None:
    """Send this process a real SIGINT after ``stop_step`` optimiser steps."""
    steps = {"n": 0}

    def after_step(self, progress):
        steps["n"] += 1
        if steps["n"] == stop_step:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(SimCLR, "after_step", after_step)


def test_interrupted_then_resumed_equals_uninterrupted(digits_dir, tmp_path, monkeypatch):
    data = str(digits_dir / "val")  # 359 images: 5 batches of 64 per epoch
    full = pretrain(PretrainConfig(data=data, out=str(tmp_path / "full"), **TINY))
    _stop_at_step(monkeypatch, 7)  # in the middle of epoch 2
    with pytest.raises(Interrupted, match="--resume"):
        pretrain(PretrainConfig(data=data, out=str(tmp_path / "cut"), **TINY))
    card = read_card(tmp_path / "cut")
    assert card.training["complete"] is False and card.training["epochs_done"] == 1
    assert (tmp_path / "cut" / TRAIN_STATE_FILE).is_file()
    load_model(tmp_path / "cut")  # the interrupted checkpoint is usable as it is
    monkeypatch.undo()
    resumed = pretrain(PretrainConfig(data=data, out=str(tmp_path / "cut"), resume=True, **TINY))
    assert resumed.losses == pytest.approx(full.losses, rel=1e-5)
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    assert read_card(tmp_path / "cut").training["complete"] is True
    assert not (tmp_path / "cut" / TRAIN_STATE_FILE).exists()


def test_resume_errors(digits_dir, tmp_path):
    data = str(digits_dir / "val")
    with pytest.raises(CheckpointError, match="nothing to resume"):
        pretrain(PretrainConfig(data=data, out=str(tmp_path / "none"), resume=True, **TINY))
    pretrain(PretrainConfig(data=data, out=str(tmp_path / "done"), **{**TINY, "epochs": 1}))
    with pytest.raises(CheckpointError, match="nothing to resume"):
        pretrain(PretrainConfig(data=data, out=str(tmp_path / "done"), resume=True,
                                **{**TINY, "epochs": 1}))
    with pytest.raises(OutputExistsError, match="--resume"):
        pretrain(PretrainConfig(data=data, out=str(tmp_path / "done"), **TINY))


@pytest.mark.slow
def test_sigkill_leaves_a_loadable_checkpoint_that_resumes(digits_dir, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "edgessl", "--quiet", "pretrain", str(digits_dir / "val"),
            "--backbone", "resnet_micro", "--image-size", "16", "--batch-size", "64",
            "--epochs", "6", "--out", str(out)]
    proc = subprocess.Popen(args, env={**os.environ, "EDGESSL_PROGRESS": "0"})
    deadline = time.monotonic() + 300
    try:
        while not (out / "card.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        proc.kill()  # SIGKILL: no handler runs
        proc.wait()
    _, card = load_model(out)
    assert 1 <= card.training["epochs_done"] <= 6
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run"]
    assert all(name.startswith(".") for name in leftovers)  # only temp folders, never `run`
    if card.training["complete"]:
        pytest.skip("the run finished before it could be killed")
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True,
                             env={**os.environ, "EDGESSL_PROGRESS": "0"})
    assert resumed.returncode == 0, resumed.stderr
    _, card = load_model(out)
    assert card.training["complete"] and card.training["epochs_done"] == 6
