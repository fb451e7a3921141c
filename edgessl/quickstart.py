"""``edgessl quickstart``: the whole pipeline on the built-in digits in a few CPU minutes.

data -> SSL pretrain -> few-label fine-tunes (SSL linear probe vs scratch, with the raw-pixel
baseline) -> ONNX and OpenVINO exports in FP32 and INT8 (validated) -> benchmark.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

from edgessl.backbones.pretrained import DEFAULT_START
from edgessl.config import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_RUNS,
    MAX_SEED,
    MIN_TRAIN_SIDE,
    Range,
    check_fields,
)
from edgessl.io import write_json
from edgessl.limits import MAX_IMAGE_SIDE
from edgessl.ssl.augment import AugmentConfig

log = logging.getLogger("edgessl")

# Digits are 8x8 scans upscaled: 16 px carries all their detail at a quarter of the compute
# of 32 px; mirroring a digit changes its meaning (no flips) and blur erases 8x8 strokes.
# Crops down to 25% of the area and batches of 128 (more steps per epoch on 1,438 images)
# gave the best linear probe in a sweep (benchmarks/results/quickstart_sweep.md).
DIGITS_AUGMENT = AugmentConfig(crop_scale=(0.25, 1.0), hflip=0.0, blur_p=0.0)


@dataclass(frozen=True)
class QuickstartConfig:
    """Settings of the quickstart (defaults take 4-7 minutes on 2 CPU cores, by CPU).

    Attributes:
        workdir: where ``models/`` and ``export/`` are written.
        labels_per_class: the K values compared in the accuracy table.
        label_subsets: seeded subsets of K labels each method is trained on (mean reported).
        export_k: the K whose SSL classifier is exported and benchmarked.
        pretrain_epochs, pretrain_batch_size, image_size, backbone: the SSL run.
        scratch_epochs: epochs of the from-scratch baseline (full fine-tune).
        pretrained, pretrained_size: the pretrained start compared (frozen + linear probe;
            None = left out) and its input side. Digits are 8x8 scans: 64 px carries all of
            them (``edgessl finetune --backbone efficientnet_lite0.in1k -k 10 --image-size
            64`` scored 82.5% on the digits, and 82.7% at 128, at four times the compute).
        iterations: timed runs per model in the benchmark.
        calib_size: calibration images for the INT8 exports.
        force: replace outputs of an earlier quickstart.
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl quickstart

    workdir: str = "."
    labels_per_class: Annotated[tuple[int, ...], Range(ge=1, le=10_000)] = (1, 5, 10)
    export_k: Annotated[int, Range(ge=1, le=10_000)] = 10
    backbone: str = "resnet_tiny"
    image_size: Annotated[int, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE, note="pixels")] = 16
    pretrain_epochs: Annotated[int, Range(ge=1, le=MAX_EPOCHS, flag="--epochs")] = 40
    pretrain_batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH)] = 128
    scratch_epochs: Annotated[int, Range(ge=1, le=MAX_EPOCHS)] = 50
    pretrained: str | None = DEFAULT_START
    pretrained_size: Annotated[int, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE,
                                          note="pixels")] = 64
    label_subsets: Annotated[int, Range(ge=1, le=100)] = 3
    iterations: Annotated[int, Range(ge=1, le=MAX_RUNS)] = 100
    calib_size: Annotated[int, Range(ge=1, le=100_000)] = 300
    seed: Annotated[int, Range(ge=0, le=MAX_SEED)] = 0
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class QuickstartResult:
    """The accuracy rows (one per K), export reports, benchmark results and summary JSON."""

    accuracy_rows: list
    export_reports: list
    benchmark_results: list
    summary_path: Path


def run_quickstart(cfg: QuickstartConfig) -> QuickstartResult:
    """Run every stage; returns the accuracy table rows and the benchmark results."""
    from edgessl.benchmark.host import BenchmarkConfig, benchmark_models
    from edgessl.data.digits import default_digits_dir
    from edgessl.data.labeled import load_labeled
    from edgessl.export.api import ExportConfig, export_model
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    if cfg.export_k not in cfg.labels_per_class:
        cfg = replace(cfg, labels_per_class=tuple(sorted({*cfg.labels_per_class, cfg.export_k})))
    work = Path(cfg.workdir)
    models, exports = work / "models", work / "export"
    from edgessl.io import check_outputs

    check_outputs({"--workdir": work / "quickstart.json"}, force=cfg.force)  # not at the end
    start = time.perf_counter()
    timings = {}
    data_dir = default_digits_dir()
    data = load_labeled(data_dir)
    log.info("[1/5] data: %d train / %d val digits in %s", len(data.train), len(data.val),
             data_dir)

    t = time.perf_counter()
    ssl = pretrain(PretrainConfig(
        data=str(data_dir), backbone=cfg.backbone, image_size=cfg.image_size,
        epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size, lr=0.5, seed=cfg.seed,
        augment=DIGITS_AUGMENT,
        out=str(models / "quickstart-simclr"), force=cfg.force))
    timings["pretrain_s"] = time.perf_counter() - t
    log.info("[2/5] pretrained %s in %.0f s", ssl.path, timings["pretrain_s"])

    t = time.perf_counter()
    rows = [_accuracy_row(cfg, k, ssl.path, data, models) for k in cfg.labels_per_class]
    timings["finetune_s"] = time.perf_counter() - t
    log.info("[3/5] fine-tuned %d classifiers in %.0f s", 2 * len(rows) * cfg.label_subsets,
             timings["finetune_s"])

    t = time.perf_counter()
    chosen = models / f"quickstart-ssl-linear-k{cfg.export_k}"
    artifacts, reports = [], []
    for fmt in ("onnx", "openvino"):
        for precision in ("fp32", "int8"):
            result = export_model(chosen, ExportConfig(
                format=fmt, precision=precision, calib_size=cfg.calib_size,
                out=str(exports / f"quickstart-{fmt}-{precision}"), force=cfg.force))
            artifacts.append(result.path)
            reports.append(result.report)
    timings["export_s"] = time.perf_counter() - t
    log.info("[4/5] exported %d artifacts in %.0f s", len(artifacts), timings["export_s"])

    t = time.perf_counter()
    bench = benchmark_models([chosen, *artifacts], BenchmarkConfig(
        iterations=cfg.iterations, warmup=10, batch_size=1, data=str(data_dir)))
    timings["benchmark_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start
    log.info("[5/5] benchmarked %d models in %.0f s", len(bench), timings["benchmark_s"])
    from dataclasses import asdict

    summary = write_json(work / "quickstart.json", {
        "accuracy": rows, "exports": reports,
        "benchmark": [asdict(b) for b in bench], "timings_s": timings}, force=cfg.force)
    return QuickstartResult(rows, reports, bench, summary)


def _accuracy_row(cfg: QuickstartConfig, k: int, ssl_path: Path, data, models: Path) -> dict:
    """SSL probe, scratch, the pretrained start's probe and the pixel baseline at K labels per
    class, averaged over label subsets.

    One subset of K labels is a noisy sample (a point or two at K=10 on the digits), so each
    method is trained on ``cfg.label_subsets`` seeded subsets and the table shows the mean. The
    first subset's classifiers are kept in ``models/``; the others are scored and discarded.
    """
    import tempfile

    from edgessl.finetune.baseline import pixel_logistic_regression
    from edgessl.finetune.train import FinetuneConfig, finetune

    scores: dict[str, list[float]] = {"ssl_linear": [], "scratch_full": [], "pixel_logreg": []}
    with tempfile.TemporaryDirectory(dir=models, prefix=".quickstart-subsets-") as scratch_dir:
        for i, seed in enumerate(range(cfg.seed, cfg.seed + cfg.label_subsets)):
            where = models if i == 0 else Path(scratch_dir) / str(seed)
            common = dict(labels_per_class=k, seed=seed, hflip=0.0, force=cfg.force or i > 0)
            probe = finetune(FinetuneConfig(backbone=str(ssl_path), mode="linear",
                                            out=str(where / f"quickstart-ssl-linear-k{k}"),
                                            **common), data)
            scratch = finetune(FinetuneConfig(
                backbone=f"scratch:{cfg.backbone}", mode="full", image_size=cfg.image_size,
                epochs=cfg.scratch_epochs, out=str(where / f"quickstart-scratch-full-k{k}"),
                **common), data)
            scores["ssl_linear"].append(probe.metrics["top1"])
            scores["scratch_full"].append(scratch.metrics["top1"])
            scores["pixel_logreg"].append(
                pixel_logistic_regression(data, k, seed, cfg.image_size))
            if cfg.pretrained is not None:
                start = finetune(FinetuneConfig(
                    backbone=cfg.pretrained, mode="linear", image_size=cfg.pretrained_size,
                    out=str(where / f"quickstart-pretrained-linear-k{k}"), **common), data)
                scores.setdefault("pretrained_linear", []).append(start.metrics["top1"])
    row: dict = {"labels_per_class": k, "label_subsets": cfg.label_subsets}
    for name, values in scores.items():
        row[name] = sum(values) / len(values)
        row[f"{name}_per_subset"] = values
    return row


COLUMNS = (("ssl_linear", "SSL + linear"), ("scratch_full", "scratch (full)"),
           ("pretrained_linear", "ImageNet start + linear"), ("pixel_logreg", "pixels + logreg"))


def format_accuracy_table(rows: list[dict]) -> str:
    """The K-labels table: SSL linear probe vs scratch vs the pretrained start's probe vs
    raw-pixel logistic regression (columns a row lacks are left out)."""
    columns = [(key, title) for key, title in COLUMNS if key in rows[0]]
    head = f"{'labels/class':>12}" + "".join(f"  {title:>{len(title) + 1}}"
                                             for _, title in columns)
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['labels_per_class']:>12}" + "".join(
            f"  {100 * r[key]:>{len(title)}.1f}%" for key, title in columns))
    return "\n".join(lines)


def format_export_table(reports: list[dict]) -> str:
    """Each export's parity with PyTorch: max |logit diff|, top-1 and its drop, size."""
    head = f"{'artifact':<16}  {'max |diff|':>10}  {'top-1':>7}  {'PyTorch':>7}  " \
           f"{'drop':>6}  {'MiB':>6}"
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(f"{r['format'] + ' ' + r['precision']:<16}  {r['max_abs_diff']:>10.2e}  "
                     f"{100 * r['top1_artifact']:>6.1f}%  {100 * r['top1_pytorch']:>6.1f}%  "
                     f"{r['top1_drop_points']:>6.2f}  {r['size_mib']:>6.2f}")
    return "\n".join(lines)
