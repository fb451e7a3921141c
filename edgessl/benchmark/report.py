"""Benchmark output: an aligned plain-text table and a JSON file with a host stamp."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from edgessl.benchmark.run import BenchmarkConfig, BenchmarkResult

COLUMNS = ("model", "runtime", "device/provider", "precision", "size MiB", "load s", "top-1 %",
           "p50 ms", "p90 ms", "p99 ms", "mean ms", "img/s")
# Text columns are left-aligned, numbers right-aligned.
_LEFT = 4


def _ms(value: float) -> str:
    # Tiny models run in well under a millisecond; keep three significant-ish digits.
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def display_name(model: str) -> str:
    """A short name for the table: a checkpoint folder's name, or ``parent/file`` for a file."""
    path = Path(model)
    if path.suffix in (".onnx", ".xml") and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name or model


def table_rows(results: Sequence[BenchmarkResult]) -> list[tuple[str, ...]]:
    """One row of cell strings per result, in COLUMNS order."""
    rows = []
    for r in results:
        lat = r.latency
        rows.append((
            display_name(r.model), r.runtime, f"{r.device}/{r.provider}", r.precision,
            f"{r.size_mib:.2f}", f"{r.load_s:.3f}",
            "-" if r.top1 is None else f"{100 * r.top1:.1f}",
            _ms(lat.p50_ms), _ms(lat.p90_ms), _ms(lat.p99_ms), _ms(lat.mean_ms),
            f"{r.throughput_ips:.1f}",
        ))
    return rows


def render_table(results: Sequence[BenchmarkResult]) -> str:
    """The results as an aligned plain-text table, with a line saying how they were measured."""
    rows = [COLUMNS, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < _LEFT else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(COLUMNS), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    if results:
        r = results[0]
        note = (f"latency per run of batch {r.batch_size}, over {r.iterations} timed runs after "
                f"{r.warmup} warmup runs")
        if r.val_images is not None:
            note += f"; top-1 on {r.val_images} val images"
        out.append(note)
    return "\n".join(out)


def host_stamp() -> dict:
    """Where the numbers were measured: CPU, ISA flags, devices, versions, threads, time (UTC)."""
    from edgessl.devices.host import detect_host

    host = detect_host()
    torch = sys.modules.get("torch")  # report torch's threads only if torch ran here
    return {
        "cpu": host.cpu.model,
        "cpu_flags": list(host.cpu.flags),
        "logical_cores": host.cpu.logical_cores,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "onnxruntime_providers": list(host.onnxruntime_providers),
        "openvino_devices": [f"{d.name}: {d.full_name}" for d in host.openvino_devices],
        "cuda_devices": [d.name for d in host.cuda_devices],
        "versions": dict(host.versions),
        "edgessl": host.versions.get("edgessl"),
        "platform": platform.platform(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(results: Sequence[BenchmarkResult], path: str | Path,
               config: BenchmarkConfig | None = None) -> Path:
    """Write ``{"host": ..., "config": ..., "results": [...]}`` to ``path``, atomically."""
    from edgessl import io

    data = {
        "host": host_stamp(),
        "config": asdict(config) if config is not None else None,
        "results": [r.to_dict() for r in results],
    }
    return io.write_json(path, data)
