"""Text models on the device path: the benchmark (host and bundle share ``measure_text``),
``edgessl benchmark TEXT_MODEL`` and ``edgessl deploy`` of a text classifier, run torch-free."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_helpers import invoke, one_line_error
from text_helpers import run_bundle, write_tiny_bert, write_toy_folder

from edgessl.errors import ConfigError
from edgessl.text.runtime import SIDECAR_FILE

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-bundle")
    data = write_toy_folder(root / "toy", 16)
    bert = write_tiny_bert(root / "bert")
    clf = root / "clf"
    assert invoke("finetune", data, "--backbone", bert, "-k", 8, "--out", clf).exit_code == 0
    exports = {}
    for fmt, precision in (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32")):
        out = root / f"{fmt}-{precision}"
        result = invoke("export", clf, "--format", fmt, "--precision", precision, "--out", out)
        assert result.exit_code == 0, result.output
        exports[fmt, precision] = out
    return {"root": root, "data": data, "clf": clf, "exports": exports}


def test_measure_text_times_tokenization_and_scores(made):
    from edgessl.text.bench import measure_text
    from edgessl.text.data import load_text_set
    from edgessl.text.runtime import TextPredictor

    val = load_text_set(made["data"]).val
    texts, labels = [t for t, _ in val], [y for _, y in val]
    folder = made["exports"]["onnx", "int8"]
    r = measure_text(folder, texts, labels, runs=20, warmup=2, threads=1)
    meta = json.loads((folder / SIDECAR_FILE).read_text())
    assert (r.runtime, r.precision, r.sequence_length) == ("onnxruntime", "int8",
                                                           meta["max_length"])
    assert 2 <= r.tokens_mean <= r.tokens_max <= r.sequence_length and r.truncated == 0
    assert r.runs == 20 and r.examples == len(texts) and r.size_mib > 0
    assert 0 < r.tokenize.mean_ms < r.latency.mean_ms and r.load_s > 0 and r.first_s > 0
    assert r.host["cpu"] and r.host["machine"]
    got = [p.index for p in TextPredictor(folder).predict(texts)]
    right = sum(g == y for g, y in zip(got, labels, strict=True))
    assert r.top1 == pytest.approx(right / len(labels))
    assert measure_text(folder, texts[:2], runs=3, warmup=0).top1 is None
    with pytest.raises(ConfigError, match="labels must give each"):
        measure_text(folder, texts, labels[:-1], runs=1)
    with pytest.raises(ConfigError, match="one or more sentences"):
        measure_text(folder, [], runs=1)


def test_benchmark_cli_on_text_models(made, tmp_path):
    models = [made["exports"]["onnx", "fp32"], made["exports"]["openvino", "fp32"]]
    result = invoke("benchmark", *models, "--data", made["data"], "--iterations", 10,
                    "--warmup", 1, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.output and "openvino" in result.output
    assert "tok ms" in result.output and "host:" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["runtime"] for r in data["results"]] == ["onnxruntime", "openvino"]
    assert all(r["top1"] is not None and r["sequence_length"] > 0 for r in data["results"])
    assert data["host"]["cpu"]
    # fp32 in both runtimes: the same classes on the same texts
    assert data["results"][0]["top1"] == pytest.approx(data["results"][1]["top1"])
    assert "--batch-size" in one_line_error(invoke("benchmark", models[0], "--batch-size", 4))
    line = one_line_error(invoke("benchmark", models[0], made["root"] / "img.onnx"))
    assert "text models and image models" in line


def test_deploy_a_text_classifier_runs_torch_free(made, tmp_path):
    bundle = tmp_path / "b"
    result = invoke("deploy", made["clf"], "--profile", "cpu", "--out", bundle,
                    "--iterations", 5, "--smoke-per-class", 2)
    assert result.exit_code == 0, result.output
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["format"] == "edgessl-text-bundle/1" and meta["runtime"] == "onnxruntime"
    assert {m["name"] for m in meta["models"]} == {"onnx-fp32", "onnx-int8"}
    assert meta["models"][0]["name"] == meta["recommended"]["model"]
    assert len(meta["smoke"]["texts"]) == 2 * len(meta["models"][0]["labels"])
    assert any(r.startswith("tokenizers==") for r in meta["requirements"])
    assert not any(r.startswith(("torch", "transformers")) for r in meta["requirements"])
    assert (bundle / "baseline.json").is_file()
    assert (bundle / "lib/edgessl/text/runtime.py").is_file()
    assert not (bundle / "lib/edgessl/text/export.py").exists()

    lines, last, _ = run_bundle(bundle, "predict", "i like the plum", "--top-k", "2")
    assert last == "HEAVY [] CODE 0" and lines[0].startswith("i like the plum\t")
    _, last, _ = run_bundle(bundle, "smoke")
    assert last == "HEAVY [] CODE 0" and not (bundle / ".ov_cache").exists()  # ONNX: none
    lines, last, _ = run_bundle(bundle, "benchmark", "--runs", "5", "--json", "-")
    assert last == "HEAVY [] CODE 0"
    found = json.loads("\n".join(lines))["results"]
    assert [r["runtime"] for r in found] == ["onnxruntime"] * 2 and found[0]["top1"] is not None
    _, last, err = run_bundle(bundle, "predict", "--model", "onnx-fp16", "x")
    assert last == "HEAVY [] CODE 2" and "onnx-fp16" in err and "Traceback" not in err
    for args, said in ((("--threads", "0", "predict", "x"), "--threads must be 1 to 1024"),
                       (("predict", "x", "--top-k", "0"), "--top-k must be 1 or more"),
                       (("predict",), "no text to classify"),
                       (("predict", " "), "text 1 of 1 is empty")):
        _, last, err = run_bundle(bundle, *args)
        assert last == "HEAVY [] CODE 2" and said in err and len(err.strip().splitlines()) == 1


def test_deploy_text_checks_before_work(made, tmp_path):
    onnx = made["exports"]["onnx", "fp32"]
    line = one_line_error(invoke("deploy", onnx, "--runtime", "openvino", "--out",
                                 tmp_path / "a"))
    assert "runs on onnxruntime" in line and not (tmp_path / "a").exists()
    line = one_line_error(invoke("deploy", made["clf"], "--precision", "fp8", "--out",
                                 tmp_path / "b"))
    assert "fp8" in line and not (tmp_path / "b").exists()
    export = tmp_path / "ov-export"  # an export folder that holds something else too
    shutil.copytree(made["exports"]["openvino", "fp32"], export)
    (export / "notes-with-a-password.txt").write_text("hunter2")
    result = invoke("deploy", export, "--runtime", "openvino",
                    "--data", made["data"], "--out", tmp_path / "c", "--no-baseline")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "c" / "bundle.json").read_text())
    assert [m["name"] for m in meta["models"]] == ["openvino-fp32"]
    assert sorted(p.name for p in (tmp_path / "c" / "models" / "openvino-fp32").iterdir()) == [
        "model.bin", "model.xml", "text_model.json", "tokenizer.json"]
    (export / "tokenizer.json").rename(export / "real-tokenizer.json")
    (export / "tokenizer.json").symlink_to(export / "real-tokenizer.json")
    line = one_line_error(invoke("deploy", export, "--runtime", "openvino", "--out",
                                 tmp_path / "d"))
    assert "symbolic link" in line and not (tmp_path / "d").exists()
    assert meta["smoke"]["texts"] and not (tmp_path / "c" / "baseline.json").exists()
    # the first run compiles and caches; the second loads the cached blob and agrees
    first, last, _ = run_bundle(tmp_path / "c", "predict", "i like the plum")
    assert last == "HEAVY [] CODE 0" and any((tmp_path / "c" / ".ov_cache").iterdir())
    assert run_bundle(tmp_path / "c", "predict", "i like the plum")[0] == first
    assert not (made["root"] / "onnx-fp32" / ".ov_cache").exists()


def test_export_validates_on_the_split_the_classifier_was_trained_with(made, tmp_path):
    """A classifier trained on a 50/50 split is validated on that split's val texts, not on
    a default 80/20 re-split (which would mix its training texts into val)."""
    from edgessl.text.data import load_text_set
    from edgessl.text.finetune import TextFinetuneConfig, finetune_text
    from edgessl.text.workflow import export_text_checkpoint

    data = load_text_set(made["data"], val_fraction=0.5)
    bert = made["root"] / "bert"
    result = finetune_text(TextFinetuneConfig(encoder=str(bert), mode="probe"), data)
    assert result.card["data"]["val_fraction"] == 0.5
    folder = result.save(tmp_path / "clf")
    check = export_text_checkpoint(folder, "onnx", "fp32", out=tmp_path / "onnx").validation
    assert check["texts"] == len(data.val) and "top1_artifact" in check


def test_a_text_bundle_for_an_accelerator_profile_says_it_runs_on_the_cpu(made, tmp_path,
                                                                          caplog):
    from edgessl.deploy.bundle_config import DeployConfig
    from edgessl.text.bundle import build_text_bundle

    with caplog.at_level("WARNING", logger="edgessl"):
        result = build_text_bundle(made["exports"]["openvino", "fp32"], DeployConfig(
            profile="intel-npu", out=str(tmp_path / "npu"), baseline=False, smoke_per_class=0))
    assert result.bundle["device"] == "CPU" and result.bundle["runtime"] == "openvino"
    assert any("run on the CPU" in r.getMessage() for r in caplog.records)
