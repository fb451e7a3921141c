"""Timing loops: synchronous latency, end-to-end latency, async throughput, peak memory.

Each loop times what the user's application would do and nothing else; the runtime-specific
part is only how many inferences are put in flight at once (``async_throughput``).
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgessl.benchmark.result import AsyncStats
from edgessl.runtime.measure import Timing, time_runs  # noqa: F401 - re-exported: one timing loop

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def encoded_images(count: int, size: int, seed: int = 0) -> list[bytes]:
    """``count`` seeded noise images as PNG bytes at 2x ``size`` (so resizing does work), for
    end-to-end timing when no data is given."""
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
    from edgessl.benchmark.accuracy import model_inputs
    from edgessl.data.images import open_rgb

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
        batch: float32 [N, 3, S, S], the input of every inference.
        runs: batches to run in the timed part (after one untimed round of ``requests``).
        requests: in flight at once; 0 = OpenVINO's OPTIMAL_NUMBER_OF_INFER_REQUESTS, or the
            logical cores for threads.
        hint, streams: OpenVINO's performance hint and streams (0 = chosen by the hint).
    """
    if hasattr(model, "compile_for_throughput"):
        return _openvino_async(model, batch, runs, requests, hint, streams)
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


def _openvino_async(model, batch, runs, requests, hint, streams) -> AsyncStats:
    import openvino as ov

    compiled, settings = model.compile_for_throughput(hint, streams)
    jobs = requests or int(settings.get("OPTIMAL_NUMBER_OF_INFER_REQUESTS", 1) or 1)
    queue = ov.AsyncInferQueue(compiled, jobs)
    x = np.ascontiguousarray(batch, dtype=np.float32)
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
