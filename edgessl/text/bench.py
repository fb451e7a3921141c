"""Timing an exported text model the way a device uses it: one raw string in, a label out.

``measure_text(folder, texts, ...)`` loads the folder with ``TextPredictor`` and times, per
sentence, tokenization alone and tokenization + inference (the model's batch is fixed at 1,
so one sentence is one run), over the given texts in turn; it reports the static sequence
length L the model runs at and how many of those tokens the texts really use, and with labels
the top-1 accuracy. The host's ``edgessl benchmark TEXT_MODEL`` and a text bundle's
``run.py benchmark`` both call it, so their figures are comparable. Torch-free: numpy,
``tokenizers`` and the model's runtime.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgessl.errors import ConfigError
from edgessl.runtime.result import LatencyStats, latency_stats
from edgessl.text.runtime import TextPredictor, encode_texts, softmax

MAX_TEXT_RUNS = 1_000_000


@dataclass(frozen=True)
class TextBenchResult:
    """What ``measure_text`` measured for one text model folder.

    Attributes:
        artifact: the folder. model_file: its model (``model.onnx`` / ``model.xml``).
        runtime: the runtime that ran it ("onnxruntime", "openvino"); ``provider``: its
            device or provider. precision: the export's ("fp32", "fp16", "int8").
        size_mib: model file(s) on disk, tokenizer excluded. tokenizer_mib: tokenizer.json.
        sequence_length: L, the static length every sentence is padded or cut to.
        tokens_mean, tokens_max: tokens the timed texts really hold (special tokens
            included, before padding; longer ones are cut to L). truncated: texts cut.
        load_s: folder -> ready (tokenizer, sidecar, model compiled).
        first_s: the first prediction after loading (tokenize + run, untimed by the rest).
        tokenize: per-sentence tokenization alone; None for a model with its tokenizer
            fused in (it runs inside the graph, counted in latency). latency: per sentence,
            tokenize + run + softmax (what ``predict`` costs). sentences_per_s: 1000 /
            latency mean. tokenizer: "file" (tokenizer.json, run by ``tokenizers``) or
            "fused".
        runs, warmup: timed and untimed sentences. threads: the runtime's (None = default).
        top1: accuracy on the labeled texts (None without labels); examples: how many.
        host: where it ran (``edgessl.runtime.measure.device_stamp``).
    """

    artifact: str
    model_file: str
    runtime: str
    provider: str
    precision: str
    size_mib: float
    tokenizer_mib: float
    sequence_length: int
    tokens_mean: float
    tokens_max: int
    truncated: int
    load_s: float
    first_s: float
    tokenize: LatencyStats | None
    latency: LatencyStats
    sentences_per_s: float
    runs: int
    warmup: int
    threads: int | None
    top1: float | None
    examples: int
    host: dict
    tokenizer: str = "file"

    def to_dict(self) -> dict:
        return asdict(self)


def _sizes(folder: Path, model_file: str) -> tuple[float, float]:
    stem = Path(model_file).stem
    model = sum(f.stat().st_size for f in folder.glob(f"{stem}.*") if f.is_file())
    tokenizer = folder / "tokenizer.json"
    return model / 2**20, (tokenizer.stat().st_size if tokenizer.is_file() else 0) / 2**20


def measure_text(folder: str | Path, texts: Sequence[str], labels: Sequence[int] | None = None,
                 runs: int = 200, warmup: int = 10, threads: int | None = None,
                 cache_dir: str | Path | None = None) -> TextBenchResult:
    """Load ``folder`` and time ``runs`` sentences from ``texts`` (cycled) one at a time.

    Args:
        texts: sentences to time (and to score, with ``labels``); cycled when fewer than
            ``warmup + runs``.
        labels: the class index of each text, or None; with them every text is scored once.
        threads: the runtime's inference threads; None = its default.
        cache_dir: OpenVINO's compiled-model cache (``TextPredictor``); None = none.

    Raises:
        ConfigError: no texts, labels that do not match the texts or the model's classes,
            or runs/warmup out of range.
        CheckpointError: the folder is not an exported text model.
    """
    from edgessl.runtime.measure import device_stamp

    texts = [t for t in texts]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ConfigError("the text benchmark needs one or more sentences to time")
    if not 1 <= runs <= MAX_TEXT_RUNS or not 0 <= warmup <= MAX_TEXT_RUNS:
        raise ConfigError(f"runs must be 1 to {MAX_TEXT_RUNS} and warm-up 0 to "
                          f"{MAX_TEXT_RUNS}, got {runs} and {warmup}")
    folder = Path(folder).expanduser()
    start = time.perf_counter()
    predictor = TextPredictor(folder, threads=threads, cache_dir=cache_dir)
    load_s = time.perf_counter() - start
    if labels is not None:
        labels = [int(y) for y in labels]
        if len(labels) != len(texts) or not all(0 <= y < len(predictor.labels) for y in labels):
            raise ConfigError(f"labels must give each of the {len(texts)} texts one of the "
                              f"model's {len(predictor.labels)} classes")
    start = time.perf_counter()
    predictor.predict(texts[0])
    first_s = time.perf_counter() - start

    length, pad = predictor.max_length, predictor.pad_id
    tokenizer = predictor.tokenizer
    tokenizer.no_truncation()
    counts = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    tokenize_s, total_s = [], []
    for i in range(warmup + runs):
        text = texts[i % len(texts)]
        t0 = time.perf_counter()
        if predictor.fused:  # the string goes in as it is; tokenization runs in the graph
            t1 = t0
            softmax(predictor.model.run_text(text)[0])
        else:
            ids, mask = encode_texts(tokenizer, [text], length, pad)
            t1 = time.perf_counter()
            softmax(predictor.model.run(ids, mask)[0])
        t2 = time.perf_counter()
        if i >= warmup:
            tokenize_s.append(t1 - t0)
            total_s.append(t2 - t0)
    latency = latency_stats(total_s)
    top1 = None
    if labels is not None:
        found = [p.index for p in predictor.predict(texts)]
        top1 = float(np.mean(np.asarray(found) == np.asarray(labels)))
    meta = predictor.meta
    size, tokenizer_size = _sizes(folder, meta.get("model_file", "model.onnx"))
    return TextBenchResult(
        artifact=str(folder), model_file=str(meta.get("model_file", "model.onnx")),
        runtime=predictor.runtime, provider=predictor.model.provider,
        precision=str(meta.get("precision", "?")), size_mib=size, tokenizer_mib=tokenizer_size,
        sequence_length=length, tokens_mean=float(np.mean(counts)), tokens_max=max(counts),
        truncated=sum(c > length for c in counts), load_s=load_s, first_s=first_s,
        tokenize=None if predictor.fused else latency_stats(tokenize_s), latency=latency,
        sentences_per_s=1000.0 / latency.mean_ms, runs=runs, warmup=warmup, threads=threads,
        top1=top1, examples=len(texts) if labels is not None else 0, host=device_stamp(),
        tokenizer="fused" if predictor.fused else "file")


def render_text_table(results: Sequence[TextBenchResult]) -> str:
    """One row per model: runtime, precision, L, size, load, tokenize and total ms, top-1."""
    header = (f"{'artifact':<28} {'runtime':<11} {'prec':<5} {'L':>4} {'tokens':>6} "
              f"{'MiB':>6} {'load s':>6} {'tok ms':>6} {'p50 ms':>7} {'p90 ms':>7} "
              f"{'sent/s':>7} {'top-1':>6}")
    lines = [header, "-" * len(header)]
    for r in results:
        name = Path(r.artifact).name[:28]
        top1 = "-" if r.top1 is None else f"{100 * r.top1:.1f}%"
        tok = "fused" if r.tokenize is None else f"{r.tokenize.mean_ms:.2f}"
        lines.append(f"{name:<28} {r.runtime:<11} {r.precision:<5} {r.sequence_length:>4} "
                     f"{r.tokens_mean:>6.1f} {r.size_mib:>6.1f} {r.load_s:>6.2f} "
                     f"{tok:>6} {r.latency.p50_ms:>7.2f} "
                     f"{r.latency.p90_ms:>7.2f} {r.sentences_per_s:>7.1f} {top1:>6}")
    return "\n".join(lines)
