"""Timing loops and what else is measured of a loaded model: synchronous latency, end-to-end
latency, async throughput, peak memory, size, and where it was measured.

The one implementation: the host's ``edgessl benchmark`` and a deploy bundle's
``run.py benchmark`` both time with these (through ``edgessl.runtime.bench.measure``). Each loop
times what the user's application would do and nothing else; the runtime-specific part is
only how many inferences are put in flight at once (``async_throughput``). Imports numpy and
Pillow only: this module travels in deploy bundles, which have no torch.
"""

from __future__ import annotations

import datetime as _dt
import functools
import io
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.runtime.result import AsyncStats

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


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


def encoded_images(count: int, size: int, seed: int = 0) -> list[bytes]:
    """``count`` seeded noise images as PNG bytes at 2x ``size`` (so resizing does work), for
    end-to-end timing when no image is given."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        pixels = rng.integers(0, 256, (2 * size, 2 * size, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def end_to_end_fn(model, sources: Sequence[Path | bytes]) -> Callable[[], np.ndarray]:
    """A callable doing what an application does per batch: read and decode each image,
    resize and centre-crop, normalise (unless the model does it inside), stack, infer.
    ``sources`` are image files or encoded image bytes."""
    from edgessl.data.images import open_rgb
    from edgessl.runtime.accuracy import model_inputs

    def run() -> np.ndarray:
        images = [open_rgb(io.BytesIO(s) if isinstance(s, bytes) else s) for s in sources]
        return model.run(model_inputs(model.meta, images))

    return run


def async_throughput(model, batch: np.ndarray, runs: int, requests: int = 0,
                     hint: str = "THROUGHPUT", streams: int = 0) -> AsyncStats:
    """Images per second with many inferences in flight.

    OpenVINO models run in an AsyncInferQueue compiled with ``hint`` (and ``streams``);
    other runtimes (ONNX Runtime, PyTorch: both release the GIL while computing) run the
    same model from ``requests`` threads.

    Args:
        model: a loaded model (OpenVinoModel, OnnxRuntimeModel, TorchModel).
        batch: the input of every inference (float32 [N, 3, S, S], or uint8 [N, S, S, 3]).
        runs: batches to run in the timed part (after one untimed round of ``requests``).
        requests: in flight at once; 0 = OpenVINO's OPTIMAL_NUMBER_OF_INFER_REQUESTS, or the
            logical cores for threads.
        hint, streams: OpenVINO's performance hint and streams (0 = chosen by the hint).
    """
    prepared = model.compile_for_throughput(hint, streams)
    if prepared is not None:
        return _async_queue(prepared, batch, runs, requests, hint)
    workers = requests or _logical_cores()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: model.run(batch), range(workers)))
        start = time.perf_counter()
        list(pool.map(lambda _: model.run(batch), range(runs)))
        seconds = time.perf_counter() - start
    name = {"onnxruntime": "ONNX Runtime session"}.get(model.execution.runtime,
                                                       model.execution.runtime)
    return AsyncStats(method=f"{name} run from {workers} threads", requests=workers,
                      runs=runs, batch_size=len(batch), seconds=seconds,
                      throughput_ips=runs * len(batch) / seconds)


def _async_queue(prepared: tuple, batch, runs, requests, hint) -> AsyncStats:
    """Throughput from OpenVINO's AsyncInferQueue on a model compiled for throughput."""
    import openvino as ov

    compiled, settings = prepared
    jobs = requests or int(settings.get("OPTIMAL_NUMBER_OF_INFER_REQUESTS", 1) or 1)
    queue = ov.AsyncInferQueue(compiled, jobs)
    x = np.ascontiguousarray(batch)  # float32, or uint8 pixels for embedded preprocessing
    for _ in range(jobs):  # one untimed round: first inferences allocate
        queue.start_async({0: x})
    queue.wait_all()
    start = time.perf_counter()
    for _ in range(runs):
        queue.start_async({0: x})
    queue.wait_all()
    seconds = time.perf_counter() - start
    return AsyncStats(method=f"OpenVINO AsyncInferQueue ({hint})", requests=jobs, runs=runs,
                      batch_size=len(batch), seconds=seconds,
                      throughput_ips=runs * len(batch) / seconds, settings=settings)


def _logical_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def reset_peak_rss() -> bool:
    """Reset the process's peak resident memory (Linux: VmHWM); False where it cannot be."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process in MiB: VmHWM on Linux (since the last
    ``reset_peak_rss``), else ru_maxrss (peak since start); None where neither exists."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


def size_mib(path: str | Path) -> float:
    """The artifact's size on disk in MiB, every file of it (``artifact.artifact_files``)."""
    from edgessl.runtime_specs import artifact_size_mib

    return artifact_size_mib(path)


def device_stamp() -> dict:
    """Where the numbers were measured: CPU, its ISA flags, cores, board, OS, Python, time (UTC).

    Standard library only (no psutil, no torch, no runtime probed); the host benchmark adds
    its runtimes' devices and versions (``edgessl.benchmark.report.host_stamp``).
    """
    from edgessl.devices.host import board_model, cpu_info

    cpu = cpu_info()
    return {"hostname": platform.node(), "cpu": cpu.model, "cpu_flags": list(cpu.flags),
            "fast_int8": cpu.has_fast_int8, "logical_cores": cpu.logical_cores,
            "system": platform.system(), "machine": platform.machine(), "board": board_model(),
            "platform": platform.platform(), "python": platform.python_version(),
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


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
