"""Text through the one CLI: finetune, export (ONNX, OpenVINO), predict, backbones, quickstart.

Tiny random BERT folders and a toy set (tests/text_helpers.py) keep each test to seconds.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import invoke, one_line_error
from text_helpers import CLASSES, toy_sentences, write_tiny_bert, write_toy_folder

from edgessl.errors import DataError
from edgessl.text.data import is_text_set
from edgessl.text.model import CARD_FILE, CARD_FORMAT
from edgessl.text.runtime import SIDECAR_FILE

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-cli")
    folder = write_toy_folder(root / "toy", 20)
    table = root / "toy.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for label, lines in toy_sentences(20).items():
            writer.writerows([line, label] for line in lines)
    return {"root": root, "folder": folder, "csv": table, "bert": write_tiny_bert(root / "bert")}


@pytest.fixture(scope="module")
def classifier(toy):
    out = toy["root"] / "clf"
    result = invoke("finetune", toy["folder"], "--backbone", toy["bert"], "-k", 8, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_text_is_told_from_images(tmp_path, toy):
    assert is_text_set(toy["folder"]) and is_text_set(toy["csv"])
    assert not is_text_set(tmp_path / "missing")  # the image path says it does not exist
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    assert not is_text_set(tmp_path)
    (tmp_path / "a" / "x.txt").write_text("hello\n")
    assert not is_text_set(tmp_path)  # a caption or note per image: still images
    (tmp_path / "a" / "y.txt").write_text("hello\n")
    with pytest.raises(DataError, match="neither a text class nor an image class"):
        is_text_set(tmp_path)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="no images and no .txt files"):
        is_text_set(tmp_path / "empty")


@pytest.mark.parametrize("data, extra", [("folder", ["--mode", "linear"]),
                                         ("csv", ["--mode", "full", "--epochs", "2"])])
def test_finetune_cli_on_text(toy, tmp_path, data, extra):
    out = tmp_path / "m"
    result = invoke("finetune", toy[data], "--backbone", toy["bert"], "-k", 8, "--out", out,
                    *extra)
    assert result.exit_code == 0, result.output
    assert f"saved {out}" in result.output and "texts" in result.output
    card = json.loads((out / CARD_FILE).read_text())
    assert card["format"] == CARD_FORMAT and card["labels"] == sorted(CLASSES)
    assert card["mode"] == ("probe" if "linear" in extra else "full")
    assert card["training"]["train_examples"] == 8 * len(CLASSES)


@pytest.mark.parametrize("flag", [["--image-size", "64"], ["--hflip", "0.1"],
                                  ["--arch", "resnet_tiny"], ["--weights", "w.safetensors"],
                                  ["--weights-key", "student"]])
def test_image_flags_with_text_data_are_refused_before_work(toy, tmp_path, flag):
    out = tmp_path / "m"
    line = one_line_error(invoke("finetune", toy["csv"], "--backbone", toy["bert"],
                                 "--out", out, *flag))
    assert flag[0] in line and "text" in line
    assert not out.exists()


def test_text_mode_names_and_typos(toy, tmp_path):
    line = one_line_error(invoke("finetune", toy["csv"], "--mode", "linaer",
                                 "--out", tmp_path / "m"))
    assert "Did you mean 'linear'" in line and "full" in line
    line = one_line_error(invoke("finetune", toy["csv"], "--backbone", "all-minilm-l6-v3",
                                 "--out", tmp_path / "m"))
    assert "all-minilm-l6-v2" in line


@pytest.mark.parametrize("flags, expected", [
    (["--epochs", "5", "--lr", "5"], "--epochs and --lr apply to --mode full or --mode setfit, "
                                     "not to --mode linear; the linear probe is solved"),
    (["--mode", "linear", "--lr", "1e-3"], "--lr applies to --mode full or --mode setfit"),
])
def test_training_flags_the_probe_does_not_use_are_refused(toy, tmp_path, flags, expected):
    out = tmp_path / "m"
    line = one_line_error(invoke("finetune", toy["csv"], "--backbone", toy["bert"],
                                 "--out", out, *flags))
    assert expected in line and "drop" in line
    assert not out.exists()


def test_setfit_takes_epochs_as_rounds_of_pairs_and_lr_as_their_lr():
    from edgessl.text.finetune import MODES, TextFinetuneConfig
    from edgessl.text.workflow import MODE_FLAGS, training_settings

    assert training_settings("setfit", {"epochs": 1, "lr": None}) == {"pair_iterations": 1}
    assert training_settings("full", {"epochs": 3, "lr": 1e-4}) == {"epochs": 3, "lr": 1e-4}
    assert training_settings("probe", {"epochs": None, "lr": None}) == {}
    cfg = TextFinetuneConfig(mode="setfit", **training_settings("setfit", {"epochs": 2,
                                                                           "lr": 3e-4}))
    assert (cfg.pair_iterations, cfg.pair_lr) == (2, 3e-4)
    assert set(MODE_FLAGS) == set(MODES.names())  # every mode says which flags it takes


@pytest.fixture
def fake_text_model(tmp_path):
    """A folder the CLI takes for a text model; texts are checked before it is loaded."""
    folder = tmp_path / "txt-model"
    folder.mkdir()
    (folder / SIDECAR_FILE).write_text("{}")
    return folder


def test_predict_refuses_empty_texts_and_file_names(fake_text_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "img.PNG").write_bytes(b"\x89PNG")
    (tmp_path / "lines.txt").write_text("hello\n")
    (tmp_path / "photos").mkdir()
    cases = [
        (["hello", ""], "text 2 of 2 is empty; give the text to classify in quotes"),
        (["   "], "text 1 of 1 is empty"),
        (["img.PNG"], "'img.PNG' is an image file, and "),
        ([str(tmp_path / "img.PNG")], "is a text classifier: give the text to classify in "
                                      "quotes, or a file of texts with --file"),
        (["lines.txt"], "'lines.txt' is a text file, and"),
        (["photos/"], "'photos/' is a folder"),
    ]
    for texts, expected in cases:
        line = one_line_error(invoke("predict", fake_text_model, *texts))
        assert expected in line, (texts, line)


def test_predict_check_leaves_sentences_alone(tmp_path, monkeypatch, caplog):
    from edgessl.text.runtime import check_texts

    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    # a missing image name, a word that is also a folder here, a text too long for a path
    with caplog.at_level("WARNING", logger="edgessl"):
        check_texts(["holiday.jpg", "photos", "a/b c", "x" * 5000, "dots... and / slashes"],
                    "'m'")
    # the one word that is also a folder is classified, and the user is told it was
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "'photos' is also the name of a folder here" in warned[0]


def test_mixed_folder_is_one_clear_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("hello\n")
    line = one_line_error(invoke("finetune", tmp_path))
    assert "class folders of images ('a') and of .txt files ('b')" in line


@pytest.fixture(scope="module")
def exports(classifier, toy):
    found = {}
    # ONNX fp32 through the API is tested in test_text_export.py
    for fmt, precision in (("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")):
        out = toy["root"] / f"{fmt}-{precision}"
        result = invoke("export", classifier, "--format", fmt, "--precision", precision,
                        "--out", out)
        assert result.exit_code == 0, result.output
        found[fmt, precision] = (out, result.output)
    return found


def test_export_cli_validates_onnx_and_openvino(exports):
    for (fmt, precision), (out, output) in exports.items():
        sidecar = json.loads((out / SIDECAR_FILE).read_text())
        check = sidecar["validation"]
        assert sidecar["model_file"] == ("model.onnx" if fmt == "onnx" else "model.xml")
        assert (out / sidecar["model_file"]).is_file() and (out / "tokenizer.json").is_file()
        assert check["runtime"] == ("onnxruntime" if fmt == "onnx" else "openvino")
        assert check["texts"] > 4 and "top1_artifact" in check  # the classifier's val split
        assert "top-1" in output and "agreement" in output
        if precision == "fp32":
            assert check["max_abs_logit_diff"] < 1e-4 and check["top1_agreement"] == 1.0
        else:
            assert check["top1_agreement"] >= 0.6  # a random 32-wide encoder
    ops = json.loads((exports["openvino", "int8"][0] / SIDECAR_FILE).read_text())
    ops = ops["quantization"]["ops"]
    assert ops["MatMul"]["int8"] > 0 and ops["MVN"]["int8"] == 0 and ops["Softmax"]["int8"] == 0


def test_export_cli_openvino_fp16_and_refusals(classifier, tmp_path):
    result = invoke("export", classifier, "--format", "openvino", "--precision", "fp16",
                    "--out", tmp_path / "fp16")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "fp16" / SIDECAR_FILE).read_text())["precision"] == "fp16"
    line = one_line_error(invoke("export", classifier, "--simplify", "--out", tmp_path / "x"))
    assert "--simplify" in line and not (tmp_path / "x").exists()
    line = one_line_error(invoke("export", classifier, "--precision", "bf16"))
    assert "ONNX text precision 'bf16'" in line and "int8" in line
    result = invoke("export", classifier, "--precision", "fp16", "--out", tmp_path / "h")
    assert result.exit_code == 0, result.output
    half = json.loads((tmp_path / "h" / SIDECAR_FILE).read_text())
    assert half["precision"] == "fp16" and half["validation"]["top1_agreement"] >= 0.9
    line = one_line_error(invoke("export", classifier, "--calib-size", "10",
                                 "--out", tmp_path / "y"))
    assert "--calib-size" in line


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_predict_cli_is_torch_free(exports, fmt):
    folder = exports[fmt, "int8"][0]
    script = textwrap.dedent(f"""
        import sys
        from edgessl.cli import app
        try:
            app(["predict", {str(folder)!r}, "i like the plum", "a bus and a car",
                 "-k", "2"])
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        print("HEAVY", sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "HEAVY []"
    assert lines[0].startswith("i like the plum  ") and len(lines[0].split()) == 4 + 4
    assert lines[1].startswith("a bus and a car  ")


def test_predict_cli_file_and_json(exports, tmp_path):
    folder = exports["openvino", "fp32"][0]
    lines = tmp_path / "lines.txt"
    lines.write_text("i like the plum\n\n  the storm  \n", encoding="utf-8")
    result = invoke("predict", folder, "see my train", "--file", lines, "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["runtime"] == "openvino"
    assert [p["text"] for p in data["predictions"]] == ["see my train", "i like the plum",
                                                        "the storm"]
    assert all(p["top_k"][0][0] in CLASSES for p in data["predictions"])
    line = one_line_error(invoke("predict", folder, "x", "--device", "GPU"))
    assert "--device" in line
    assert "no text to classify" in one_line_error(invoke("predict", folder))


def test_image_predict_still_needs_images(classifier, tmp_path):
    line = one_line_error(invoke("predict", tmp_path / "model.onnx"))
    assert "missing argument 'IMAGE_OR_DIR...'" in line
    line = one_line_error(invoke("predict", tmp_path / "model.onnx", "--file", tmp_path / "l"))
    assert "--file is for text models" in line


def test_backbones_lists_text_starts():
    result = invoke("backbones")
    assert result.exit_code == 0, result.output
    assert "text starts" in result.output and "all-minilm-l6-v2" in result.output
    assert "Apache-2.0" in result.output and "trained on:" in result.output
    data = json.loads(invoke("backbones", "--json").output)
    assert data["text"][0]["name"] == "all-minilm-l6-v2" and data["text"][0]["default"]


def test_text_quickstart_on_a_tiny_encoder(toy, tmp_path):
    from edgessl.text.quickstart import (
        TextQuickstartConfig,
        format_text_tables,
        run_text_quickstart,
    )

    cfg = TextQuickstartConfig(workdir=str(tmp_path), encoder=str(toy["bert"]),
                               data=str(toy["folder"]), sentence="i like the mango")
    result = run_text_quickstart(cfg)
    assert [r["method"].split()[-1] for r in result.accuracy[:2]] == ["probe", "full"]
    assert result.accuracy[2]["method"].startswith("TF-IDF")
    assert [e["artifact"] for e in result.exports] == ["onnx fp32", "onnx int8"]
    assert result.prediction["top_k"][0][0] in CLASSES
    assert (tmp_path / "models" / "quickstart-text-full-k8" / CARD_FILE).is_file()
    assert json.loads(result.summary_path.read_text())["timings_s"]["total_s"] > 0
    table = format_text_tables(result, 8)
    assert "TF-IDF" in table and "onnx int8" in table and "i like the mango" in table
    again = one_line_error(invoke("quickstart", "--text", "--workdir", tmp_path))
    assert "exists" in again and "--force" in again


def test_quickstart_text_refuses_image_flags(tmp_path):
    line = one_line_error(invoke("quickstart", "--text", "--epochs", "3",
                                 "--workdir", tmp_path))
    assert "--epochs" in line
