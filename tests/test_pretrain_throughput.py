"""benchmarks/pretrain_throughput.py measures a real pretraining step (tiny settings here)."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pretrain_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("pretrain_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_measure_times_dino_steps_with_local_crops(bench, tmp_path):
    settings = bench.Settings(batch_size=4, steps=2, warmup=1, device="cpu", image_size=16)
    data = bench.synthetic_images(tmp_path / "images", 4, 16)
    row = bench.measure("dino", "resnet_micro", settings, data)
    assert {key for key, _ in bench.COLUMNS} <= set(row)
    assert row["method"] == "dino" and row["backbone"] == "resnet_micro" and row["batch"] == 4
    assert row["views"] == 8 and row["local_crops"] == 6  # DINO's 2 global + 6 local views
    assert row["images_per_s"] > 0 and len(row["step_ms_all"]) == 2
    assert row["step_ms"] == pytest.approx(statistics.median(row["step_ms_all"]), abs=0.02)
    assert row["trained_params_m"] > row["params_m"] > 0  # the heads train too
    assert row["threads"] >= 1 and row["device"] == "cpu" and row["peak_rss_mb"] > 0
    table = bench.render_table([row])
    assert "| dino | resnet_micro |" in table and "8 (2 + 6 local)" in table


def test_mae_is_left_out_on_cnns(bench):
    pairs, notes = bench._pairs(["mae", "simclr"], ["resnet_micro"], 16)
    assert pairs == [("simclr", "resnet_micro")]
    assert notes == ["mae on resnet_micro: not run, mae needs a ViT backbone"]
