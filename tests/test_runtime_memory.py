"""The memory an artifact needs on its own, measured in a process that holds only its runtime,
the same way by the host benchmark and by a bundle's runner."""

from __future__ import annotations

import pytest
from deploy_helpers import exported

from edgessl.benchmark.host import BenchmarkConfig, benchmark_models
from edgessl.benchmark.report import render_table


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    return exported(tmp_path_factory, tiny_classifier, "onnx")


def test_an_artifact_reports_its_runtimes_memory_not_the_benchmarks(onnx_model,
                                                                    tiny_classifier):
    artifact, checkpoint = benchmark_models([onnx_model, tiny_classifier], BenchmarkConfig(
        warmup=0, iterations=2, async_runs=0, end_to_end=False))
    assert artifact.runtime_imports == ("onnxruntime",)  # no torch in that process
    assert 0 < artifact.runtime_rss_mib < 250, artifact.runtime_rss_mib
    assert artifact.runtime_rss_mib < artifact.peak_rss_mib  # this process holds torch
    assert checkpoint.runtime_rss_mib is None  # PyTorch: the benchmarking process is the runtime
    rows = render_table([artifact, checkpoint]).splitlines()[2:4]  # after the header lines
    assert rows[0].split()[-1] == f"{artifact.runtime_rss_mib:.0f}"
    assert rows[1].split()[-1] == f"{checkpoint.peak_rss_mib:.0f}*"


def test_the_bundle_runner_measures_memory_the_same_way(onnx_model):
    from edgessl.runtime.bench import MeasureConfig, Target, measure
    from edgessl.runtime.model import load

    host = benchmark_models([onnx_model], BenchmarkConfig(warmup=0, iterations=2, async_runs=0,
                                                          end_to_end=False))[0]
    device = measure(load(onnx_model).loaded, MeasureConfig(warmup=0, iterations=2,
                                                            async_runs=0, end_to_end=False),
                     Target(name="model.onnx"))
    assert device.runtime_imports == ("onnxruntime",)
    assert device.runtime_rss_mib == pytest.approx(host.runtime_rss_mib, rel=0.3)
