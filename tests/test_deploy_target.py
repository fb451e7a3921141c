"""Deploy for the target: INT8 schemes follow the device profile's CPU (its ``arch`` and
``isa``), never the build host's, and a bundle's run.py uses the model its profile recommends."""

from __future__ import annotations

import json

import pytest
from deploy_helpers import HEAVY, run_blocked

from edgessl.backends.registry import load_any
from edgessl.deploy.bundle import build_bundle
from edgessl.deploy.bundle_config import DeployConfig
from edgessl.deploy.target import profile_cpu, recommend
from edgessl.devices import host
from edgessl.devices.profile import DeviceProfile, list_profiles, load_profile
from edgessl.errors import ConfigError
from edgessl.export.schemes import QuantizeConfig, check_quantize_config, choose_scheme

VNNI_HOST = host.CpuInfo("fake Xeon with VNNI", ("avx2", "avx512f", "avx512_vnni"), 2)
AVX2_HOST = host.CpuInfo("fake AVX2 CPU without VNNI", ("avx2",), 2)
# Shipped profile -> the ONNX Runtime and NNCF schemes its int8 artifacts get, whatever the host.
EXPECTED = {
    "android-arm64": ("u8s8", "w8"),  # Arm (aarch64) with dotprod and i8mm
    "apple-ane": ("u8s8", "w8"),  # Arm (arm64): 32-bit accumulation
    "cpu": None,  # the host's own CPU (isa = ["host"]): its flags decide, below
    "intel-gpu": ("u8s8-w7", "w7"),
    "intel-npu": ("u8s8", "w8"),  # Core Ultra: avx_vnni
    "jetson-orin": ("u8s8", "w8"),
    "nvidia-gpu": ("u8s8-w7", "w7"),
    "qualcomm-npu": ("u8s8", "w8"),
    "raspberry-pi-5": ("u8s8", "w8"),  # Cortex-A76 with dotprod
}


def test_every_shipped_profile_has_an_expected_scheme():
    assert set(EXPECTED) == set(list_profiles())


@pytest.mark.parametrize("build_host", [VNNI_HOST, AVX2_HOST], ids=["vnni-host", "avx2-host"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scheme_follows_the_profile_not_the_build_host(monkeypatch, name, build_host):
    monkeypatch.setattr(host, "cpu_info", lambda: build_host)
    quant = QuantizeConfig(target=profile_cpu(load_profile(name)))
    ort, nncf = (choose_scheme(q, quant) for q in ("ort", "nncf"))
    if EXPECTED[name] is None:  # the host's own profile follows the host
        expected = ("u8s8", "w8") if build_host is VNNI_HOST else ("u8s8-w7", "w7")
        assert (ort.name, nncf.name) == expected and ort.target == "this CPU"
        return
    assert (ort.name, nncf.name) == EXPECTED[name]
    assert ort.reason.startswith(f"profile '{name}'") and ort.target.startswith(f"profile '{name}'")
    assert "this CPU" not in ort.reason


@pytest.mark.parametrize(("toml", "scheme", "why"), [
    ('arch = ["x86_64"]\n', "u8s8-w7", "an x86 CPU whose ISA is not stated"),
    ('arch = ["x86_64"]\nisa = ["avx2"]\n', "u8s8-w7", "has avx2 but no VNNI"),
    ('arch = ["x86_64"]\nisa = ["avx2", "avx512f", "avx512_vnni"]\n', "u8s8", "has avx512_vnni"),
    ('isa = ["avx2", "amx_int8"]\n', "u8s8", "has amx_int8"),
    ('arch = ["aarch64"]\n', "u8s8", "an Arm CPU, whose int8 kernels"),
    ('isa = ["asimd"]\n', "u8s8", "an Arm CPU (asimd)"),
])
def test_scheme_for_a_profile_file(monkeypatch, tmp_path, toml, scheme, why):
    monkeypatch.setattr(host, "cpu_info", lambda: VNNI_HOST)
    (tmp_path / "target.toml").write_text(toml)
    choice = choose_scheme("ort", QuantizeConfig(target=profile_cpu(
        load_profile(tmp_path / "target.toml"))))
    assert choice.name == scheme and why in choice.reason, choice.reason


def test_export_keeps_following_the_host(monkeypatch):
    """Without a profile (`edgessl export`, --target-isa host) the host's CPU still decides."""
    monkeypatch.setattr(host, "cpu_info", lambda: VNNI_HOST)
    assert choose_scheme("ort", QuantizeConfig()).name == "u8s8"
    monkeypatch.setattr(host, "cpu_info", lambda: AVX2_HOST)
    choice = choose_scheme("ort", QuantizeConfig())
    assert choice.name == "u8s8-w7" and choice.target == "this CPU"


def test_a_target_is_given_once():
    quant = QuantizeConfig(target_isa="vnni", target=profile_cpu(load_profile("raspberry-pi-5")))
    with pytest.raises(ConfigError, match=r"--target-isa vnni and the device profile's CPU "
                                          r"\(profile 'raspberry-pi-5'"):
        check_quantize_config(quant, "ort")


# --- the recommended model ----------------------------------------------------------------------

def _models(*precisions):
    return [{"name": f"onnx-{p}", "precision": p} for p in precisions]


@pytest.mark.parametrize(("precisions", "bundled", "reports", "model", "why"), [
    (("fp32", "int8"), ("fp32", "int8"), {"onnx-int8": {"top1_drop_points": 0.4}}, "onnx-int8",
     "lists int8 and onnx-int8 passed validation: top-1 loss 0.40 points"),
    (("fp32", "int8"), ("fp32", "int8"), {"onnx-int8": {"top1_drop_points": 2.5}}, "onnx-fp32",
     "onnx-int8 failed validation: top-1 loss 2.50 points"),
    (("fp32", "int8"), ("fp32", "int8"), {}, "onnx-fp32", "no validation report"),
    (("fp32", "int8"), ("fp32", "int8"), {"onnx-int8": {"cosine": 0.995}}, "onnx-int8",
     "output cosine 0.9950"),  # an embedding model of unlabeled data: no top-1
    (("fp32",), ("fp32", "int8"), {"onnx-int8": {"top1_drop_points": 0.0}}, "onnx-fp32",
     "fp32 matches PyTorch"),  # int8 asked for with --precision, but not the profile's
    (("fp16", "int8"), ("fp16", "int8"), {"onnx-int8": {"top1_drop_points": 5.0},
                                          "onnx-fp16": {"top1_drop_points": 0.0}},
     "onnx-fp16", "lists fp16"),
    (("fp32", "int8"), ("int8",), {}, "onnx-int8", "the only model"),
])
def test_recommended_model(precisions, bundled, reports, model, why):
    profile = DeviceProfile(name="p", precisions=precisions)
    got = recommend(profile, _models(*bundled), reports)
    assert got["model"] == model and why in got["reason"], got


# --- a bundle built on an AVX2 host for a Raspberry Pi 5 ----------------------------------------

@pytest.fixture(scope="module")
def pi_bundle(tiny_classifier, digits_dir, tmp_path_factory):
    """A checkpoint deployed for the Pi 5 (fp32 + int8) on a build host without VNNI, where
    `edgessl export` would pick 7-bit weights."""
    out = tmp_path_factory.mktemp("deploy-target") / "pi5"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(host, "cpu_info", lambda: AVX2_HOST)
        return build_bundle(tiny_classifier, DeployConfig(
            profile="raspberry-pi-5", out=str(out), data=str(digits_dir), smoke_per_class=1,
            baseline=False))


def test_bundle_int8_is_quantized_for_the_pi(pi_bundle):
    entries = {m["name"]: m for m in pi_bundle.bundle["models"]}
    assert set(entries) == {"onnx-fp32", "onnx-int8"}
    meta = load_any(pi_bundle.path / entries["onnx-int8"]["path"]).meta
    assert meta.extra["scheme"] == "u8s8" and meta.extra["reduce_range"] is False
    assert meta.extra["scheme_target"] == "profile 'raspberry-pi-5' (aarch64)"
    assert "an Arm CPU (asimd, asimddp)" in meta.extra["scheme_reason"]
    validation = entries["onnx-int8"]["validation"]
    assert validation["scheme"] == "u8s8" and validation["cosine"] > 0.99


def test_bundle_records_and_lists_its_recommended_model_first(pi_bundle):
    info = json.loads((pi_bundle.path / "bundle.json").read_text())
    recommended = info["recommended"]
    int8 = next(m for m in info["models"] if m["name"] == "onnx-int8")
    assert int8["validation"]["top1_drop_points"] <= 1.0  # the seeded tiny model's int8 holds
    assert recommended["model"] == "onnx-int8", recommended
    assert "profile 'raspberry-pi-5' lists int8" in recommended["reason"]
    assert info["models"][0]["name"] == "onnx-int8"  # first: the default of older runners too
    readme = (pi_bundle.path / "README.md").read_text()
    assert f"Default model: **{recommended['model']}**" in readme


def _predict(bundle_dir, *args, cwd):
    """run.py predict in a child Python that cannot import torch & co."""
    code = """
    import runpy, sys
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
    return run_blocked(code, blocked=(*HEAVY, "openvino"), cwd=cwd,
                       argv=(str(bundle_dir / "run.py"), "predict",
                             str(bundle_dir / "smoke"), "--json", "-", *args))


def test_run_py_predicts_with_the_recommended_model(pi_bundle, tmp_path):
    recommended = pi_bundle.bundle["recommended"]["model"]
    proc = _predict(pi_bundle.path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == recommended
    other = next(m["name"] for m in pi_bundle.bundle["models"] if m["name"] != recommended)
    explicit = _predict(pi_bundle.path, "--model", other, cwd=tmp_path)
    assert explicit.returncode == 0, explicit.stderr
    assert json.loads(explicit.stdout)["model"] == other
