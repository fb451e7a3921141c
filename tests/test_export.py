"""Export contract: every registered format x precision exports, loads, and matches PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgessl.backends.registry import RUNTIMES, load_any, runtime_name_for
from edgessl.checkpoint import ModelCard
from edgessl.errors import CheckpointError, ConfigError, OutputExistsError
from edgessl.export.api import REPORT_FILE, SIDECAR_FILE, ExportConfig, export_model
from edgessl.export.formats import FORMATS
from edgessl.io import file_sha256
from edgessl.models import load_model, save_model

CALIB = 32  # small calibration sample keeps int8 tests fast

CASES = [(name, precision) for name, fmt in FORMATS.items() for precision in fmt.precisions]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{p}" for f, p in CASES])
def exported(request, tiny_classifier, tmp_path_factory):
    """(format, precision, ExportResult) for each registered format and precision."""
    name, precision = request.param
    out = tmp_path_factory.mktemp("export") / f"{name}-{precision}"
    config = ExportConfig(format=name, precision=precision, calib_size=CALIB, out=str(out))
    return name, precision, export_model(tiny_classifier, config)


def test_artifact_folder_and_report(exported):
    name, precision, result = exported
    fmt = FORMATS.get(name)
    assert result.path.is_file() and result.path.suffix == fmt.suffix
    assert result.path.name == f"model{fmt.suffix}"
    if name == "openvino":
        assert result.path.with_suffix(".bin").is_file()
    on_disk = json.loads((result.path.parent / REPORT_FILE).read_text())
    assert on_disk["format"] == name and on_disk["precision"] == precision
    assert on_disk["path"] == str(result.path)
    assert on_disk["max_abs_diff"] == pytest.approx(result.report["max_abs_diff"])
    assert on_disk["val_images"] > 0 and on_disk["size_mib"] > 0
    assert on_disk["scheme"] and on_disk["fp32_size_mib"] > 0
    ratio = on_disk["size_vs_fp32"]
    assert {"fp32": 0.95 < ratio < 1.05, "fp16": ratio < 0.65, "int8": ratio < 0.5}[precision]
    if precision == "int8":
        assert on_disk["scheme_reason"] and isinstance(on_disk["kept_in_float"], list)
        assert on_disk["compute_layers"] > len(on_disk["kept_in_float"])
    assert not [p for p in result.path.parent.iterdir() if p.name.startswith(".")]


def test_metadata_embedded_and_sidecar(exported, tiny_classifier):
    name, precision, result = exported
    assert runtime_name_for(result.path) == FORMATS.get(name).runtime
    loaded = load_any(result.path)
    _, card = load_model(tiny_classifier)
    meta = loaded.meta
    assert meta.labels == card.labels and meta.image_size == card.image_size
    assert meta.mean == pytest.approx(card.mean) and meta.std == pytest.approx(card.std)
    assert (meta.format, meta.precision, meta.task, meta.output) == (name, precision,
                                                                     "classify", "logits")
    assert meta.source_sha256 == file_sha256(tiny_classifier / "model.safetensors")
    assert meta.extra["backbone"] == "resnet_micro" and meta.extra["scheme"]
    assert meta.ssl_method == "scratch" and meta.versions["edgessl"]
    assert {"torch", "onnx", "onnxruntime", "openvino"} <= set(meta.versions)
    batch = FORMATS.get(name).fixed_batch or -1  # ExecuTorch programs take a fixed batch
    assert meta.input_spec == {"name": "input", "dtype": "float32", "layout": "NCHW",
                               "shape": [batch, 3, 16, 16]}
    assert meta.preprocessing["embedded"] is False
    sidecar = json.loads((result.path.parent / SIDECAR_FILE).read_text())
    assert sidecar == json.loads(meta.to_json())
    assert loaded.execution.runtime == FORMATS.get(name).runtime
    assert loaded.execution.device == "CPU" and loaded.load_seconds >= 0


@pytest.mark.parametrize("batch", [1, 5])
def test_matches_pytorch_with_dynamic_batch(exported, tiny_classifier, batch):
    """Any batch size: a dynamic batch axis, or (fixed-batch formats) the deploy runtime's
    cutting into batches of the exported size."""
    from edgessl.runtime.model import load

    name, precision, result = exported
    model, card = load_model(tiny_classifier)
    x = np.random.default_rng(0).standard_normal((batch, 3, card.image_size, card.image_size),
                                                  dtype=np.float32)
    got = load(result.path).run(x)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == ref.shape == (batch, len(card.labels)) and got.dtype == np.float32
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    if precision == "fp32":
        assert np.abs(got - ref).max() <= 1e-4
        assert result.report["max_abs_diff"] <= 1e-4
        assert result.report["top1_agreement"] == 1.0
    elif precision == "fp16":  # half-precision weights (and bf16/fp16 kernels where chosen)
        assert np.abs(got - ref).max() <= 2e-2 * max(1.0, np.abs(ref).max())
        assert cos.min() > 0.999 and result.report["cosine"] > 0.9999
        assert result.report["top1_agreement"] >= 0.98
    else:
        assert cos.min() > 0.98
        assert result.report["top1_agreement"] >= 0.9
        assert result.report["cosine"] > 0.99


def test_onnx_checker_passes(exported):
    name, precision, result = exported
    if name != "onnx":
        pytest.skip("ONNX checker applies to .onnx artifacts")
    import onnx

    onnx.checker.check_model(str(result.path), full_check=True)
    model = onnx.load(str(result.path))
    assert model.opset_import[0].version >= 17
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value  # symbolic (dynamic) batch
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    if precision == "int8":
        assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    if precision == "fp16":
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def test_loads_in_openvino_too(exported):
    """Every ONNX and OpenVINO artifact loads in OpenVINO (ONNX through its ONNX frontend)."""
    import openvino as ov

    name, precision, result = exported
    if name == "executorch":
        pytest.skip("OpenVINO has no frontend for ExecuTorch .pte programs")
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16), dtype=np.float32)
    compiled = ov.Core().compile_model(str(result.path), "CPU")
    got = np.asarray(compiled(x)[0])
    ref = load_any(result.path).run(x)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 0.1 * max(1.0, np.abs(ref).max())


def test_unknown_format_suggests(tiny_classifier, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown export format 'onxx'.*Did you mean 'onnx'"):
        export_model(tiny_classifier, ExportConfig(format="onxx", out=str(tmp_path / "o")))


def test_unknown_precision_lists_choices(tiny_classifier, tmp_path):
    with pytest.raises(ConfigError, match=r"precision 'int4'.*Choose from: fp16, fp32, int8"):
        export_model(tiny_classifier, ExportConfig(precision="int4", out=str(tmp_path / "o")))


def test_bad_calib_size(tiny_classifier, tmp_path):
    with pytest.raises(ConfigError, match="calib-size"):
        export_model(tiny_classifier, ExportConfig(precision="int8", calib_size=0,
                                                   out=str(tmp_path / "o")))


def test_existing_output_needs_force(tiny_classifier, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="--force"):
        export_model(tiny_classifier, ExportConfig(out=str(out)))
    assert (out / "old.txt").is_file()
    # --force replaces an earlier export, never a folder of other files
    with pytest.raises(OutputExistsError, match="not a folder edgessl wrote"):
        export_model(tiny_classifier, ExportConfig(out=str(out), force=True))
    assert (out / "old.txt").is_file()
    (out / "old.txt").unlink()
    export_model(tiny_classifier, ExportConfig(out=str(out), force=True))  # an empty folder
    result = export_model(tiny_classifier, ExportConfig(out=str(out), force=True))
    assert result.path == out / "model.onnx"


def test_backbone_checkpoint_needs_embedding_output(tiny_classifier, tmp_path):
    model, card = load_model(tiny_classifier)
    backbone_card = ModelCard(kind="backbone", backbone=card.backbone, method="simclr",
                              data=card.data)
    path = save_model(model.backbone, backbone_card, tmp_path / "bb")
    with pytest.raises(CheckpointError, match="--output embedding"):
        export_model(path, ExportConfig(output="logits", out=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()
    result = export_model(path, ExportConfig(output="embedding-l2", out=str(tmp_path / "e")))
    loaded = load_any(result.path)
    assert loaded.meta.task == "embed" and loaded.meta.labels == ()
    assert loaded.meta.ssl_method == "simclr"
    emb = loaded.run(np.random.default_rng(0).standard_normal((3, 3, 16, 16), dtype=np.float32))
    assert emb.shape == (3, model.backbone.num_features)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert result.report["top1_method"].startswith("leave-one-out")
    assert result.report["top1_agreement"] >= 0.95


def test_probabilities_output(tiny_classifier, tmp_path):
    result = export_model(tiny_classifier, ExportConfig(format="openvino", output="probabilities",
                                                        out=str(tmp_path / "p")))
    probs = load_any(result.path).run(np.zeros((2, 3, 16, 16), np.float32))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs >= 0).all() and result.report["max_abs_diff"] <= 1e-5


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not an edgessl checkpoint|does not exist"):
        export_model(tmp_path, ExportConfig(out=str(tmp_path / "o")))


def test_formats_name_existing_runtimes():
    for name, fmt in FORMATS.items():
        assert fmt.name == name and fmt.suffix.startswith(".")
        assert fmt.runtime in RUNTIMES and "fp32" in fmt.precisions


def test_cli_export_default_out(tiny_classifier, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edgessl.cli import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tiny_classifier)])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "max |diff|" in result.output
    assert (tmp_path / "export" / "tiny-onnx-fp32" / "model.onnx").is_file()
    assert (tmp_path / "export" / "tiny-onnx-fp32" / SIDECAR_FILE).is_file()
    again = runner.invoke(app, ["export", str(tiny_classifier)])
    assert again.exit_code == 2 and "--force" in again.output
    typo = runner.invoke(app, ["export", str(tiny_classifier), "--format", "openvnio"])
    assert typo.exit_code == 2 and "Did you mean 'openvino'" in typo.output


def test_calibration_sample_is_seeded_and_from_train(tiny_classifier, digits_dir):
    from edgessl.data.labeled import load_labeled
    from edgessl.errors import DataError
    from edgessl.export.calibration import calibration_set

    _, card = load_model(tiny_classifier)
    first = calibration_set(card, None, 32)
    assert len(first) == 32 and first.paths == calibration_set(card, None, 32).paths
    val = {p for p, _ in load_labeled(digits_dir, 0.2, 0).val}
    assert not val & set(first.paths)
    batches = list(first.batches(10))
    assert [b.shape[0] for b in batches] == [10, 10, 10, 2]
    assert batches[0].shape[1:] == (3, 16, 16) and batches[0].dtype == np.float32
    folder = calibration_set(card, digits_dir / "val" / "3", 10_000)
    assert len(folder) == len(list((digits_dir / "val" / "3").glob("*.png")))
    with pytest.raises(DataError):
        calibration_set(card, digits_dir / "missing", 8)


def test_data_with_other_classes_fails_before_any_export_work(tiny_classifier, tmp_path,
                                                              monkeypatch):
    """The validation set is read first: no calibration, no export, no output folder."""
    import shutil
    from pathlib import Path

    import edgessl.export.calibration as calibration
    from edgessl.errors import DataError

    root = Path(load_model(tiny_classifier)[1].data["path"])
    root = root / "train" if (root / "train").is_dir() else root
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    other = tmp_path / "other"
    for cls in classes[:2]:
        shutil.copytree(cls, other / cls.name)
    (other / "zebra").mkdir()
    for image in sorted(classes[2].iterdir())[:4]:
        shutil.copy(image, other / "zebra" / image.name)

    def never(*args, **kwargs):
        raise AssertionError("calibration ran before the classes were checked")

    monkeypatch.setattr(calibration, "calibration_set", never)
    with pytest.raises(DataError, match="differ from the checkpoint's labels"):
        export_model(tiny_classifier, ExportConfig(format="openvino", precision="int8",
                                                   data=str(other), out=str(tmp_path / "q")))
    assert not (tmp_path / "q").exists()
