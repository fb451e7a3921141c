"""Deploy bundles: contents, a runner that needs neither torch nor an installed edgessl, the
same top-1 as the host benchmark, `edgessl deploy` errors, and (slow) a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from deploy_helpers import HEAVY, exported, run_blocked
from typer.testing import CliRunner

import edgessl.cli.deploy_cmd  # noqa: F401 - registers `edgessl deploy`
from edgessl.benchmark.host import BenchmarkConfig, BenchmarkResult, benchmark_models
from edgessl.cli import app
from edgessl.deploy.bundle import build_bundle
from edgessl.deploy.bundle_config import (
    FORMAT_FOR_RUNTIME,
    DeployConfig,
    choose_runtime,
    device_for,
    profile_file,
)
from edgessl.deploy.bundle_files import VENDORED
from edgessl.devices.profile import list_profiles, load_profile
from edgessl.errors import ConfigError
from edgessl.runtime_specs import RUNTIME_SPECS


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    return exported(tmp_path_factory, tiny_classifier, "onnx")


@pytest.fixture(scope="module")
def bundle(onnx_model, tmp_path_factory, digits_dir):
    out = tmp_path_factory.mktemp("deploy") / "tiny-cpu"
    return build_bundle(onnx_model, DeployConfig(profile="cpu", out=str(out), data=str(digits_dir),
                                                 smoke_per_class=1, iterations=5, archive=True))


@pytest.fixture(scope="module")
def host_top1(onnx_model, digits_dir):
    """What `edgessl benchmark --data` says on the host."""
    config = BenchmarkConfig(warmup=0, iterations=1, data=str(digits_dir))
    return benchmark_models([onnx_model], config)[0].top1


def test_bundle_holds_everything_the_device_needs(bundle):
    root = bundle.path
    for name in ("run.py", "README.md", "requirements.txt", "bundle.json", "baseline.json",
                 "profile.toml", "models/onnx-fp32/model.onnx", "lib/edgessl/runtime/model.py",
                 "lib/edgessl/backends/onnxruntime_rt.py"):
        assert (root / name).is_file(), name
    # Only the runtime this bundle uses travels with it.
    assert not (root / "lib/edgessl/backends/openvino_rt.py").exists()
    assert not (root / "lib/edgessl/backends/torch_rt.py").exists()
    info = json.loads((root / "bundle.json").read_text())
    assert info["runtime"] == "onnxruntime" and info["profile"]["name"] == "cpu"
    assert len(info["smoke"]["expected"]) == 10  # one image per digit
    assert all((root / f).is_file() for f in info["smoke"]["expected"])
    reqs = (root / "requirements.txt").read_text().splitlines()
    assert reqs[:3] == ["numpy>=1.26", "pillow>=10.0", "tomli>=2.0; python_version < '3.11'"]
    assert reqs[3].startswith("onnxruntime==")
    assert not any(r.startswith(("torch", "edgessl", "openvino")) for r in reqs)
    baseline = json.loads((root / "baseline.json").read_text())
    assert baseline["results"][0]["top1"] is not None and baseline["host"]["cpu"]
    readme = (root / "README.md").read_text()
    assert "pip install -r requirements.txt" in readme and "| onnx-fp32 |" in readme
    with tarfile.open(bundle.archive) as tar:
        assert "tiny-cpu/run.py" in tar.getnames()


def _run_bundle(bundle_dir: Path, *args: str, cwd: Path,
                blocked=(*HEAVY, "openvino")) -> subprocess.CompletedProcess:
    """run.py in a child Python that cannot import torch & co; edgessl must come from lib/."""
    code = """
    import runpy, sys
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        outside = [m.__file__ for k, m in sys.modules.items()
                   if k.split(".")[0] == "edgessl" and getattr(m, "__file__", None)
                   and "/lib/edgessl/" not in m.__file__]
        if outside:
            print("IMPORTED FROM OUTSIDE THE BUNDLE:", outside, file=sys.stderr)
            sys.exit(3)
    """
    return run_blocked(code, blocked=blocked, cwd=cwd, argv=(str(bundle_dir / "run.py"), *args))


def test_runner_needs_only_the_bundle_and_matches_host_top1(bundle, digits_dir, host_top1,
                                                           tmp_path):
    proc = _run_bundle(bundle.path, "benchmark", "--data", str(digits_dir), "--iterations", "3",
                       "--warmup", "1", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["batch_size"] for r in report["results"]] == [1, 8]  # the profile's batch sizes
    assert {r["top1"] for r in report["results"]} == {host_top1}
    assert report["results"][0]["runtime"] == "onnxruntime" and report["host"]["python"]
    smoke = _run_bundle(bundle.path, "smoke", cwd=tmp_path)
    assert smoke.returncode == 0 and "10/10 smoke images agree" in smoke.stdout, smoke.stderr
    predict = _run_bundle(bundle.path, "predict", str(bundle.path / "smoke"), "--top-k", "2",
                          cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    assert len(predict.stdout.strip().splitlines()) == 10


# What must agree between the host benchmark and a bundle's runner for one artifact (the rest
# are timings, which differ by noise, and the model's name: a path on each side).
SAME_FIGURES = ("profile", "runtime", "device", "provider", "executed_on", "runtime_version",
                "format", "precision", "task", "size_mib", "batch_size", "iterations", "top1",
                "val_images", "runtime_imports")


@pytest.mark.parametrize("fmt,precisions", [("onnx", ()), ("openvino", ("f32",))])
def test_host_and_bundle_give_the_same_figures_for_one_artifact(fmt, precisions, tiny_classifier,
                                                                tmp_path_factory, digits_dir,
                                                                tmp_path):
    """`edgessl benchmark --profile cpu` here and `run.py benchmark` in a bundle for cpu (in a
    Python without torch) measure the same artifact with the same options and code."""
    artifact = exported(tmp_path_factory, tiny_classifier, fmt)
    runtime = RUNTIME_SPECS.get("onnxruntime" if fmt == "onnx" else "openvino")
    (host,) = benchmark_models([artifact], BenchmarkConfig(
        warmup=1, iterations=5, batch_size=2, batch_sizes=(1, 2), async_runs=20,
        async_requests=2, data=str(digits_dir), profiles=("cpu",),
        inference_precisions=precisions))
    bundle = build_bundle(artifact, DeployConfig(profile="cpu", runtime=runtime.name, out=str(
        tmp_path / "bundle"), baseline=False, smoke_per_class=0))
    proc = _run_bundle(
        bundle.path, "benchmark", "--warmup", "1", "--iterations", "5", "--batch-size", "2",
        "--batch-sizes", "1,2", "--async-runs", "20", "--requests", "2", "--data",
        str(digits_dir), "--json", "-", *(a for p in precisions for a in
                                         ("--inference-precision", p)),
        cwd=tmp_path, blocked=[m for m in (*HEAVY, "openvino") if m != runtime.import_name])
    assert proc.returncode == 0, proc.stderr
    (device,) = [BenchmarkResult.from_dict(r) for r in json.loads(proc.stdout)["results"]]
    assert {k: getattr(device, k) for k in SAME_FIGURES} == \
        {k: getattr(host, k) for k in SAME_FIGURES}
    assert host.top1 is not None and host.runtime_imports == (runtime.import_name,)
    assert host.profile == "cpu" + "".join(f"@{p}" for p in precisions)
    hint = [r.settings.get("INFERENCE_PRECISION_HINT") for r in (host, device)]
    assert hint == [precisions[0] if precisions else None] * 2
    assert [p.batch_size for p in device.sweep] == [p.batch_size for p in host.sweep] == [1, 2]
    assert device.async_throughput.method == host.async_throughput.method
    assert device.async_throughput.runs == host.async_throughput.runs == 20
    for h, d in ((host.latency.p50_ms, device.latency.p50_ms),
                 (host.e2e_latency.p50_ms, device.e2e_latency.p50_ms),
                 (host.sweep[0].p50_ms, device.sweep[0].p50_ms),
                 (host.async_throughput.throughput_ips, device.async_throughput.throughput_ips),
                 (host.runtime_rss_mib, device.runtime_rss_mib)):
        assert h / 20 < d < h * 20, (h, d)  # the same measurement, up to a noisy machine


def test_runner_errors_are_one_line(bundle, tmp_path):
    proc = _run_bundle(bundle.path, "benchmark", "--model", "onnx-fp33", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unknown model in this bundle 'onnx-fp33'. Did you "
                                   "mean 'onnx-fp32'? Choose from: onnx-fp32")


def test_runner_applies_the_bundles_profile(onnx_model, tmp_path):
    """A bundle for an NVIDIA GPU asks ONNX Runtime for the CUDA provider on the device: on a
    host without it the runner says so (it never falls back to CPU), unless --device says CPU."""
    out = tmp_path / "gpu-bundle"
    build_bundle(onnx_model, DeployConfig(profile="nvidia-gpu", out=str(out), baseline=False,
                                          smoke_per_class=0))
    proc = _run_bundle(out, "benchmark", "--iterations", "1", "--warmup", "0", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "CUDAExecutionProvider" in proc.stderr and "nvidia-gpu" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    on_cpu = _run_bundle(out, "--device", "CPU", "benchmark", "--iterations", "1", "--warmup",
                         "0", "--json", "-", cwd=tmp_path)
    assert on_cpu.returncode == 0, on_cpu.stderr
    assert json.loads(on_cpu.stdout)["results"][0]["provider"] == "CPUExecutionProvider"


def test_vendored_files_exist():
    import edgessl

    package = Path(edgessl.__file__).parent
    assert all((package / rel).is_file() for rel in VENDORED)


@pytest.mark.parametrize("profile", list_profiles())
def test_bundle_for_every_shipped_profile(profile, tmp_path_factory, tiny_classifier, tmp_path):
    prof = load_profile(profile)
    usable = [r for r in prof.runtimes if r in FORMAT_FOR_RUNTIME]
    if not usable:
        with pytest.raises(ConfigError, match="a bundle needs onnxruntime or openvino"):
            choose_runtime(prof, None)
        return
    runtime = choose_runtime(prof, None)
    artifact = exported(tmp_path_factory, tiny_classifier, FORMAT_FOR_RUNTIME[runtime])
    result = build_bundle(artifact, DeployConfig(profile=profile, out=str(tmp_path / "b"),
                                                 baseline=False, smoke_per_class=0))
    info = result.bundle
    assert info["runtime"] == runtime == usable[0]
    assert info["device"] == device_for(prof, runtime)
    assert (tmp_path / "b" / "profile.toml").read_text() == profile_file(profile).read_text()
    reqs = (tmp_path / "b" / "requirements.txt").read_text().split()
    spec = RUNTIME_SPECS.get(runtime)
    packages = {spec.package, *(package for _, package, _ in spec.providers)}
    assert any(r.split("=")[0] in packages for r in reqs)
    assert not any(r.startswith(("torch", "edgessl")) for r in reqs)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_deploy_cli_exports_a_checkpoint_for_the_runtime(tiny_classifier, digits_dir, tmp_path):
    out = tmp_path / "ov-bundle"
    result = invoke("deploy", tiny_classifier, "--profile", "cpu", "--out", out, "--runtime",
                    "openvino", "--precision", "fp32", "--no-baseline", "--smoke-per-class", "1")
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (openvino on CPU, profile cpu)" in result.stdout
    assert (out / "models/openvino-fp32/model.xml").is_file()
    assert (out / "models/openvino-fp32/model.bin").is_file()
    assert (out / "lib/edgessl/backends/openvino_rt.py").is_file()
    assert not (out / "baseline.json").exists()
    assert (out / "requirements.txt").read_text().split()[-1].startswith("openvino==")
    proc = subprocess.run([sys.executable, str(out / "run.py"), "smoke"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "10/10" in proc.stdout, proc.stderr


@pytest.mark.parametrize("args,expected", [
    (("{model}", "--profile", "cpux"), "unknown device profile 'cpux'. Did you mean 'cpu'?"),
    (("{model}", "--runtime", "pytorch"), "unknown runtime for profile 'cpu' 'pytorch'"),
    (("{model}", "--runtime", "openvino"), "runs on onnxruntime, but this bundle uses openvino"),
    (("{model}", "--precision", "int8"), "--precision applies to a checkpoint"),
    (("{model}", "--out", "{exists}"), "exists; pass --force"),
    (("/nonexistent.onnx",), "model '/nonexistent.onnx' does not exist"),
])
def test_deploy_cli_errors(onnx_model, tmp_path, args, expected):
    (tmp_path / "exists").mkdir()
    full = [a.format(model=onnx_model, exists=tmp_path / "exists") for a in args]
    if "--out" not in full:
        full += ["--out", str(tmp_path / "new")]
    result = invoke("deploy", *full, "--no-baseline")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "new").exists()


@pytest.fixture(scope="module")
def bundle_venv(tmp_path_factory, bundle):
    """A fresh venv holding only the bundle's requirements (made once per run; pip needs the
    network or a pip cache)."""
    venv = tmp_path_factory.getbasetemp() / "bundle-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-r", str(bundle.path / "requirements.txt")],
            capture_output=True, text=True, timeout=900)
        if pip.returncode != 0:
            pytest.fail(f"pip install -r requirements.txt failed: {pip.stderr[-2000:]}")
    return python


@pytest.mark.slow
def test_bundle_in_a_fresh_venv_gives_host_top1(bundle, bundle_venv, digits_dir, host_top1,
                                               tmp_path):
    listed = subprocess.run([str(bundle_venv), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not installed & {"torch", "edgessl", "openvino", "typer"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([str(bundle_venv), str(bundle.path / "run.py"), "benchmark", "--data",
                           str(digits_dir), "--iterations", "5", "--json", "-"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert results and all(r["top1"] == host_top1 for r in results)
    smoke = subprocess.run([str(bundle_venv), str(bundle.path / "run.py"), "smoke"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
