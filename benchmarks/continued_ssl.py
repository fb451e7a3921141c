"""Does SSL continued from a pretrained start beat the frozen start? Settings side by side.

EfficientNet-Lite0 (ImageNet) frozen, against SimCLR continued from it (``edgessl.ssl.pretrain``)
on an unlabeled pool of cifar10-subset train images, with several settings. Each backbone is
scored the same way: a linear probe (logistic regression on standardised frozen features) on
10 labels per class, 5 disjoint label subsets from the train split, top-1 on 100 test images per
class. The pool is drawn from the train images that no label subset uses.

    python benchmarks/continued_ssl.py                       # every row below
    python benchmarks/continued_ssl.py --rows frozen defaults_5ep

Rows: ``frozen``; ``adabn`` (the frozen start with its BatchNorm statistics re-estimated on
the pool); ``previous_2ep`` (the earlier defaults: 2 epochs, a quarter frozen, statistics
updated, a tenth of SimCLR's LR); ``fr75_tenth_2ep`` (three quarters frozen, statistics held,
that tenth); ``defaults_2ep`` and ``defaults_5ep`` (today's defaults: three quarters frozen,
statistics held, a fiftieth of SimCLR's LR); ``lr002_5ep`` (the same at lr 0.002).
Writes benchmarks/results/continued_ssl.{json,md}; needs ../shared/data/cifar10-subset (or
--cifar DIR).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from pretrained_size import _features  # the same frozen-feature pass (this folder is on sys.path)
from results_io import write_results

HERE = Path(__file__).resolve().parent
DEFAULT_CIFAR = HERE.parent.parent / "shared" / "data" / "cifar10-subset"
START = "efficientnet_lite0.in1k"
ROWS = {
    "frozen": None,
    "adabn": "adabn",
    "previous_2ep": dict(epochs=2, freeze=0.25, hold_norm_stats=False, lr=0.0125),
    "fr75_tenth_2ep": dict(epochs=2, lr=0.0125),
    "defaults_2ep": dict(epochs=2),
    "defaults_5ep": dict(epochs=5),
    "lr002_5ep": dict(epochs=5, lr=0.002),
}


def _split(cifar: Path, subsets: int, k: int, pool_size: int, seed: int = 1):
    classes = sorted(p.name for p in (cifar / "train").iterdir() if p.is_dir())
    labeled, rest = [], []
    for label, name in enumerate(classes):
        files = sorted((cifar / "train" / name).glob("*.jpg"))
        labeled += [(f, label) for f in files[:subsets * k]]
        rest += files[subsets * k:]
    test = [(f, label) for label, name in enumerate(classes)
            for f in sorted((cifar / "test" / name).glob("*.jpg"))[:100]]
    rng = np.random.default_rng(seed)
    pool = [rest[i] for i in sorted(rng.choice(len(rest), pool_size, replace=False))]
    return labeled, test, pool


def _adabn(backbone, pool: list[Path], size: int, mean, std) -> None:
    import torch

    from edgessl.data.preprocess import preprocess_batch

    for m in backbone.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the pool
    backbone.train()
    with torch.no_grad():
        for i in range(0, len(pool), 100):
            backbone(torch.from_numpy(preprocess_batch(pool[i:i + 100], size, mean, std)))


def _probe(backbone, src, labeled, test, size, subsets, k) -> list[float]:
    from sklearn.linear_model import LogisticRegression

    backbone.eval()
    ftr, fte = (_features(backbone, s, size, src.mean, src.std) for s in (labeled, test))
    ytr, yte = (np.array([y for _, y in s]) for s in (labeled, test))
    scores = []
    for s in range(subsets):
        sel = np.concatenate([np.where(ytr == c)[0][s * k:(s + 1) * k]
                              for c in np.unique(ytr)])
        mu, sd = ftr[sel].mean(0), ftr[sel].std(0) + 1e-6
        clf = LogisticRegression(C=0.1, max_iter=3000).fit((ftr[sel] - mu) / sd, ytr[sel])
        scores.append(100 * float((clf.predict((fte - mu) / sd) == yte).mean()))
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=Path("benchmarks/work/continued_ssl"))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    import torch

    from edgessl.backbone_source import resolve_backbone
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(os.cpu_count() or 1)
    subsets, k = 5, 10
    labeled, test, pool = _split(args.cifar, subsets, k, args.pool)
    pool_dir = args.work / "pool"
    if not pool_dir.is_dir():
        pool_dir.mkdir(parents=True)
        for i, f in enumerate(pool):
            os.symlink(f.resolve(), pool_dir / f"{i:05d}{f.suffix}")
    results = {}
    for row in args.rows:
        settings = ROWS[row]
        seconds = 0.0
        if isinstance(settings, dict):
            t = time.perf_counter()
            run = pretrain(PretrainConfig(data=str(pool_dir), backbone=START,
                                          image_size=args.size, seed=0, force=True,
                                          out=str(args.work / row), **settings))
            seconds = time.perf_counter() - t
            src = resolve_backbone(str(run.path), None, "none")
        else:
            src = resolve_backbone(START, args.size, "none")
            if settings == "adabn":
                _adabn(src.backbone, sorted(pool_dir.iterdir()), args.size, src.mean, src.std)
        scores = _probe(src.backbone, src, labeled, test, args.size, subsets, k)
        results[row] = {"settings": settings, "pretrain_s": round(seconds),
                        "top1": round(float(np.mean(scores)), 2),
                        "std": round(float(np.std(scores)), 2), "per_subset": scores}
        print(row, results[row], flush=True)
    from edgessl.devices.host import cpu_info

    cpu = cpu_info()
    host = f"{cpu.model} ({', '.join(cpu.flags) or 'no AVX'}), {cpu.logical_cores} cores"
    command = " ".join(["python benchmarks/continued_ssl.py", *sys.argv[1:]])
    lines = [f"# Continued SSL vs the frozen start (cifar10-subset, {args.size} px, pool of "
             f"{args.pool} unlabeled images, 10 labels per class)", "",
             f"Host: {host}. Command: `{command}`", "",
             "| row | settings | SSL time (s) | top-1 (5 label subsets) |", "|---|---|---|---|"]
    for row, r in results.items():
        lines.append(f"| {row} | {r['settings'] or ''} | {r['pretrain_s']} | "
                     f"{r['top1']:.1f} ± {r['std']:.1f} |")
    write_results(args.out, "continued_ssl",
                  {"host": host, "size": args.size, "pool": args.pool, "rows": results},
                  "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
