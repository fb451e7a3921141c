"""Benchmark models side by side on one or more targets: load time, latency percentiles
(inference-only and end-to-end), throughput (batch sweep and asynchronous), peak memory, size
and top-1 accuracy.

Any model ``load_any`` accepts works (checkpoint folder, .onnx, OpenVINO .xml); a target is a
device profile (``devices/*.toml``) or, without one, ``--device``. Every number says which
runtime, device and provider actually produced it, and a target this host cannot run is an
error (one target) or a skipped row saying why (several).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from edgessl.benchmark.accuracy import (  # noqa: F401 - label_mapping is re-exported
    SplitLoader,
    input_batch,
    label_mapping,
    require_labels,
    split_loader,
    split_settings,
    static_batch,
    top1_accuracy,
)
from edgessl.benchmark.measure import (
    Timing,
    async_throughput,
    encoded_images,
    end_to_end_fn,
    peak_rss_mib,
    reset_peak_rss,
    time_runs,
)
from edgessl.benchmark.result import (  # noqa: F401 - re-exported: the public API lives here
    AsyncStats,
    BenchmarkResult,
    LatencyStats,
    SweepPoint,
    latency_stats,
)
from edgessl.config import MAX_BATCH, MAX_RUNS, MAX_THREADS, Range, check_fields
from edgessl.errors import ConfigError, DeviceUnavailableError, unknown_choice


@dataclass(frozen=True)
class BenchmarkConfig:
    """How to benchmark.

    Attributes:
        warmup: untimed runs before timing (after the first inference).
        iterations: timed runs; latency statistics are over these.
        time_budget_s: when set, time as many runs as fit in this many seconds instead of
            ``iterations`` (per measurement).
        batch_size: images per run of the latency measurement.
        batch_sizes: batch sizes of the throughput sweep; () = the profile's ``batch_sizes``
            (no sweep without a profile).
        data: labeled dataset root; when given, inputs are real images and top-1 is measured.
        device: device passed to the runtime ("CPU", or "CUDA" for PyTorch) when no profile
            is given.
        profiles: device profile names or .toml paths; each is a target. () = ``device``.
        async_runs: batches run in the asynchronous throughput measurement; 0 = skip it.
        async_requests: inferences in flight for it; 0 = the profile's ``async_requests``
            (0 there = OpenVINO's optimal number, or one thread per logical core).
        end_to_end: also time decode + resize + preprocess + infer per run.
        inference_precisions: run each target once per precision (``precision_variants``).
        runtime_memory: also measure an artifact's memory in a process of its own, with only
            its runtime loaded (``BenchmarkResult.runtime_rss_mib``).
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl benchmark

    warmup: Annotated[int, Range(ge=0, le=MAX_RUNS)] = 10
    iterations: Annotated[int, Range(ge=1, le=MAX_RUNS)] = 100
    time_budget_s: Annotated[float | None, Range(gt=0, le=86_400, note="seconds",
                                                 flag="--time")] = None
    batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH)] = 1
    batch_sizes: Annotated[tuple[int, ...], Range(ge=1, le=MAX_BATCH)] = ()
    data: str | None = None
    device: str = "CPU"
    profiles: tuple[str, ...] = ()
    async_runs: Annotated[int, Range(ge=0, le=MAX_RUNS, note="0 = skip")] = 200
    async_requests: Annotated[int, Range(ge=0, le=MAX_THREADS, note="0 = automatic",
                                         flag="--requests")] = 0
    end_to_end: bool = True
    inference_precisions: tuple[str, ...] = ()
    runtime_memory: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        from edgessl.devices.profile import INFERENCE_PRECISIONS

        for precision in self.inference_precisions:
            if precision not in INFERENCE_PRECISIONS:
                raise unknown_choice("--inference-precision", precision, INFERENCE_PRECISIONS)

    @property
    def timing(self) -> Timing:
        return Timing(warmup=self.warmup, iterations=self.iterations,
                      time_budget_s=self.time_budget_s)


def model_size_mib(path: str | Path) -> float:
    """Size on disk of a model's weights in MiB (see BenchmarkResult.size_mib)."""
    path = Path(path)
    if path.is_dir():
        from edgessl.checkpoint import WEIGHTS_FILE

        files = [path / WEIGHTS_FILE]
    else:
        from edgessl.runtime_specs import artifact_files

        files = artifact_files(path)
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run PyTorch with ``threads`` intra-op threads (0 = leave as is), restored afterwards."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_for_target(path: str | Path, config: BenchmarkConfig, profile=None,
                    batch: int | None = None):
    """Load ``path`` with its runtime on the profile's device (else ``config.device``).

    ``batch`` fixes the input batch for static-shape targets. The loaded model gets
    ``executed_on`` and ``settings`` attributes saying what the runtime reports it runs on.
    """
    from edgessl.runtimes.registry import RUNTIMES, load_any, runtime_name_for

    runtime = runtime_name_for(path)
    if runtime == "pytorch":
        model = load_any(path, device=profile.device if profile is not None else config.device)
        import torch

        model.executed_on = (model.execution.device,)
        model.settings = {"threads": torch.get_num_threads()}
        return model
    if profile is None and batch is None:
        model = load_any(path, device=config.device)
    else:
        if not Path(path).exists():
            load_any(path)  # raises the usual "does not exist" error
        model = RUNTIMES.get(runtime).load(Path(path), device=config.device, profile=profile,
                                           batch=batch)
    model.executed_on = tuple(getattr(model, "execution_devices", ())
                              or getattr(model, "session_providers", ()))
    return model


def _static_target(profile) -> bool:
    return profile is not None and (profile.static_shapes or profile.static_batch is not None)


def _sweep(path, model, config: BenchmarkConfig, profile, data, measured: LatencyStats
           ) -> tuple[SweepPoint, ...]:
    """Synchronous latency and throughput at each batch size of the sweep (the latency
    measurement itself, ``measured``, stands for ``config.batch_size``)."""
    sizes = config.batch_sizes or (profile.batch_sizes if profile is not None else ())
    fixed = static_batch(model.meta)
    if fixed is not None:
        sizes = tuple(b for b in sizes if b == fixed)
    points = []
    for size in sizes:
        if size == config.batch_size:
            points.append(SweepPoint(size, measured.p50_ms, measured.mean_ms,
                                     _ips(size, measured.mean_ms)))
            continue
        sized = model
        if _static_target(profile):
            sized = load_for_target(path, config, profile, batch=size)  # recompiled for size
        x = input_batch(model.meta, size, data)
        _, timings = time_runs(lambda m=sized, x=x: m.run(x), config.timing)
        stats = latency_stats(timings)
        points.append(SweepPoint(size, stats.p50_ms, stats.mean_ms,
                                 _ips(size, stats.mean_ms)))
    return tuple(points)


def _ips(batch_size: int, mean_ms: float) -> float:
    return batch_size * 1000.0 / mean_ms if mean_ms > 0 else math.inf


def _end_to_end(model, config: BenchmarkConfig, data) -> LatencyStats:
    n = config.batch_size
    sources = ([data.val[i % len(data.val)][0] for i in range(n)] if data is not None
               else encoded_images(n, model.meta.image_size))
    _, timings = time_runs(end_to_end_fn(model, sources), config.timing)
    return latency_stats(timings)


def benchmark_model(path: str | Path, config: BenchmarkConfig,
                    splits: SplitLoader | None = None, profile=None) -> BenchmarkResult:
    """Benchmark one model on one target (see ``benchmark_models``).

    Args:
        path: the model.
        config: what to measure.
        splits: loads ``config.data`` per (val_fraction, seed); None = load it here.
        profile: a DeviceProfile, or None to run on ``config.device`` with runtime defaults.
    """
    if profile is not None and profile.static_batch not in (None, config.batch_size):
        raise ConfigError(f"profile '{profile.name}' runs a fixed batch of "
                          f"{profile.static_batch}; pass --batch-size {profile.static_batch}")
    reset_peak_rss()
    batch = config.batch_size if _static_target(profile) else None
    threads = profile.threads if profile is not None else 0
    with _torch_threads(threads):
        model = load_for_target(path, config, profile, batch)
        meta, data = model.meta, None
        fixed = static_batch(meta)
        if fixed is not None and fixed != config.batch_size:
            raise ConfigError(f"'{path}' was exported with a fixed batch of {fixed}; "
                              f"pass --batch-size {fixed}")
        if config.data is not None:
            require_labels(model)
            data = (splits or split_loader(config.data))(*split_settings(meta))
        x = input_batch(meta, config.batch_size, data)
        first, timings = time_runs(lambda: model.run(x), config.timing)
        stats = latency_stats(timings)
        e2e = _end_to_end(model, config, data) if config.end_to_end else None
        async_stats = None
        if config.async_runs:
            requests = config.async_requests or (profile.async_requests if profile else 0)
            async_stats = async_throughput(
                model, x, config.async_runs, requests,
                hint=profile.throughput_hint if profile else "THROUGHPUT",
                streams=profile.streams if profile else 0)
        sweep = _sweep(path, model, config, profile, data, stats)
        top1 = val_images = None
        if data is not None:
            top1, val_images = top1_accuracy(model, data, batch)
    ex = model.execution
    memory = None
    if config.runtime_memory and not Path(path).is_dir():
        from edgessl.runtime.measure import runtime_memory_mib

        memory = runtime_memory_mib(path, profile.device if profile is not None
                                    else config.device, config.batch_size)
    return BenchmarkResult(
        model=str(path), profile=profile.name if profile is not None else "",
        runtime=ex.runtime, device=ex.device, provider=ex.provider,
        executed_on=tuple(model.executed_on), runtime_version=ex.version,
        settings=dict(getattr(model, "settings", {})), format=meta.format,
        precision=meta.precision, task=meta.task, size_mib=model_size_mib(path),
        load_s=model.load_seconds, first_inference_ms=first * 1000.0,
        batch_size=config.batch_size, warmup=config.warmup, iterations=len(timings),
        latency=stats, e2e_latency=e2e, throughput_ips=_ips(config.batch_size, stats.mean_ms),
        async_throughput=async_stats, sweep=sweep, peak_rss_mib=peak_rss_mib(),
        runtime_rss_mib=None if memory is None else memory.peak_mib,
        runtime_imports=() if memory is None else memory.imports,
        top1=top1, val_images=val_images,
    )


def _skipped(path, profile, runtime: str, reason: str) -> BenchmarkResult:
    return BenchmarkResult(model=str(path), profile=profile.name, runtime=runtime,
                           skipped=reason)


def _run_target(path, config: BenchmarkConfig, splits, profile, host, several: bool
                ) -> BenchmarkResult:
    """One (model, profile) pair: measured, or skipped with the reason when ``several``."""
    from edgessl.devices.availability import check_runtime
    from edgessl.runtimes.registry import runtime_name_for

    runtime = runtime_name_for(path)
    status = check_runtime(profile, runtime, host)
    if not status.available:
        if not several and runtime in profile.runtimes:
            raise DeviceUnavailableError(status.message())
        return _skipped(path, profile, runtime, status.message())
    try:
        return benchmark_model(path, config, splits, profile)
    except DeviceUnavailableError as exc:  # listed, but failed to start: say so in the table
        if not several:
            raise
        return _skipped(path, profile, runtime, str(exc))


def benchmark_models(models: Sequence[str | Path], config: BenchmarkConfig | None = None
                     ) -> list[BenchmarkResult]:
    """Benchmark each model on each target, on the same input, with the runtime that fits it.

    Args:
        models: checkpoint folders, .onnx files or OpenVINO .xml files.
        config: what to measure and on which targets (defaults: BenchmarkConfig()).

    Returns:
        One BenchmarkResult per model and target (model-major), in the given order; a target
        this host cannot run is a result with ``skipped`` set when several targets were asked
        for (several profiles, or one profile and models it cannot run).

    Raises:
        CheckpointError: for a missing or unrecognised model path.
        DataError: when ``config.data`` is unusable or its classes differ from a model's labels.
        ConfigError: for a backbone (no labels) with data, a batch size a model cannot take,
            a bad profile, or when no model can run on the profiles given.
        DeviceUnavailableError: when the single target asked for is not available here.
    """
    config = config or BenchmarkConfig()
    if not models:
        raise ConfigError("no model to benchmark; pass one or more model paths")
    from edgessl.runtimes.registry import load_any, runtime_name_for

    for m in models:  # fail on a bad path before measuring anything
        if not Path(m).exists():
            load_any(m)
        runtime_name_for(m)
    splits = None
    if config.data is not None:
        from edgessl.data.images import require_dir

        require_dir(config.data, "labeled data folder")
        splits = split_loader(config.data)
    if not config.profiles and not config.inference_precisions:
        return [benchmark_model(m, config, splits) for m in models]
    from edgessl.devices.host import detect_host
    from edgessl.devices.profile import load_profile

    profiles = [load_profile(p) for p in config.profiles]
    if config.inference_precisions:
        profiles = precision_variants(profiles, config.inference_precisions)
    host = detect_host()
    several = len(profiles) * len(models) > 1
    results = [_run_target(m, config, splits, p, host, several) for m in models
               for p in profiles]
    if all(r.skipped for r in results):
        raise DeviceUnavailableError(f"nothing to measure: {results[0].skipped}")
    return results


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
