"""Benchmark one loaded model: every figure edgessl reports, measured one way.

``measure`` is the one measurement path. The host's ``edgessl benchmark``
(``edgessl.benchmark.host``: many models, profiles, tables) and a deploy bundle's
``run.py benchmark`` (``edgessl.runtime.bundle_cli``, on the device) both call it, so the host and
a device give the same figures for the same artifact: size, first inference, latency
percentiles, end to end, async throughput, the batch sweep, top-1 and memory. Imports numpy
and the light runtime modules only (this module travels in deploy bundles).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from edgessl.config import MAX_BATCH, MAX_RUNS, MAX_THREADS, Range, check_fields
from edgessl.errors import ConfigError
from edgessl.runtime.accuracy import input_batch, require_labels, static_batch, top1_accuracy
from edgessl.runtime.measure import (
    Timing,
    async_throughput,
    encoded_images,
    end_to_end_fn,
    peak_rss_mib,
    runtime_memory_mib,
    size_mib,
    time_runs,
)
from edgessl.runtime.result import BenchmarkResult, LatencyStats, SweepPoint, latency_stats


@dataclass(frozen=True)
class MeasureConfig:
    """What to time, as ``edgessl benchmark`` and ``run.py benchmark`` both take it (their
    flags are named after these fields: ``--warmup``, ``--time``, ``--requests``, ...).

    Attributes:
        warmup: untimed runs before timing (after the first inference).
        iterations: timed runs; latency statistics are over these.
        time_budget_s: when set, time as many runs as fit in this many seconds instead of
            ``iterations`` (per measurement).
        batch_size: images per run of the latency measurement.
        batch_sizes: batch sizes of the synchronous throughput sweep; () = no sweep.
        async_runs: batches run in the asynchronous throughput measurement; 0 = skip it.
        async_requests: inferences in flight for it; 0 = the target's (``Target.requests``).
        end_to_end: also time decode + resize + preprocess + infer per run.
        runtime_memory: also measure an artifact's memory in a process of its own, with only
            its runtime loaded (``BenchmarkResult.runtime_rss_mib``).
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of the benchmark commands

    warmup: Annotated[int, Range(ge=0, le=MAX_RUNS)] = 10
    iterations: Annotated[int, Range(ge=1, le=MAX_RUNS)] = 100
    time_budget_s: Annotated[float | None, Range(gt=0, le=86_400, note="seconds",
                                                 flag="--time")] = None
    batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH)] = 1
    batch_sizes: Annotated[tuple[int, ...], Range(ge=1, le=MAX_BATCH)] = ()
    async_runs: Annotated[int, Range(ge=0, le=MAX_RUNS, note="0 = skip")] = 200
    async_requests: Annotated[int, Range(ge=0, le=MAX_THREADS, note="0 = automatic",
                                         flag="--requests")] = 0
    end_to_end: bool = True
    runtime_memory: bool = True

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def timing(self) -> Timing:
        return Timing(warmup=self.warmup, iterations=self.iterations,
                      time_budget_s=self.time_budget_s)


@dataclass(frozen=True)
class Target:
    """How the caller loaded the model: what results call it and how it runs in parallel.

    Attributes:
        name: the model as results name it (the path as given, or the bundle's file).
        profile: the device profile's name ("" without one).
        device: the device the runtime was given (the memory measurement loads it there too).
        hint, streams, requests: the async throughput run's OpenVINO hint and streams (0 =
            chosen by the hint) and inferences in flight (0 = automatic).
        fixed_batch: the batch the model is compiled for (static-shape targets); None = any.
        resize: loads the model compiled for another batch size, for the sweep on
            static-shape targets; None = the same model runs every batch size.
        size_mib: the model's size on disk in MiB; None = its artifact files' (``size_mib``).
    """

    name: str
    profile: str = ""
    device: str = "CPU"
    hint: str = "THROUGHPUT"
    streams: int = 0
    requests: int = 0
    fixed_batch: int | None = None
    resize: Callable[[int], Any] | None = None
    size_mib: float | None = None

    @classmethod
    def of(cls, name: str, profile=None, device: str = "CPU", **more) -> Target:
        """The target of a DeviceProfile (its name, device and async settings), or of a bare
        ``device`` with runtime defaults when ``profile`` is None."""
        if profile is None:
            return cls(name=name, device=device, **more)
        return cls(name=name, profile=profile.name, device=profile.device,
                   hint=profile.throughput_hint, streams=profile.streams,
                   requests=profile.async_requests, **more)


def measure(model, config: MeasureConfig, target: Target, sources: Sequence | None = None,
            data=None) -> BenchmarkResult:
    """Benchmark a loaded model: first inference, latency, end to end, async throughput, the
    batch sweep, top-1 and memory, with what the runtime reports it ran on.

    Args:
        model: a loaded runtime model (``path``, ``meta``, ``execution``, ``load_seconds``,
            ``run``), as ``edgessl.backends`` loaders return it (``DeployedModel.loaded``).
        config: what to time.
        target: how it was loaded (see Target).
        sources: image files to time, repeated to fill a batch; None = seeded noise (and noise
            PNGs for end to end).
        data: a LabeledData; top-1 is scored on its val split. None = no top-1.

    Raises:
        ConfigError: a batch size the artifact cannot take, or data for an embedding model.
        DataError: data whose classes differ from the model's labels, or NaN scores.
    """
    meta = model.meta
    fixed = static_batch(meta)
    if fixed is not None and fixed != config.batch_size:
        raise ConfigError(f"'{target.name}' was exported with a fixed batch of {fixed}; "
                          f"pass --batch-size {fixed}")
    others = [b for b in config.batch_sizes if fixed is not None and b != fixed]
    if others:  # never a sweep that quietly leaves out the sizes asked for
        raise ConfigError(f"'{target.name}' was exported with a fixed batch of {fixed}, so "
                          f"--batch-sizes {','.join(map(str, config.batch_sizes))} cannot run "
                          f"{', '.join(map(str, others))}; pass --batch-sizes {fixed} or "
                          "export it with a dynamic batch")
    if data is not None:
        require_labels(model)
    x = input_batch(meta, config.batch_size, sources)
    first, timings = time_runs(lambda: model.run(x), config.timing)
    stats = latency_stats(timings)
    e2e = _end_to_end(model, config, sources) if config.end_to_end else None
    async_stats = None
    if config.async_runs:
        async_stats = async_throughput(model, x, config.async_runs,
                                       config.async_requests or target.requests,
                                       hint=target.hint, streams=target.streams)
    sweep = _sweep(model, config, target, sources, stats)
    top1 = val_images = None
    if data is not None:
        top1, val_images = top1_accuracy(model, data, target.fixed_batch)
    memory = None
    if config.runtime_memory and Path(model.path).is_file():  # an artifact, not a checkpoint
        memory = runtime_memory_mib(model.path, target.device, config.batch_size)
    ex = model.execution
    return BenchmarkResult(
        model=target.name, profile=target.profile, runtime=ex.runtime, device=ex.device,
        provider=ex.provider, executed_on=executed_on(model), runtime_version=ex.version,
        settings=dict(getattr(model, "settings", {})), format=meta.format,
        precision=meta.precision, task=meta.task,
        size_mib=size_mib(model.path) if target.size_mib is None else target.size_mib,
        load_s=model.load_seconds, first_inference_ms=first * 1000.0,
        batch_size=config.batch_size, warmup=config.warmup, iterations=len(timings),
        latency=stats, e2e_latency=e2e, throughput_ips=_ips(config.batch_size, stats.mean_ms),
        async_throughput=async_stats, sweep=sweep, peak_rss_mib=peak_rss_mib(),
        runtime_rss_mib=None if memory is None else memory.peak_mib,
        runtime_imports=() if memory is None else memory.imports,
        top1=top1, val_images=val_images,
    )


def executed_on(model) -> tuple[str, ...]:
    """What executed, as the runtime reports it: OpenVINO's EXECUTION_DEVICES, ONNX Runtime's
    session providers, else the execution's device(s)."""
    reported = getattr(model, "execution_devices", ()) or getattr(model, "session_providers", ())
    return tuple(reported) or tuple(d for d in model.execution.device.split(",") if d)


def _ips(batch_size: int, mean_ms: float) -> float:
    return batch_size * 1000.0 / mean_ms if mean_ms > 0 else math.inf


def _end_to_end(model, config: MeasureConfig, sources) -> LatencyStats:
    n = config.batch_size
    images = ([sources[i % len(sources)] for i in range(n)] if sources
              else encoded_images(n, model.meta.image_size))
    _, timings = time_runs(end_to_end_fn(model, images), config.timing)
    return latency_stats(timings)


def _sweep(model, config: MeasureConfig, target: Target, sources, measured: LatencyStats
           ) -> tuple[SweepPoint, ...]:
    """Synchronous latency and throughput at each batch size of the sweep (the latency
    measurement itself, ``measured``, stands for ``config.batch_size``)."""
    sizes = config.batch_sizes  # a fixed-batch model gets only its own (checked by measure)
    points = []
    for size in sizes:
        stats = measured
        if size != config.batch_size:
            sized = target.resize(size) if target.resize is not None else model
            x = input_batch(model.meta, size, sources)
            _, timings = time_runs(lambda m=sized, x=x: m.run(x), config.timing)
            stats = latency_stats(timings)
        points.append(SweepPoint(size, stats.p50_ms, stats.mean_ms, _ips(size, stats.mean_ms)))
    return tuple(points)


def parse_batch_sizes(text: str | None) -> tuple[int, ...]:
    """``--batch-sizes`` text: "1,8,32" -> (1, 8, 32); None or "" -> ().

    Raises:
        ConfigError: for anything but comma-separated integers (an empty item included).
    """
    if not text:
        return ()
    if any(not part.strip() for part in text.split(",")):  # "1,,2": a typo, not a shorter sweep
        from edgessl.errors import printable

        raise ConfigError(f"--batch-sizes '{printable(text)}' has an empty item; write "
                          "comma-separated integers like 1,8,32, or leave --batch-sizes out "
                          "for the profile's")
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--batch-sizes takes comma-separated integers like 1,8,32; got "
                          f"'{text}'") from None


def precision_variants(profiles: list, precisions: Sequence[str]) -> list:
    """Each profile once per inference precision (``--inference-precision``), named
    ``<profile>@<precision>`` and keeping only the runtimes that take the setting; no profile
    given = the host's CPU with OpenVINO.

    Raises:
        ConfigError: a profile none of whose runtimes can set an inference precision.
    """
    import dataclasses

    from edgessl.devices.profile import DeviceProfile
    from edgessl.runtime_specs import RUNTIME_SPECS

    able = [n for n, s in RUNTIME_SPECS.items() if s.inference_precisions]
    profiles = profiles or [DeviceProfile(name="cpu", runtimes=tuple(able), device="CPU")]
    variants = []
    for profile in profiles:
        for precision in precisions:
            runtimes = tuple(r for r in profile.runtimes
                             if precision in RUNTIME_SPECS.get(r).inference_precisions)
            if not runtimes:
                raise ConfigError(f"--inference-precision applies to {' and '.join(able)}; "
                                  f"profile '{profile.name}' uses {', '.join(profile.runtimes)}")
            variants.append(dataclasses.replace(profile, name=f"{profile.name}@{precision}",
                                                runtimes=runtimes,
                                                inference_precision=precision))
    return variants
