"""``edgessl pretrain`` on unlabeled text, in-process: dispatch, output, refused flags."""

from __future__ import annotations

import json

import pytest
from cli_helpers import invoke, one_line_error
from text_helpers import toy_sentences, write_tiny_bert

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text") / "lines"
    folder.mkdir()
    for topic, lines in toy_sentences(10).items():
        (folder / f"{topic}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("enc") / "bert")


def test_text_folder_runs_simcse(corpus, bert, tmp_path):
    out = tmp_path / "enc"
    result = invoke("--quiet", "pretrain", corpus, "--method", "simcse", "--backbone", bert,
                    "--steps", "3", "--batch-size", "8", "--lr", "1e-3", "--max-length", "16",
                    "--opt", "temperature=0.1", "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    assert "saved" in result.output and "3 steps" in result.output
    card = json.loads((out / "card.json").read_text())
    assert card["ssl"]["method"] == "simcse" and card["ssl"]["steps_done"] == 3
    assert card["ssl"]["method_options"] == {"temperature": 0.1}
    assert card["ssl"]["max_length"] == 16 and card["data"]["files"] == 3


@pytest.mark.parametrize("args, expected", [
    (["--image-size", "32"], "--image-size does not apply here"),
    (["--aug", "blur_p=0"], "--aug does not apply here"),
    (["--epochs", "1", "--steps", "2"], "--epochs and --steps"),
    (["--method", "simclr"], "unknown text SSL method 'simclr'"),
    (["--opt", "temprature=0.1"], "unknown key 'temprature'"),
    (["--max-length", "100"], "--max-length 100 is over the 64 tokens that encoder"),
])
def test_text_flag_errors_are_one_line(corpus, bert, tmp_path, args, expected):
    result = invoke("pretrain", corpus, "--backbone", bert, "--out", tmp_path / "o", *args)
    assert expected in one_line_error(result)
    assert not (tmp_path / "o").exists()


def test_text_only_flags_refused_for_images(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG")
    result = invoke("pretrain", tmp_path / "img", "--steps", "3", "--out", tmp_path / "o")
    assert "--steps does not apply here" in one_line_error(result)
