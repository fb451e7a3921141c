"""``edgessl benchmark``: latency, throughput, memory, size and top-1 of models side by side,
on this host's CPU or on the targets of device profiles."""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from edgessl.cli.app import app, check_device_or_profile, echo, user_errors
from edgessl.cli.finetune_cmd import flags_given
from edgessl.runtime_specs import artifact_kinds


def write_outputs(results, config, outputs: dict[str, Path | None],
                  force: bool = False) -> list[Path]:
    """Write each requested output (json, csv, markdown, plot); returns the paths written.

    An existing file is replaced only with ``force``.
    """
    from edgessl.benchmark import report

    stamp = report.host_stamp()
    written = []
    texts = {"json": lambda: report.dumps_document(results, config, stamp),
             "csv": lambda: report.render_csv(results),
             "markdown": lambda: report.render_markdown(results, stamp)}
    for kind, render in texts.items():
        path = outputs.get(kind)
        if path is None:
            continue
        if str(path) == STDOUT:
            echo(render().rstrip("\n"))
        elif kind == "json":
            written.append(report.write_json(results, path, config, stamp, force=force))
        else:
            written.append(report.write_text(render(), path, force))
    if outputs.get("plot") is not None:
        from edgessl.benchmark.plot import write_plot

        written.append(write_plot(results, outputs["plot"], force=force,
                                  title=f"edgessl benchmark on {stamp['cpu']}"))
    return written


STDOUT = "-"


def check_stdout(outputs: dict[str, Path | None]) -> bool:
    """Whether one of ``outputs`` is ``-`` (stdout), refusing what stdout cannot take: a
    PNG, or two outputs there at once.

    Raises:
        ConfigError: ``--plot -``, or ``-`` for more than one output.
    """
    from edgessl.errors import ConfigError

    dashes = [f"--{kind}" for kind, path in outputs.items()
              if path is not None and str(path) == STDOUT]
    if "--plot" in dashes:
        raise ConfigError("--plot writes a PNG file and cannot go to stdout ('-'); name a .png "
                          "file")
    plot = outputs.get("plot")
    if "--plot" not in dashes and plot is not None and Path(plot).suffix.lower() != ".png":
        # a PNG under another name opens as garbage (or not at all) in whatever reads it
        raise ConfigError(f"--plot writes a PNG image, and '{plot}' does not end in .png; name "
                          f"it e.g. '{Path(plot).with_suffix('.png').name}'")
    if len(dashes) > 1:
        raise ConfigError(f"{' and '.join(dashes)} cannot both go to stdout ('-'); give one "
                          "of them a file name")
    return bool(dashes)


@app.command("benchmark")
def benchmark(
    ctx: typer.Context,
    models: list[Path] = typer.Argument(
        ..., metavar="MODEL...", help=f"Checkpoint folders or exported models: {artifact_kinds()}; "
                                      "or exported text model folders (ms per sentence, "
                                      "tokenization included).",
        show_default=False,
    ),
    profile: list[str] = typer.Option(
        [], "--profile", "-p", metavar="PROFILE",
        help="Device profile name (see 'edgessl devices') or a .toml path; repeat for "
             "several targets (unavailable ones are skipped and listed)."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed runs before timing."),
    iterations: int = typer.Option(100, "--iterations", help="Timed runs per measurement."),
    time_budget: float | None = typer.Option(
        None, "--time", help="Seconds per measurement instead of a fixed --iterations."),
    batch_size: int = typer.Option(1, "--batch-size", help="Images per run (latency)."),
    batch_sizes: str | None = typer.Option(
        None, "--batch-sizes", help="Throughput sweep, e.g. 1,8,32.",
        show_default="the profile's"),
    async_runs: int = typer.Option(
        200, "--async-runs", help="Batches in the asynchronous throughput run; 0 skips it."),
    requests: int = typer.Option(
        0, "--requests", help="Inferences in flight for it; 0 = profile / runtime optimum."),
    end_to_end: bool = typer.Option(
        True, "--e2e/--no-e2e", help="Also time decode + resize + preprocess + infer."),
    data: Path | None = typer.Option(
        None, "--data", help="Labeled dataset root: time real images and report top-1 on val "
                             "(for text models, a labeled text set: its val texts)."),
    device: str | None = typer.Option(
        None, "--device", help="Without --profile: CPU, or CUDA (PyTorch).", show_default="CPU"),
    inference_precision: list[str] = typer.Option(
        [], "--inference-precision", metavar="PRECISION",
        help="f32, bf16 or f16: run each profile's float layers in it (OpenVINO), one row "
             "each; with --data the rows show what it costs in top-1. Repeatable."),
    json_path: Path | None = typer.Option(
        None, "--json", help="Write results, config, profiles and a host stamp as JSON ('-' "
                             "for stdout; the table then goes to stderr)."),
    csv_path: Path | None = typer.Option(None, "--csv",
                                         help="Write every field as CSV ('-' for stdout)."),
    markdown_path: Path | None = typer.Option(
        None, "--markdown", help="Write the table, notes and host stamp as Markdown ('-' for "
                                 "stdout)."),
    plot_path: Path | None = typer.Option(
        None, "--plot", help="Write a PNG comparing the models (needs matplotlib)."),
    remote: str | None = typer.Option(
        None, "--remote", help="Run on a device over SSH, ssh://user@host[:port]: copies a "
        "bundle for --profile (cpu if not given) there; key auth from your ssh config/agent."),
    remote_python: str = typer.Option(
        "python3", "--remote-python", help="The Python to run the bundle with on the device."),
    force: bool = typer.Option(False, "--force",
                               help="Overwrite existing --json, --csv, --markdown, --plot files."),
) -> None:
    """Benchmark models: load time, first inference, latency p50/p90/p99 (inference-only and
    end to end), throughput (batch sweep, async), peak memory, size and top-1 accuracy."""
    with user_errors():
        from edgessl.benchmark.host import BenchmarkConfig, benchmark_models
        from edgessl.benchmark.report import host_line, host_stamp, render_table
        from edgessl.errors import ConfigError
        from edgessl.io import check_outputs
        from edgessl.runtime.bench import parse_batch_sizes
        from edgessl.text.runtime import is_text_model

        kinds = {is_text_model(m) for m in models}
        if kinds == {True}:
            benchmark_text_models(ctx, models, data, warmup, iterations, json_path, force)
            return
        if len(kinds) > 1:
            raise ConfigError("text models and image models cannot share one table; benchmark "
                              "them in separate runs")
        outputs = {"json": json_path, "csv": csv_path, "markdown": markdown_path,
                   "plot": plot_path}
        # before measuring: a run must not end in a refused write
        to_stdout = check_stdout(outputs)
        check_outputs({f"--{kind}": path for kind, path in outputs.items()},
                      {"MODEL": models, "--data": data}, force=force)
        check_device_or_profile(bool(profile), device is not None)
        config = BenchmarkConfig(
            warmup=warmup, iterations=iterations, time_budget_s=time_budget,
            batch_size=batch_size, batch_sizes=parse_batch_sizes(batch_sizes),
            data=None if data is None else str(data), device=device or "CPU",
            profiles=tuple(profile), async_runs=async_runs, async_requests=requests,
            end_to_end=end_to_end, inference_precisions=tuple(inference_precision))
        if remote is not None:  # edgessl.deploy.remote: build, copy, run there, clean up
            from edgessl.deploy.remote import remote_results

            # the device's bundle measures with the same code and options as this host
            results = remote_results(models, remote, profile, config, remote_python)
        else:
            results = benchmark_models(models, config)
        # with an output on stdout ('-'), the table goes to stderr so stdout stays parseable
        show = functools.partial(echo, err=to_stdout)
        show(render_table(results))
        show(f"host: {host_line(host_stamp())}")
        for path in write_outputs(results, config, outputs, force=force):
            show(f"wrote {path}")


# Options of the image benchmark only; given with text models they are an error.
TEXT_REFUSES = ("profile", "time_budget", "batch_size", "batch_sizes", "async_runs", "requests",
                "end_to_end", "device", "inference_precision", "csv_path", "markdown_path",
                "plot_path", "remote", "remote_python")


def benchmark_text_models(ctx: typer.Context, models: list[Path], data: Path | None,
                          warmup: int, iterations: int, json_path: Path | None,
                          force: bool) -> None:
    """``edgessl benchmark TEXT_MODEL...``: ms per sentence (tokenize + run) on this CPU."""
    from edgessl.benchmark.report import host_line, host_stamp
    from edgessl.io import check_outputs, write_json
    from edgessl.text.bench import render_text_table
    from edgessl.text.workflow import benchmark_texts, refuse_image_flags

    refuse_image_flags(flags_given(ctx, TEXT_REFUSES), "models")
    to_stdout = check_stdout({"json": json_path})
    check_outputs({"--json": json_path}, {"MODEL": models, "--data": data}, force=force)
    results = benchmark_texts(models, data, runs=iterations, warmup=warmup)
    stamp = host_stamp()
    show = functools.partial(echo, err=to_stdout)
    show(render_text_table(results))
    show(f"host: {host_line(stamp)}")
    document = {"host": stamp, "results": [r.to_dict() for r in results]}
    if to_stdout:
        from edgessl.io import dumps_json

        echo(dumps_json(document, "benchmark results").rstrip("\n"))
    elif json_path is not None:
        echo(f"wrote {write_json(json_path, document, force=force)}")
