"""Benchmark output: an aligned terminal table, JSON with a host stamp, CSV and Markdown.

The PNG plot is in ``edgessl.benchmark.plot`` (it needs matplotlib).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from edgessl.benchmark.host import BenchmarkConfig, BenchmarkResult

COLUMNS = ("model", "target", "runtime", "executed on", "precision", "size MiB", "load s",
           "1st ms", "top-1 %", "p50 ms", "p90 ms", "p99 ms", "e2e p50 ms", "img/s",
           "async img/s", "RSS MiB")
# Text columns are left-aligned, numbers right-aligned.
_LEFT = 5
SKIPPED = "skipped"


def _ms(value: float) -> str:
    # Tiny models run in well under a millisecond; keep three significant-ish digits.
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def display_name(model: str) -> str:
    """A short name for the table: a checkpoint folder's name, or ``parent/file`` for a file."""
    path = Path(model)
    from edgessl.runtime_specs import runtime_for_suffix

    if runtime_for_suffix(path.suffix) is not None and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name or model


def target_name(r: BenchmarkResult) -> str:
    """The profile, else the device asked for; prefixed with the host when not local."""
    target = r.profile or r.device
    return target if r.host == "local" else f"{r.host}:{target}"


def table_rows(results: Sequence[BenchmarkResult]) -> list[tuple[str, ...]]:
    """One row of cell strings per result, in COLUMNS order ("skipped" rows say so)."""
    rows = []
    for r in results:
        head = (display_name(r.model), target_name(r), r.runtime)
        if r.skipped:
            rows.append((*head, f"{SKIPPED} (see below)", *("-" * 1,) * (len(COLUMNS) - 4)))
            continue
        lat, e2e, a = r.latency, r.e2e_latency, r.async_throughput
        rows.append((
            *head, "+".join(r.executed_on) or r.device, r.precision,
            f"{r.size_mib:.2f}", f"{r.load_s:.3f}", _ms(r.first_inference_ms),
            "-" if r.top1 is None else f"{100 * r.top1:.1f}",
            _ms(lat.p50_ms), _ms(lat.p90_ms), _ms(lat.p99_ms),
            "-" if e2e is None else _ms(e2e.p50_ms), f"{r.throughput_ips:.1f}",
            "-" if a is None else f"{a.throughput_ips:.1f}",
            _rss(r),
        ))
    return rows


def _rss(r: BenchmarkResult) -> str:
    if r.runtime_rss_mib is not None:
        return f"{r.runtime_rss_mib:.0f}"
    return "-" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.0f}*"


def notes(results: Sequence[BenchmarkResult]) -> list[str]:
    """Lines under the table: how it was measured, skipped targets and why, the batch sweep."""
    measured = [r for r in results if not r.skipped]
    out = []
    if measured:
        r = measured[0]
        note = (f"latency per run of batch {r.batch_size}, over {r.iterations} timed runs after "
                f"{r.warmup} warmup runs; e2e = read + decode + resize + normalise + infer")
        if r.val_images is not None:
            note += f"; top-1 on {r.val_images} val images"
        out.append(note)
        asyncs = {r.async_throughput.method for r in measured if r.async_throughput}
        if asyncs:
            out.append("async img/s: " + "; ".join(sorted(asyncs)))
        out.append("RSS MiB: peak resident memory of a fresh process that only loads and runs "
                   "the artifact with its runtime; * = of the benchmarking process (PyTorch "
                   "included), for checkpoints or where that was not measured")
    for r in results:
        if r.skipped:
            out.append(f"{SKIPPED}: {display_name(r.model)} on {target_name(r)}: {r.skipped}")
    out += sweep_lines(measured)
    return out


def sweep_lines(results: Sequence[BenchmarkResult]) -> list[str]:
    """The batch sweep as "model on target: b1 1234 img/s (p50 0.8 ms), b8 ..." lines."""
    lines = []
    for r in results:
        if r.sweep:
            points = ", ".join(f"b{p.batch_size} {p.throughput_ips:.0f} img/s "
                               f"(p50 {_ms(p.p50_ms)} ms)" for p in r.sweep)
            lines.append(f"  {display_name(r.model)} on {target_name(r)}: {points}")
    return ["batch sweep (synchronous):", *lines] if lines else []


def render_table(results: Sequence[BenchmarkResult]) -> str:
    """The results as an aligned plain-text table, with lines saying how they were measured."""
    rows = [COLUMNS, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < _LEFT else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(COLUMNS), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    return "\n".join(out + notes(results))


def render_markdown(results: Sequence[BenchmarkResult], stamp: dict | None = None) -> str:
    """The table as GitHub Markdown, with the notes, what executed, and the host stamp."""
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---" if i < _LEFT else "---:" for i in range(len(COLUMNS))]
    out = [row(COLUMNS), row(align), *(row(r) for r in table_rows(results)), ""]
    out += [f"  - {n.strip()}" if n.startswith("  ") else f"- {n}" for n in notes(results)]
    for r in results:
        if not r.skipped:
            settings = ", ".join(f"{k}={v}" for k, v in r.settings.items())
            out.append(f"- {display_name(r.model)} on {target_name(r)}: {r.provider} "
                       f"({r.runtime} {r.runtime_version}; {settings})")
    if stamp:
        out += ["", f"Host: {host_line(stamp)}"]
    return "\n".join(out) + "\n"


def flat_row(result: BenchmarkResult) -> dict:
    """One result as a flat dict for CSV: nested fields as "latency.p50_ms", sweep points as
    "sweep.b8.throughput_ips", tuples joined with "+"."""
    data = result.to_dict()
    sweep = data.pop("sweep")
    flat: dict = {}

    def put(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, (list, tuple)):
            flat[prefix] = "+".join(str(v) for v in value)
        else:
            flat[prefix] = value

    put("", data)
    for point in sweep:
        for key in ("p50_ms", "mean_ms", "throughput_ips"):
            flat[f"sweep.b{point['batch_size']}.{key}"] = point[key]
    return flat


def render_csv(results: Sequence[BenchmarkResult]) -> str:
    """All fields of all results as CSV, one row per result (columns: the union of keys)."""
    rows = [flat_row(r) for r in results]
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def host_stamp() -> dict:
    """Where the numbers were measured: the deploy runtime's ``device_stamp`` (CPU, ISA flags,
    cores, board, OS, time in UTC) plus what only the host probes: runtime devices, versions,
    threads."""
    from edgessl.devices.host import detect_host
    from edgessl.runtime.measure import device_stamp

    host = detect_host()
    torch = sys.modules.get("torch")  # report torch's threads only if torch ran here
    return {
        **device_stamp(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
                       if k in os.environ},
        "onnxruntime_providers": list(host.onnxruntime_providers),
        "openvino_devices": [f"{d.name}: {d.full_name}" for d in host.openvino_devices],
        "cuda_devices": [d.name for d in host.cuda_devices],
        "versions": dict(host.versions),
        "edgessl": host.versions.get("edgessl"),
    }


def host_line(stamp: dict) -> str:
    """The host stamp in one line: CPU, flags, cores, runtime versions."""
    versions = stamp.get("versions", {})
    runtimes = ", ".join(f"{k} {str(versions[k]).split('-')[0]}"
                         for k in ("edgessl", "torch", "onnxruntime", "openvino")
                         if k in versions)
    flags = ", ".join(stamp.get("cpu_flags", [])) or "no AVX2/VNNI/AMX/dotprod"
    return (f"{stamp.get('cpu')} ({stamp.get('logical_cores')} logical cores; {flags}); "
            f"{runtimes}")


def _document(results, config, stamp) -> dict:
    profiles = {}
    if config is not None:
        from edgessl.devices.profile import load_profile

        for name in config.profiles:
            profile = load_profile(name)
            profiles[profile.name] = asdict(profile)
    return {
        "host": stamp or host_stamp(),
        "config": asdict(config) if config is not None else None,
        "profiles": profiles,
        "results": [r.to_dict() for r in results],
    }


def dumps_document(results: Sequence[BenchmarkResult], config: BenchmarkConfig | None = None,
                   stamp: dict | None = None) -> str:
    """What ``write_json`` writes, as text (strict JSON: non-finite numbers as null)."""
    from edgessl import io as edgessl_io

    return edgessl_io.dumps_json(_document(results, config, stamp), "benchmark results")


def write_json(results: Sequence[BenchmarkResult], path: str | Path,
               config: BenchmarkConfig | None = None, stamp: dict | None = None,
               force: bool = False) -> Path:
    """Write ``{"host", "config", "profiles", "results"}`` to ``path``, atomically (an
    existing file only with ``force``)."""
    from edgessl import io as edgessl_io

    return edgessl_io.write_json(path, _document(results, config, stamp), force=force)


def write_text(text: str, path: str | Path, force: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (parents created; an existing file only with
    ``force``)."""
    from edgessl.io import atomic_file

    with atomic_file(path, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
