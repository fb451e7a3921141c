"""``edgessl deploy``: a bundle to copy to a device (model, runner, requirements, README)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors
from edgessl.runtime_specs import artifact_kinds, bundle_runtimes


@app.command("deploy")
def deploy(
    model: Path = typer.Argument(
        ..., metavar="MODEL",
        help=f"A classifier checkpoint folder, or an exported model: {artifact_kinds()}; or "
             "a text classifier folder or exported text model folder."),
    profile: str = typer.Option("cpu", "--profile",
                                help="Device profile: a shipped name (see edgessl devices) "
                                     "or a .toml file."),
    out: Path = typer.Option(..., "--out", help="Bundle folder to write."),
    archive: bool = typer.Option(False, "--archive", help="Also write <out>.tar.gz."),
    runtime: str | None = typer.Option(
        None, "--runtime", help=" or ".join(s.name for s in bundle_runtimes()) + ".",
        show_default="the profile's first"),
    precision: list[str] = typer.Option(
        [], "--precision", metavar="PRECISION", help="Precision to export (repeatable).",
        show_default="the profile's"),
    data: Path | None = typer.Option(
        None, "--data", help="Labeled folder for smoke images and the host baseline.",
        show_default="the model's data"),
    smoke_per_class: int = typer.Option(2, "--smoke-per-class",
                                        help="Smoke-test images per class (0 = none)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline",
                                  help="Measure the host's accuracy and latency."),
    iterations: int = typer.Option(100, "--iterations", help="Timed runs for the baseline."),
    fuse_tokenizer: bool = typer.Option(
        False, "--fuse-tokenizer",
        help="Text classifier, OpenVINO: export with the tokenizer inside the IR (see "
             "edgessl export --fuse-tokenizer)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing bundle."),
) -> None:
    """Write a bundle for a device: artifact(s), run.py, requirements.txt, smoke images, README."""
    with user_errors():
        from edgessl.deploy.bundle import build_bundle, bundle_summary
        from edgessl.deploy.bundle_config import DeployConfig

        config = DeployConfig(
            profile=profile, out=str(out), runtime=runtime, precisions=tuple(precision),
            data=None if data is None else str(data), smoke_per_class=smoke_per_class,
            baseline=baseline, iterations=iterations, archive=archive,
            fuse_tokenizer=fuse_tokenizer, force=force,
        )
        from edgessl.text.bundle import is_text_input

        if is_text_input(model):  # a text classifier or an exported text model
            from edgessl.text.bundle import build_text_bundle, text_bundle_summary

            echo(text_bundle_summary(build_text_bundle(model, config)))
            return
        if fuse_tokenizer:
            from edgessl.text.workflow import fusion_needs_text

            raise fusion_needs_text(model)
        echo(bundle_summary(build_bundle(model, config)))
