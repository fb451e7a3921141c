"""Interruptions: SIGINT/SIGTERM in finetune save and exit 130; a SIGKILL mid-write loses nothing.

The pretraining side (checkpoint every epoch, --resume, SIGKILL during a run) is in
tests/test_resume.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import edgessl.finetune.train as train
from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import METRICS_FILE, read_card
from edgessl.cli import app
from edgessl.errors import Interrupted
from edgessl.finetune.train import FinetuneConfig, finetune
from edgessl.models import Classifier, load_model


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png")
    return root


def signal_at_step(monkeypatch, sig: signal.Signals, at: int) -> None:
    """Send this process a real ``sig`` right after optimiser step ``at`` of the fine-tune."""
    real = train.cosine_with_warmup

    def patched(optimizer, total, warmup):
        scheduler = real(optimizer, total, warmup)
        step, count = scheduler.step, {"n": 0}

        def counted(*args, **kwargs):
            step(*args, **kwargs)
            count["n"] += 1
            if count["n"] == at:
                os.kill(os.getpid(), sig)

        scheduler.step = counted
        return scheduler

    monkeypatch.setattr(train, "cosine_with_warmup", patched)


@pytest.mark.parametrize("sig, mode", [(signal.SIGINT, "full"), (signal.SIGTERM, "full")])
def test_finetune_signal_saves_a_checkpoint_marked_interrupted(pets, tmp_path, monkeypatch,
                                                               sig, mode):
    before = signal.getsignal(sig)  # SIG_IGN for SIGINT when the suite runs in the background
    signal_at_step(monkeypatch, sig, at=3)  # 10 train images, 1 step an epoch: in epoch 3
    out = tmp_path / "clf"
    with pytest.raises(Interrupted, match=f"{sig.name}: saved the classifier after 2 of 20 "
                                          "epochs") as info:
        finetune(FinetuneConfig(data=str(pets), backbone="scratch:resnet_micro", image_size=16,
                                mode=mode, epochs=20, hflip=0.0, out=str(out)))
    assert info.value.exit_code == 130
    card = read_card(out)
    assert card.training["complete"] is False and card.training["interrupted"] == sig.name
    assert card.training["epochs_done"] == 2
    assert not (out / METRICS_FILE).exists()
    load_model(out)  # the interrupted classifier is usable as it is
    assert signal.getsignal(sig) == before  # the handler it found is back


def test_an_interrupted_rerun_with_force_keeps_the_complete_model(pets, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "clf"
    common = dict(data=str(pets), backbone="scratch:resnet_micro", image_size=16, mode="full",
                  hflip=0.0, out=str(out))
    finetune(FinetuneConfig(epochs=2, **common))
    weights = (out / "model.safetensors").read_bytes()
    signal_at_step(monkeypatch, signal.SIGINT, at=3)
    with pytest.raises(Interrupted, match="still holds the complete classifier"):
        finetune(FinetuneConfig(epochs=20, force=True, **common))
    assert read_card(out).training["complete"] is True and (out / METRICS_FILE).exists()
    assert (out / "model.safetensors").read_bytes() == weights


def test_finetune_interrupt_on_the_cli_is_one_line_exit_130(pets, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESSL_PROGRESS", "0")
    signal_at_step(monkeypatch, signal.SIGINT, at=2)
    result = CliRunner().invoke(app, ["--quiet", "finetune", str(pets), "--backbone",
                                      "scratch:resnet_micro", "--image-size", "16", "--epochs",
                                      "10", "--out", str(tmp_path / "clf")])
    assert result.exit_code == 130, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: SIGINT: saved"), result.output
    assert "--force" in lines[0] and read_card(tmp_path / "clf").training["complete"] is False


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
import torch
from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import ModelCard
from edgessl.models import Classifier, save_model

out, where = Path(sys.argv[1]), sys.argv[2]
spec = BackboneSpec.for_images("resnet_micro", 16)
card = ModelCard(kind="classifier", backbone=spec.to_dict(), method="scratch", labels=("a", "b"))
torch.manual_seed(0)
save_model(Classifier(create_backbone(spec), 2), card, out)

def die():
    os.kill(os.getpid(), signal.SIGKILL)  # no handler, no cleanup: as a power cut

if where == "weights":  # killed with half the new weights file written
    import safetensors.torch as st
    real = st.save_file
    def half(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        die()
    st.save_file = half
else:  # killed between renaming the old folder away and the new one into place
    real_rename, calls = Path.rename, []
    def rename(self, target):
        calls.append(self)
        if len(calls) == 2:
            die()
        return real_rename(self, target)
    Path.rename = rename
torch.manual_seed(1)
save_model(Classifier(create_backbone(spec), 2), card, out, force=True)
print("NOT KILLED")
"""


@pytest.mark.parametrize("where", ["weights", "rename"])
def test_sigkill_mid_write_leaves_the_last_checkpoint_intact(tmp_path, where):
    out = tmp_path / "clf"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out), where],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    model, card = load_model(out)  # restores the previous folder after a kill mid-rename
    torch.manual_seed(0)
    expected = Classifier(create_backbone(BackboneSpec.for_images("resnet_micro", 16)), 2)
    for (name, a), b in zip(expected.state_dict().items(), model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert card.labels == ("a", "b")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "clf"]
    assert all(name.startswith(".") for name in leftovers), leftovers  # temp names only
