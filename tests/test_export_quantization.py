"""INT8 done right: ISA-aware schemes, knobs, accuracy-aware mode; deployable artifacts
(embedded preprocessing, static batch, simplification)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from edgessl.backends.registry import load_any
from edgessl.errors import ConfigError, EdgesslError
from edgessl.export.api import REPORT_FILE, ExportConfig, export_model
from edgessl.export.schemes import QuantizeConfig, choose_scheme

CALIB = 32
VNNI = ("avx2", "avx512f", "avx512_vnni")
AVX2_ONLY = ("avx2",)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("quantizer", "flags", "scheme"), [
    ("ort", VNNI, "u8s8"), ("ort", AVX2_ONLY, "u8s8-w7"), ("ort", ("avx512f",), "u8s8-w7"),
    ("ort", ("asimd", "asimddp"), "u8s8"), ("nncf", VNNI, "w8"), ("nncf", AVX2_ONLY, "w7"),
    ("nncf", ("avx2", "amx_int8"), "w8"),
])
def test_scheme_follows_the_cpu(quantizer, flags, scheme):
    choice = choose_scheme(quantizer, QuantizeConfig(), flags)
    assert choice.name == scheme
    assert ("no VNNI" in choice.reason) == (scheme in ("u8s8-w7", "w7"))


def test_host_cpu_flags_can_be_injected(monkeypatch):
    from edgessl.devices import host
    from edgessl.export import schemes

    monkeypatch.setattr(host, "cpu_info", lambda: host.CpuInfo("fake AVX2 CPU", AVX2_ONLY, 2))
    assert schemes.choose_scheme("ort", QuantizeConfig()).name == "u8s8-w7"
    assert schemes.choose_scheme("ort", QuantizeConfig(target_isa="vnni")).name == "u8s8"
    assert schemes.choose_scheme("nncf", QuantizeConfig(scheme="w7-first")).reason == \
        "chosen with --scheme"


@pytest.fixture(scope="module")
def onnx_int8(tiny_classifier, tmp_path_factory):
    """ONNX int8 for a CPU without VNNI, and the same with preprocessing inside, batch 1."""
    root = tmp_path_factory.mktemp("int8")
    base = ExportConfig(format="onnx", precision="int8", calib_size=CALIB,
                        quant=QuantizeConfig(target_isa="avx2"))
    plain = export_model(tiny_classifier, dataclasses.replace(base, out=str(root / "plain")))
    raw = export_model(tiny_classifier, dataclasses.replace(
        base, embed_preprocessing=True, static_batch=1, out=str(root / "raw")))
    return plain, raw


def test_no_vnni_target_gets_7bit_weights(onnx_int8):
    plain, _ = onnx_int8
    meta = load_any(plain.path).meta
    assert meta.extra["scheme"] == "u8s8-w7" and meta.extra["reduce_range"] is True
    report = json.loads((plain.path.parent / REPORT_FILE).read_text())
    assert report["scheme"] == "u8s8-w7" and "no VNNI" in report["scheme_reason"]
    assert report["quantization"]["calibration"] == "minmax" and report["cosine"] > 0.99


def _host_pipeline_vs_raw(plain_path, raw_path, digits_dir):
    """Top-1 of the plain artifact on host-preprocessed floats and of the raw-input artifact
    on uint8 pixels, image by image."""
    from edgessl.data.preprocess import preprocess_batch
    from edgessl.export.preprocessing import raw_batch

    plain, raw = load_any(plain_path), load_any(raw_path)
    paths = sorted((digits_dir / "val").glob("*/*.png"))[::9]
    m = plain.meta
    floats = preprocess_batch(paths, m.image_size, m.mean, m.std)
    pixels = raw_batch(paths, m.image_size)
    batch = (raw.meta.extra or {}).get("static_batch") or len(paths)
    got = np.concatenate([raw.run(pixels[i:i + batch]) for i in range(0, len(paths), batch)])
    return plain.run(floats), got


def test_embedded_preprocessing_int8_static_batch(onnx_int8, digits_dir):
    import onnx

    plain, raw = onnx_int8
    meta = load_any(raw.path).meta
    assert meta.raw_input and meta.input_spec["shape"] == [1, 16, 16, 3]
    assert meta.preprocessing["embedded"] and meta.extra["static_batch"] == 1
    graph = onnx.load(str(raw.path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 16, 16, 3]
    ref, got = _host_pipeline_vs_raw(plain.path, raw.path, digits_dir)
    assert (ref.argmax(1) == got.argmax(1)).all()
    np.testing.assert_allclose(got, ref, atol=1e-3)
    assert raw.report["top1_artifact"] == plain.report["top1_artifact"]
    with pytest.raises(Exception, match="1"):  # static batch: 2 images at once are refused
        load_any(raw.path).run(np.zeros((2, 16, 16, 3), np.uint8))


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_embedded_preprocessing_same_top1_as_host(fmt, tiny_classifier, digits_dir, tmp_path):
    """uint8 pixels into the artifact == the host's float pipeline into PyTorch."""
    from edgessl.data.preprocess import preprocess_batch
    from edgessl.export.preprocessing import raw_batch
    from edgessl.models import load_model

    raw = export_model(tiny_classifier, ExportConfig(format=fmt, embed_preprocessing=True,
                                                     out=str(tmp_path / "r")))
    model, card = load_model(tiny_classifier)
    paths = sorted((digits_dir / "val").glob("*/*.png"))[::9]
    with torch.inference_mode():
        ref = model(torch.from_numpy(preprocess_batch(paths, 16, card.mean, card.std))).numpy()
    got = load_any(raw.path).run(raw_batch(paths, 16))
    assert (ref.argmax(1) == got.argmax(1)).all()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert raw.report["max_abs_diff"] <= 1e-4 and raw.report["top1_agreement"] == 1.0
    with pytest.raises(EdgesslError, match=r"uint8 \[N, 16, 16, 3\]"):
        load_any(raw.path).run(np.zeros((1, 3, 16, 16), np.float32))


def test_edgessl_runtime_reads_raw_input_artifacts(onnx_int8, digits_dir):
    from edgessl.runtime import load

    _, raw = onnx_int8
    model = load(raw.path)
    image = sorted((digits_dir / "val").glob("*/*.png"))[0]
    assert model.raw_input and model.predict([image])[0].label in model.meta.labels


def test_max_drop_met_and_layers_reported(tiny_classifier, tmp_path):
    result = export_model(tiny_classifier, ExportConfig(
        format="openvino", precision="int8", calib_size=CALIB,
        quant=QuantizeConfig(max_drop=0.05), out=str(tmp_path / "ok")))
    report = result.report
    assert report["top1_drop_points"] <= 5
    assert report["quantization"]["accuracy_control"]["max_drop"] == 0.05
    assert isinstance(report["kept_in_float"], list) and report["compute_layers"] > 0


@pytest.mark.parametrize("fmt", ["openvino", pytest.param("onnx", marks=pytest.mark.slow)])
def test_max_drop_impossible_fails_cleanly(fmt, tiny_classifier, tmp_path):
    out = tmp_path / "no"
    with pytest.raises(EdgesslError, match=r"cannot meet --max-drop -0\.5") as info:
        export_model(tiny_classifier, ExportConfig(
            format=fmt, precision="int8", calib_size=CALIB,
            quant=QuantizeConfig(max_drop=-0.5), out=str(out)))
    assert "\n" not in str(info.value) and "layers kept in float" in str(info.value)
    assert not out.exists()


@pytest.mark.parametrize(("config", "match"), [
    (ExportConfig(quant=QuantizeConfig(scheme="w7")), "apply to int8"),
    (ExportConfig(precision="int8", quant=QuantizeConfig(scheme="u8s9")),
     "Did you mean 'u8s8'"),
    (ExportConfig(format="openvino", precision="int8", quant=QuantizeConfig(scheme="u8s8")),
     "NNCF scheme"),
    (ExportConfig(precision="int8", quant=QuantizeConfig(preset="mixed")), "NNCF option"),
    (ExportConfig(precision="int8", quant=QuantizeConfig(bias_correction=False)),
     "NNCF option"),
    (ExportConfig(format="openvino", precision="int8",
                  quant=QuantizeConfig(calib_method="entropy")), "ONNX Runtime option"),
    (ExportConfig(precision="int8", quant=QuantizeConfig(calib_method="kl")), "minmax"),
    (ExportConfig(precision="int8", quant=QuantizeConfig(target_isa="neon")), "avx2"),
    (ExportConfig(format="openvino", simplify=True), "--simplify"),
    (ExportConfig(output="embeddings"), "Did you mean 'embedding'"),
    (ExportConfig(precision="int8", output="embedding", quant=QuantizeConfig(max_drop=0.01)),
     "class scores"),
])
def test_bad_options_are_one_line_errors(config, match, tiny_classifier, tmp_path):
    with pytest.raises(ConfigError, match=match) as info:
        export_model(tiny_classifier, dataclasses.replace(config, out=str(tmp_path / "o")))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()


def test_a_static_batch_below_one_is_refused_when_the_config_is_made():
    with pytest.raises(ConfigError, match="--static-batch must be ≥ 1"):
        ExportConfig(static_batch=0)


def test_ignored_layers_and_calibration_knobs(tiny_classifier, tmp_path):
    result = export_model(tiny_classifier, ExportConfig(
        precision="int8", calib_size=CALIB, out=str(tmp_path / "i"),
        quant=QuantizeConfig(ignored=("linear",), calib_method="percentile",
                             per_channel=False)))
    report = result.report
    assert any("linear" in name for name in report["kept_in_float"])
    assert report["quantization"]["calibration"] == "percentile"
    assert report["quantization"]["per_channel"] is False
    with pytest.raises(ConfigError, match="matches no layer"):
        export_model(tiny_classifier, ExportConfig(
            precision="int8", calib_size=CALIB, out=str(tmp_path / "j"),
            quant=QuantizeConfig(ignored=("no_such_layer",))))


def test_simplify_keeps_outputs(tiny_classifier, tmp_path):
    pytest.importorskip("onnxslim")
    result = export_model(tiny_classifier, ExportConfig(simplify=True, out=str(tmp_path / "s")))
    assert result.report["simplify"].startswith("onnxslim")
    assert result.report["max_abs_diff"] <= 1e-4


def test_cli_int8_report_says_why(tiny_classifier, tmp_path):
    from typer.testing import CliRunner

    from edgessl.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["export", str(tiny_classifier), "--format", "openvino",
                                 "--precision", "int8", "--calib-size", str(CALIB),
                                 "--target-isa", "avx2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(w7)" in result.output and "no VNNI" in result.output
    assert "kept float" in result.output and "x fp32" in result.output
    bad = runner.invoke(app, ["export", str(tiny_classifier), "--precision", "int8",
                              "--scheme", "w7", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "ONNX Runtime scheme 'w7'" in bad.output
