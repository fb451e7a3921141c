"""DDP pretraining (torchrun, gloo on CPU) equals one process on the same global batch.

PyTorch's SyncBatchNorm does not run on CPU, so on CPU the batch statistics of a BN layer are
those of each process's slice and a BN model cannot match one process exactly. The
equivalence test therefore uses a BN-free setup: timm's tiny ``test_vit`` (LayerNorm only) and
SimCLR with its projector's BatchNorm1d replaced by a plain Linear-ReLU-Linear MLP (DINO
needs no change). What it checks is the DDP plumbing itself: the sharding of the globally
augmented batch, the gradient-carrying ``gather`` of SimCLR's embeddings, DDP's gradient
average (with unused parameters for DINO), the logged loss mean and the checkpoint written by
the first process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from cli_helpers import flat_digits
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from edgessl.cli import app
from edgessl.errors import ConfigError
from edgessl.ssl import simclr
from edgessl.ssl.ddp import Distributed
from edgessl.ssl.pretrain import PretrainConfig, pretrain

FLAGS = dict(backbone="timm:test_vit", image_size=16, batch_size=32, epochs=2, device="cpu",
             seed=3)
# DINO compares each sample only with itself and its head has no BatchNorm: no patch needed.
DINO_OPTIONS = dict(out_dim=256, hidden_dim=64, bottleneck_dim=32)

# torchrun runs this: the CLI with SimCLR's projector free of BatchNorm.
LAUNCHER = """
from torch import nn
import edgessl.ssl.simclr as simclr
simclr.projection_head = lambda i, h, o: nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))
from edgessl.cli import main
main()
"""


def _bn_free_head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


@pytest.fixture(scope="module")
def small_folder(digits_dir, tmp_path_factory):
    """64 unlabeled digits at 16 px in one flat folder (2 steps of 32 per epoch)."""
    return flat_digits(digits_dir, tmp_path_factory.mktemp("ddp") / "images", 64)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli_flags(config: dict) -> list[str]:
    flags = []
    for key, value in config.items():
        if key == "method_options":
            flags += [item for k, v in value.items() for item in ("--opt", f"{k}={v}")]
        else:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="needs torch.distributed with gloo")
@pytest.mark.parametrize("method, options", [
    ("simclr", {}),
    ("dino", DINO_OPTIONS),  # its frozen last layer needs find_unused_parameters
])
def test_two_processes_match_one(method, options, small_folder, tmp_path, monkeypatch):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    config = dict(method=method, **FLAGS, **({"method_options": options} if options else {}))
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(launcher),
         "--quiet", "pretrain", str(small_folder), *_cli_flags(config),
         "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "EDGESSL_PROGRESS": "0"})
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr[-3000:]
    monkeypatch.setattr(simclr, "projection_head", _bn_free_head)
    one = pretrain(PretrainConfig(data=str(small_folder), out=str(tmp_path / "one"), **config))

    card = json.loads((tmp_path / "ddp" / "card.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["batch_size"] == 32
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert [row["loss"] for row in history] == pytest.approx(one.losses, rel=1e-4)
    assert [row["lr"] for row in history] == pytest.approx([r["lr"] for r in one.history])
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(one.path / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


def test_batch_must_split_over_processes():
    with pytest.raises(ConfigError, match="--batch-size 31 does not split over 2 processes"):
        Distributed(rank=0, world_size=2).check_batch(31)
    assert Distributed(rank=1, world_size=2).check_batch(32) == 16


@pytest.mark.parametrize("flags, expected", [
    (["--batch-size", "31"], "use a multiple of 2"),
    (["--batch-size", "32", "--sync-bn"], "--sync-bn needs CUDA GPUs"),
])
def test_ddp_flag_errors_are_one_line_exit_2(flags, expected, small_folder, tmp_path,
                                             monkeypatch):
    # As the first of 2 torchrun processes, without starting them: no collective runs
    # before these checks.
    monkeypatch.setattr(Distributed, "from_env", classmethod(lambda cls, device: cls(0, 2, 0)))
    result = CliRunner().invoke(app, ["--quiet", "pretrain", str(small_folder), "--backbone",
                                      "resnet_micro", "--image-size", "16", "--device", "cpu",
                                      *flags, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: ") and expected in lines[0]


def test_mae_masks_of_a_process_are_its_slice_of_the_global_batch(monkeypatch):
    """Each process draws the global batch's mask noise and keeps its rows (as one process)."""
    import edgessl.ssl.distributed as distributed
    from edgessl.ssl.mae import random_masking

    torch.manual_seed(0)
    whole = random_masking(8, 16, 0.75)
    for r in (0, 1):
        monkeypatch.setattr(distributed, "world_size", lambda: 2)
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        torch.manual_seed(0)
        part = random_masking(4, 16, 0.75)
        for got, want in zip(part, whole, strict=True):
            assert torch.equal(got, want[r * 4:(r + 1) * 4])
