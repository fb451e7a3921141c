"""Host detection, device profiles and the devices command."""

from __future__ import annotations

import pytest

from edgessl.devices.host import KNOWN_FLAGS, detect_host, parse_cpuinfo
from edgessl.devices.profile import (
    DeviceProfile,
    list_profiles,
    load_profile,
    profiles_dir,
)
from edgessl.errors import ConfigError

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx avx2 avx512f avx512_vnni amx_tile amx_int8 amx_bf16
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx avx2
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes asimddp sve i8mm
CPU part\t: 0xd40
"""


def test_parse_cpuinfo_x86():
    model, flags = parse_cpuinfo(X86_CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16")


def test_parse_cpuinfo_arm():
    model, flags = parse_cpuinfo(ARM_CPUINFO)
    assert model == ""  # cpu_info() then falls back to platform.processor()
    assert flags == ("asimd", "asimddp", "sve", "i8mm")


def test_detect_host():
    host = detect_host()
    assert host.cpu.model and host.cpu.logical_cores >= 1
    assert set(host.cpu.flags) <= set(KNOWN_FLAGS)
    assert "CPUExecutionProvider" in host.onnxruntime_providers
    assert "CPU" in [d.name for d in host.openvino_devices]
    assert all(d.full_name for d in host.openvino_devices)
    assert host.versions["onnxruntime"] != "not installed"
    assert host.problems == {}


# --- profiles ----------------------------------------------------------------------------------

def test_shipped_profiles_folder():
    assert profiles_dir().is_dir()
    assert "cpu" in list_profiles()


@pytest.mark.parametrize("name", list_profiles())
def test_shipped_profile_validates(name):
    profile = load_profile(name)
    assert profile.name == name and profile.description
    assert profile.runtime == profile.runtimes[0]


def test_every_runtime_of_the_table_has_its_loader():
    from edgessl.backends.registry import RUNTIMES
    from edgessl.runtime_specs import RUNTIME_SPECS

    assert RUNTIMES.names() == RUNTIME_SPECS.names()
    for name, spec in RUNTIME_SPECS.items():
        module = RUNTIMES.get(name)
        assert module.__name__ == spec.module
        assert callable(module.load) and callable(module.accepts)


def test_profile_from_path(tmp_path):
    path = tmp_path / "edge-box.toml"
    path.write_text('runtimes = ["openvino"]\ndevice = "NPU"\nstatic_batch = 1\n')
    profile = load_profile(path)
    assert (profile.name, profile.runtime, profile.device, profile.static_batch) == (
        "edge-box", "openvino", "NPU", 1)


@pytest.mark.parametrize(("text", "match"), [
    ('runtimes = ["openvino"]\nthreadz = 4\n', r"unknown key 'threadz'\. Valid keys: .*threads"),
    ("threads = \"four\"\n", r"'threads' must be int"),
    ('batch_sizes = [1, "8"]\n', r"'batch_sizes' must be"),
    ('runtimes = ["onnxruntim"]\n', r"Did you mean 'onnxruntime'"),
    ('precisions = ["int4"]\n', r"unknown precision 'int4'"),
    ("threads = -1\n", r"'threads' must be ≥ 0"),
    ("not toml at all", r"not valid TOML"),
])
def test_bad_profile_is_a_config_error(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_profile(path)


def test_unknown_profile_name_suggests():
    with pytest.raises(ConfigError, match=r"unknown device profile 'cpuu'\. Did you mean 'cpu'"):
        load_profile("cpuu")


def test_missing_profile_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile("nowhere/else.toml")


def test_profile_defaults_are_valid():
    assert DeviceProfile(name="x").runtime == "onnxruntime"


# --- the command -------------------------------------------------------------------------------

def test_devices_command():
    from typer.testing import CliRunner

    import edgessl.cli.devices_cmd  # noqa: F401 - registers the command
    from edgessl.cli.app import app

    result = CliRunner().invoke(app, ["devices"])
    assert result.exit_code == 0, result.output
    host = detect_host()
    assert host.cpu.model in result.stdout
    assert "CPUExecutionProvider" in result.stdout
    assert "OpenVINO:     CPU" in result.stdout
    assert "CUDA:" in result.stdout
    assert "\n  cpu " in result.stdout
