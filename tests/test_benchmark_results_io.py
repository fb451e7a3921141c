"""benchmarks/results_io.py writes a benchmark's NAME.json (strict) and NAME.md atomically."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "results_io.py"


@pytest.fixture(scope="module")
def results_io():
    spec = importlib.util.spec_from_file_location("benchmark_results_io", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_writes_strict_json_and_exact_markdown(results_io, tmp_path):
    folder = tmp_path / "results" / "nested"  # created
    data = {"rows": [{"top1": float("nan"), "ms": 1.5}, {"top1": float("inf")}],
            "when": Path("x")}  # not JSON: written as str
    markdown = "# Title\n\n| a | b |\n|---|---|\n| 1 ± 2 | → |\n"
    json_path, md_path = results_io.write_results(folder, "bench", data, markdown)
    assert (json_path, md_path) == (folder / "bench.json", folder / "bench.md")
    assert _strict(json_path.read_text(encoding="utf-8")) == {
        "rows": [{"top1": None, "ms": 1.5}, {"top1": None}], "when": "x"}
    assert md_path.read_text(encoding="utf-8") == markdown
    assert sorted(p.name for p in folder.iterdir()) == ["bench.json", "bench.md"]  # no temp


def test_replaces_earlier_results(results_io, tmp_path):
    (tmp_path / "bench.json").write_text('{"old": NaN')  # truncated by a killed run
    (tmp_path / "bench.md").write_text("old table\n")
    results_io.write_results(tmp_path, "bench", {"new": 1}, "new table")
    assert _strict((tmp_path / "bench.json").read_text()) == {"new": 1}
    assert (tmp_path / "bench.md").read_text() == "new table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md"]
