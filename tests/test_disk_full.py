"""A real full disk: a 2 MiB tmpfs mounted for the test (root only; skipped where mounting is
not permitted). Every write that runs out of space is the one-line OutputWriteError "no space
left on device", the previous output is unchanged and no temporary is left.

The simulated cases (ENOSPC raised by a patched writer) are in tests/test_reliability.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgessl.errors import OutputWriteError
from edgessl.io import disk_errors, write_failure, write_json
from tests.cli_helpers import invoke, one_line_error


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs at tmp_path/fs, unmounted afterwards."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_no_space(line: str) -> None:
    assert "no space left on device" in line and "unchanged" in line, line


@pytest.mark.parametrize("fmt", ["openvino", "onnx"])
def test_export_on_a_full_disk(fmt, small_fs, tiny_classifier):
    if fmt == "openvino":
        pytest.importorskip("openvino")
    out = small_fs / "out"
    assert invoke("--quiet", "export", tiny_classifier, "--format", fmt,
                  "--out", out).exit_code == 0
    before = snapshot(out)
    fill(small_fs, leave=16 * 1024)
    line = one_line_error(invoke("--quiet", "export", tiny_classifier, "--format", fmt,
                                 "--out", out, "--force"))
    assert_no_space(line)
    assert snapshot(out) == before
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler", "out"]


def test_pretrain_checkpoint_on_a_full_disk(small_fs, digits_dir, monkeypatch):
    monkeypatch.setenv("EDGESSL_PROGRESS", "0")
    out = small_fs / "ckpt"
    args = ("--quiet", "pretrain", digits_dir / "val", "--backbone", "resnet_micro",
            "--image-size", "16", "--epochs", "1", "--batch-size", "128", "--out", out)
    assert invoke(*args).exit_code == 0
    before = snapshot(out)
    fill(small_fs, leave=16 * 1024)
    line = one_line_error(invoke(*args, "--force"))
    assert_no_space(line)
    assert snapshot(out) == before
    assert sorted(p.name for p in small_fs.iterdir()) == ["ckpt", "filler"]


def test_json_outputs_on_a_full_disk(small_fs, tiny_classifier, digits_dir):
    fill(small_fs, leave=0)
    image = sorted((digits_dir / "val").rglob("*.png"))[0]
    line = one_line_error(invoke("--quiet", "predict", tiny_classifier, image, "--json",
                                 small_fs / "p.json"))
    assert_no_space(line)
    with pytest.raises(OutputWriteError, match="no space left on device"):
        write_json(small_fs / "big.json", {"x": "y" * 100_000})
    assert [p.name for p in small_fs.iterdir()] == ["filler"]


def test_a_library_error_on_a_full_disk_is_recognised_by_free_space(small_fs):
    """OpenVINO says "basic_ios::clear", torch.save "file write failed": the free space
    measured at the failure decides, not the message."""
    fill(small_fs, leave=0)
    target = small_fs / "model.bin"
    assert write_failure(RuntimeError("basic_ios::clear: iostream error"), target) is not None
    with pytest.raises(OSError) as info, disk_errors(target):
        raise RuntimeError("basic_ios::clear: iostream error")
    assert info.value.errno == 28


def test_a_library_error_with_space_left_is_not_called_a_full_disk(tmp_path):
    assert write_failure(RuntimeError("basic_ios::clear"), tmp_path / "x") is None \
        or shutil.disk_usage(tmp_path).free < 2**20
    with pytest.raises(RuntimeError), disk_errors(tmp_path / "x"):
        raise RuntimeError("some other failure")
