"""Device profiles: every shipped one validates, availability answers on made-up hosts, and
``edgessl devices`` says for every profile whether this host runs it, why not, and the fix."""

from __future__ import annotations

import dataclasses

import pytest

from edgessl.devices.availability import check_profile, check_runtime, summarize
from edgessl.devices.host import CpuInfo, CudaDevice, HostInfo, OpenVinoDevice, detect_host
from edgessl.devices.profile import DeviceProfile, list_profiles, load_profile
from edgessl.errors import ConfigError

SHIPPED = ("apple-ane", "cpu", "intel-gpu", "intel-npu", "jetson-orin", "nvidia-gpu",
           "qualcomm-npu", "raspberry-pi-5")
VERSIONS = {"onnxruntime": "1.32.0", "openvino": "2026.4", "torch": "2.14.1"}


def fake_host(**changes) -> HostInfo:
    """An x86-64 Linux host with a CPU only, as this test machine (changed by ``changes``)."""
    base = HostInfo(
        cpu=CpuInfo("Test CPU", ("avx2",), 4),
        openvino_devices=(OpenVinoDevice("CPU", "Test CPU"),),
        onnxruntime_providers=("CPUExecutionProvider",),
        cuda_devices=(), versions=VERSIONS, system="Linux", machine="x86_64", board="",
        openvino_plugins={"GPU": "libOpenCL.so.1: cannot open shared object file", "NPU": ""},
    )
    return dataclasses.replace(base, **changes)


def test_every_required_profile_ships():
    assert set(SHIPPED) <= set(list_profiles())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_is_complete(name):
    profile = load_profile(name)
    assert profile.name == name and profile.description and profile.batch_sizes
    assert profile.precisions and profile.runtimes
    if name != "cpu":  # every accelerator/board says how to get it
        assert profile.setup


def test_profile_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_profile("cpu").threads = 3


@pytest.mark.parametrize(("text", "match"), [
    ('providers = ["CUDAExecutionProvidr"]\n', r"Did you mean 'CUDAExecutionProvider'"),
    ('performance_hint = "latency"\n', r"unknown performance_hint 'latency'.*LATENCY"),
    ('throughput_hint = "FAST"\n', r"unknown throughput_hint 'FAST'"),
    ("streams = -2\n", r"'streams' must be ≥ 0"),
    ("static_shapes = 1\n", r"'static_shapes' must be bool"),
    ('runtimes = ["pytorch"]\ndevice = "NPU"\n', r"'pytorch' needs 'device' CPU or CUDA"),
    ("[provider_options.CUDAExecutionProvider]\ndevice_id = 0\n",
     r"options for 'CUDAExecutionProvider', which is not in 'providers'"),
    ("static_batch = 4\nbatch_sizes = [1, 4]\n", r"must be \[4\] with 'static_batch' = 4"),
    ('arch = "aarch64"\n', r"'arch' must be"),
    ('isa = "avx2"\n', r"'isa' must be"),
    ('isa = ["avx512vnni"]\n', r"unknown ISA flag in 'isa' 'avx512vnni'\. Did you mean "
                                r"'avx512_vnni'\?"),
    ('isa = ["avx2", "asimddp"]\n', r"'isa' mixes x86 and Arm flags \(avx2, asimddp\)"),
    ('isa = ["host", "avx2"]\n', r"'isa' = \['host'\] means the host's own CPU"),
    ('arch = ["aarch64"]\nisa = ["avx2"]\n', r"'isa' lists x86 flags \(avx2\) but 'arch' is "
                                             r"aarch64"),
    ("unknown_thing = 1\n", r"unknown key 'unknown_thing'\. Valid keys: .*throughput_hint"),
])
def test_bad_profile_names_the_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_provider_options_load_as_tables():
    profile = load_profile("nvidia-gpu")
    assert profile.accelerator_providers == ("TensorrtExecutionProvider",
                                             "CUDAExecutionProvider")
    assert profile.provider_options["TensorrtExecutionProvider"]["trt_fp16_enable"] is True


# --- availability on made-up hosts --------------------------------------------------------------

def test_cpu_profile_available_everywhere():
    (ort, ov, pt) = check_profile(load_profile("cpu"), fake_host())
    assert ort.available and ov.available and pt.available
    assert summarize([ort, ov, pt]).runtime == "onnxruntime/openvino/pytorch"


@pytest.mark.parametrize(("name", "host", "reason", "fix"), [
    ("nvidia-gpu", fake_host(), r"no TensorrtExecutionProvider, CUDAExecutionProvider "
     r"\(missing package", "onnxruntime-gpu"),
    ("intel-gpu", fake_host(), "GPU plugin cannot load.*libOpenCL", "intel-opencl-icd"),
    ("intel-npu", fake_host(), "sees no NPU device", "linux-npu-driver"),
    ("qualcomm-npu", fake_host(), "needs CPU architecture aarch64", "onnxruntime-qnn"),
    ("qualcomm-npu", fake_host(machine="ARM64", system="Windows"),
     "no QNNExecutionProvider", "pip install onnxruntime-qnn"),
    ("apple-ane", fake_host(), "needs Darwin", "macOS"),
    ("apple-ane", fake_host(system="Darwin", machine="arm64"), "no CoreMLExecutionProvider",
     "macOS wheel"),
    ("raspberry-pi-5", fake_host(machine="aarch64"), "needs a Raspberry Pi 5 board",
     "Raspberry Pi OS"),
    ("jetson-orin", fake_host(), "needs CPU architecture aarch64", "JetPack"),
])
def test_unavailable_profiles_say_why_and_how(name, host, reason, fix):
    status = summarize(check_profile(load_profile(name), host))
    assert not status.available
    assert re_search(reason, status.reason), status.reason
    assert fix in status.fix
    assert status.message().startswith(f"profile '{name}' (")


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


@pytest.mark.parametrize(("name", "host"), [
    ("nvidia-gpu", fake_host(onnxruntime_providers=("TensorrtExecutionProvider",
                                                    "CUDAExecutionProvider",
                                                    "CPUExecutionProvider"),
                             cuda_devices=(CudaDevice(0, "NVIDIA H200"),))),
    ("intel-gpu", fake_host(openvino_devices=(OpenVinoDevice("CPU", "c"),
                                              OpenVinoDevice("GPU.0", "Intel Arc A770")))),
    ("intel-npu", fake_host(openvino_devices=(OpenVinoDevice("NPU", "Intel AI Boost"),))),
    ("raspberry-pi-5", fake_host(machine="aarch64", board="Raspberry Pi 5 Model B Rev 1.0")),
    ("jetson-orin", fake_host(machine="aarch64", board="NVIDIA Jetson AGX Orin Developer Kit",
                              onnxruntime_providers=("TensorrtExecutionProvider",
                                                     "CUDAExecutionProvider",
                                                     "CPUExecutionProvider"))),
    ("apple-ane", fake_host(system="Darwin", machine="arm64",
                            onnxruntime_providers=("CoreMLExecutionProvider",
                                                   "CPUExecutionProvider"))),
])
def test_profiles_available_on_their_hardware(name, host):
    assert summarize(check_profile(load_profile(name), host)).available


def test_pytorch_cuda_needs_a_gpu():
    profile = load_profile("nvidia-gpu")
    status = check_runtime(profile, "pytorch", fake_host())
    assert not status.available and "no CUDA GPU" in status.reason
    gpu = fake_host(cuda_devices=(CudaDevice(0, "NVIDIA H200"),))
    assert check_runtime(profile, "pytorch", gpu).available


def test_runtime_outside_the_profile_is_unavailable():
    status = check_runtime(load_profile("intel-npu"), "onnxruntime", fake_host())
    assert not status.available and "does not use onnxruntime" in status.reason
    assert "openvino" in status.fix


def test_missing_runtime_package():
    host = fake_host(problems={"openvino": "not installed (openvino)"},
                     openvino_devices=())
    status = check_runtime(load_profile("cpu"), "openvino", host)
    assert not status.available and "not installed" in status.reason
    assert status.fix == "pip install openvino"


def test_this_host_runs_cpu_and_nothing_else():
    """The test machines have a CPU only (the gpu/npu-marked tests cover the rest)."""
    host = detect_host()
    if host.cuda_devices or len(host.openvino_devices) > 1 or host.machine != "x86_64":
        pytest.skip("this host has an accelerator or is not x86-64")
    for name in SHIPPED:
        status = summarize(check_profile(load_profile(name), host))
        assert status.available == (name == "cpu"), (name, status.reason)


def test_devices_command_lists_every_profile():
    from typer.testing import CliRunner

    import edgessl.cli.devices_cmd  # noqa: F401 - registers the command
    from edgessl.cli.app import app

    result = CliRunner().invoke(app, ["devices"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in SHIPPED:
        (line,) = [ln for ln in lines if ln.startswith(f"  {name} ")]
        assert " available " in line or " unavailable " in line
    host = detect_host()
    if not host.cuda_devices and len(host.openvino_devices) == 1:
        assert any(ln.startswith("  cpu ") and " available " in ln for ln in lines)
        assert "why: " in result.stdout and "fix: " in result.stdout
        assert result.stdout.count("why: ") == len(list_profiles()) - 1


def test_user_profile_file(tmp_path):
    path = tmp_path / "my-box.toml"
    path.write_text('runtimes = ["openvino"]\nthreads = 2\nperformance_hint = "THROUGHPUT"\n'
                    'openvino_config = { CACHE_DIR = "cache" }\n')
    profile = load_profile(str(path))
    assert profile == DeviceProfile(name="my-box", runtimes=("openvino",), threads=2,
                                    performance_hint="THROUGHPUT",
                                    openvino_config={"CACHE_DIR": "cache"})
