"""Benchmarks on device profiles: what executed, skipped targets, static shapes, async
throughput, the batch sweep, every output format, and the GPU/NPU paths (marked)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from edgessl.benchmark.host import BenchmarkConfig, BenchmarkResult, benchmark_models
from edgessl.benchmark.report import render_csv, render_markdown, render_table
from edgessl.devices.host import detect_host
from edgessl.errors import ConfigError, DeviceUnavailableError
from edgessl.export.api import ExportConfig, export_model

TINY = dict(warmup=1, iterations=3, async_runs=2, end_to_end=False)
HOST = detect_host()
HAS_CUDA_EP = "CUDAExecutionProvider" in HOST.onnxruntime_providers
OV_DEVICES = {d.name.split(".")[0] for d in HOST.openvino_devices}


@pytest.fixture(scope="module")
def artifacts(tiny_classifier, tmp_path_factory):
    """fp32 ONNX and OpenVINO exports of the tiny classifier: {"onnx": path, "openvino": path}."""
    root = tmp_path_factory.mktemp("target-artifacts")
    return {fmt: export_model(tiny_classifier, ExportConfig(format=fmt, out=str(root / fmt))).path
            for fmt in ("onnx", "openvino")}


@pytest.fixture(scope="module")
def on_cpu_profile(artifacts, tiny_classifier):
    config = BenchmarkConfig(**TINY, profiles=("cpu",))
    models = [tiny_classifier, artifacts["onnx"], artifacts["openvino"]]
    return benchmark_models(models, config)


def test_cpu_profile_records_what_executed(on_cpu_profile):
    torch_r, ort_r, ov_r = on_cpu_profile
    assert all(r.profile == "cpu" and r.skipped is None for r in on_cpu_profile)
    assert torch_r.executed_on == ("cpu",)
    assert ort_r.executed_on == ("CPUExecutionProvider",)
    assert ort_r.settings["providers"] == "CPUExecutionProvider"
    assert ov_r.executed_on == ("CPU",)
    assert ov_r.settings["PERFORMANCE_HINT"] == "LATENCY"
    assert ov_r.settings["EXECUTION_DEVICES"] == "CPU"
    assert ov_r.settings["INFERENCE_PRECISION_HINT"] == "f32"  # fp32 IR runs at fp32


def test_async_throughput_per_runtime(on_cpu_profile):
    torch_r, ort_r, ov_r = on_cpu_profile
    assert ov_r.async_throughput.method == "OpenVINO AsyncInferQueue (THROUGHPUT)"
    assert ov_r.async_throughput.settings["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert ov_r.async_throughput.requests == int(
        ov_r.async_throughput.settings["OPTIMAL_NUMBER_OF_INFER_REQUESTS"])
    assert "ONNX Runtime session run from" in ort_r.async_throughput.method
    for r in on_cpu_profile:
        a = r.async_throughput
        assert a.runs == 2 and a.throughput_ips == pytest.approx(a.runs * a.batch_size / a.seconds)


def test_batch_sweep_uses_the_profile_sizes(on_cpu_profile):
    for r in on_cpu_profile:
        assert [p.batch_size for p in r.sweep] == [1, 8]  # devices/cpu.toml
        assert r.sweep[0].p50_ms == r.latency.p50_ms  # batch 1 is the latency measurement
        assert r.sweep[1].throughput_ips == pytest.approx(8000 / r.sweep[1].mean_ms)


def test_result_round_trips_through_json(on_cpu_profile):
    for r in on_cpu_profile:
        again = BenchmarkResult.from_dict(json.loads(json.dumps(r.to_dict())))
        assert again == r


def test_from_dict_checks_keys():
    with pytest.raises(ConfigError, match="unknown key 'colour'.*valid keys: .*model"):
        BenchmarkResult.from_dict({"model": "m", "colour": 1})
    with pytest.raises(ConfigError, match="no 'model'"):
        BenchmarkResult.from_dict({})
    assert BenchmarkResult.from_dict({"model": "m", "colour": 1}, strict=False).model == "m"


def test_remote_results_join_the_table(on_cpu_profile):
    remote = dict(on_cpu_profile[1].to_dict(), host="pi5", profile="raspberry-pi-5")
    table = render_table([*on_cpu_profile, BenchmarkResult.from_dict(remote)])
    assert "pi5:raspberry-pi-5" in table


def test_csv_has_every_field(on_cpu_profile):
    rows = list(csv.DictReader(io.StringIO(render_csv(on_cpu_profile))))
    assert len(rows) == 3
    assert rows[2]["settings.PERFORMANCE_HINT"] == "LATENCY"
    assert float(rows[1]["latency.p50_ms"]) == pytest.approx(on_cpu_profile[1].latency.p50_ms)
    assert float(rows[0]["sweep.b8.throughput_ips"]) > 0
    assert rows[1]["executed_on"] == "CPUExecutionProvider"


def test_markdown(on_cpu_profile):
    text = render_markdown(on_cpu_profile, {"cpu": "Test CPU", "cpu_flags": ["avx2"],
                                            "logical_cores": 2, "versions": {"edgessl": "0"}})
    lines = text.splitlines()
    assert lines[0].startswith("| model | target | runtime | executed on |")
    assert lines[1].startswith("| --- |") and "---: |" in lines[1]
    assert len([ln for ln in lines if ln.startswith("| ")]) == 5
    assert "Host: Test CPU (2 logical cores; avx2)" in text
    assert "OpenVINO CPU" in text  # what executed, in words


def test_plot(on_cpu_profile, tmp_path):
    pytest.importorskip("matplotlib")
    from edgessl.benchmark.plot import write_plot

    path = write_plot(on_cpu_profile, tmp_path / "plots" / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- unavailable targets -----------------------------------------------------------------------

@pytest.mark.skipif(HAS_CUDA_EP, reason="this host's ONNX Runtime has the CUDA EP")
def test_single_unavailable_target_is_an_error(artifacts):
    with pytest.raises(DeviceUnavailableError, match=r"nvidia-gpu.*onnxruntime-gpu"):
        benchmark_models([artifacts["onnx"]], BenchmarkConfig(**TINY, profiles=("nvidia-gpu",)))


@pytest.mark.skipif("NPU" in OV_DEVICES, reason="this host has an NPU")
def test_several_targets_skip_the_unavailable(artifacts):
    results = benchmark_models([artifacts["openvino"], artifacts["onnx"]],
                               BenchmarkConfig(**TINY, profiles=("cpu", "intel-npu")))
    assert [(r.profile, r.runtime, r.skipped is None) for r in results] == [
        ("cpu", "openvino", True), ("intel-npu", "openvino", False),
        ("cpu", "onnxruntime", True), ("intel-npu", "onnxruntime", False)]
    assert "sees no NPU device" in results[1].skipped
    assert "does not use onnxruntime" in results[3].skipped
    table = render_table(results)
    assert table.count("skipped (see below)") == 2
    assert "skipped: model.xml on intel-npu: profile 'intel-npu' (openvino) is unavailable" \
        in table.replace("openvino/model.xml", "model.xml")


def test_profile_without_the_model_runtime(artifacts):
    with pytest.raises(DeviceUnavailableError, match="does not use onnxruntime"):
        benchmark_models([artifacts["onnx"]], BenchmarkConfig(**TINY, profiles=("intel-gpu",)))


@pytest.mark.skipif(HAS_CUDA_EP, reason="this host's ONNX Runtime has the CUDA EP")
def test_onnxruntime_refuses_a_missing_provider(artifacts):
    from edgessl.backends import onnxruntime_rt
    from edgessl.devices.profile import load_profile

    with pytest.raises(DeviceUnavailableError, match=r"no TensorrtExecutionProvider.*pip "):
        onnxruntime_rt.load(artifacts["onnx"], profile=load_profile("nvidia-gpu"))


# --- static shapes, threads, time budget, data -------------------------------------------------

STATIC_PROFILE = """description = "static-shape CPU, as an NPU would be driven"
runtimes = ["openvino", "onnxruntime"]
threads = 1
static_shapes = true
batch_sizes = [1, 2]
"""


def test_static_shape_profile_with_data(artifacts, digits_dir, tmp_path):
    profile = tmp_path / "static-cpu.toml"
    profile.write_text(STATIC_PROFILE)
    config = BenchmarkConfig(warmup=1, iterations=3, async_runs=0, data=str(digits_dir),
                             profiles=(str(profile),), time_budget_s=0.02)
    ov_r, ort_r = benchmark_models([artifacts["openvino"], artifacts["onnx"]], config)
    assert ov_r.settings["INFERENCE_NUM_THREADS"] == "1"
    assert ort_r.settings["intra_op_num_threads"] == 1
    assert ov_r.top1 == pytest.approx(ort_r.top1, abs=0.01)  # padded fixed batches
    assert ov_r.val_images > 64
    assert [p.batch_size for p in ov_r.sweep] == [1, 2]
    assert ov_r.iterations >= 1 and ov_r.e2e_latency is not None


def test_artifact_with_embedded_preprocessing(artifacts, tiny_classifier, digits_dir, tmp_path):
    """uint8 [N, S, S, 3] input: the benchmark feeds resized pixels, not normalised floats."""
    raw = export_model(tiny_classifier, ExportConfig(format="openvino", embed_preprocessing=True,
                                                     out=str(tmp_path / "raw"))).path
    config = BenchmarkConfig(warmup=1, iterations=2, async_runs=2, data=str(digits_dir))
    raw_r, float_r = benchmark_models([raw, artifacts["openvino"]], config)
    assert raw_r.top1 == pytest.approx(float_r.top1, abs=0.01)
    assert raw_r.e2e_latency is not None and raw_r.async_throughput.runs == 2


def test_static_batch_profile_needs_that_batch(artifacts, tmp_path):
    profile = tmp_path / "fixed.toml"
    profile.write_text('runtimes = ["openvino"]\nstatic_batch = 4\nbatch_sizes = [4]\n')
    with pytest.raises(ConfigError, match="--batch-size 4"):
        benchmark_models([artifacts["openvino"]],
                         BenchmarkConfig(**TINY, profiles=(str(profile),)))


def test_measure_pieces():
    from edgessl.runtime.measure import (
        Timing,
        encoded_images,
        peak_rss_mib,
        reset_peak_rss,
        time_runs,
    )

    calls = []
    first, timings = time_runs(lambda: calls.append(1), Timing(warmup=2, iterations=4))
    assert len(calls) == 7 and len(timings) == 4 and first >= 0
    _, timed = time_runs(lambda: None, Timing(warmup=0, iterations=1, time_budget_s=0.01))
    assert len(timed) > 1  # a budget runs until it is spent, not a fixed count
    from PIL import Image

    (png,) = encoded_images(1, 16)
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    reset_peak_rss()
    before = peak_rss_mib()
    block = np.ones(64 * 2**20, np.uint8)  # 64 MiB touched
    after = peak_rss_mib()
    del block
    if before is not None:
        assert after >= before + 50


# --- the command -------------------------------------------------------------------------------

@pytest.fixture
def cli():
    from typer.testing import CliRunner

    import edgessl.cli.benchmark_cmd  # noqa: F401 - registers the command
    from edgessl.cli.app import app

    return CliRunner(), app


def test_command_writes_every_output(cli, artifacts, tmp_path):
    pytest.importorskip("matplotlib")
    runner, app = cli
    out = {k: tmp_path / f"b.{k}" for k in ("json", "csv", "md", "png")}
    result = runner.invoke(app, [
        "benchmark", str(artifacts["onnx"]), str(artifacts["openvino"]), "--profile", "cpu",
        "--profile", "intel-gpu", "--iterations", "2", "--warmup", "0", "--async-runs", "1",
        "--batch-sizes", "1,2", "--json", str(out["json"]), "--csv", str(out["csv"]),
        "--markdown", str(out["md"]), "--plot", str(out["png"])])
    assert result.exit_code == 0, result.output
    assert "host: " in result.stdout and "batch sweep" in result.stdout
    if "GPU" not in OV_DEVICES:
        assert "skipped: model.onnx on intel-gpu" in result.stdout.replace("onnx/model", "model")
    data = json.loads(out["json"].read_text())
    assert data["host"]["cpu_flags"] == list(HOST.cpu.flags)
    assert set(data["profiles"]) == {"cpu", "intel-gpu"}
    assert data["config"]["batch_sizes"] == [1, 2]
    assert [r["profile"] for r in data["results"]] == ["cpu", "intel-gpu"] * 2
    assert all(p.stat().st_size > 100 for p in out.values())


@pytest.mark.skipif(HAS_CUDA_EP, reason="this host's ONNX Runtime has the CUDA EP")
def test_command_unavailable_target_exits_2(cli, artifacts):
    runner, app = cli
    result = runner.invoke(app, ["benchmark", str(artifacts["onnx"]), "--profile", "nvidia-gpu"])
    assert result.exit_code == 2
    assert "unavailable" in result.output and "to fix: pip uninstall onnxruntime" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "match"), [
    (["--profile", "cpu", "--device", "CPU"], "either --device or --profile"),
    (["--profile", "cpuu"], "Did you mean 'cpu'"),
    (["--batch-sizes", "1,x"], "comma-separated integers"),
])
def test_command_bad_flags(cli, artifacts, args, match):
    runner, app = cli
    result = runner.invoke(app, ["benchmark", str(artifacts["onnx"]), *args])
    assert result.exit_code == 2 and match in result.output


# --- accelerators (skipped where absent) -------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA_EP, reason="needs onnxruntime-gpu with the CUDA EP")
def test_nvidia_gpu_profile_runs_on_cuda(artifacts, tmp_path):
    profile = tmp_path / "cuda.toml"
    profile.write_text('runtimes = ["onnxruntime"]\ndevice = "CUDA"\n'
                       'providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]\n')
    (r,) = benchmark_models([artifacts["onnx"]], BenchmarkConfig(**TINY, profiles=(str(profile),)))
    assert r.executed_on[0] == "CUDAExecutionProvider"


@pytest.mark.gpu
@pytest.mark.skipif("TensorrtExecutionProvider" not in HOST.onnxruntime_providers,
                    reason="needs onnxruntime-gpu with TensorRT")
def test_nvidia_gpu_profile_runs_on_tensorrt(artifacts):
    (r,) = benchmark_models([artifacts["onnx"]],
                            BenchmarkConfig(**TINY, profiles=("nvidia-gpu",)))
    assert r.executed_on[:2] == ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@pytest.mark.gpu
@pytest.mark.skipif(not HOST.cuda_devices, reason="needs a CUDA GPU for PyTorch")
def test_nvidia_gpu_profile_runs_pytorch_on_cuda(tiny_classifier):
    (r,) = benchmark_models([tiny_classifier],
                            BenchmarkConfig(**TINY, profiles=("nvidia-gpu",)))
    assert r.executed_on == ("cuda:0",)


@pytest.mark.gpu
@pytest.mark.skipif("GPU" not in OV_DEVICES, reason="needs an Intel GPU visible to OpenVINO")
def test_intel_gpu_profile_runs_on_the_gpu(artifacts):
    (r,) = benchmark_models([artifacts["openvino"]],
                            BenchmarkConfig(**TINY, profiles=("intel-gpu",)))
    assert r.executed_on[0].startswith("GPU")


@pytest.mark.npu
@pytest.mark.skipif("NPU" not in OV_DEVICES, reason="needs an Intel NPU visible to OpenVINO")
def test_intel_npu_profile_runs_on_the_npu(artifacts):
    (r,) = benchmark_models([artifacts["openvino"]],
                            BenchmarkConfig(**TINY, profiles=("intel-npu",)))
    assert r.executed_on == ("NPU",) and r.sweep[0].batch_size == 1
