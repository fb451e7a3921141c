"""ExecuTorch: export (fp32, int8 through PT2E), validation, the runtime, benchmark and a bundle.

Needs the optional extra (``pip install -e ".[executorch]"``; the dev extra installs it), except
the test of what happens without it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgessl.errors import CheckpointError, ConfigError, DeviceUnavailableError


def _have_executorch() -> bool:
    import importlib.util

    return importlib.util.find_spec("executorch") is not None


needs_executorch = pytest.mark.skipif(not _have_executorch(), reason="the executorch extra is "
                                      "not installed: pip install -e '.[executorch]'")


@pytest.fixture(scope="module")
def programs(tmp_path_factory, tiny_classifier):
    """The tiny classifier exported to ExecuTorch fp32 and int8, once for this module."""
    from edgessl.export.api import ExportConfig, export_model

    out = tmp_path_factory.mktemp("executorch")
    return {precision: export_model(tiny_classifier, ExportConfig(
        format="executorch", precision=precision, calib_size=64, out=str(out / precision)))
        for precision in ("fp32", "int8")}


@needs_executorch
def test_fp32_program_matches_pytorch_and_says_what_ran(programs):
    result = programs["fp32"]
    report = result.report
    assert result.path.suffix == ".pte" and result.path.with_suffix(".json").is_file()
    assert report["max_abs_diff"] < 1e-4 and report["top1_agreement"] == 1.0
    assert report["execution"]["runtime"] == "executorch"
    assert report["execution"]["provider"] == "XnnpackBackend"
    assert report["quantization"]["delegated_subgraphs"] >= 1
    meta = json.loads(result.path.with_suffix(".json").read_text())
    assert meta["format"] == "executorch" and meta["input_spec"]["shape"][0] == 1


@needs_executorch
def test_int8_program_is_quantized_with_pt2e_and_stays_close(programs):
    report = programs["int8"].report
    assert report["scheme"] == "s8" and "32 bits" in report["scheme_reason"]
    assert report["quantization"]["quantizer"] == "PT2E XNNPACKQuantizer"
    assert report["size_vs_fp32"] < 0.5, report["size_vs_fp32"]
    assert report["top1_agreement"] >= 0.9, report


@needs_executorch
def test_the_runtime_is_chosen_by_suffix_and_predicts_like_the_host(programs, digits_dir):
    from edgessl.backends.registry import load_any, runtime_name_for
    from edgessl.data.images import find_images
    from edgessl.data.preprocess import preprocess_batch
    from edgessl.runtime.model import load

    path = programs["fp32"].path
    assert runtime_name_for(path) == "executorch"
    loaded = load_any(path)
    images = sorted(find_images(digits_dir / "val"))[:3]
    x = preprocess_batch(images, loaded.meta.image_size, loaded.meta.mean, loaded.meta.std)
    scores = np.concatenate([loaded.run(x[i:i + 1]) for i in range(len(x))])
    labels = [p.label for p in load(path).predict(images)]
    assert labels == [loaded.meta.labels[i] for i in scores.argmax(1)]


@needs_executorch
def test_missing_metadata_or_another_device_is_a_clear_error(programs, tmp_path):
    from edgessl.backends import executorch_rt

    alone = tmp_path / "model.pte"
    alone.write_bytes(programs["fp32"].path.read_bytes())
    with pytest.raises(CheckpointError, match="no edgessl metadata file 'model.json'"):
        executorch_rt.load(alone)
    with pytest.raises(DeviceUnavailableError, match="on the CPU here.*not on 'GPU'"):
        executorch_rt.load(programs["fp32"].path, device="GPU")
    (tmp_path / "model.json").write_text(programs["fp32"].path.with_suffix(".json").read_text())
    alone.write_bytes(b"not a program")
    with pytest.raises(CheckpointError, match="not a program ExecuTorch can load"):
        executorch_rt.load(alone)


@needs_executorch
def test_benchmark_times_and_scores_the_program(programs, digits_dir):
    from edgessl.benchmark.host import BenchmarkConfig, benchmark_models

    results = benchmark_models([programs["int8"].path], BenchmarkConfig(
        warmup=1, iterations=3, data=str(digits_dir), async_runs=0))
    result = results[0]
    assert result.runtime == "executorch" and result.precision == "int8"
    assert result.top1 == pytest.approx(programs["int8"].report["top1_artifact"])
    assert result.latency.p50_ms > 0 and result.provider == "XnnpackBackend"


@needs_executorch
def test_a_bundle_for_an_android_phone_runs_the_program(programs, digits_dir, tmp_path):
    from edgessl.deploy.bundle import build_bundle
    from edgessl.deploy.bundle_config import DeployConfig

    out = tmp_path / "phone"
    result = build_bundle(programs["int8"].path, DeployConfig(
        profile="android-arm64", out=str(out), baseline=False, smoke_per_class=1))
    assert result.bundle["runtime"] == "executorch"
    folder = out / "models" / "executorch-int8"
    assert sorted(p.name for p in folder.iterdir() if p.suffix in (".pte", ".json")) == [
        "metadata.json", "model.json", "model.pte", "report.json"]
    assert (out / "requirements.txt").read_text().split()[-1].startswith("executorch==")
    assert "links PyTorch" in (out / "README.md").read_text()
    proc = subprocess.run([sys.executable, str(out / "run.py"), "--device", "CPU", "smoke"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and "10/10" in proc.stdout, proc.stdout + proc.stderr


def test_options_executorch_lacks_are_refused_before_work(tiny_classifier, tmp_path):
    from edgessl.export.api import ExportConfig, export_model
    from edgessl.export.schemes import QuantizeConfig

    for quant, match in ((QuantizeConfig(max_drop=0.01), "--max-drop is not an option of "
                                                          "ExecuTorch"),
                         (QuantizeConfig(scheme="w7"), "unknown ExecuTorch .PT2E. scheme 'w7'"),
                         (QuantizeConfig(calib_method="entropy"), "--calib-method is not")):
        with pytest.raises(ConfigError, match=match):
            export_model(tiny_classifier, ExportConfig(format="executorch", precision="int8",
                                                       quant=quant, out=str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="unknown executorch precision 'fp16'"):
        export_model(tiny_classifier, ExportConfig(format="executorch", precision="fp16",
                                                   out=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_without_the_extra_export_and_runtime_say_how_to_install_it(monkeypatch, tmp_path):
    from edgessl.backends import executorch_rt
    from edgessl.export import executorch_format

    monkeypatch.setitem(sys.modules, "executorch", None)  # import executorch -> ImportError
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)
    with pytest.raises(DeviceUnavailableError, match=r"pip install 'edgessl\[executorch\]'"):
        executorch_format.require_executorch()
    program = tmp_path / "model.pte"
    program.write_bytes(b"")
    program.with_suffix(".json").write_text(json.dumps(
        {"labels": ["a"], "image_size": 8, "mean": [0, 0, 0], "std": [1, 1, 1]}))
    with pytest.raises(DeviceUnavailableError, match=r"pip install 'edgessl\[executorch\]'"):
        executorch_rt.load(program)
