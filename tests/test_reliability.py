"""Bad input gives a one-line error or a counted skip; bad outputs and a full disk lose nothing."""

from __future__ import annotations

import errno
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import WEIGHTS_FILE, ModelCard
from edgessl.cli import app
from edgessl.data.images import find_images, open_rgb
from edgessl.data.labeled import load_labeled
from edgessl.data.tensors import load_uint8
from edgessl.errors import CheckpointError, ConfigError, DataError, OutputWriteError
from edgessl.io import atomic_dir, check_output_path, write_json
from edgessl.models import Classifier, load_model, save_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("EDGESSL_PROGRESS", "0")


def invoke(*args):
    """The CLI in-process, with --quiet: only warnings and errors reach the output."""
    return runner.invoke(app, ["--quiet", *[str(a) for a in args]])


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def image_folder(root: Path, classes=("cat", "dog"), per_class: int = 6, size=(12, 10)) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A few-byte PNG whose header claims width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    return path


# --- folders -------------------------------------------------------------------------------

@pytest.mark.parametrize("make, loader, message", [
    (lambda p: p / "missing", find_images, "does not exist"),
    (lambda p: p, find_images, "no usable image"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", find_images, "is not a folder"),
    (lambda p: p / "missing", load_labeled, "does not exist"),
    (lambda p: p, load_labeled, "no class subfolders"),
    (lambda p: image_folder(p / "one", classes=("only",)), load_labeled, "only one class"),
    (lambda p: (p / "a").mkdir() or (p / "b").mkdir() or p, load_labeled, "no usable image"),
])
def test_bad_folders_are_one_line_errors(tmp_path, make, loader, message):
    with pytest.raises(DataError, match=message) as info:
        loader(make(tmp_path))
    assert "\n" not in str(info.value)


def test_empty_and_missing_folders_on_the_cli(tmp_path):
    for command in ("pretrain", "finetune"):
        assert "does not exist" in one_line_error(invoke(command, tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    assert "no usable image" in one_line_error(invoke("pretrain", tmp_path / "empty"))
    assert "no class subfolders" in one_line_error(invoke("finetune", tmp_path / "empty"))


# --- files ---------------------------------------------------------------------------------

def test_bad_files_are_skipped_counted_and_explained(tmp_path, caplog):
    root = image_folder(tmp_path / "pets")
    (root / "cat" / "zero.png").write_bytes(b"")
    (root / "cat" / "text.jpg").write_text("not an image, just a name")
    good = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "cut.png").write_bytes(good[: len(good) // 2])
    Image.new("RGB", (64, 64), "red").save(root / "dog" / "big.jpg")
    data = (root / "dog" / "big.jpg").read_bytes()
    (root / "dog" / "cut.jpg").write_bytes(data[: len(data) // 2])
    (root / "dog" / "garbage.webp").write_bytes(np.random.default_rng(1).bytes(300))
    png_claiming(root / "cat" / "bomb.png", 30_000, 30_000)
    with caplog.at_level("WARNING", logger="edgessl"):
        data = load_labeled(root)
    assert len(data.train) + len(data.val) == 13  # 12 good + big.jpg
    text = caplog.text
    assert "skipped 6" in text and str(root) in text
    for reason in ("1 empty file", "2 not an image", "2 truncated", "1 decompression bomb"):
        assert reason in text, text


@pytest.mark.parametrize("mode, suffix", [
    ("L", ".png"), ("LA", ".png"), ("RGBA", ".png"), ("P", ".png"), ("1", ".bmp"),
    ("I;16", ".png"), ("CMYK", ".jpg"), ("RGB", ".webp"),
])
def test_image_modes_are_converted_not_rejected(tmp_path, mode, suffix):
    path = tmp_path / f"x{suffix}"
    img = Image.new(mode, (20, 10))
    if mode == "P":
        img.info["transparency"] = 0
    img.save(path)
    assert find_images(tmp_path) == [path]
    assert open_rgb(path).mode == "RGB"
    assert tuple(load_uint8(path, 8).shape) == (3, 8, 8)


def test_decompression_bomb_is_a_one_line_error_in_predict(tmp_path, tiny_classifier):
    bomb = png_claiming(tmp_path / "bomb.png", 30_000, 30_000)
    line = one_line_error(invoke("predict", tiny_classifier, bomb))
    assert "not a readable image" in line and "bomb" in line.lower()


@pytest.mark.parametrize("name, size, most", [
    ("huge.jpg", (6000, 4000), 64),  # decoded at 1/8 scale by the JPEG decoder (draft)
    ("huge.png", (3000, 1500), 64),  # reduced by an integer factor right after decoding
])
def test_huge_images_are_downscaled_on_load(tmp_path, name, size, most):
    Image.new("RGB", size, (200, 30, 30)).save(tmp_path / name)
    img = open_rgb(tmp_path / name, min_side=16)
    assert 32 <= min(img.size) < most and img.mode == "RGB"
    x = load_uint8(tmp_path / name, 16)
    assert tuple(x.shape) == (3, 16, 16) and int(x[0].float().mean()) in range(190, 211)


# --- classes and labels --------------------------------------------------------------------

def test_labels_per_class_larger_than_a_class(tmp_path):
    root = image_folder(tmp_path / "pets", per_class=6)
    line = one_line_error(invoke("finetune", root, "--backbone", "scratch:resnet_micro",
                                 "--image-size", "16", "-k", "7", "--out", tmp_path / "o"))
    assert "larger than class" in line and "≤ 5" in line  # 6 images, 1 held out for val
    assert not (tmp_path / "o").exists()


def test_unicode_and_spaced_class_names_survive_finetune_export_predict(tmp_path):
    classes = ("chat noir", "café crème", "犬 dog")
    root = image_folder(tmp_path / "data", classes=classes, per_class=5, size=(16, 16))
    ft = invoke("finetune", root, "--backbone", "scratch:resnet_micro", "--image-size", "16",
                "--mode", "linear", "--out", tmp_path / "clf")
    assert ft.exit_code == 0, ft.output
    _, card = load_model(tmp_path / "clf")
    assert card.labels == tuple(sorted(classes))
    labels = json.loads((tmp_path / "clf" / "labels.json").read_text(encoding="utf-8"))
    assert labels == sorted(classes)
    ex = invoke("export", tmp_path / "clf", "--format", "onnx", "--out", tmp_path / "onnx")
    assert ex.exit_code == 0, ex.output
    from edgessl.runtime import load

    model = load(tmp_path / "onnx" / "model.onnx")
    assert tuple(model.meta.labels) == tuple(sorted(classes))
    result = invoke("predict", tmp_path / "onnx" / "model.onnx", root / "café crème",
                    "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    predictions = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))["predictions"]
    assert len(predictions) == 5 and {p["label"] for p in predictions} <= set(classes)
    assert all("café crème" in p["source"] for p in predictions)


# --- checkpoints and artifacts -------------------------------------------------------------

def _checkpoint(out: Path, backbone: str = "resnet_micro") -> Path:
    spec = BackboneSpec.for_images(backbone, 16)
    card = ModelCard(kind="classifier", backbone=spec.to_dict(), method="scratch",
                     labels=("a", "b"))
    return save_model(Classifier(create_backbone(spec), 2), card, out)


def test_checkpoint_of_another_backbone_is_refused(tmp_path, digits_dir):
    _checkpoint(tmp_path / "micro")
    _checkpoint(tmp_path / "tiny", backbone="resnet_tiny")
    (tmp_path / "micro" / WEIGHTS_FILE).write_bytes((tmp_path / "tiny" / WEIGHTS_FILE)
                                                   .read_bytes())
    with pytest.raises(CheckpointError, match="do not match backbone 'resnet_micro'"):
        load_model(tmp_path / "micro")
    line = one_line_error(invoke("finetune", digits_dir, "--backbone", tmp_path / "micro"))
    assert "do not match backbone" in line


def test_truncated_safetensors_is_refused(tmp_path):
    path = _checkpoint(tmp_path / "ckpt") / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(tmp_path / "ckpt")
    assert "damaged" in one_line_error(invoke("export", tmp_path / "ckpt"))


@pytest.mark.parametrize("name, content", [
    ("model.onnx", None), ("model.onnx", b""), ("model.xml", None),
    ("model.xml", b"<?xml version='1.0'?><net></net>"), ("model.xml", b"<not xml at all"),
])
def test_random_bytes_named_like_a_model_are_one_line_errors(tmp_path, digits_dir, name,
                                                              content):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(2048) if content is None else content)
    path.with_suffix(".bin").write_bytes(np.random.default_rng(1).bytes(64))
    image = next((digits_dir / "val" / "3").glob("*.png"))
    line = one_line_error(invoke("predict", path, image))
    assert "not a valid" in line or "not an OpenVINO IR" in line or "no edgessl metadata" in line
    assert "benchmark" not in line and one_line_error(invoke("benchmark", path))


# --- profiles and flags --------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('runtimes = ["onnxruntime"]\nthreadz = 4\n', "unknown key 'threadz'. Valid keys: "),
    ('threads = "four"\n', "key 'threads' must be int, got str 'four'"),
    ("threads = true\n", "key 'threads' must be int"),
    ('runtimes = "onnxruntime"\n', "key 'runtimes' must be"),
    ("batch_sizes = [1, 2.5]\n", "key 'batch_sizes' must be"),
    ('precisions = ["fp8"]\n', "unknown precision 'fp8'"),
    ("threads = -1\n", "'threads' must be ≥ 0"),
    ("[provider_options]\nCPUExecutionProvider = 3\n", "must be a table"),
    ("threads = = 4\n", "is not valid TOML"),
])
def test_bad_device_profiles_are_one_line_errors(tmp_path, text, message):
    from edgessl.devices.profile import load_profile

    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("args, expected", [
    (["pretrain", "{tmp}", "--resume", "--force"], "pass only one of them"),
    (["export", "{model}", "--precision", "fp16", "--scheme", "s8s8"], "apply to int8"),
    (["export", "{model}", "--format", "openvino", "--simplify"], "--simplify applies to"),
    (["export", "{model}", "--precision", "fp32", "--max-drop", "0.01"], "apply to int8"),
    (["finetune", "{digits}", "--backbone", "{model}", "--image-size", "32"],
     "omit --image-size"),
])
def test_contradictory_flags_are_errors(tmp_path, tiny_classifier, digits_dir, args, expected):
    subs = {"tmp": tmp_path, "model": tiny_classifier, "digits": digits_dir}
    line = one_line_error(invoke(*[a.format(**subs) for a in args]))
    assert expected in line


# --- outputs -------------------------------------------------------------------------------

def test_output_under_a_file_fails_before_any_work(tmp_path, digits_dir, monkeypatch):
    (tmp_path / "file").write_text("a file, not a folder")
    bad = tmp_path / "file" / "clf"
    with pytest.raises(OutputWriteError, match="is a file, not a folder"):
        check_output_path(bad)
    import edgessl.finetune.train as train

    def no_training(*args, **kwargs):
        raise AssertionError("training started although --out cannot be written")

    monkeypatch.setattr(train, "train_full", no_training)
    line = one_line_error(invoke("finetune", digits_dir, "--backbone", "scratch:resnet_micro",
                                 "--image-size", "16", "--out", bad))
    assert "is a file, not a folder" in line
    assert "cannot create output folder" in one_line_error(invoke("data", "digits", bad / "d"))


def test_read_only_output_folder_is_refused(tmp_path, monkeypatch):
    import os

    # Tests run as root, whom chmod does not stop: the check itself is what is tested.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputWriteError, match="not writable"):
        check_output_path(tmp_path / "out")
    with pytest.raises(OutputWriteError, match="not writable"):
        with atomic_dir(tmp_path / "out"):
            pass
    assert list(tmp_path.iterdir()) == []


def _no_space(*args, **kwargs):
    path = Path(args[1] if len(args) > 1 else kwargs["filename"])
    path.write_bytes(b"half a file")  # the write got this far
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = _checkpoint(tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr("safetensors.torch.save_file", _no_space)
    spec = BackboneSpec.for_images("resnet_micro", 16)
    card = ModelCard(kind="classifier", backbone=spec.to_dict(), method="scratch",
                     labels=("a", "b"))
    with pytest.raises(OutputWriteError, match="no space left on device") as info:
        save_model(Classifier(create_backbone(spec), 2), card, out, force=True)
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp folder left
    load_model(out)


def test_disk_full_in_a_json_write_and_on_the_cli(tmp_path, monkeypatch, digits_dir):
    target = tmp_path / "report.json"
    write_json(target, {"version": 1})

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", full)
        with pytest.raises(OutputWriteError, match="no space left"):
            write_json(target, {"version": 2}, force=True)
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    monkeypatch.setattr("safetensors.torch.save_file", _no_space)
    root = image_folder(tmp_path / "pets", size=(16, 16))
    line = one_line_error(invoke("finetune", root, "--backbone", "scratch:resnet_micro",
                                 "--image-size", "16", "--epochs", "1", "--out",
                                 tmp_path / "clf"))
    assert "no space left on device" in line and "--out" in line
    assert not (tmp_path / "clf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_file_signature_matches_the_disk_full_fake():
    # _no_space stands in for safetensors' save_file(tensors, filename, metadata=None).
    import inspect

    from safetensors.torch import save_file as real

    assert list(inspect.signature(real).parameters)[:2] == ["tensors", "filename"]
    assert real is save_file
    torch.manual_seed(0)
