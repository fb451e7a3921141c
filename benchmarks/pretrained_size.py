"""At what input size does a pretrained start pay off on small images?

EfficientNet-Lite0 (ImageNet, edgessl's default start) frozen, features at several input sides,
logistic regression on 10 labels per class of cifar10-subset (32 px photos), top-1 on 100 test
images per class, mean over 3 label subsets (the raw-pixel baseline beside it). It first chose
128 px as the smallest side a start gets (accuracy rises more slowly than the cost above it);
``benchmarks/start_size_unseen.py`` then showed the start's training size gains on every set
tried, which is ``default_size`` in ``edgessl/backbones/pretrained.py`` today.

    python benchmarks/pretrained_size.py                 # sides 32 64 96 128 160 224
    python benchmarks/pretrained_size.py --sizes 64 128

Writes benchmarks/results/pretrained_size.{json,md}; needs ../shared/data/cifar10-subset (or
--cifar DIR).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from results_io import write_results

HERE = Path(__file__).resolve().parent
DEFAULT_CIFAR = HERE.parent.parent / "shared" / "data" / "cifar10-subset"


def _samples(root: Path, split: str, per_class: int, rng) -> list[tuple[Path, int]]:
    classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
    out = []
    for label, name in enumerate(classes):
        files = sorted((root / split / name).glob("*.jpg"))
        picked = rng.choice(len(files), per_class, replace=False) if split == "train" else \
            range(per_class)
        out += [(files[i], label) for i in picked]
    return out


def _features(backbone, samples, side: int, mean, std) -> np.ndarray:
    import torch

    from edgessl.data.preprocess import preprocess_batch

    out = []
    with torch.no_grad():
        for i in range(0, len(samples), 100):
            x = preprocess_batch([p for p, _ in samples[i:i + 100]], side, mean, std)
            out.append(backbone(torch.from_numpy(x)).numpy())
    return np.concatenate(out)


def _probe(train_x, train_y, test_x, test_y, subsets: int, k: int) -> list[float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scores = []
    for s in range(subsets):
        sel = np.concatenate([np.where(train_y == c)[0][s * k:(s + 1) * k]
                              for c in np.unique(train_y)])
        scaler = StandardScaler().fit(train_x[sel])
        clf = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(train_x[sel]),
                                                            train_y[sel])
        scores.append(float((clf.predict(scaler.transform(test_x)) == test_y).mean()))
    return scores


def main() -> None:
    from dataclasses import asdict

    import torch

    from edgessl.backbones.factory import create_timm_model
    from edgessl.backbones.pretrained import DEFAULT_START, PRETRAINED, load_pretrained_into
    from edgessl.devices.host import cpu_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96, 128, 160, 224])
    parser.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    parser.add_argument("--subsets", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    if not (args.cifar / "train").is_dir():
        raise SystemExit(f"{args.cifar} not found; pass --cifar DIR")
    torch.set_num_threads(2)
    start = PRETRAINED.get(DEFAULT_START)
    rng = np.random.default_rng(0)
    train = _samples(args.cifar, "train", args.subsets * args.k, rng)
    test = _samples(args.cifar, "test", 100, rng)
    train_y, test_y = np.array([y for _, y in train]), np.array([y for _, y in test])
    flat = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    pixels = _probe(_features(lambda x: x.flatten(1), train, 32, *flat), train_y,
                    _features(lambda x: x.flatten(1), test, 32, *flat), test_y,
                    args.subsets, args.k)
    rows = []
    for side in args.sizes:
        model = create_timm_model(start.arch, side, pretrained=False).eval()
        load_pretrained_into(model, start)
        t = time.perf_counter()
        scores = _probe(_features(model, train, side, start.mean, start.std), train_y,
                        _features(model, test, side, start.mean, start.std), test_y,
                        args.subsets, args.k)
        rows.append({"side": side, "top1": float(np.mean(scores)), "per_subset": scores,
                     "seconds": round(time.perf_counter() - t, 1)})
        print(f"{side:>4} px  top-1 {100 * rows[-1]['top1']:5.1f}%  ({rows[-1]['seconds']} s)",
              flush=True)
    result = {"start": start.record(), "labels_per_class": args.k, "subsets": args.subsets,
              "test_images": len(test), "pixels_top1": float(np.mean(pixels)), "rows": rows,
              "host": {**asdict(cpu_info()), "python": platform.python_version()}}
    lines = ["| input side | frozen EfficientNet-Lite0 + logistic regression, top-1 | time (s) |",
             "|---|---|---|"]
    lines += [f"| {r['side']} px | {100 * r['top1']:.1f} | {r['seconds']} |" for r in rows]
    lines += ["", f"Raw pixels + logistic regression: {100 * np.mean(pixels):.1f}. "
              f"{args.k} labels per class, mean of {args.subsets} label subsets, "
              f"{len(test)} test images of cifar10-subset."]
    write_results(HERE / "results", "pretrained_size", result, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
