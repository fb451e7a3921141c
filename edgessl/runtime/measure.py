"""Latency and top-1 of a ``DeployedModel``, measured the way ``edgessl benchmark`` does.

The device-side half of the benchmark: the bundle runner calls it on the device, and its
results are dicts with the fields of ``edgessl.benchmark.run.BenchmarkResult`` (plus ``host``),
so they land in the same table as results measured on the host. Imports numpy only: this
module travels in deploy bundles (the host benchmark module may grow heavier imports).
"""

from __future__ import annotations

import functools
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.errors import ConfigError, DataError

EVAL_BATCH = 64
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SEED = 0


def split_settings(meta) -> tuple[float, int]:
    """val_fraction and seed the model was trained with, so a split root gives the same val."""
    extra = meta.extra or {}
    for source in (extra.get("data") or {}, extra):
        if isinstance(source, dict) and "val_fraction" in source:
            return float(source["val_fraction"]), int(source.get("seed", DEFAULT_SEED))
    return DEFAULT_VAL_FRACTION, DEFAULT_SEED


def static_batch(meta) -> int | None:
    """The fixed batch size of an artifact exported with one, else None."""
    value = (meta.extra or {}).get("static_batch")
    return int(value) if value else None


def top1(model, root: str | Path) -> tuple[float, int]:
    """Top-1 of ``model`` on the val split of the labeled folder ``root``: (fraction, images).

    ``root`` means what it means to ``edgessl benchmark --data``: ``train/`` + ``val/`` folders,
    or one ImageFolder split with the seed and fraction the model was trained with.

    Raises:
        ConfigError: for an embedding model (no labels).
        DataError: for unusable data or classes that differ from the model's labels.
    """
    from edgessl.data.labeled import load_labeled

    meta = model.meta
    if not meta.labels:
        raise ConfigError(f"'{model.path}' outputs embeddings, not class scores; top-1 needs "
                          "a classifier")
    data = load_labeled(root, *split_settings(meta))
    if set(meta.labels) != set(data.classes):
        raise DataError(f"labels of '{model.path}' differ from the classes in '{root}'; pass "
                        "the data the model was trained on")
    position = {name: i for i, name in enumerate(meta.labels)}
    to_model = np.array([position[c] for c in data.classes], dtype=np.int64)
    from edgessl.runtime.model import run_in_fixed_batches

    fixed = static_batch(meta)
    step = fixed or EVAL_BATCH
    correct = 0
    for start in range(0, len(data.val), step):
        chunk = data.val[start:start + step]
        x = model.preprocess([p for p, _ in chunk])
        predicted = run_in_fixed_batches(model.run, x, fixed).argmax(axis=1)
        correct += int((predicted == to_model[[y for _, y in chunk]]).sum())
    return correct / len(data.val), len(data.val)


@dataclass(frozen=True)
class Timing:
    """How long to time: ``warmup`` untimed runs, then ``iterations`` runs or, when
    ``time_budget_s`` is set, as many runs as fit in it (at least ``min_iterations``)."""

    warmup: int = 10
    iterations: int = 100
    time_budget_s: float | None = None
    min_iterations: int = 1


def time_runs(fn: Callable[[], object], timing: Timing) -> tuple[float, list[float]]:
    """Time ``fn()``: returns (first run in s, timed runs in s after the warmup runs)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(timing.warmup):
        fn()
    timings: list[float] = []
    if timing.time_budget_s is None:
        for _ in range(timing.iterations):
            start = time.perf_counter()
            fn()
            timings.append(time.perf_counter() - start)
        return first, timings
    deadline = time.perf_counter() + timing.time_budget_s
    while time.perf_counter() < deadline or len(timings) < timing.min_iterations:
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return first, timings


def latency(seconds) -> dict:
    """Per-run latency statistics in ms (the fields of BenchmarkResult.latency)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "max_ms": float(ms.max()),
            "std_ms": float(ms.std()), "p50_ms": float(p50), "p90_ms": float(p90),
            "p99_ms": float(p99)}


def size_mib(path: Path) -> float:
    """The artifact's size on disk in MiB, every file of it (``artifact.artifact_files``)."""
    from edgessl.runtime_specs import artifact_size_mib

    return artifact_size_mib(path)


def benchmark(model, batch_size: int = 1, warmup: int = 10, iterations: int = 100,
              images: list | None = None, data: str | Path | None = None,
              name: str | None = None) -> dict:
    """Time ``model`` on one batch; returns a BenchmarkResult-shaped dict.

    Args:
        model: a DeployedModel.
        batch_size, warmup, iterations: as in ``edgessl benchmark``.
        images: real images to time (repeated to fill the batch); None = seeded noise.
        data: a labeled folder; when given, top-1 on its val split is measured too.
        name: what to call the model in the result (default: its path).

    Raises:
        ConfigError: for bad counts or a batch size a fixed-batch artifact cannot take.
    """
    if warmup < 0 or iterations < 1 or batch_size < 1:
        raise ConfigError(f"need warmup ≥ 0, iterations ≥ 1 and batch size ≥ 1; got "
                          f"{warmup}, {iterations}, {batch_size}")
    meta = model.meta
    fixed = static_batch(meta)
    if fixed is not None and fixed != batch_size:
        raise ConfigError(f"'{model.path}' was exported with a fixed batch of {fixed}; "
                          f"use batch size {fixed}")
    if images:
        x = model.preprocess([images[i % len(images)] for i in range(batch_size)])
    elif model.raw_input:
        x = np.random.default_rng(0).integers(0, 256, (batch_size, meta.image_size,
                                                       meta.image_size, 3), dtype=np.uint8)
    else:
        x = np.random.default_rng(0).standard_normal(
            (batch_size, 3, meta.image_size, meta.image_size), dtype=np.float32)
    first, timings = time_runs(lambda: model.run(x), Timing(warmup, iterations))
    stats = latency(timings)
    accuracy, val_images = top1(model, data) if data is not None else (None, None)
    ex = model.execution
    memory = runtime_memory_mib(model.path, ex.device.split(",")[0] or "CPU", batch_size)
    return {
        "model": name or str(model.path), "runtime": ex.runtime, "device": ex.device,
        "provider": ex.provider, "executed_on": _executed_on(model),
        "runtime_version": ex.version, "format": meta.format,
        "precision": meta.precision, "task": meta.task, "size_mib": size_mib(model.path),
        "load_s": model.load_seconds, "first_inference_ms": first * 1000.0,
        "batch_size": batch_size, "warmup": warmup, "iterations": iterations, "latency": stats,
        "throughput_ips": batch_size * 1000.0 / stats["mean_ms"] if stats["mean_ms"] > 0
        else math.inf,
        "top1": accuracy, "val_images": val_images,
        "runtime_rss_mib": None if memory is None else memory.peak_mib,
        "runtime_imports": [] if memory is None else list(memory.imports),
    }


def _executed_on(model) -> list[str]:
    """ONNX Runtime's session providers, or OpenVINO's execution devices."""
    providers = getattr(model.loaded, "session_providers", None)
    if providers:
        return list(providers)
    return [d for d in model.execution.device.split(",") if d]


def device_stamp() -> dict:
    """Where the numbers were measured, from the standard library only (no psutil, no torch)."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    cpu = value.strip()
                    break
    except OSError:
        pass
    return {"hostname": platform.node(), "machine": platform.machine(), "cpu": cpu,
            "logical_cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


# Run in a fresh Python by ``runtime_memory_mib``: only the light runtime and the artifact's own
# runtime are imported, then the model is loaded and run; prints the peak RSS in KiB.
_MEMORY_CHILD = """
import resource, sys
try:  # Linux: the peak starts from the parent's at fork; reset it to this process's own
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
import numpy as np
from edgessl.runtime.model import load
model = load(sys.argv[1], device=sys.argv[2])
meta, side = model.meta, model.meta.image_size
batch = meta.fixed_batch or int(sys.argv[3])
shape = (batch, side, side, 3) if meta.raw_input else (batch, 3, side, side)
x = np.zeros(shape, np.uint8 if meta.raw_input else np.float32)
for _ in range(int(sys.argv[4])):
    model.run(x)
from edgessl.runtime_specs import RUNTIME_SPECS
heavy = {"torch", *(spec.import_name for _, spec in RUNTIME_SPECS.items())}
print("imports", ",".join(sorted(m for m in heavy if m in sys.modules)))
try:
    peak = next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("peak_kib", peak)
"""


@dataclass(frozen=True)
class RuntimeMemory:
    """Peak resident memory of a process that only loads and runs the artifact.

    Attributes:
        peak_mib: its peak RSS in MiB (Python, numpy, the runtime, the model, its buffers).
        imports: the heavy packages that process imported (``torch`` shows a runtime that
            needs PyTorch, such as ExecuTorch's Python runtime).
    """

    peak_mib: float
    imports: tuple[str, ...]


def runtime_memory_mib(path: str | Path, device: str = "CPU", batch_size: int = 1,
                       runs: int = 3, timeout: float = 300) -> RuntimeMemory | None:
    """Measure the memory an artifact needs on its own: load and run it in a fresh Python.

    The benchmarking process holds PyTorch and every runtime it has loaded, so its peak says
    little about a device; this child process holds only what the deploy runtime imports for
    the artifact. None where the OS has no ``resource`` module (Windows) or the child fails.
    An unchanged file is measured once per process (the child costs a second or two).
    """
    stat = Path(path).stat()
    return _measure_memory(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, device,
                           batch_size, runs, timeout)


@functools.lru_cache(maxsize=64)
def _measure_memory(path: str, mtime_ns: int, size: int, device: str, batch_size: int,
                    runs: int, timeout: float) -> RuntimeMemory | None:
    import subprocess
    import sys

    try:
        import resource  # noqa: F401 - only to know the child can report
    except ImportError:
        return None
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    try:
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path), device,
                               str(batch_size), str(runs)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    if proc.returncode != 0 or "peak_kib" not in fields:
        return None
    peak = int(fields["peak_kib"])  # KiB (VmHWM, Linux ru_maxrss); bytes on macOS
    return RuntimeMemory(peak / 2**20 if sys.platform == "darwin" else peak / 1024,
                         tuple(m for m in fields.get("imports", "").split(",") if m))
