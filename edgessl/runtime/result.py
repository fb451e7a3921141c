"""What a benchmark measured: plain frozen dataclasses that round-trip through JSON.

The host's ``edgessl benchmark`` and a deploy bundle's ``run.py benchmark`` both return these
(``edgessl.runtime.bench.measure`` fills them), so numpy is all this module imports.
``BenchmarkResult.to_dict`` / ``from_dict`` let results measured elsewhere (a device, another
process) join the same table; ``host`` says where each row was measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from edgessl.errors import ConfigError


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one run (one batch) over the timed iterations, all in ms."""

    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


@dataclass(frozen=True)
class SweepPoint:
    """Synchronous latency and throughput at one batch size of the batch sweep.

    Attributes:
        batch_size: images per run.
        p50_ms, mean_ms: latency of one run of ``batch_size`` images, in ms.
        throughput_ips: images per second (batch_size / mean latency).
    """

    batch_size: int
    p50_ms: float
    mean_ms: float
    throughput_ips: float


@dataclass(frozen=True)
class AsyncStats:
    """Throughput with many inferences in flight.

    Attributes:
        method: how ("OpenVINO AsyncInferQueue", "ONNX Runtime session, N threads").
        requests: inferences in flight at once (infer requests or threads).
        runs: batches run in the timed part; batch_size: images per batch.
        seconds: wall time of the timed part, in s.
        throughput_ips: images per second.
        settings: what the runtime chose (hint, streams), read back from it.
    """

    method: str
    requests: int
    runs: int
    batch_size: int
    seconds: float
    throughput_ips: float
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkResult:
    """One model on one target.

    Attributes:
        model: the path as given.
        host: where it was measured ("local", or a remote host's name).
        profile: the device profile name ("" when run with --device).
        runtime, device, provider, runtime_version: what actually ran (from the runtime).
        executed_on: what executed, as the runtime reports it: OpenVINO EXECUTION_DEVICES,
            ONNX Runtime session providers, PyTorch's device.
        settings: thread/stream/hint settings read back from the runtime.
        format, precision, task: from the model's metadata.
        size_mib: weights on disk in MiB (safetensors; .onnx plus external data; .xml plus .bin).
        load_s: load/compile time in s.
        first_inference_ms: the first run, in ms (includes lazy initialisation).
        batch_size, warmup, iterations: as run (iterations counts the timed runs).
        latency: inference-only latency per run (preprocessed tensor in, logits out).
        e2e_latency: end-to-end latency per run: read + decode + resize + normalise + infer.
        throughput_ips: images per second, synchronous (batch_size / mean latency).
        async_throughput: throughput with many requests in flight; None when not measured.
        sweep: synchronous latency/throughput per batch size of the batch sweep.
        peak_rss_mib: peak resident memory of the benchmarking process while this model was
            loaded and run, in MiB (PyTorch and every runtime loaded so far included; None
            where the OS does not report it).
        runtime_rss_mib: peak resident memory of a fresh process that only loads and runs
            this artifact with its runtime (``edgessl.runtime.measure.runtime_memory_mib``):
            what the model needs on a device. None for checkpoints and where not measured.
        runtime_imports: heavy packages that process imported ("torch" for a runtime that
            needs PyTorch).
        top1: top-1 accuracy on the val split as a fraction in [0, 1]; None without data.
        val_images: images the accuracy was measured on; None without data.
        skipped: why this target was not measured (None when it was).
    """

    model: str
    host: str = "local"
    profile: str = ""
    runtime: str = ""
    device: str = ""
    provider: str = ""
    executed_on: tuple[str, ...] = ()
    runtime_version: str = ""
    settings: dict = field(default_factory=dict)
    format: str = ""
    precision: str = ""
    task: str = ""
    size_mib: float = 0.0
    load_s: float = 0.0
    first_inference_ms: float = 0.0
    batch_size: int = 1
    warmup: int = 0
    iterations: int = 0
    latency: LatencyStats | None = None
    e2e_latency: LatencyStats | None = None
    throughput_ips: float = 0.0
    async_throughput: AsyncStats | None = None
    sweep: tuple[SweepPoint, ...] = ()
    peak_rss_mib: float | None = None
    runtime_rss_mib: float | None = None
    runtime_imports: tuple[str, ...] = ()
    top1: float | None = None
    val_images: int | None = None
    skipped: str | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict (nested dataclasses become dicts, tuples lists on dumping)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, strict: bool = True) -> BenchmarkResult:
        """The result from ``to_dict``'s output (e.g. read back from JSON).

        Args:
            data: a dict as written by ``to_dict`` (here or by another edgessl version).
            strict: raise on keys this version does not know; False drops them (for results
                from a newer edgessl on a remote device).

        Raises:
            ConfigError: for a dict without 'model', or with unknown keys when ``strict``.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if not strict:
            data, unknown = {k: v for k, v in data.items() if k in names}, []
        if unknown or "model" not in data:
            problem = f"unknown key '{unknown[0]}'" if unknown else "no 'model'"
            raise ConfigError(f"benchmark result has {problem}; valid keys: "
                              f"{', '.join(sorted(names))}")
        values = dict(data)
        for key in ("latency", "e2e_latency"):
            if values.get(key) is not None:
                values[key] = LatencyStats(**values[key])
        if values.get("async_throughput") is not None:
            values["async_throughput"] = AsyncStats(**values["async_throughput"])
        values["sweep"] = tuple(SweepPoint(**p) for p in values.get("sweep") or ())
        values["executed_on"] = tuple(values.get("executed_on") or ())
        values["runtime_imports"] = tuple(values.get("runtime_imports") or ())
        return cls(**values)


def latency_stats(seconds: Sequence[float]) -> LatencyStats:
    """Statistics of per-run times given in seconds (percentiles by linear interpolation).

    Raises:
        ValueError: for an empty sequence.
    """
    if len(seconds) == 0:
        raise ValueError("latency_stats needs at least one timing")
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        mean_ms=float(ms.mean()), min_ms=float(ms.min()), max_ms=float(ms.max()),
        std_ms=float(ms.std()), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
    )
