"""Outputs: never replaced without --force, never an input, locked while written, strict JSON,
the user's umask, and no NaN passed off as a result.

Signals and a real full disk are in tests/test_disk_full.py and tests/test_signals.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgessl.checkpoint import ModelCard, read_card
from edgessl.errors import ConfigError, EdgesslError, OutputExistsError
from edgessl.io import (
    atomic_dir,
    atomic_file,
    check_outputs,
    dumps_json,
    output_lock,
    write_json,
)
from edgessl.models import load_model, save_model
from tests.cli_helpers import invoke, one_line_error
from tests.conftest import make_classifier_checkpoint
from tests.deploy_helpers import exported


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    return exported(tmp_path_factory, tiny_classifier, "onnx")  # shared with the deploy tests


@pytest.fixture(scope="module")
def nan_classifier(tmp_path_factory, digits_dir):
    """A classifier checkpoint whose head weights are NaN."""
    out = make_classifier_checkpoint(tmp_path_factory.mktemp("nan") / "clf", digits_dir)
    model, card = load_model(out)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    return save_model(model, card, out, force=True)


def _image(digits_dir: Path) -> Path:
    return sorted((digits_dir / "val").rglob("*.png"))[0]


# -- never replaced without --force ----------------------------------------------------------

BENCH = ("--iterations", "1", "--warmup", "0", "--async-runs", "0", "--no-e2e")


@pytest.mark.parametrize("command", ["predict --json", "benchmark --json", "benchmark --csv",
                                     "benchmark --markdown", "benchmark --plot",
                                     "export --out", "deploy --archive"])
def test_existing_outputs_are_never_replaced_without_force(command, tmp_path, onnx_model,
                                                           tiny_classifier, digits_dir):
    name, option = command.split()
    target = tmp_path / {"--archive": "out.tar.gz", "--plot": "existing.png"}.get(option,
                                                                                "existing")
    target.write_text("keep")
    args = {"predict": ("predict", onnx_model, _image(digits_dir), option, target),
            "benchmark": ("benchmark", onnx_model, *BENCH, option, target),
            "export": ("export", tiny_classifier, option, target),
            "deploy": ("deploy", onnx_model, "--out", tmp_path / "out", "--archive",
                       "--no-baseline")}[name]
    line = one_line_error(invoke(*args))
    assert "exists" in line and "--force" in line, line
    assert target.read_text() == "keep"
    assert not (tmp_path / "out").exists()  # deploy: refused before the bundle


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_benchmark_force_replaces_and_outputs_are_checked_before_measuring(
        option, tmp_path, onnx_model, monkeypatch):
    target = tmp_path / "bench.out"
    target.write_text("old")
    measured = []
    import edgessl.benchmark.host as run

    real = run.benchmark_models
    monkeypatch.setattr(run, "benchmark_models", lambda *a, **k: measured.append(1) or real(*a,
                                                                                           **k))
    one_line_error(invoke("benchmark", onnx_model, *BENCH, option, target))
    assert measured == []  # refused before any measurement
    result = invoke("benchmark", onnx_model, *BENCH, option, target, "--force")
    assert result.exit_code == 0, result.output
    assert target.read_text() != "old"


def test_predict_force_replaces_the_json(tmp_path, onnx_model, digits_dir):
    target = tmp_path / "p.json"
    target.write_text("old")
    result = invoke("predict", onnx_model, _image(digits_dir), "--json", target, "--force")
    assert result.exit_code == 0, result.output
    assert len(json.loads(target.read_text())["predictions"]) == 1


def test_two_outputs_with_one_path_are_refused(tmp_path, onnx_model):
    line = one_line_error(invoke("benchmark", onnx_model, *BENCH, "--json", tmp_path / "x",
                                 "--csv", tmp_path / "x"))
    assert "--json and --csv both write" in line
    assert not (tmp_path / "x").exists()


def test_atomic_writers_default_to_never_replacing(tmp_path):
    (tmp_path / "f").write_text("keep")
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputExistsError), atomic_file(tmp_path / "f") as tmp:
        tmp.write_text("new")
    with pytest.raises(OutputExistsError), atomic_dir(tmp_path / "d"):
        pass
    with pytest.raises(OutputExistsError):
        write_json(tmp_path / "f", {})
    assert (tmp_path / "f").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


def test_a_target_made_by_someone_else_meanwhile_is_not_replaced(tmp_path):
    """The check at rename time: what appeared while this run wrote is kept."""
    for folder in (True, False):
        target = tmp_path / f"out{folder}"
        writer = atomic_dir(target) if folder else atomic_file(target)
        with pytest.raises(OutputExistsError), writer as tmp:
            (tmp / "a" if folder else tmp).write_text("mine")
            (target.mkdir() if folder else target.write_text("theirs"))
        assert (not any(target.iterdir())) if folder else target.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outFalse", "outTrue"]


# -- an output is never an input ---------------------------------------------------------------

def _overlap_cases(tiny, onnx_model, digits_dir, tmp_path):
    image = _image(digits_dir)
    return {
        "export --out MODEL": ("export", tiny, "--out", tiny, "--force"),
        "export --out around MODEL": ("export", tiny, "--out", tiny.parent, "--force"),
        "export --out inside --data": ("export", tiny, "--data", digits_dir, "--out",
                                       digits_dir / "val" / "x"),
        "predict --json MODEL": ("predict", onnx_model, image, "--json", onnx_model, "--force"),
        "predict --json IMAGE": ("predict", onnx_model, image, "--json", image, "--force"),
        "benchmark --csv MODEL": ("benchmark", onnx_model, "--csv", onnx_model, "--force"),
        "benchmark --plot in --data": ("benchmark", onnx_model, "--data", digits_dir,
                                       "--plot", digits_dir / "train" / "0" / "p.png"),
        "deploy --out MODEL": ("deploy", tiny, "--out", tiny, "--force"),
        "pretrain --out in DATA": ("pretrain", digits_dir, "--backbone", "resnet_micro",
                                   "--image-size", "16", "--out", digits_dir / "ckpt"),
        "finetune --out DATA": ("finetune", digits_dir, "--out", digits_dir, "--force"),
    }


@pytest.mark.parametrize("case", ["export --out MODEL", "export --out around MODEL",
                                  "export --out inside --data", "predict --json MODEL",
                                  "predict --json IMAGE", "benchmark --csv MODEL",
                                  "benchmark --plot in --data", "deploy --out MODEL",
                                  "pretrain --out in DATA", "finetune --out DATA"])
def test_an_output_is_never_an_input_or_inside_one(case, tmp_path, tiny_classifier, onnx_model,
                                                   digits_dir):
    def snapshot():
        return {p: p.stat().st_mtime_ns for root in (tiny_classifier, onnx_model.parent,
                                                      digits_dir) for p in root.rglob("*")}

    before = snapshot()
    args = _overlap_cases(tiny_classifier, onnx_model, digits_dir, tmp_path)[case]
    line = one_line_error(invoke(*args))
    assert any(w in line for w in (" is the input", " contains the input",
                                   " lies inside the input")), line
    assert "choose another" in line
    assert snapshot() == before


def test_check_outputs_sees_through_links(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "model")
    with pytest.raises(ConfigError, match="is the input MODEL"):
        check_outputs({"--out": tmp_path / "alias"}, {"MODEL": tmp_path / "model"}, force=True)
    (tmp_path / "w.xml").write_text("<net/>")
    with pytest.raises(ConfigError, match="is the input MODEL"):  # an IR's .bin is an input
        check_outputs({"--json": tmp_path / "w.bin"}, {"MODEL": tmp_path / "w.xml"},
                      force=True)


# -- one writer at a time ------------------------------------------------------------------------

HOLDER = """
import sys, time
from edgessl.io import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold_lock(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_fails_at_once_and_a_killed_ones_lock_never_blocks(
        tmp_path, tiny_classifier, digits_dir):
    out = tmp_path / "exported"
    holder = _hold_lock(out)  # another run writing the same --out
    try:
        line = one_line_error(invoke("export", tiny_classifier, "--out", out))
        assert f"(pid {holder.pid}) is writing" in line and "--out" in line
        line = one_line_error(invoke("--quiet", "pretrain", digits_dir / "val", "--backbone",
                                     "resnet_micro", "--image-size", "16", "--epochs", "1",
                                     "--out", out))
        assert "is writing" in line
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".exported.lock").exists()  # stale: its process is gone
    result = invoke("--quiet", "export", tiny_classifier, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]


def test_pretraining_holds_its_output_for_the_whole_run(tmp_path, digits_dir, monkeypatch):
    """Between its epoch saves a pretraining run still owns --out: another process cannot
    take it, and this process's own saves go through."""
    import edgessl.ssl.pretrain as pretrain_module

    out = tmp_path / "ckpt"
    seen = []
    real = pretrain_module.save_model

    def save(*args, **kwargs):
        probe = subprocess.run([sys.executable, "-c", "import sys\nfrom edgessl.io import "
                                "output_lock\ntry:\n    with output_lock(sys.argv[1]): pass\n"
                                "except Exception as e: print(e)", str(out)],
                               capture_output=True, text=True, timeout=60)
        seen.append(probe.stdout.strip())
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "save_model", save)
    result = invoke("--quiet", "pretrain", digits_dir / "val", "--backbone", "resnet_micro",
                    "--image-size", "16", "--epochs", "1", "--batch-size", "64", "--out", out)
    assert result.exit_code == 0, result.output
    assert seen and all(f"(pid {os.getpid()}) is writing" in s for s in seen), seen
    assert read_card(out).training["complete"] is True


def test_locks_are_reentrant_and_released(tmp_path):
    target = tmp_path / "t"
    with output_lock(target), output_lock(target), atomic_file(target) as tmp:
        tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    with pytest.raises(OutputExistsError, match="exists"), output_lock(target, force=False):
        pass


# -- umask ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_outputs_respect_the_umask(umask, tmp_path, digits_dir):
    before = os.umask(umask)
    try:
        clf = make_classifier_checkpoint(tmp_path / "clf", digits_dir)
        report = write_json(tmp_path / "report.json", {"a": 1})
        with atomic_file(tmp_path / "plain.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(before)
    assert clf.stat().st_mode & 0o777 == 0o777 & ~umask
    for file in (*clf.iterdir(), report, tmp_path / "plain.txt"):
        assert file.stat().st_mode & 0o777 == 0o666 & ~umask, file


# -- strict JSON and non-finite results ----------------------------------------------------------

def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_and_says_where_it_wrote_null(tmp_path, caplog):
    data = {"loss": float("nan"), "rows": [{"spread": float("inf")}, {"ok": 1.5}],
            "n": torch.tensor(2.0).numpy()}
    with caplog.at_level("WARNING", logger="edgessl"):
        path = write_json(tmp_path / "h.json", data)
    assert _strict(path.read_text()) == {"loss": None, "rows": [{"spread": None}, {"ok": 1.5}],
                                         "n": 2.0}
    assert "2 non-finite values written as null (loss, rows[0].spread)" in caplog.text
    assert "NaN" not in dumps_json([float("-inf")])


def test_pretraining_history_json_is_strict():
    from edgessl.ssl.history import HISTORY_JSON, history_files

    files = history_files([{"epoch": 1, "loss": 0.0, "embedding_spread": float("nan")}], "t")
    assert _strict(files[HISTORY_JSON].decode())[0]["embedding_spread"] is None


def test_export_of_nan_weights_fails_and_leaves_nothing(nan_classifier, tmp_path):
    line = one_line_error(invoke("--quiet", "export", nan_classifier, "--out", tmp_path / "x"))
    assert "NaN weight values" in line and "re-train it before exporting" in line
    assert "agreement" not in line
    assert list(tmp_path.iterdir()) == []


def test_export_catches_an_artifact_that_breaks_finite_outputs(tiny_classifier, tmp_path,
                                                               monkeypatch):
    """Non-finite artifact outputs (a conversion bug, fp16 overflow) fail the export."""
    import numpy as np

    from edgessl.backends import onnxruntime_rt

    real = onnxruntime_rt.load

    def load(*args, **kwargs):
        loaded = real(*args, **kwargs)
        run = loaded.run
        loaded.run = lambda x: np.full_like(run(x), np.inf)
        return loaded

    monkeypatch.setattr(onnxruntime_rt, "load", load)
    line = one_line_error(invoke("--quiet", "export", tiny_classifier, "--out", tmp_path / "x"))
    assert "the exported artifact's outputs" in line and "infinite" in line
    assert list(tmp_path.iterdir()) == []


def test_a_card_with_zero_std_never_passes_validation(tiny_classifier, tmp_path):
    """std = 0 makes every input infinite: refused (at load, or by the finite check)."""
    bad = tmp_path / "clf"
    bad.mkdir()
    for f in tiny_classifier.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    card = json.loads((bad / "card.json").read_text())
    card["std"] = [0.0, 0.0, 0.0]
    (bad / "card.json").write_text(json.dumps(card))
    result = invoke("--quiet", "export", bad, "--out", tmp_path / "x")
    line = one_line_error(result)
    assert "agreement" not in line and "std" in line or "not finite" in line, line
    assert not (tmp_path / "x").exists()


def test_predict_and_benchmark_refuse_nan_scores(nan_classifier, digits_dir, tmp_path):
    line = one_line_error(invoke("predict", nan_classifier, _image(digits_dir), "--json",
                                 tmp_path / "p.json"))
    assert "scores of" in line and "not finite" in line
    assert not (tmp_path / "p.json").exists()
    line = one_line_error(invoke("benchmark", nan_classifier, *BENCH, "--data", digits_dir,
                                 "--json", tmp_path / "b.json"))
    assert "not finite" in line
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("mode", ["full", "linear"])
def test_finetune_refuses_nan_outputs(mode, nan_classifier, tmp_path, monkeypatch):
    """A backbone of NaN weights: the classifier's metrics would be argmax-of-NaN noise."""
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("EDGESSL_PROGRESS", "0")
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "pets" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / "pets" / c / f"{i}.png")
    model, card = load_model(nan_classifier)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.fill_(float("nan"))
    backbone = save_model(model.backbone, ModelCard(kind="backbone", backbone=card.backbone,
                                                    method="simclr"), tmp_path / "bb")
    epochs = ("--epochs", "1") if mode == "full" else ()
    line = one_line_error(invoke("--quiet", "finetune", tmp_path / "pets", "--backbone",
                                 backbone, "--mode", mode, *epochs, "--out", tmp_path / "clf"))
    assert "not finite" in line or "nan" in line.lower(), line
    assert not (tmp_path / "clf").exists()


def test_require_finite_names_what_and_how_many():
    from edgessl.io import require_finite

    with pytest.raises(EdgesslError, match=r"x are not finite \(1 NaN and 2 infinite of 4 "
                                           r"values\); fix it"):
        require_finite([1.0, float("nan"), float("inf"), -float("inf")], "x", "fix it")
    require_finite([0.0, 1.0], "x", "fix it")


# Run in a fresh interpreter: a process signalling itself inherits whatever earlier tests left
# in this one (seen: SIGTERM to self crashing after OpenVINO compiled a bf16 model in-process).
_PUBLISH_UNDER_SIGTERM = """
import os, signal, sys, time
from pathlib import Path
from edgessl.interrupt import StopSignal, stop_on_signals
from edgessl.io import atomic_dir

target = Path(sys.argv[1]) / "d"
with atomic_dir(target) as tmp:
    (tmp / "v").write_text("1")
real_rename, calls = Path.rename, []

def rename(self, dest):
    calls.append(self)
    if len(calls) == 1:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler would run here, between the renames
    return real_rename(self, dest)

try:
    with stop_on_signals():
        Path.rename = rename
        try:
            with atomic_dir(target, force=True) as tmp:
                (tmp / "v").write_text("2")
        finally:
            Path.rename = real_rename
except StopSignal:
    print("stopped after", len(calls), "renames")
"""


def test_signals_during_the_publishing_renames_wait(tmp_path):
    """A stop that arrives between the two renames is raised after them, never between."""
    out = subprocess.run([sys.executable, "-c", _PUBLISH_UNDER_SIGTERM, str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stopped after 2 renames"
    assert (tmp_path / "d" / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_the_bundle_runner_never_replaces_its_json_and_writes_strict_json(tmp_path, capsys):
    """The device-side runner (no edgessl.io there) keeps the same promises as the host."""
    from edgessl.runtime.bundle_cli import main, write_output

    existing = tmp_path / "results.json"
    existing.write_text("keep")
    for command in (["predict", "x.png"], ["benchmark"]):
        assert main([*command, "--json", str(existing)], bundle_dir=tmp_path) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "--force" in err and "\n" not in err
    assert existing.read_text() == "keep"
    write_output(str(tmp_path / "out.json"), {"top1": float("nan"), "p50": [1.0, float("inf")]},
                force=False)
    assert json.loads((tmp_path / "out.json").read_text()) == {"top1": None, "p50": [1.0, None]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_force_replaces_only_a_folder_edgessl_wrote(digits_dir, tmp_path, monkeypatch):
    """`--out ~/Desktop --force` must not wipe the desktop: every command's --out is refused
    before any work when it holds files no edgessl command wrote, and the files stay."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    small = ["--image-size", "16"]
    for args in (("finetune", digits_dir, "--backbone", "scratch:resnet_micro", *small),
                 ("pretrain", digits_dir, "--backbone", "resnet_micro", "--epochs", "1", *small),
                 ("compare", digits_dir, "--arms", "pixels")):
        line = one_line_error(invoke(*args, "--out", mine, "--force"))
        assert "holds 1 file(s) that are not a folder edgessl wrote (notes.txt)" in line, args
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(OutputExistsError, match="is a file, not a folder edgessl wrote"):
        check_outputs({"--out": mine / "notes.txt"}, force=True)
    monkeypatch.chdir(mine)
    with pytest.raises(ConfigError, match="is the current folder"):
        check_outputs({"--out": "."}, force=True)
    with pytest.raises(ConfigError, match="a folder around the current one"):
        check_outputs({"--out": tmp_path}, force=True)
    # what --force does replace: an edgessl output, an empty folder, desktop litter only
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / ".DS_Store").write_bytes(b"")
    check_outputs({"--out": ours}, force=True)
    (ours / "card.json").write_text("{}")
    (ours / "model.safetensors").write_bytes(b"")
    check_outputs({"--out": ours}, force=True)
    check_outputs({"--json": mine / "notes.txt"}, force=True)  # a file output: replaced
