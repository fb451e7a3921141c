"""edgessl.runtime: predictions from exported artifacts with numpy, Pillow and one runtime only,
and the ``edgessl predict`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from deploy_helpers import exported, run_blocked
from PIL import Image
from typer.testing import CliRunner

import edgessl.cli.predict_cmd  # noqa: F401 - registers `edgessl predict`
from edgessl.cli import app
from edgessl.errors import DataError
from edgessl.runtime import load


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    return exported(tmp_path_factory, tiny_classifier, "onnx")


@pytest.fixture(scope="module")
def val_images(digits_dir):
    return sorted((digits_dir / "val").glob("*/*.png"))[::40]


LIGHT_PREDICT = """
import json, sys
import numpy as np
from PIL import Image
import edgessl.runtime
assert "torch" not in sys.modules
model = edgessl.runtime.load(sys.argv[1])
image = sys.argv[2]
preds = model.predict([image, Image.open(image), np.asarray(Image.open(image).convert("RGB"))])
heavy = sorted({m.split(".")[0] for m in sys.modules} &
               {"torch", "onnx", "openvino", "onnxruntime", "timm", "typer"})
print(json.dumps({"labels": [p.label for p in preds], "scores": [p.score for p in preds],
                  "runtime": model.execution.runtime, "imported": heavy}))
"""


@pytest.mark.parametrize("fmt,runtime", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_import_and_predict_without_torch(fmt, runtime, tmp_path_factory, tiny_classifier,
                                          val_images):
    artifact = exported(tmp_path_factory, tiny_classifier, fmt)
    proc = run_blocked(LIGHT_PREDICT, argv=(str(artifact), str(val_images[0])))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # Only the one runtime the artifact needs was imported.
    assert out["imported"] == [runtime]
    expected = load(artifact).predict(val_images[0])[0]
    assert out["labels"] == [expected.label] * 3
    assert out["scores"] == pytest.approx([expected.score] * 3, rel=1e-6)


def test_missing_runtime_says_how_to_install(onnx_model):
    code = """
    import sys
    from edgessl.errors import EdgesslError
    import edgessl.runtime
    try:
        edgessl.runtime.load(sys.argv[1])
    except EdgesslError as exc:
        print(exc)
    """
    proc = run_blocked(code, blocked=("torch", "onnxruntime"), argv=(str(onnx_model),))
    assert proc.returncode == 0, proc.stderr
    assert "needs onnxruntime, which is not installed" in proc.stdout
    assert "python -m pip install onnxruntime" in proc.stdout


def test_predictions_match_pytorch(onnx_model, tiny_classifier, val_images):
    from edgessl.backends import torch_rt
    from edgessl.data.preprocess import preprocess_batch

    model = load(onnx_model)
    preds = model.predict(val_images, top_k=3, batch_size=4)
    reference = torch_rt.load(tiny_classifier)
    m = reference.meta
    logits = reference.run(preprocess_batch(val_images, m.image_size, m.mean, m.std))
    assert [p.label for p in preds] == [m.labels[i] for i in logits.argmax(axis=1)]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    np.testing.assert_allclose([p.score for p in preds], probs.max(axis=1), atol=1e-5)
    for p in preds:
        assert len(p.top_k) == 3 and p.top_k[0] == (p.label, p.score)
        assert [s for _, s in p.top_k] == sorted((s for _, s in p.top_k), reverse=True)
        assert p.source.endswith(".png") and p.to_dict()["top_k"][0]["label"] == p.label


def test_every_input_kind_gives_the_same_answer(onnx_model, val_images):
    model = load(onnx_model)
    path = val_images[1]
    rgb = Image.open(path).convert("RGB")
    array = np.asarray(rgb)
    inputs = [path, str(path), rgb, rgb.convert("RGBA"), array, array / 255.0,
              array[None][0][..., :3]]
    preds = model.predict(inputs)
    assert len({p.label for p in preds}) == 1
    np.testing.assert_allclose([p.score for p in preds], preds[0].score, atol=1e-4)
    assert preds[2].source == "<image 2>"
    batch = model.predict(np.stack([array, array]))  # an [N, H, W, 3] array is N images
    assert [p.label for p in batch] == [preds[0].label] * 2


@pytest.mark.parametrize("bad,message", [
    (np.zeros((3, 16, 16), np.uint8), "channels first"),
    (np.zeros((16, 16, 4), np.uint8), "[H, W, 3] RGB"),
    (42, "is a int; pass a path"),
    ("/nonexistent/x.png", "does not exist"),
])
def test_bad_inputs_are_one_line_errors(onnx_model, bad, message):
    with pytest.raises(DataError, match=None) as info:
        load(onnx_model).predict([bad])
    assert message in str(info.value)


def _with_embedded_preprocessing(src, dst, meta):
    """``src`` with a uint8 [N, S, S, 3] input: cast, layout and normalisation in the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    old = graph.input[0].name
    size = meta.image_size
    mean = np.array(meta.mean, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.array(meta.std, np.float32).reshape(1, 3, 1, 1) * 255
    graph.initializer.extend([numpy_helper.from_array(mean, "pp_mean"),
                              numpy_helper.from_array(std, "pp_std")])
    nodes = [helper.make_node("Cast", ["image"], ["pp_f"], to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["pp_f"], ["pp_t"], perm=[0, 3, 1, 2]),
             helper.make_node("Sub", ["pp_t", "pp_mean"], ["pp_c"]),
             helper.make_node("Div", ["pp_c", "pp_std"], [old])]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    del graph.input[0]
    graph.input.insert(0, helper.make_tensor_value_info("image", TensorProto.UINT8,
                                                        ["N", size, size, 3]))
    onnx.save(model, str(dst))
    return dst


def test_embedded_preprocessing_artifact(onnx_model, val_images, tmp_path):
    plain = load(onnx_model)
    raw = load(_with_embedded_preprocessing(onnx_model, tmp_path / "raw.onnx", plain.meta))
    assert raw.raw_input and not plain.raw_input
    assert raw.preprocess(val_images[:2]).dtype == np.uint8
    a, b = plain.predict(val_images), raw.predict(val_images)
    assert [p.label for p in a] == [p.label for p in b]
    np.testing.assert_allclose([p.score for p in a], [p.score for p in b], atol=1e-4)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_predict_cli_folder_and_json(onnx_model, digits_dir, tmp_path):
    folder = digits_dir / "val" / "3"
    result = invoke("predict", onnx_model, folder, "--top-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(list(folder.glob("*.png")))
    assert lines[0].startswith(str(folder)) and len(lines[0].split()) == 5
    out = tmp_path / "preds.json"
    result = invoke("predict", onnx_model, next(folder.glob("*.png")), folder, "--json", out,
                    "--profile", "cpu")
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["runtime"] == "onnxruntime" and len(data["predictions"]) == len(lines) + 1


def test_predict_cli_checkpoint_runs_pytorch(tiny_classifier, digits_dir):
    image = next((digits_dir / "val" / "0").glob("*.png"))
    result = invoke("predict", tiny_classifier, image, "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runtime"] == "pytorch"


@pytest.mark.parametrize("args,expected", [
    (("{model}", "/nonexistent"), "'/nonexistent' does not exist"),
    (("/nonexistent.onnx", "{image}"), "does not exist; check the path"),
    (("{model}", "{image}", "--top-k", "0"), "--top-k must be ≥ 1"),
    (("{model}", "{image}", "--profile", "cpux"), "Did you mean 'cpu'?"),
])
def test_predict_cli_errors(onnx_model, digits_dir, args, expected):
    image = next((digits_dir / "val" / "1").glob("*.png"))
    result = invoke("predict", *(a.format(model=onnx_model, image=image) for a in args))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
