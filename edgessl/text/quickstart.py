"""``edgessl quickstart --text``: the text chain on the built-in set in a few CPU minutes.

built-in chatterbot-corpus topics -> all-MiniLM-L6-v2 linear probe and full fine-tune at
8 labels per class, against TF-IDF + logistic regression -> the better one exported to ONNX
fp32 and dynamic INT8 (validated on the val split) -> one sentence classified by the
torch-free runtime, and each export's latency per sentence (tokenization included).

Outputs, as the image quickstart's: ``models/quickstart-text-{probe,full}-k8``,
``export/quickstart-text-onnx-{fp32,int8}`` and ``quickstart-text.json`` in the workdir.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from edgessl.config import MAX_SEED, Range, check_fields
from edgessl.text.encoders import DEFAULT_TEXT_START

log = logging.getLogger("edgessl")

SUMMARY_FILE = "quickstart-text.json"
MODES = ("probe", "full")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class TextQuickstartConfig:
    """Settings of the text quickstart (the defaults take about 2 minutes on 2 CPU cores).

    Attributes:
        workdir: where ``models/``, ``export/`` and the summary are written.
        encoder: a text start or a local Hugging Face folder.
        data: a labeled text set; None = the built-in set (``edgessl.text.builtin``).
        labels_per_class: K labeled examples of each class the classifiers train on.
        sentence: the text classified at the end.
        seed: seeds the split, the label subset and training.
        force: replace outputs of an earlier text quickstart.
    """

    workdir: str = "."
    encoder: str = DEFAULT_TEXT_START
    data: str | None = None
    labels_per_class: Annotated[int, Range(ge=1, le=10_000)] = 8
    sentence: str = "Who directed the movie Jurassic Park?"
    seed: Annotated[int, Range(ge=0, le=MAX_SEED)] = 0
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class TextQuickstartResult:
    """The accuracy rows, export rows, the sentence's prediction and the summary's path."""

    accuracy: list[dict]
    exports: list[dict]
    prediction: dict
    summary_path: Path


def _outputs(cfg: TextQuickstartConfig) -> dict[str, Path]:
    work = Path(cfg.workdir)
    k = cfg.labels_per_class
    found = {f"models/{m}": work / "models" / f"quickstart-text-{m}-k{k}" for m in MODES}
    found.update({f"export/{p}": work / "export" / f"quickstart-text-onnx-{p}"
                  for p in PRECISIONS})
    return {**found, "summary": work / SUMMARY_FILE}


def _latency_ms(folder: Path, texts: list[str]) -> float:
    """Mean ms per sentence (tokenization + inference, 2 threads) over ``texts``."""
    from edgessl.text.runtime import TextPredictor

    predictor = TextPredictor(folder, threads=2)
    predictor.predict(texts[:3])  # warm-up
    start = time.perf_counter()
    predictor.predict(texts)
    return 1000 * (time.perf_counter() - start) / len(texts)


def run_text_quickstart(cfg: TextQuickstartConfig) -> TextQuickstartResult:
    """Run every stage (see the module docstring); returns the tables' rows."""
    from edgessl.io import check_outputs, write_json
    from edgessl.text.baseline import tfidf_baseline
    from edgessl.text.builtin import builtin_text_dir
    from edgessl.text.data import load_text_set
    from edgessl.text.encoders import load_encoder
    from edgessl.text.export import ValidationSet, export_text_onnx
    from edgessl.text.finetune import TextFinetuneConfig, finetune_text
    from edgessl.text.workflow import predict_texts

    outputs = _outputs(cfg)
    check_outputs({f"--workdir ({k})": v for k, v in outputs.items()},
                  {"--data": cfg.data}, force=cfg.force)
    start, timings = time.perf_counter(), {}
    data = load_text_set(cfg.data or builtin_text_dir(), seed=cfg.seed)
    log.info("[1/4] data: %d classes, %d train / %d val texts in %s", len(data.classes),
             len(data.train), len(data.val), data.root)

    t = time.perf_counter()
    encoder = load_encoder(cfg.encoder)
    results, rows = {}, []
    for mode in MODES:
        run = TextFinetuneConfig(encoder=cfg.encoder, mode=mode, seed=cfg.seed,
                                 labels_per_class=cfg.labels_per_class)
        results[mode] = finetune_text(run, data, encoder)
        results[mode].save(outputs[f"models/{mode}"], force=cfg.force)
        rows.append({"method": f"{encoder.record['name']} {mode}",
                     "top1": results[mode].card["metrics"]["top1"],
                     "seconds": results[mode].card["training"]["seconds"]})
    baseline = tfidf_baseline(data, cfg.labels_per_class, cfg.seed)
    rows.append({"method": "TF-IDF + logistic regression", "top1": baseline.card["metrics"]["top1"],
                 "seconds": None})
    timings["finetune_s"] = time.perf_counter() - t
    log.info("[2/4] fine-tuned probe and full at %d labels per class in %.0f s",
             cfg.labels_per_class, timings["finetune_s"])

    t = time.perf_counter()
    best = max(MODES, key=lambda m: results[m].card["metrics"]["top1"])
    val_texts = [text for text, _ in data.val]
    check_on = ValidationSet(tuple(val_texts), tuple(y for _, y in data.val))
    exports = []
    for precision in PRECISIONS:
        done = export_text_onnx(results[best].model, outputs[f"export/{precision}"], precision,
                                texts=check_on, card=results[best].card, force=cfg.force)
        exports.append({"artifact": f"onnx {precision}", "mode": best,
                        "folder": str(done.folder), "size_mib": done.size_mib,
                        "latency_ms": _latency_ms(done.folder, val_texts[:50]),
                        **done.validation})
    timings["export_s"] = time.perf_counter() - t
    log.info("[3/4] exported the %s classifier to ONNX fp32 and int8 in %.0f s", best,
             timings["export_s"])

    runtime, found = predict_texts(outputs["export/int8"], [cfg.sentence])
    prediction = {**found[0], "runtime": runtime, "artifact": str(outputs["export/int8"])}
    timings["total_s"] = time.perf_counter() - start
    log.info("[4/4] '%s' -> %s (%.2f)", cfg.sentence, *found[0]["top_k"][0])
    summary = write_json(outputs["summary"], {
        "data": data.summary(), "labels_per_class": cfg.labels_per_class,
        "encoder": encoder.record, "accuracy": rows, "exports": exports,
        "prediction": prediction, "timings_s": timings}, force=cfg.force)
    return TextQuickstartResult(rows, exports, prediction, summary)


def format_text_tables(result: TextQuickstartResult, labels_per_class: int) -> str:
    """The accuracy table, the export table and the sentence's prediction."""
    lines = [f"Val top-1 at {labels_per_class} labels per class:", "",
             f"{'method':<36}  {'top-1':>6}  {'train s':>7}", "-" * 53]
    for r in result.accuracy:
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.0f}"
        lines.append(f"{r['method']:<36}  {100 * r['top1']:>5.1f}%  {seconds:>7}")
    lines += ["", f"Exports of the {result.exports[0]['mode']} classifier, checked against "
              "PyTorch on the val split:", "",
              f"{'artifact':<10}  {'top-1':>6}  {'PyTorch':>7}  {'agree':>6}  {'MiB':>6}  "
              f"{'ms/text':>7}", "-" * 53]
    for e in result.exports:
        lines.append(f"{e['artifact']:<10}  {100 * e['top1_artifact']:>5.1f}%  "
                     f"{100 * e['top1_pytorch']:>6.1f}%  {100 * e['top1_agreement']:>5.1f}%  "
                     f"{e['size_mib']:>6.1f}  {e['latency_ms']:>7.1f}")
    label, score = result.prediction["top_k"][0]
    lines += ["", f"predict (torch-free, {result.prediction['runtime']}, int8): "
              f"'{result.prediction['text']}' -> {label} ({score:.2f})"]
    return "\n".join(lines)
