"""Helpers shared by the CLI and pretraining tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from edgessl.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code: int = 2) -> str:
    """The single ``error: ...`` line of a failed command (asserting there is nothing else)."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def flat_digits(digits_dir: Path, out: Path, n: int) -> Path:
    """The first ``n`` val digits copied into one flat folder of unlabeled images."""
    out.mkdir(parents=True)
    for i, path in enumerate(sorted((digits_dir / "val").rglob("*.png"))[:n]):
        shutil.copy(path, out / f"{i:03d}.png")
    return out
