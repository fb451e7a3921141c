"""Text export to ONNX (static [1, L], fp32 and INT8) and the torch-free runtime."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from text_helpers import write_tiny_bert, write_toy_folder

from edgessl.errors import CheckpointError
from edgessl.text.data import load_text_set
from edgessl.text.export import OPSET, export_text_onnx
from edgessl.text.finetune import TextFinetuneConfig, finetune_text
from edgessl.text.runtime import SIDECAR_FILE, TextPredictor

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = load_text_set(write_toy_folder(root / "toy", 20), 0.3)
    result = finetune_text(TextFinetuneConfig(encoder=str(write_tiny_bert(root / "bert")),
                                              labels_per_class=8), data)
    return result, [t for t, _ in data.val]


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    result, texts = trained
    root = tmp_path_factory.mktemp("onnx")
    return {p: export_text_onnx(result.model, root / p, p, texts=texts, card=result.card)
            for p in ("fp32", "int8")}


def test_export_is_static_validated_and_self_describing(trained, exported):
    import onnx

    result, texts = trained
    length = result.model.max_length
    for precision, out in exported.items():
        model = onnx.load(str(out.folder / "model.onnx"))
        shapes = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
        assert shapes == [[1, length], [1, length]]
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        assert opset == OPSET >= 17
        sidecar = json.loads((out.folder / SIDECAR_FILE).read_text())
        assert sidecar["labels"] == list(result.model.labels) and sidecar["precision"] == precision
        assert sidecar["max_length"] == length and sidecar["encoder"]["pooling"] == "mean"
        assert sidecar["validation"] == out.validation and out.validation["texts"] == len(texts)
        assert (out.folder / "tokenizer.json").is_file()
    assert exported["fp32"].validation["max_abs_logit_diff"] < 1e-4
    assert exported["fp32"].validation["top1_agreement"] == 1.0
    assert exported["int8"].validation["top1_agreement"] >= 0.6  # a random 32-wide encoder
    assert exported["int8"].sidecar["quantization"]["kept_float"]


def test_runtime_predicts_what_pytorch_predicts(trained, exported):
    result, texts = trained
    predictor = TextPredictor(exported["fp32"].folder, threads=1)
    found = predictor.predict(texts)
    assert [p.label for p in found] == result.model.predict(texts)
    assert all(abs(p.probabilities.sum() - 1) < 1e-6 for p in found)
    assert predictor.predict("a very long text " * 100)[0].label in result.model.labels


def test_runtime_never_imports_torch(exported):
    script = textwrap.dedent(f"""
        import sys
        from edgessl.text.runtime import TextPredictor
        found = TextPredictor({str(exported['int8'].folder)!r}).predict(["i like the plum"])
        heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        print(found[0].label, heavy)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out[0] in ("fruit", "vehicle", "weather") and out[1:] == ["[]"]


def test_runtime_refuses_a_foreign_folder(tmp_path, exported):
    with pytest.raises(CheckpointError, match=f"has no {SIDECAR_FILE}"):
        TextPredictor(tmp_path)
    (tmp_path / SIDECAR_FILE).write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not an edgessl text model"):
        TextPredictor(tmp_path)


def test_int8_is_smaller_and_close(exported):
    ratio = exported["int8"].size_mib / exported["fp32"].size_mib
    assert ratio < 0.8  # a 32-wide model is mostly graph, not weights; MiniLM reaches ~0.26
    assert np.isfinite(exported["int8"].validation["max_abs_logit_diff"])
