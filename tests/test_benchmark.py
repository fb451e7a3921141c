"""The PyTorch runtime, latency statistics, accuracy, the report and the benchmark command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.backends import torch_rt
from edgessl.benchmark.host import (
    BenchmarkConfig,
    benchmark_models,
    label_mapping,
    latency_stats,
    model_size_mib,
)
from edgessl.benchmark.report import COLUMNS, render_table, write_json
from edgessl.checkpoint import ModelCard
from edgessl.errors import CheckpointError, ConfigError, DataError, DeviceUnavailableError
from edgessl.models import load_model, save_model

FAST = BenchmarkConfig(warmup=1, iterations=5, async_runs=0, end_to_end=False)


# --- the PyTorch runtime -------------------------------------------------------------------

def test_torch_runtime_accepts_checkpoint_folders_only(tiny_classifier, tmp_path):
    assert torch_rt.accepts(tiny_classifier)
    assert not torch_rt.accepts(tmp_path)
    assert not torch_rt.accepts(tiny_classifier / "model.safetensors")


def test_torch_runtime_runs_like_the_model(tiny_classifier):
    loaded = torch_rt.load(tiny_classifier)
    assert loaded.meta.labels == tuple(str(i) for i in range(10))
    assert (loaded.meta.image_size, loaded.meta.format, loaded.meta.precision) == (16, "pytorch",
                                                                                  "fp32")
    assert loaded.meta.task == "classify"
    assert loaded.meta.extra["data"]["val_fraction"] == 0.2
    ex = loaded.execution
    assert (ex.runtime, ex.device, ex.version) == ("pytorch", "cpu", torch.__version__)
    assert f"{torch.get_num_threads()} threads" in ex.provider
    assert loaded.load_seconds > 0
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16), dtype=np.float32)
    out = loaded.run(x)
    model, _ = load_model(tiny_classifier)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert out.dtype == np.float32 and out.shape == (2, 10)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_torch_runtime_backbone_outputs_embeddings(tmp_path):
    spec = BackboneSpec.for_images("resnet_micro", 16)
    backbone = create_backbone(spec).eval()
    card = ModelCard(kind="backbone", backbone=spec.to_dict(), method="simclr")
    path = save_model(backbone, card, tmp_path / "bb")
    loaded = torch_rt.load(path)
    assert loaded.meta.labels == () and loaded.meta.task == "embed"
    out = loaded.run(np.zeros((3, 3, 16, 16), np.float32))
    assert out.shape == (3, backbone.num_features)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a CUDA GPU")
def test_torch_runtime_cuda_unavailable_is_loud(tiny_classifier):
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        torch_rt.load(tiny_classifier, device="CUDA")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_runtime_on_cuda(tiny_classifier):
    loaded = torch_rt.load(tiny_classifier, device="CUDA")
    assert loaded.execution.device == "cuda:0"
    assert loaded.run(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 10)


def test_torch_runtime_unknown_device_suggests(tiny_classifier):
    with pytest.raises(ConfigError, match="Did you mean 'CPU'"):
        torch_rt.load(tiny_classifier, device="CPUU")


# --- pure pieces -----------------------------------------------------------------------------

def test_latency_stats_match_numpy():
    seconds = [0.010, 0.002, 0.003, 0.050, 0.004, 0.0035, 0.0021, 0.0029, 0.011, 0.006]
    stats = latency_stats(seconds)
    ms = np.array(seconds) * 1000
    assert stats.mean_ms == pytest.approx(ms.mean())
    assert stats.std_ms == pytest.approx(ms.std())
    assert (stats.min_ms, stats.max_ms) == (pytest.approx(2.0), pytest.approx(50.0))
    assert stats.p50_ms == pytest.approx(np.median(ms))
    assert stats.p90_ms == pytest.approx(np.percentile(ms, 90))
    # by hand: p99 of 10 values lies 0.91 of the way from the 9th to the 10th sorted value
    assert stats.p99_ms == pytest.approx(11.0 + 0.91 * (50.0 - 11.0))
    with pytest.raises(ValueError):
        latency_stats([])


def test_label_mapping_by_name():
    np.testing.assert_array_equal(label_mapping(["b", "c", "a"], ["a", "b", "c"], "m"), [2, 0, 1])
    with pytest.raises(DataError, match="only in model: x; only in data: c"):
        label_mapping(["a", "b", "x"], ["a", "b", "c"], "m")


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"warmup": -1}, {"batch_size": 0},
                                    {"time_budget_s": 0.0}, {"batch_sizes": (1, 0)},
                                    {"async_runs": -1}])
def test_benchmark_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        BenchmarkConfig(**kwargs)


def test_model_size_of_checkpoint_is_its_weights(tiny_classifier):
    size = (tiny_classifier / "model.safetensors").stat().st_size / 2**20
    assert model_size_mib(tiny_classifier) == pytest.approx(size)


# --- benchmark end to end (PyTorch) ----------------------------------------------------------

@pytest.fixture(scope="module")
def with_data(tiny_classifier, digits_dir):
    config = BenchmarkConfig(warmup=1, iterations=5, batch_size=2, data=str(digits_dir),
                             async_runs=4, async_requests=2)
    return config, benchmark_models([tiny_classifier], config)


def test_benchmark_result_fields(with_data, tiny_classifier):
    config, (result,) = with_data
    assert result.model == str(tiny_classifier)
    assert (result.runtime, result.device, result.format, result.precision) == (
        "pytorch", "cpu", "pytorch", "fp32")
    assert (result.batch_size, result.iterations, result.warmup) == (2, 5, 1)
    lat = result.latency
    assert 0 < lat.min_ms <= lat.p50_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
    assert result.throughput_ips == pytest.approx(2 * 1000 / lat.mean_ms)
    assert result.size_mib == pytest.approx(model_size_mib(tiny_classifier))
    assert result.first_inference_ms > 0 and result.load_s > 0
    assert result.executed_on == ("cpu",) and result.settings["threads"] >= 1
    assert result.host == "local" and result.skipped is None
    # end to end (decode, resize, run) is timed in its own loop; no order between the two
    # loops' times is asserted: another job on the machine slows one loop and not the other
    e2e = result.e2e_latency
    assert e2e is not None and 0 < e2e.min_ms <= e2e.p50_ms <= e2e.max_ms
    assert result.async_throughput.requests == 2 and result.async_throughput.runs == 4
    assert result.async_throughput.throughput_ips > 0
    assert result.sweep == ()  # no profile, no --batch-sizes: no sweep
    assert result.peak_rss_mib is None or result.peak_rss_mib > 10


def test_benchmark_accuracy_matches_independent_computation(with_data, tiny_classifier,
                                                             digits_dir):
    from PIL import Image

    _, (result,) = with_data
    model, card = load_model(tiny_classifier)
    files = sorted((digits_dir / "val").glob("*/*.png"))
    x = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) / 255 for f in files])
    x = (x - np.array(card.mean, np.float32)) / np.array(card.std, np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    truth = np.array([card.labels.index(f.parent.name) for f in files])
    assert result.val_images == len(files)
    assert result.top1 == pytest.approx(float((logits.argmax(1) == truth).mean()))


def test_json_output(with_data, tmp_path):
    config, results = with_data
    path = write_json(results, tmp_path / "out" / "bench.json", config)
    data = json.loads(path.read_text())
    host = data["host"]
    assert host["cpu"] and isinstance(host["cpu_flags"], list)
    assert torch.__version__.startswith(host["versions"]["torch"]) and host["edgessl"]
    assert host["torch_threads"] == torch.get_num_threads() and host["timestamp"]
    assert data["config"]["iterations"] == 5
    (entry,) = data["results"]
    assert entry["runtime"] == "pytorch" and entry["top1"] == results[0].top1
    assert entry["latency"]["p99_ms"] == results[0].latency.p99_ms


def test_table_rendering(with_data):
    _, results = with_data
    lines = render_table(results).splitlines()
    assert all(col in lines[0] for col in COLUMNS)
    assert set(lines[1]) == {"-", " "}
    row = lines[2]
    assert row.startswith("tiny ") and "pytorch" in row and "  cpu  " in row
    assert f"{100 * results[0].top1:.1f}" in row
    # numbers are right-aligned under their headers
    assert len(row) == len(lines[0])
    assert "batch 2" in lines[3] and "val images" in lines[3] and "e2e" in lines[3]
    assert "pytorch run from 2 threads" in lines[4]


def test_benchmark_without_data_has_no_accuracy(tiny_classifier):
    (result,) = benchmark_models([tiny_classifier], FAST)
    assert result.top1 is None and result.val_images is None
    assert " - " in render_table([result]).splitlines()[2]


def test_benchmark_missing_model(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        benchmark_models([tmp_path / "nope"], FAST)


# --- the command -----------------------------------------------------------------------------

@pytest.fixture
def cli():
    from typer.testing import CliRunner

    import edgessl.cli.benchmark_cmd  # noqa: F401 - registers the command
    from edgessl.cli.app import app

    return CliRunner(), app


def test_benchmark_command(cli, tiny_classifier, tmp_path):
    runner, app = cli
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["benchmark", str(tiny_classifier), "--iterations", "3",
                                 "--warmup", "1", "--batch-size", "2", "--async-runs", "2",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "pytorch" in result.stdout and "p99 ms" in result.stdout
    assert json.loads(out.read_text())["results"][0]["batch_size"] == 2


def test_benchmark_command_missing_model(cli, tmp_path):
    runner, app = cli
    result = runner.invoke(app, ["benchmark", str(tmp_path / "nope"), "--iterations", "1"])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_accuracy_with_a_static_batch_pads_the_last_chunk(tiny_classifier, digits_dir):
    import dataclasses

    from edgessl.benchmark.host import top1_accuracy
    from edgessl.data.labeled import LabeledData

    classes = tuple(str(i) for i in range(10))
    files = sorted((digits_dir / "val").glob("*/*.png"))[::17]  # 22 images, all classes
    data = LabeledData(digits_dir, classes, (), tuple((f, int(f.parent.name)) for f in files),
                       "folders")
    plain = torch_rt.load(tiny_classifier)
    static = torch_rt.load(tiny_classifier)
    static.meta = dataclasses.replace(static.meta, extra={"static_batch": 8})
    seen = []
    run = static.run
    static.run = lambda x: (seen.append(len(x)), run(x))[1]
    assert top1_accuracy(static, data) == top1_accuracy(plain, data)
    assert seen == [8, 8, 8]
