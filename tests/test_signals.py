"""SIGINT/SIGTERM during a long command, sent for real to a real `edgessl` process: one
`error: interrupted by ...` line, exit code 130, no temporary left and nothing half-written.

The process sends the signal to itself at a chosen point (a function of the command wrapped
by DRIVER), so the test is deterministic; the training loops' deferred stop (save, then 130)
is in tests/test_reliability_interrupt.py and tests/test_resume.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.cli_helpers import invoke

DRIVER = """
import importlib, os, signal, sys
module, name, sig = sys.argv[1:4]
target = importlib.import_module(module)
real = getattr(target, name)

def hooked(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, sig))
    return real(*args, **kwargs)

setattr(target, name, hooked)
from edgessl.cli import app
sys.argv = ["edgessl", "--quiet", *sys.argv[4:]]
app()
"""


def run_signalled(where: str, sig: str, *args) -> subprocess.CompletedProcess:
    module, name = where.rsplit(".", 1)
    env = {**os.environ, "EDGESSL_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-c", DRIVER, module, name, sig, *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def assert_interrupted(proc: subprocess.CompletedProcess, sig: str) -> None:
    assert proc.returncode == 130, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: interrupted by {sig}: stopped"), lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    out = tmp_path_factory.mktemp("onnx") / "m"
    assert invoke("--quiet", "export", tiny_classifier, "--out", out).exit_code == 0
    return out / "model.onnx"


# export: the artifact is written, the signal comes while it is validated
@pytest.mark.parametrize("sig, fmt", [("SIGTERM", "onnx"), ("SIGINT", "onnx"),
                                      ("SIGTERM", "openvino")])
def test_signal_during_export(sig, fmt, tmp_path, tiny_classifier):
    if fmt == "openvino":
        pytest.importorskip("openvino")
    proc = run_signalled("edgessl.export.validate.validate_artifact", sig, "export",
                         tiny_classifier, "--format", fmt, "--out", tmp_path / "out")
    assert_interrupted(proc, sig)
    assert list(tmp_path.iterdir()) == []  # no .out.*.tmp, no lock, no output


def test_sigterm_during_export_keeps_the_previous_output(tmp_path, tiny_classifier):
    out = tmp_path / "out"
    assert invoke("--quiet", "export", tiny_classifier, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run_signalled("edgessl.export.validate.validate_artifact", "SIGTERM", "export",
                         tiny_classifier, "--out", out, "--force")
    assert_interrupted(proc, "SIGTERM")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_sigterm_during_deploy(tmp_path, onnx_model):
    proc = run_signalled("edgessl.deploy.bundle.smoke_images", "SIGTERM", "deploy", onnx_model,
                         "--out", tmp_path / "bundle", "--archive", "--no-baseline")
    assert_interrupted(proc, "SIGTERM")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_benchmark(tmp_path, onnx_model):
    proc = run_signalled("edgessl.benchmark.host.benchmark_models", "SIGTERM", "benchmark",
                         onnx_model, "--iterations", "1", "--warmup", "0", "--json",
                         tmp_path / "b.json")
    assert_interrupted(proc, "SIGTERM")
    assert list(tmp_path.iterdir()) == []


def test_signal_handling_is_one_mechanism():
    """The training loops' GracefulStop is the one every command runs under."""
    from edgessl import interrupt, training

    assert training.GracefulStop is interrupt.GracefulStop
    assert issubclass(interrupt.StopSignal, KeyboardInterrupt)  # no `except Exception` eats it
    before = signal.getsignal(signal.SIGTERM)
    with interrupt.stop_on_signals(), pytest.raises(interrupt.StopSignal) as info:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert info.value.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == before
    with interrupt.GracefulStop() as stop:  # deferred: first signal asks, second stops
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        assert stop.requested == "SIGTERM"
        with pytest.raises(interrupt.StopSignal):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
