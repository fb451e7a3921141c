"""Benchmark models side by side: load time, latency percentiles, throughput, top-1 accuracy.

Any model ``load_any`` accepts works (checkpoint folder, .onnx, OpenVINO .xml), and every
number says which runtime, device and provider actually produced it.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgessl.errors import ConfigError, DataError

EVAL_BATCH = 64
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SEED = 0


@dataclass(frozen=True)
class BenchmarkConfig:
    """How to benchmark.

    Attributes:
        warmup: untimed runs before timing (after the first inference).
        iterations: timed runs; latency statistics are over these.
        batch_size: images per run.
        data: labeled dataset root; when given, inputs are real images and top-1 is measured.
        device: device passed to the runtime ("CPU", or "CUDA" for PyTorch).
    """

    warmup: int = 10
    iterations: int = 100
    batch_size: int = 1
    data: str | None = None
    device: str = "CPU"

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be ≥ 0, got {self.warmup}")
        if self.iterations < 1:
            raise ConfigError(f"--iterations must be ≥ 1, got {self.iterations}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be ≥ 1, got {self.batch_size}")


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
class BenchmarkResult:
    """One model's benchmark.

    Attributes:
        model: the path as given.
        runtime, device, provider, runtime_version: what actually ran (from the runtime).
        format, precision, task: from the model's metadata.
        size_mib: weights on disk in MiB (safetensors; .onnx plus external data; .xml plus .bin).
        load_s: load/compile time in s.
        first_inference_ms: the first run, in ms (includes lazy initialisation).
        batch_size, warmup, iterations: as configured.
        latency: per-run latency statistics.
        throughput_ips: images per second (batch_size / mean latency).
        top1: top-1 accuracy on the val split as a fraction in [0, 1]; None without data.
        val_images: images the accuracy was measured on; None without data.
    """

    model: str
    runtime: str
    device: str
    provider: str
    runtime_version: str
    format: str
    precision: str
    task: str
    size_mib: float
    load_s: float
    first_inference_ms: float
    batch_size: int
    warmup: int
    iterations: int
    latency: LatencyStats
    throughput_ips: float
    top1: float | None = None
    val_images: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


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


def model_size_mib(path: str | Path) -> float:
    """Size on disk of a model's weights in MiB (see BenchmarkResult.size_mib)."""
    path = Path(path)
    if path.is_dir():
        from edgessl.checkpoint import WEIGHTS_FILE

        files = [path / WEIGHTS_FILE]
    elif path.suffix == ".xml":
        files = [path, path.with_suffix(".bin")]
    elif path.suffix == ".onnx":
        files = [path, *_onnx_external_files(path)]
    else:
        files = [path]
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def _onnx_external_files(path: Path) -> list[Path]:
    """Files holding an ONNX model's external tensor data (read without loading the data)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    locations = {
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path.parent / loc for loc in sorted(locations)]


def time_runs(model, batch: np.ndarray, warmup: int, iterations: int) -> tuple[float, list[float]]:
    """Time ``model.run(batch)``: returns (first run in s, timed runs in s after warmup)."""
    start = time.perf_counter()
    model.run(batch)
    first = time.perf_counter() - start
    for _ in range(warmup):
        model.run(batch)
    timings = []
    for _ in range(iterations):
        start = time.perf_counter()
        model.run(batch)
        timings.append(time.perf_counter() - start)
    return first, timings


def _split_settings(meta) -> tuple[float, int]:
    """val_fraction and seed the model was trained with (so its val split is held out)."""
    extra = meta.extra or {}
    for source in (extra.get("data") or {}, extra):
        if isinstance(source, dict) and "val_fraction" in source:
            return float(source["val_fraction"]), int(source.get("seed", DEFAULT_SEED))
    return DEFAULT_VAL_FRACTION, DEFAULT_SEED


def label_mapping(model_labels: Sequence[str], classes: Sequence[str], where: str) -> np.ndarray:
    """Index array mapping dataset label -> model output position, matched by class name.

    Raises:
        DataError: when the model's labels and the dataset's classes differ.
    """
    if set(model_labels) != set(classes) or len(model_labels) != len(classes):
        only_model = sorted(set(model_labels) - set(classes))
        only_data = sorted(set(classes) - set(model_labels))
        raise DataError(
            f"labels of '{where}' differ from the dataset's classes (only in model: "
            f"{', '.join(only_model) or '-'}; only in data: {', '.join(only_data) or '-'}); "
            "pass --data with the classes the model was trained on"
        )
    position = {name: i for i, name in enumerate(model_labels)}
    return np.array([position[c] for c in classes], dtype=np.int64)


def _require_labels(model) -> None:
    if not model.meta.labels:
        raise ConfigError(f"'{model.path}' outputs embeddings (task '{model.meta.task}'), not "
                          "class scores; top-1 needs a classifier: drop --data or pass one")


def _static_batch(meta) -> int | None:
    """The fixed batch size of an artifact exported with one (exporters record it in extra)."""
    value = (meta.extra or {}).get("static_batch")
    return int(value) if value else None


def top1_accuracy(model, data) -> tuple[float, int]:
    """Top-1 accuracy of ``model`` on ``data.val`` (a LabeledData): (fraction, image count).

    Labels are matched by class name, so a model whose label order differs still scores right.
    """
    from edgessl.data.preprocess import preprocess_batch

    meta = model.meta
    _require_labels(model)
    to_model = label_mapping(meta.labels, data.classes, str(model.path))
    step = _static_batch(meta) or EVAL_BATCH
    correct = 0
    for start in range(0, len(data.val), step):
        chunk = data.val[start:start + step]
        x = preprocess_batch([p for p, _ in chunk], meta.image_size, meta.mean, meta.std)
        if len(chunk) < step and _static_batch(meta):  # fill a fixed batch, ignore the padding
            x = np.concatenate([x, np.repeat(x[:1], step - len(chunk), axis=0)])
        predicted = model.run(x)[:len(chunk)].argmax(axis=1)
        correct += int((predicted == to_model[[y for _, y in chunk]]).sum())
    return correct / len(data.val), len(data.val)


def input_batch(meta, batch_size: int, data=None) -> np.ndarray:
    """The timed input [batch_size, 3, S, S]: val images of ``data`` (repeated to fill the
    batch) when given, else seeded noise (the same for every model of the same size)."""
    if data is None:
        shape = (batch_size, 3, meta.image_size, meta.image_size)
        return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    from edgessl.data.preprocess import preprocess_batch

    paths = [data.val[i % len(data.val)][0] for i in range(batch_size)]
    return preprocess_batch(paths, meta.image_size, meta.mean, meta.std)


SplitLoader = Callable[[float, int], Any]  # (val_fraction, seed) -> LabeledData


def benchmark_model(path: str | Path, config: BenchmarkConfig,
                    splits: SplitLoader | None = None) -> BenchmarkResult:
    """Benchmark one model (see ``benchmark_models``); ``splits`` loads ``config.data``."""
    from edgessl.runtimes.registry import load_any

    model = load_any(path, device=config.device)
    meta, data = model.meta, None
    static = _static_batch(meta)
    if static is not None and static != config.batch_size:
        raise ConfigError(f"'{path}' was exported with a fixed batch of {static}; "
                          f"pass --batch-size {static}")
    if config.data is not None:
        _require_labels(model)
        splits = splits or _split_loader(config.data)
        data = splits(*_split_settings(meta))
    first, timings = time_runs(model, input_batch(meta, config.batch_size, data),
                               config.warmup, config.iterations)
    stats = latency_stats(timings)
    top1 = val_images = None
    if data is not None:
        top1, val_images = top1_accuracy(model, data)
    ex = model.execution
    return BenchmarkResult(
        model=str(path), runtime=ex.runtime, device=ex.device, provider=ex.provider,
        runtime_version=ex.version, format=meta.format, precision=meta.precision,
        task=meta.task, size_mib=model_size_mib(path), load_s=model.load_seconds,
        first_inference_ms=first * 1000.0, batch_size=config.batch_size,
        warmup=config.warmup, iterations=config.iterations, latency=stats,
        throughput_ips=config.batch_size * 1000.0 / stats.mean_ms if stats.mean_ms > 0
        else math.inf,
        top1=top1, val_images=val_images,
    )


def _split_loader(root: str) -> SplitLoader:
    """Load ``root`` once per (val_fraction, seed): decoding every image is the slow part."""
    from edgessl.data.labeled import load_labeled

    @functools.cache
    def load(val_fraction: float, seed: int):
        return load_labeled(root, val_fraction=val_fraction, seed=seed)

    return load


def benchmark_models(models: Sequence[str | Path], config: BenchmarkConfig | None = None
                     ) -> list[BenchmarkResult]:
    """Benchmark each model in turn, on the same input, with the runtime that fits its path.

    Args:
        models: checkpoint folders, .onnx files or OpenVINO .xml files.
        config: warmup, iterations, batch size, data and device (defaults: BenchmarkConfig()).

    Returns:
        One BenchmarkResult per model, in the given order.

    Raises:
        CheckpointError: for a missing or unrecognised model path.
        DataError: when ``config.data`` is unusable or its classes differ from a model's labels.
        ConfigError: for a backbone (no labels) with data, or a batch size a model cannot take.
    """
    config = config or BenchmarkConfig()
    if not models:
        raise ConfigError("no model to benchmark; pass one or more model paths")
    splits = None
    if config.data is not None:
        from edgessl.data.images import require_dir

        require_dir(config.data, "labeled data folder")
        splits = _split_loader(config.data)
    return [benchmark_model(m, config, splits) for m in models]
