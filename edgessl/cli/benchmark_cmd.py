"""``edgessl benchmark``: latency, throughput and top-1 of models side by side on this host."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors


@app.command("benchmark")
def benchmark(
    models: list[Path] = typer.Argument(
        ..., metavar="MODEL...", help="Checkpoint folders, .onnx files or OpenVINO .xml files.",
        show_default=False,
    ),
    warmup: int = typer.Option(10, "--warmup", help="Untimed runs before timing."),
    iterations: int = typer.Option(100, "--iterations", help="Timed runs per model."),
    batch_size: int = typer.Option(1, "--batch-size", help="Images per run."),
    data: Path | None = typer.Option(
        None, "--data", help="Labeled dataset root: time real images and report top-1 on val."
    ),
    device: str = typer.Option("CPU", "--device", help="Device to run on: CPU, or CUDA (PyTorch)."),
    json_path: Path | None = typer.Option(
        None, "--json", help="Also write results and a host stamp to this JSON file."
    ),
) -> None:
    """Benchmark models: load time, latency p50/p90/p99, throughput and top-1 accuracy."""
    with user_errors():
        from edgessl.benchmark.report import render_table, write_json
        from edgessl.benchmark.run import BenchmarkConfig, benchmark_models

        config = BenchmarkConfig(warmup=warmup, iterations=iterations, batch_size=batch_size,
                                 data=None if data is None else str(data), device=device)
        results = benchmark_models(models, config)
        echo(render_table(results))
        if json_path is not None:
            echo(f"wrote {write_json(results, json_path, config)}")
