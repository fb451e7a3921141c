"""Helpers shared by the runtime, deploy and remote tests: exported artifacts made once per run,
and a subprocess Python that cannot import torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_EXPORTS: dict[tuple[str, str], Path] = {}

# Installed before anything else in a child Python: importing these raises ImportError.
BLOCKER = """
import sys
class _Block:
    blocked = {blocked!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError("blocked for this test: " + name)
        return None
sys.meta_path.insert(0, _Block())
"""
HEAVY = ("torch", "torchvision", "timm", "onnx", "onnxscript", "nncf", "typer", "safetensors",
         "sklearn", "tqdm")


def exported(tmp_path_factory, checkpoint: Path, fmt: str = "onnx") -> Path:
    """``checkpoint`` exported to ``fmt`` fp32, once per test session."""
    from edgessl.export.api import ExportConfig, export_model

    key = (str(tmp_path_factory.getbasetemp()), fmt)
    if key not in _EXPORTS:
        out = tmp_path_factory.mktemp("export") / f"tiny-{fmt}-fp32"
        _EXPORTS[key] = export_model(checkpoint, ExportConfig(format=fmt, out=str(out))).path
    return _EXPORTS[key]


def run_blocked(code: str, blocked=HEAVY, cwd: Path | None = None, timeout: float = 120,
                argv: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python where the ``blocked`` top-level modules cannot import."""
    script = BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def local_ssh(monkeypatch) -> list[list[str]]:
    """Make ``edgessl.deploy.remote`` run its device commands on this host without ssh (for
    hosts with no sshd; ``tests/sshd.py`` runs a real one): each command runs here as the device
    would run it, and the bundle is copied locally. Returns the commands sent, in order."""
    import shutil

    from edgessl.deploy import remote, ssh

    sent: list[list[str]] = []

    class LocalSession(ssh.SshSession):
        def run(self, argv, what, timeout=None):
            sent.append(list(argv))
            return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=timeout or self.config.timeout)

        def copy(self, local, remote_folder):
            shutil.copytree(local, Path(remote_folder) / Path(local).name)

    # patched where remote_benchmark looks it up (edgessl.deploy.remote imports it from ssh)
    monkeypatch.setattr(remote, "SshSession", LocalSession)
    return sent
