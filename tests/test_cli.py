"""The CLI in-process: one-line errors with exit code 2, and each command's happy path."""

from __future__ import annotations

import json

import pytest
from cli_helpers import invoke, one_line_error


def test_data_digits(tmp_path):
    result = invoke("data", "digits", tmp_path / "d", "--image-size", "8")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "train" / "7").is_dir()
    again = invoke("data", "digits", tmp_path / "d", "--image-size", "8")
    assert "--force" in one_line_error(again)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["pretrain", "{tmp}/missing"], "does not exist"),
        (["pretrain", "{tmp}", "--method", "simclrr"], "Did you mean 'simclr'"),
        (["pretrain", "{digits}", "--backbone", "resnet19"], "Did you mean 'resnet18'"),
        (["finetune", "{tmp}/missing"], "does not exist"),
        (["finetune", "{digits}", "--mode", "lin"], "unknown mode"),
        (["finetune", "{digits}", "--backbone", "{tmp}"], "not an edgessl checkpoint"),
        (["finetune", "{digits}", "--labels-per-class", "999", "--image-size", "16"],
         "larger than class"),
        (["export", "{tmp}"], "not an edgessl checkpoint"),
        (["export", "{model}", "--format", "onxx"], "Did you mean 'onnx'"),
        (["export", "{model}", "--precision", "int4"], "int4"),
        (["benchmark", "{tmp}/nothing.onnx"], "does not exist"),
    ],
)
def test_errors_are_one_line_exit_2(args, expected, tmp_path, digits_dir, tiny_classifier):
    subs = {"tmp": tmp_path, "digits": digits_dir, "model": tiny_classifier}
    line = one_line_error(invoke(*[a.format(**subs) for a in args]))
    assert expected in line


def test_empty_folder_names_the_folder(tmp_path):
    line = one_line_error(invoke("pretrain", tmp_path, "--image-size", "16"))
    assert str(tmp_path) in line and "no usable image" in line


def test_debug_shows_traceback(tmp_path):
    result = invoke("--debug", "pretrain", tmp_path / "missing")
    assert result.exit_code != 0 and result.exception is not None


@pytest.mark.slow
def test_pipeline_end_to_end(tmp_path, digits_dir):
    pre = invoke("pretrain", digits_dir / "val", "--backbone", "resnet_micro", "--image-size", "16",
                 "--epochs", "1", "--batch-size", "128", "--hflip", "0",
                 "--out", tmp_path / "ssl")
    assert pre.exit_code == 0, pre.output
    assert "final loss" in pre.output
    ft = invoke("finetune", digits_dir, "--backbone", tmp_path / "ssl", "-k", "10",
                "--out", tmp_path / "clf")
    assert ft.exit_code == 0, ft.output
    assert "val top-1" in ft.output
    metrics = json.loads((tmp_path / "clf" / "metrics.json").read_text())
    assert metrics["samples"] == 359
    ex = invoke("export", tmp_path / "clf", "--format", "onnx", "--precision", "int8",
                "--calib-size", "32", "--out", tmp_path / "onnx-int8")
    assert ex.exit_code == 0, ex.output
    onnx_file = tmp_path / "onnx-int8" / "model.onnx"
    assert onnx_file.is_file()
    report = tmp_path / "bench.json"
    bench = invoke("benchmark", tmp_path / "clf", onnx_file, "--iterations", "5",
                   "--data", digits_dir, "--json", report)
    assert bench.exit_code == 0, bench.output
    rows = json.loads(report.read_text())["results"]
    assert {r["runtime"] for r in rows} == {"pytorch", "onnxruntime"}
    assert all(r["top1"] is not None for r in rows)


def test_a_tilde_the_shell_left_alone_is_the_home_folder(tmp_path, monkeypatch):
    """'--out=~/x' and quoted '~/x' reach edgessl unexpanded: never a folder named '~'."""
    from pathlib import Path

    from edgessl.cli.app import expand_home

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    result = invoke("data", "digits", "~/digits")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "digits" / "train").is_dir()
    assert not (tmp_path / "~").exists()
    assert expand_home([Path("~/a"), Path("b")]) == [tmp_path / "home" / "a", Path("b")]
    assert expand_home("~ a text to classify") == "~ a text to classify"
