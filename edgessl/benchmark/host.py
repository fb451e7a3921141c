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
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgessl.config import check_fields
from edgessl.errors import ConfigError, DeviceUnavailableError, unknown_choice
from edgessl.runtime.accuracy import (  # noqa: F401 - some re-exported: the public API
    label_mapping,
    require_labels,
    split_settings,
    static_batch,
    top1_accuracy,
)
from edgessl.runtime.bench import MeasureConfig, Target, measure, precision_variants
from edgessl.runtime.measure import reset_peak_rss
from edgessl.runtime.result import (  # noqa: F401 - re-exported: the public API lives here
    AsyncStats,
    BenchmarkResult,
    LatencyStats,
    SweepPoint,
    latency_stats,
)


@dataclass(frozen=True)
class BenchmarkConfig(MeasureConfig):
    """How to benchmark: what to time (the fields of ``edgessl.runtime.bench.MeasureConfig``,
    which a deploy bundle's runner takes too) and on which models' data and targets.

    Attributes:
        batch_sizes: as in MeasureConfig; () = the profile's ``batch_sizes`` (no sweep
            without a profile).
        async_requests: as in MeasureConfig; 0 = the profile's ``async_requests`` (0 there =
            OpenVINO's optimal number, or one thread per logical core).
        data: labeled dataset root; when given, inputs are real images and top-1 is measured.
        device: device passed to the runtime ("CPU", or "CUDA" for PyTorch) when no profile
            is given.
        profiles: device profile names or .toml paths; each is a target. () = ``device``.
        inference_precisions: run each target once per precision (``precision_variants``).
    """

    data: str | None = None
    device: str = "CPU"
    profiles: tuple[str, ...] = ()
    inference_precisions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_fields(self)
        from edgessl.devices.profile import INFERENCE_PRECISIONS

        for precision in self.inference_precisions:
            if precision not in INFERENCE_PRECISIONS:
                raise unknown_choice("--inference-precision", precision, INFERENCE_PRECISIONS)


SplitLoader = Callable[[float, int], Any]  # (val_fraction, seed) -> LabeledData


def split_loader(root: str) -> SplitLoader:
    """Load ``root`` once per (val_fraction, seed): decoding every image is the slow part, and
    every model of a benchmark is scored on the same folder."""
    from edgessl.data.labeled import load_labeled

    @functools.cache
    def load(val_fraction: float, seed: int):
        return load_labeled(root, val_fraction=val_fraction, seed=seed)

    return load


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

    ``batch`` fixes the input batch for static-shape targets. A PyTorch model gets a
    ``settings`` attribute with its thread count (the other runtimes report their own).
    """
    from edgessl.backends.registry import RUNTIMES, load_any, runtime_name_for

    runtime = runtime_name_for(path)
    if runtime == "pytorch":
        model = load_any(path, device=profile.device if profile is not None else config.device)
        import torch

        model.settings = {"threads": torch.get_num_threads()}
        return model
    if profile is None and batch is None:
        return load_any(path, device=config.device)
    if not Path(path).exists():
        load_any(path)  # raises the usual "does not exist" error
    return RUNTIMES.get(runtime).load(Path(path), device=config.device, profile=profile,
                                      batch=batch)


def _static_target(profile) -> bool:
    return profile is not None and (profile.static_shapes or profile.static_batch is not None)


def benchmark_model(path: str | Path, config: BenchmarkConfig,
                    splits: SplitLoader | None = None, profile=None) -> BenchmarkResult:
    """Benchmark one model on one target (see ``benchmark_models``): loaded here, measured by
    the deploy runtime's ``edgessl.runtime.bench.measure`` as on a device.

    Args:
        path: the model.
        config: what to measure.
        splits: loads ``config.data`` per (val_fraction, seed); None = load it here.
        profile: a DeviceProfile, or None to run on ``config.device`` with runtime defaults.
    """
    _check_batch(profile, config)
    reset_peak_rss()
    static = _static_target(profile)
    batch = config.batch_size if static else None
    threads = profile.threads if profile is not None else 0
    with _torch_threads(threads):
        model = load_for_target(path, config, profile, batch)
        data = None
        if config.data is not None:
            require_labels(model)
            data = (splits or split_loader(config.data))(*split_settings(model.meta))
        target = Target.of(
            str(path), profile, config.device, fixed_batch=batch, size_mib=model_size_mib(path),
            resize=(lambda size: load_for_target(path, config, profile, batch=size)) if static
            else None)
        sizes = config.batch_sizes or (profile.batch_sizes if profile is not None else ())
        fixed = static_batch(model.meta)
        if not config.batch_sizes and fixed is not None:
            # the profile's sweep is for models that take any batch; this one takes one
            sizes = tuple(b for b in sizes if b == fixed)
        return measure(model, dataclasses.replace(config, batch_sizes=sizes), target,
                       sources=None if data is None else [p for p, _ in data.val], data=data)


def _check_batch(profile, config: BenchmarkConfig) -> None:
    if profile is not None and profile.static_batch not in (None, config.batch_size):
        raise ConfigError(f"profile '{profile.name}' runs a fixed batch of "
                          f"{profile.static_batch}; pass --batch-size {profile.static_batch}")


def _skipped(path, profile, runtime: str, reason: str) -> BenchmarkResult:
    return BenchmarkResult(model=str(path), profile=profile.name, runtime=runtime,
                           skipped=reason)


def _run_target(path, config: BenchmarkConfig, splits, profile, host, several: bool
                ) -> BenchmarkResult:
    """One (model, profile) pair: measured, or skipped with the reason when ``several``."""
    from edgessl.backends.registry import runtime_name_for
    from edgessl.devices.availability import check_runtime

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
    from edgessl.backends.registry import load_any, runtime_name_for

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
    for profile in profiles:  # before the first measurement, not after the others'
        _check_batch(profile, config)
    host = detect_host()
    several = len(profiles) * len(models) > 1
    results = [_run_target(m, config, splits, p, host, several) for m in models
               for p in profiles]
    if all(r.skipped for r in results):
        raise DeviceUnavailableError(f"nothing to measure: {_why_skipped(results, profiles)}")
    return results


def _why_skipped(results: list[BenchmarkResult], profiles: list) -> str:
    """The reason to show when every pair was skipped: one where the profile does use the
    model's runtime (the device is missing), rather than one of a model it was never for."""
    uses = {(p.name, r) for p in profiles for r in p.runtimes}
    telling = [r for r in results if (r.profile, r.runtime) in uses] or results
    others = len({r.skipped for r in results}) - 1
    more = f" (and {others} other reason{'s' if others > 1 else ''})" if others else ""
    return f"{telling[0].skipped}{more}"
