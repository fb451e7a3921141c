"""``edgessl export``: a classifier checkpoint -> a validated ONNX / OpenVINO artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors


@app.command("export")
def export(
    model: Path = typer.Argument(..., metavar="MODEL",
                                 help="Classifier checkpoint folder (from edgessl finetune)."),
    format: str = typer.Option("onnx", "--format", help="Export format: onnx or openvino."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or int8."),
    calib: Path | None = typer.Option(
        None, "--calib", help="Folder of calibration images for int8 "
                              "[default: the checkpoint's training images]."),
    calib_size: int = typer.Option(300, "--calib-size", help="Calibration images (seeded sample)."),
    data: Path | None = typer.Option(
        None, "--data",
        help="Labeled folder to validate on [default: the checkpoint's val split]."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder [default: export/<MODEL>-<format>-<precision>]."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output folder."),
) -> None:
    """Export a classifier to ONNX or OpenVINO (fp32 or int8) and check it against PyTorch."""
    with user_errors():
        from edgessl.export.api import ExportConfig, export_model

        config = ExportConfig(
            format=format, precision=precision,
            calib=None if calib is None else str(calib), calib_size=calib_size,
            data=None if data is None else str(data), out=None if out is None else str(out),
            force=force,
        )
        result = export_model(model, config)
        echo(render_report(result.report))


def render_report(report: dict) -> str:
    """The export report as a compact two-column table."""
    rows = [
        ("format", f"{report['format']} {report['precision']} ({report.get('scheme', '')})"),
        ("artifact", report["path"]),
        ("size", f"{report['size_mib']:.2f} MiB"),
        ("runs on", f"{report['execution']['runtime']} {report['execution']['provider']}"),
        ("max |diff|", f"{report['max_abs_diff']:.3g} (mean {report['mean_abs_diff']:.3g}, "
                       f"cosine {report['cosine']:.6f})"),
        ("top-1", f"{report['top1_artifact']:.2%} artifact vs {report['top1_pytorch']:.2%} "
                  f"PyTorch on {report['val_images']} val images"),
        ("drop", f"{report['top1_drop_points']:+.2f} points "
                 f"(agreement {report['top1_agreement']:.2%})"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
