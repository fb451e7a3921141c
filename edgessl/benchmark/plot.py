"""A PNG comparing the benchmarked models: latency percentiles, throughput, top-1 vs latency."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgessl.errors import EdgesslError
from edgessl.runtime.result import BenchmarkResult


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise EdgesslError("--plot needs matplotlib, which is not installed; "
                                     "pip install matplotlib (or drop --plot)") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def write_plot(results: Sequence[BenchmarkResult], path: str | Path,
               title: str = "edgessl benchmark", force: bool = False) -> Path:
    """Write a PNG with three panels: p50 latency (bars) with p90/p99 (markers) and e2e p50,
    images per second (synchronous and asynchronous), and top-1 against p50 latency.

    Skipped targets are left out. Raises EdgesslError without matplotlib.
    """
    from edgessl.benchmark.report import display_name, target_name
    from edgessl.io import atomic_file

    plt = _pyplot()
    measured = [r for r in results if not r.skipped]
    names = [f"{display_name(r.model)}\n{target_name(r)} {r.precision}" for r in measured]
    y = list(range(len(measured)))
    fig, axes = plt.subplots(1, 3, figsize=(16, 1.2 + 0.6 * max(3, len(measured))))
    lat, thr, acc = axes
    lat.barh(y, [r.latency.p50_ms for r in measured], color="tab:blue", label="p50")
    lat.scatter([r.latency.p90_ms for r in measured], y, marker="|", s=200, color="k",
                label="p90")
    lat.scatter([r.latency.p99_ms for r in measured], y, marker="x", color="tab:red",
                label="p99")
    e2e = [(i, r.e2e_latency.p50_ms) for i, r in zip(y, measured, strict=True) if r.e2e_latency]
    if e2e:
        lat.scatter([v for _, v in e2e], [i for i, _ in e2e], marker="o", facecolors="none",
                    edgecolors="tab:green", label="e2e p50")
    lat.set_yticks(y, names, fontsize=8)
    lat.invert_yaxis()
    lat.set_xscale("log")  # PyTorch eager and compiled runtimes differ by orders of magnitude
    lat.set_xlabel("latency per run (ms, log scale)")
    lat.legend(fontsize=8)
    height = 0.4
    thr.barh([i - height / 2 for i in y], [r.throughput_ips for r in measured], height,
             label="sync", color="tab:blue")
    thr.barh([i + height / 2 for i in y],
             [r.async_throughput.throughput_ips if r.async_throughput else 0 for r in measured],
             height, label="async", color="tab:orange")
    thr.set_yticks(y, [""] * len(y))
    thr.invert_yaxis()
    thr.set_xscale("log")
    thr.set_xlabel("images per second (log scale)")
    thr.legend(fontsize=8)
    with_acc = [r for r in measured if r.top1 is not None]
    for r in with_acc:
        acc.scatter(r.latency.p50_ms, 100 * r.top1)
        acc.annotate(f"{display_name(r.model)} {r.precision}", (r.latency.p50_ms, 100 * r.top1),
                     fontsize=7)
    acc.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    for axis in (lat.xaxis, thr.xaxis, acc.xaxis):
        axis.set_minor_formatter(NullFormatter())  # minor labels on a short decade overlap
    acc.set_xlabel("p50 latency (ms, log scale)")
    acc.set_ylabel("top-1 (%)" if with_acc else "top-1: run with --data")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_file(path, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
