"""Untrusted files: pickles with code, archives that escape, ONNX external data, shell quoting."""

from __future__ import annotations

import io
import pickle
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.backbones.weights import load_into_backbone, load_weights_file
from edgessl.errors import CheckpointError
from edgessl.safety import check_onnx_external_data, safe_extract


class _Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle", "legacy torch.save"])
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".th", ".ckpt", ".safetensors", ".bin"])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path, writer, suffix):
    marker = tmp_path / "PWNED"
    path = tmp_path / f"evil{suffix}"
    payload = {"conv.weight": torch.zeros(2), "x": _Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    elif writer == "legacy torch.save":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="refusing to load .*only tensors are accepted"
                       ) as info:
        load_weights_file(path)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and "safetensors" in message
    # edgessl's words: what was refused (the pickled code), and how to convert
    assert "code or Python objects beyond tensors (a pickled " in message
    assert "save_file(" in message
    # The sanity check of the test itself: a plain unpickler would have run the payload.
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_a_legacy_torch_save_of_tensors_loads(tmp_path):
    """Published weights from before PyTorch 1.6 (e.g. the EfficientNet-Lite files) are in the
    legacy format; the restricted unpickler reads them as it reads zip archives."""
    state = {"conv.weight": torch.arange(6.0).reshape(2, 3), "bn.num_batches_tracked":
             torch.tensor(3)}
    torch.save(state, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    loaded = load_weights_file(tmp_path / "old.pth")
    assert set(loaded) == set(state) and torch.equal(loaded["conv.weight"], state["conv.weight"])


def test_weights_files_load_into_a_backbone(tmp_path):
    spec = BackboneSpec.for_images("resnet_micro", 16)
    source = create_backbone(spec)
    state = {k: v.clone() for k, v in source.model.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {**state, "fc.weight": torch.zeros(10, 64)}}, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        target = create_backbone(spec)
        load_into_backbone(target, load_weights_file(tmp_path / name), name)
        for key, value in target.model.state_dict().items():
            assert torch.equal(value, state[key]), (name, key)


def test_weights_of_another_architecture_are_refused(tmp_path):
    other = create_backbone(BackboneSpec.for_images("resnet_tiny", 16))
    save_file(dict(other.model.state_dict()), str(tmp_path / "tiny.safetensors"))
    target = create_backbone(BackboneSpec.for_images("resnet_micro", 16))
    with pytest.raises(CheckpointError, match="do not fit backbone 'resnet_micro'.*--arch"):
        load_into_backbone(target, load_weights_file(tmp_path / "tiny.safetensors"), "tiny")


@pytest.mark.parametrize("name, content, message", [
    ("cut.safetensors", None, "truncated or not safetensors"),
    ("junk.safetensors", b"\x00" * 64, "not safetensors \\(or truncated\\)"),
    ("junk.pt", b"random bytes, not a zip or pickle", "not a weights file"),
    ("cut.ckpt", "cut zip", "not a readable PyTorch archive .* damaged or truncated"),
    ("list.pt", "list", "holds no weights"),
    ("w.txt", b"x", "not a weights file"),
    ("missing.pt", "missing", "does not exist"),
])
def test_bad_weights_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        save_file({"w": torch.zeros(256)}, str(path))
        path.write_bytes(path.read_bytes()[:-100])
    elif content == "list":
        torch.save([torch.zeros(1)], path)
    elif content == "cut zip":
        torch.save({"w": torch.zeros(256)}, path)
        path.write_bytes(path.read_bytes()[:-300])
    elif content != "missing":
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_weights_file(path)
    assert "\n" not in str(info.value)


def _tar(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """A tar with (kind, name, data-or-link-target) members: kind is file, symlink, hardlink."""
    with tarfile.open(path, "w") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = value.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = value
            tar.addfile(info)
    return path


@pytest.mark.parametrize("members, message", [
    ([("file", "../escape.txt", "x")], "'..' path"),
    ([("file", "ok/../../escape.txt", "x")], "'..' path"),
    ([("file", "/tmp/edgessl-absolute.txt", "x")], "absolute path"),
    ([("symlink", "link", "/etc")], "link to '/etc'"),
    ([("symlink", "sub/link", "../../outside")], "outside"),
    ([("hardlink", "hard", "../outside")], "outside"),
    ([("symlink", "dir", "."), ("symlink", "dir/x", "../../../etc/passwd")], "outside"),
])
def test_safe_extract_refuses_escapes(tmp_path, members, message):
    archive = _tar(tmp_path / "evil.tar", [("file", "bundle/ok.txt", "fine"), *members])
    dest = tmp_path / "dest"
    with pytest.raises(CheckpointError, match=message):
        safe_extract(archive, dest)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "outside").exists()
    assert not (dest / "bundle").exists()  # checked before anything was written


def test_safe_extract_extracts_a_real_bundle_archive(tmp_path):
    src = tmp_path / "bundle"
    (src / "models").mkdir(parents=True)
    (src / "models" / "model.onnx").write_bytes(b"onnx")
    (src / "run.py").write_text("print('hi')")
    (src / "latest").symlink_to("models")  # a link that stays inside is fine
    with tarfile.open(tmp_path / "b.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="bundle")
    out = safe_extract(tmp_path / "b.tar.gz", tmp_path / "dest")
    assert (out / "bundle" / "run.py").read_text() == "print('hi')"
    assert (out / "bundle" / "latest" / "model.onnx").read_bytes() == b"onnx"
    with pytest.raises(CheckpointError, match="not a readable tar"):
        safe_extract(tmp_path / "bundle" / "run.py", tmp_path / "dest2")


def _onnx_with_external(folder: Path, location: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], np.ones(4, np.float32))
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              [weight])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin",
                                      "link/secret.bin"])
def test_onnx_external_data_outside_its_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "link").symlink_to(tmp_path)
    path = _onnx_with_external(tmp_path / "models", location)
    with pytest.raises(CheckpointError, match="outside its folder"):
        check_onnx_external_data(path)
    from edgessl.runtime import load

    with pytest.raises(CheckpointError, match="outside its folder"):
        load(path)  # before ONNX Runtime opens anything


def test_onnx_external_data_inside_its_folder_is_fine(tmp_path):
    path = _onnx_with_external(tmp_path, "model.onnx.data")
    (tmp_path / "model.onnx.data").write_bytes(np.ones(4, np.float32).tobytes())
    assert check_onnx_external_data(path) == [tmp_path / "model.onnx.data"]
    (tmp_path / "plain.onnx").write_bytes(b"")
    assert check_onnx_external_data(tmp_path / "plain.onnx") == []


SOURCE = Path(__file__).resolve().parents[1] / "edgessl"


def test_no_eval_exec_or_shell_in_the_code_base():
    pattern = re.compile(r"(?<![.\w])(eval|exec)\(|shell\s*=\s*True|os\.system\(|os\.popen\(|"
                         r"pickle\.loads?\(|weights_only\s*=\s*False")
    hits = [f"{p.relative_to(SOURCE)}:{n}: {line.strip()}"
            for p in SOURCE.rglob("*.py")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line)]
    assert hits == []
    calls = [call for p in SOURCE.rglob("*.py")
             for call in re.findall(r"torch\.load\([^)]*\)", p.read_text(encoding="utf-8"))]
    assert calls and all("weights_only=True" in call for call in calls), calls


def test_remote_commands_are_quoted(monkeypatch):
    from edgessl.deploy.remote_config import RemoteConfig
    from edgessl.deploy.ssh import SshSession, parse_target

    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    session = SshSession(parse_target("ssh://pi@device"), RemoteConfig())
    hostile = ["python3; touch /tmp/pwned", "--data", "$(rm -rf ~)", "a b'c\"d"]
    session.run(hostile, "testing")
    command = calls[0]
    assert command[0] == "ssh" and "-o" in command and "BatchMode=yes" in command
    assert shlex.split(command[-1]) == hostile  # the remote shell sees the same words


def test_remote_folder_must_be_a_plain_mkdtemp_path(monkeypatch):
    import json

    from edgessl.deploy.remote_config import RemoteConfig
    from edgessl.deploy.remote_probe import probe
    from edgessl.deploy.ssh import RemoteError, SshSession, parse_target

    reply = {"version": "3.11.2", "missing": [], "executable": "/usr/bin/python3",
             "folder": "/tmp/edgessl-x; rm -rf ~"}

    def fake_run(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, json.dumps(reply) + "\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    session = SshSession(parse_target("ssh://pi@device"), RemoteConfig())
    with pytest.raises(RemoteError, match="unexpected working folder"):
        probe(session, "onnxruntime", [])
    reply["folder"] = "/tmp/edgessl-abc_123"
    assert probe(session, "onnxruntime", [])["folder"] == "/tmp/edgessl-abc_123"
