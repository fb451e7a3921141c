"""Inference precision (f32/bf16/f16) as a profile and benchmark setting: honoured, read back,
refused where the device or runtime cannot give it, and reported with its top-1."""

from __future__ import annotations

import pytest
from deploy_helpers import exported

from edgessl.backends import openvino_rt
from edgessl.devices.profile import DeviceProfile, profile_from_file
from edgessl.errors import ConfigError, DeviceUnavailableError


@pytest.fixture(scope="module")
def ov_model(tmp_path_factory, tiny_classifier):
    return exported(tmp_path_factory, tiny_classifier, "openvino")


def _host_has_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def test_profiles_check_the_precision_and_the_runtimes_that_take_it(tmp_path):
    assert DeviceProfile(name="p", runtimes=("openvino",), inference_precision="bf16")
    with pytest.raises(ConfigError, match="unknown inference_precision 'fp16'. Did you mean "
                                          "'f16'"):
        DeviceProfile(name="p", runtimes=("openvino",), inference_precision="fp16")
    with pytest.raises(ConfigError, match="bf16 is a setting of openvino; onnxruntime cannot "
                                          "take it"):
        DeviceProfile(name="p", runtimes=("openvino", "onnxruntime"), inference_precision="bf16")
    toml = tmp_path / "bf16-box.toml"
    toml.write_text('runtimes = ["openvino"]\ninference_precision = "bf16"\n')
    assert profile_from_file(toml).inference_precision == "bf16"


@pytest.mark.parametrize("asked,got,fails", [("f32", "f32", False), ("bf16", "bf16", False),
                                             ("bf16", "f32", True), ("f16", "f32", True)])
def test_a_precision_the_device_did_not_give_is_an_error(asked, got, fails):
    """Both kinds of CPU, without the hardware: OpenVINO reads back what it compiled."""
    def check():
        openvino_rt.check_inference_precision(asked, got, "CPU", ("FP32", "INT8"), "model.xml")

    if not fails:
        check()
        return
    with pytest.raises(DeviceUnavailableError, match=f"in {got}, not the {asked} the profile "
                                                     r"asks for.*capabilities: FP32, INT8"):
        check()


# Run in a fresh interpreter: on this project's AVX512-BF16 host, OpenVINO 2026.4 freeing a
# bf16-compiled model (here, at the end of the test) has left the process unable to take a
# signal (SIGTERM to itself segfaults), which broke later in-process signal tests.
_COMPILE_IN_EACH_PRECISION = """
import sys
from pathlib import Path
from edgessl.backends import openvino_rt
from edgessl.devices.profile import DeviceProfile
from edgessl.errors import DeviceUnavailableError

path = Path(sys.argv[1])
f32 = openvino_rt.load(path, profile=DeviceProfile(name="p", runtimes=("openvino",),
                                                   inference_precision="f32"))
print("f32", f32.settings["INFERENCE_PRECISION_HINT"])
try:
    bf16 = openvino_rt.load(path, profile=DeviceProfile(name="p", runtimes=("openvino",),
                                                        inference_precision="bf16"))
    print("bf16", bf16.settings["INFERENCE_PRECISION_HINT"], bf16.execution.provider)
except DeviceUnavailableError as exc:
    print("refused", exc)
"""


def test_openvino_compiles_in_the_asked_precision_or_refuses(ov_model):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _COMPILE_IN_EACH_PRECISION, str(ov_model)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    f32, bf16 = out.stdout.strip().splitlines()[-2:]
    assert f32 == "f32 f32"
    if _host_has_bf16():  # AVX512_BF16 / AMX hosts
        assert bf16.startswith("bf16 bf16 ") and "inference precision bf16" in bf16
    else:
        assert bf16.startswith("refused ") and "lacks bf16 compute" in bf16


def test_benchmark_gives_one_row_per_precision_with_its_top1(ov_model, digits_dir):
    from edgessl.benchmark.host import BenchmarkConfig, benchmark_models

    results = benchmark_models([ov_model], BenchmarkConfig(
        warmup=1, iterations=3, async_runs=0, data=str(digits_dir),
        inference_precisions=("f32", "bf16")))
    assert [r.profile for r in results] == ["cpu@f32", "cpu@bf16"]
    assert results[0].top1 is not None and results[0].settings["INFERENCE_PRECISION_HINT"] == "f32"
    if _host_has_bf16():
        assert results[1].top1 is not None
        assert results[1].settings["INFERENCE_PRECISION_HINT"] == "bf16"
    else:
        assert "lacks bf16 compute" in results[1].skipped


def test_runtimes_without_the_setting_are_refused(tmp_path_factory, tiny_classifier):
    from edgessl.benchmark.host import BenchmarkConfig, benchmark_models, precision_variants
    from edgessl.devices.profile import load_profile

    with pytest.raises(ConfigError, match="--inference-precision applies to openvino; profile "
                                          "'nvidia-gpu' uses onnxruntime"):
        precision_variants([load_profile("nvidia-gpu")], ("bf16",))
    with pytest.raises(ConfigError, match="unknown --inference-precision 'bf17'"):
        BenchmarkConfig(inference_precisions=("bf17",))
    onnx_model = exported(tmp_path_factory, tiny_classifier, "onnx")
    with pytest.raises(DeviceUnavailableError, match="nothing to measure.*does not use "
                                                     "onnxruntime"):
        benchmark_models([onnx_model], BenchmarkConfig(warmup=0, iterations=1, async_runs=0,
                                                       inference_precisions=("f32",)))


def test_remote_runs_each_precision_on_the_device_as_the_host_does(ov_model, monkeypatch):
    """The bundle's runner (run here: deploy_helpers.local_ssh) compiles in each precision,
    reads it back, and skips one the device lacks, as the host benchmark does."""
    import sys

    from deploy_helpers import local_ssh

    from edgessl.benchmark.host import BenchmarkConfig
    from edgessl.deploy.remote import remote_results

    sent = local_ssh(monkeypatch)
    results = remote_results([ov_model], "ssh://nobody@127.0.0.1:1", [], BenchmarkConfig(
        warmup=0, iterations=2, async_runs=0, end_to_end=False,
        inference_precisions=("f32", "bf16")), python=sys.executable)
    argv = next(a for a in sent if "benchmark" in a)
    assert argv[-4:] == ["--inference-precision", "f32", "--inference-precision", "bf16"]
    assert [r.profile for r in results] == ["cpu@f32", "cpu@bf16"]
    assert results[0].runtime == "openvino"
    assert results[0].settings["INFERENCE_PRECISION_HINT"] == "f32"
    if _host_has_bf16():
        assert results[1].settings["INFERENCE_PRECISION_HINT"] == "bf16"
    else:
        assert "lacks bf16 compute" in results[1].skipped


def test_a_bundle_whose_runtime_has_no_precision_setting_refuses_it(tmp_path_factory,
                                                                     tiny_classifier,
                                                                     monkeypatch):
    import sys

    from cli_helpers import invoke, one_line_error
    from deploy_helpers import local_ssh

    local_ssh(monkeypatch)
    onnx_model = exported(tmp_path_factory, tiny_classifier, "onnx")
    line = one_line_error(invoke("benchmark", onnx_model, "--remote", "ssh://nobody@127.0.0.1:1",
                                 "--remote-python", sys.executable, "--iterations", "1",
                                 "--inference-precision", "bf16"))
    assert "--inference-precision applies to openvino; this bundle runs onnxruntime" in line, line
