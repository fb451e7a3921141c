"""``edgessl quickstart``: the whole pipeline on the built-in digits, or with ``--text`` the
text chain on the built-in text set (``edgessl.text.quickstart``)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors
from edgessl.cli.finetune_cmd import flags_given

# The default shown in --help is the config's (imported lazily elsewhere: --help stays fast).
_DEFAULT_EPOCHS = 40


@app.command("quickstart")
def quickstart_command(
    ctx: typer.Context,
    text: bool = typer.Option(
        False, "--text", help="The text chain instead: built-in chatterbot-corpus topics -> "
                              "MiniLM probe and full fine-tune vs TF-IDF at 8 labels per class "
                              "-> ONNX fp32/INT8 -> a torch-free prediction (~2-3 min)."),
    workdir: Path = typer.Option(Path("."), help="Where models/ and export/ are written."),
    epochs: int | None = typer.Option(None, help="SSL pretraining epochs.",
                                      show_default=str(_DEFAULT_EPOCHS)),
    iterations: int = typer.Option(100, help="Timed runs per model in the benchmark."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier quickstart's outputs."),
) -> None:
    """Digits -> SimCLR -> few-label classifiers -> ONNX/OpenVINO FP32/INT8 -> benchmark."""
    if text:
        text_quickstart(ctx, workdir, force)
        return
    from edgessl.benchmark.report import render_table
    from edgessl.quickstart import (
        QuickstartConfig,
        format_accuracy_table,
        format_export_table,
        run_quickstart,
    )

    with user_errors():
        extra = {} if epochs is None else {"pretrain_epochs": epochs}
        result = run_quickstart(QuickstartConfig(
            workdir=str(workdir), iterations=iterations, force=force, **extra))
    echo("\nExports checked against PyTorch on the val split:\n")
    echo(format_export_table(result.export_reports))
    val = result.benchmark_results[0].val_images
    subsets = result.accuracy_rows[0]["label_subsets"]
    echo(f"\nTop-1 on the digits val split ({val} images) by labels per class, mean over "
         f"{subsets} seeded label subsets:\n")
    echo(format_accuracy_table(result.accuracy_rows))
    echo("\nBenchmark (host CPU, batch 1):\n")
    echo(render_table(result.benchmark_results))
    echo(f"\nsummary: {result.summary_path}")


def text_quickstart(ctx: typer.Context, workdir: Path, force: bool) -> None:
    """``edgessl quickstart --text``."""
    with user_errors():
        from edgessl.text.quickstart import (
            TextQuickstartConfig,
            format_text_tables,
            run_text_quickstart,
        )
        from edgessl.text.workflow import refuse_image_flags

        refuse_image_flags(flags_given(ctx, ("epochs", "iterations")), "quickstart (--text)")
        cfg = TextQuickstartConfig(workdir=str(workdir), force=force)
        result = run_text_quickstart(cfg)
    echo("")
    echo(format_text_tables(result, cfg.labels_per_class))
    echo(f"\nsummary: {result.summary_path}")
