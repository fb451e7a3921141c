"""The tokenizer fused into an OpenVINO text model (``export --fuse-tokenizer``): strings in,
logits out, checked against tokenizer.json, benchmarked and deployed torch-free.

Everything that loads openvino-tokenizers or a fused model runs in a child process: with the
extension and a fused model once loaded, a later real signal during PyTorch training in the
same process (the interrupt tests of other modules) crashed the interpreter on this
AVX512/AMX host (OpenVINO 2026.4, openvino-tokenizers 2026.4.1), as bf16 compiles did
(see test_inference_precision.py). The refusals, which stop before the extension
loads, run in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import invoke, one_line_error
from text_helpers import run_bundle, write_tiny_bert, write_tiny_gpt2, write_toy_folder

from edgessl.errors import CheckpointError
from edgessl.text.runtime import SIDECAR_FILE, TextPredictor, read_sidecar

pytest.importorskip("transformers")
pytest.importorskip("openvino_tokenizers")


def edgessl_cli(*args) -> subprocess.CompletedProcess:
    """``python -m edgessl ARGS`` in a child process."""
    return subprocess.run([sys.executable, "-m", "edgessl", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def in_child(code: str) -> dict:
    """Run ``code`` in a child interpreter; it prints one JSON object as its last line."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("fused")
    data = write_toy_folder(root / "toy", 16)
    clf = root / "clf"
    result = invoke("finetune", data, "--backbone", write_tiny_bert(root / "bert"), "-k", 8,
                    "--out", clf)
    assert result.exit_code == 0, result.output
    exports = {}
    for precision, fused in (("fp32", True), ("fp32", False), ("int8", True)):
        out = root / f"{precision}-{'fused' if fused else 'file'}"
        args = ["--fuse-tokenizer"] if fused else []
        done = edgessl_cli("export", clf, "--format", "openvino", "--precision", precision,
                           "--out", out, *args)
        assert done.returncode == 0, done.stderr[-3000:]
        said = "one string (tokenizer fused into the IR" if fused else "int64 input_ids"
        assert said in done.stdout
        exports[precision, fused] = out
    return {"root": root, "data": data, "clf": clf, "exports": exports}


def test_a_fused_model_takes_strings_and_matches_the_file_tokenizer(made):
    fused, plain = made["exports"]["fp32", True], made["exports"]["fp32", False]
    meta = read_sidecar(fused)
    assert meta["tokenizer"] == "fused" and meta["input_names"] == ["text"]
    assert meta["tokenizer_fusion"]["ids_checked_on_texts"] > 11  # val texts + the probes
    assert read_sidecar(plain)["tokenizer"] == "file"
    assert meta["validation"]["max_abs_logit_diff"] < 1e-4
    assert meta["validation"]["top1_agreement"] == 1.0
    found = in_child(f"""
        import json
        import numpy as np
        import openvino as ov
        import openvino_tokenizers  # registers the string operations
        from edgessl.text.runtime import TextPredictor
        model = ov.Core().read_model({str(fused / "model.xml")!r})
        matmuls = [n for n in model.get_ordered_ops() if n.get_type_name() == "MatMul"]
        a, b = TextPredictor({str(fused)!r}), TextPredictor({str(plain)!r})
        texts = ["i like the plum", "A BUS!! and a train", "", "rain " * 200, "naïve café 😀"]
        print(json.dumps({{
            "inputs": [str(i.get_element_type()) for i in model.inputs],
            "matmuls": len(matmuls),
            "dynamic": sum(n.get_output_partial_shape(0).is_dynamic for n in matmuls),
            "fused": [a.fused, b.fused],
            "gap": max(float(np.abs(a.logits(t) - b.logits(t)).max()) for t in texts)}}))
    """)
    assert found["inputs"] == ["<Type: 'string'>"] and found["fused"] == [True, False]
    assert found["matmuls"] > 0 and found["dynamic"] == 0  # static [1, L] after the tokenizer
    assert found["gap"] < 1e-4
    int8 = read_sidecar(made["exports"]["int8", True])
    assert int8["tokenizer"] == "fused" and int8["quantization"]["ops"]["MatMul"]["int8"] > 0
    assert int8["validation"]["top1_agreement"] >= 0.6  # a random 32-wide encoder


def test_a_converted_tokenizer_that_splits_differently_is_refused(tmp_path):
    bert = write_tiny_bert(tmp_path / "bert") / "tokenizer.json"
    gpt2 = write_tiny_gpt2(tmp_path / "gpt2") / "tokenizer.json"
    found = in_child(f"""
        import json
        from tokenizers import Tokenizer
        from edgessl.errors import ConfigError
        from edgessl.text.fused_tokenizer import check_ids, convert
        bert = Tokenizer.from_file({str(bert)!r})
        gpt2 = Tokenizer.from_file({str(gpt2)!r})
        converted = convert(bert, 16, 0)
        same = check_ids(converted, bert, ["i like the plum"], 16, 0)
        try:
            check_ids(converted, gpt2, ["i like the plum"], 16, 0)
            other = None
        except ConfigError as exc:
            other = str(exc)
        print(json.dumps({{"same": same, "other": other}}))
    """)
    assert found["same"] > 1 and "differently from tokenizer.json" in found["other"]


def test_fusing_is_refused_where_it_cannot_be_done(made, tmp_path, tiny_classifier):
    line = one_line_error(invoke("export", made["clf"], "--format", "onnx",
                                 "--fuse-tokenizer", "--out", tmp_path / "a"))
    assert "--fuse-tokenizer needs OpenVINO" in line and not (tmp_path / "a").exists()
    line = one_line_error(invoke("export", tiny_classifier, "--format", "openvino",
                                 "--fuse-tokenizer", "--out", tmp_path / "b"))
    assert "applies to text classifiers" in line and not (tmp_path / "b").exists()
    line = one_line_error(invoke("deploy", made["clf"], "--runtime", "onnxruntime",
                                 "--fuse-tokenizer", "--out", tmp_path / "c"))
    assert "--fuse-tokenizer needs OpenVINO" in line and not (tmp_path / "c").exists()
    line = one_line_error(invoke("deploy", tiny_classifier, "--fuse-tokenizer", "--out",
                                 tmp_path / "d"))
    assert "applies to text classifiers" in line and not (tmp_path / "d").exists()
    line = one_line_error(invoke("deploy", made["exports"]["fp32", False], "--runtime",
                                 "openvino", "--fuse-tokenizer", "--out", tmp_path / "e"))
    assert "exported already" in line and not (tmp_path / "e").exists()
    onnx = tmp_path / "onnx"  # a sidecar that claims a fused tokenizer in an ONNX model
    assert invoke("export", made["clf"], "--out", onnx).exit_code == 0
    meta = json.loads((onnx / SIDECAR_FILE).read_text())
    (onnx / SIDECAR_FILE).write_text(json.dumps({**meta, "tokenizer": "fused"}))
    with pytest.raises(CheckpointError, match="fused tokenizer only in an OpenVINO"):
        TextPredictor(onnx)


def test_without_the_extension_a_fused_model_says_what_to_install(made):
    found = in_child(f"""
        import json, sys
        sys.modules["openvino_tokenizers"] = None  # as if it were not installed
        from edgessl.errors import ConfigError
        from edgessl.text.runtime import TextPredictor
        try:
            TextPredictor({str(made["exports"]["fp32", True])!r})
            said = None
        except ConfigError as exc:
            said = str(exc)
        print(json.dumps({{"said": said}}))
    """)
    assert found["said"].startswith("a fused tokenizer needs the openvino-tokenizers package")
    assert "pip install 'openvino-tokenizers~=" in found["said"]


def test_benchmark_and_bundle_of_a_fused_model(made, tmp_path):
    found = in_child(f"""
        import json
        from edgessl.text.bench import measure_text, render_text_table
        r = measure_text({str(made["exports"]["fp32", True])!r},
                         ["i like the plum", "the bus"], [0, 1], runs=5, warmup=1)
        print(json.dumps({{"tokenizer": r.tokenizer, "tokenize": r.tokenize is None,
                          "ms": r.latency.mean_ms, "tokens": r.tokens_mean,
                          "table": render_text_table([r])}}))
    """)
    assert found["tokenizer"] == "fused" and found["tokenize"] and found["ms"] > 0
    assert found["tokens"] > 2 and " fused " in found["table"]
    bundle = tmp_path / "b"
    done = edgessl_cli("deploy", made["exports"]["int8", True], "--runtime", "openvino",
                       "--data", made["data"], "--out", bundle, "--iterations", 5)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((bundle / "bundle.json").read_text())
    assert [m["name"] for m in meta["models"]] == ["openvino-int8-fused"]
    assert meta["models"][0]["tokenizer"] == "fused"
    assert any(r.startswith("openvino-tokenizers==") for r in meta["requirements"])
    assert "openvino-tokenizers==" in (bundle / "requirements.txt").read_text()
    lines, last, _ = run_bundle(bundle, "predict", "i like the plum")
    assert last == "HEAVY [] CODE 0" and lines[0].startswith("i like the plum\t")
    _, last, _ = run_bundle(bundle, "smoke")
    assert last == "HEAVY [] CODE 0"


def test_deploy_fuses_the_tokenizer_of_a_classifier(made, tmp_path):
    bundle = tmp_path / "b"
    done = edgessl_cli("deploy", made["clf"], "--runtime", "openvino", "--precision", "fp32",
                       "--fuse-tokenizer", "--no-baseline", "--out", bundle)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((bundle / "bundle.json").read_text())
    assert [(m["name"], m["tokenizer"]) for m in meta["models"]] == [("openvino-fp32-fused",
                                                                     "fused")]
    lines, last, _ = run_bundle(bundle, "predict", "i like the plum")
    assert last == "HEAVY [] CODE 0" and lines[0].startswith("i like the plum\t")
