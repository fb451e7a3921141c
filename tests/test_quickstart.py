"""The quickstart's code path end to end, on tiny settings (the real run is in the README)."""

from __future__ import annotations

import json

import pytest

from edgessl.benchmark.report import render_table
from edgessl.errors import OutputExistsError
from edgessl.quickstart import QuickstartConfig, format_accuracy_table, run_quickstart

TINY = dict(labels_per_class=(2,), export_k=2, label_subsets=2, backbone="resnet_micro",
            image_size=16, pretrain_epochs=1, scratch_epochs=2, iterations=3, calib_size=16)


@pytest.mark.slow
def test_quickstart_runs_every_stage(tmp_path):
    result = run_quickstart(QuickstartConfig(workdir=str(tmp_path), **TINY))
    (row,) = result.accuracy_rows
    assert row["labels_per_class"] == 2
    for key in ("ssl_linear", "scratch_full", "pretrained_linear", "pixel_logreg"):
        assert 0.0 <= row[key] <= 1.0
        assert row[key] == pytest.approx(sum(row[f"{key}_per_subset"]) / 2)
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]
    assert (tmp_path / "models" / "quickstart-simclr" / "card.json").is_file()
    exports = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert exports == ["quickstart-onnx-fp32", "quickstart-onnx-int8",
                       "quickstart-openvino-fp32", "quickstart-openvino-int8"]
    runtimes = [r.runtime for r in result.benchmark_results]
    assert runtimes == ["pytorch", "onnxruntime", "onnxruntime", "openvino", "openvino"]
    assert all(r.top1 is not None for r in result.benchmark_results)
    summary = json.loads(result.summary_path.read_text())
    assert all(e["max_abs_diff"] <= 1e-4 for e in summary["exports"] if e["precision"] == "fp32")
    table = format_accuracy_table(result.accuracy_rows)
    assert "SSL + linear" in table and "pixels + logreg" in table
    assert "ImageNet start + linear" in table
    assert "p99 ms" in render_table(result.benchmark_results)
    with pytest.raises(OutputExistsError, match="--force"):
        run_quickstart(QuickstartConfig(workdir=str(tmp_path), **TINY))


def test_the_cli_shows_the_configs_epochs_as_its_default():
    from edgessl.cli.quickstart_cmd import _DEFAULT_EPOCHS
    from edgessl.quickstart import QuickstartConfig

    assert _DEFAULT_EPOCHS == QuickstartConfig().pretrain_epochs
