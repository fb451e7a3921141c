"""Can the linear probe on the frozen start do better on unseen sets? Five variants vs today's.

The default start (EfficientNet-Lite0, ImageNet) frozen at its training size, every stage
pooled, 10 labels per class, mean over 3 seeds (each seed: edgessl's split and label subset),
top-1 on the val split. Every variant keeps edgessl's probe (standardised features, logistic
regression, C by cross-validation on the labeled images) and changes one thing:

- plain: ``edgessl finetune --mode linear`` as it is (the reference);
- flip TTA: logits averaged over the image and its mirror image at prediction time;
- flip aug + TTA: the mirror images of the labeled images added to the training set, then TTA;
- L2: features scaled to unit length before standardising (common in few-shot work);
- sqrt: the square root of the (non-negative, ReLU6) features first (a power transform);
- self-training: two rounds of pseudo-labels on the unlabeled rest of the train split (the
  most confident 20, then 30 images per predicted class), probe refitted with the same C.

A variant that gains by more than its spread on most sets would be worth a flag or a default.

    python benchmarks/unseen_sets.py --out /tmp/unseen
    python benchmarks/probe_variants.py --folder emoji=/tmp/unseen/emoji \\
        --folder elpv=/tmp/unseen/elpv --folder galaxy=/tmp/unseen/galaxy \\
        --fashion-from deb/usr/share/datasets     # unpacked dataset-fashion-mnist

Features (plain and mirrored) are cached in ``--work``. Writes results/probe_variants.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

import numpy as np
from results_io import write_results
from start_size_unseen import write_fashion

RESULTS = Path(__file__).resolve().parent / "results"
K, SEEDS, START = 10, (0, 1, 2), "efficientnet_lite0.in1k"
VARIANTS = ("plain", "flip TTA", "flip aug + TTA", "L2", "sqrt", "self-training")


def features(root: Path, cache: Path) -> dict:
    """Every image's pooled features, and those of its mirror image (cached)."""
    import torch

    from edgessl.backbone_source import resolve_backbone
    from edgessl.data.labeled import load_labeled
    from edgessl.data.tensors import load_uint8, normalize_fn

    if not cache.is_file():
        source = resolve_backbone(START, None, "resnet_tiny", None, None)
        backbone, side = source.backbone.eval(), source.backbone.spec.image_size
        normalize = normalize_fn(source.mean, source.std)
        data = load_labeled(root, 0.2, 0)
        paths = sorted({str(p) for p, _ in data.train} | {str(p) for p, _ in data.val})
        plain, mirror = [], []
        with torch.no_grad():
            for i in range(0, len(paths), 64):
                x = normalize(torch.stack([load_uint8(Path(p), side) for p in paths[i:i + 64]]))
                plain.append(backbone(x).numpy())
                mirror.append(backbone(torch.flip(x, dims=[3])).numpy())
        np.savez(cache, paths=np.array(paths), f=np.concatenate(plain),
                 ff=np.concatenate(mirror))
    f = np.load(cache)
    return {"paths": list(f["paths"]), "f": f["f"].astype(np.float64),
            "ff": f["ff"].astype(np.float64)}


def fit(x: np.ndarray, y: np.ndarray, seed: int, c: float | None = None):
    """edgessl's probe on ``x``: (logits function, C)."""
    from sklearn.linear_model import LogisticRegression

    from edgessl.finetune.train import _sample_span, choose_probe_c, standardise

    mu, sigma = standardise(x)
    z = (x - mu) / sigma
    basis = _sample_span(z)
    c = c or choose_probe_c(z @ basis.T, y, seed)
    clf = LogisticRegression(C=c, max_iter=5000).fit(z @ basis.T, y)
    w = clf.coef_ @ basis
    return (lambda v: ((v - mu) / sigma) @ w.T + clf.intercept_), c


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def self_train(f, train, y, pool, seed):
    predict, c = fit(f[train], y, seed)
    for per_class in (20, 30):
        p = _softmax(predict(f[pool]))
        guess, conf = p.argmax(1), p.max(1)
        keep = np.concatenate([np.flatnonzero(guess == k)[np.argsort(-conf[guess == k])][:per_class]
                               for k in np.unique(y)])
        predict, _ = fit(np.vstack([f[train], f[pool][keep]]),
                         np.concatenate([y, guess[keep]]), seed, c)
    return predict


def variant_top1(feats: dict, root: Path, seed: int) -> dict[str, float]:
    from edgessl.data.labeled import labels_per_class, load_labeled

    index = {p: i for i, p in enumerate(feats["paths"])}
    data = load_labeled(root, 0.2, seed)
    chosen = labels_per_class(data.train, K, seed, data.classes)
    train = np.array([index[str(p)] for p, _ in chosen])
    y = np.array([c for _, c in chosen])
    val = np.array([index[str(p)] for p, _ in data.val])
    yv = np.array([c for _, c in data.val])
    picked = set(train.tolist())
    pool = np.array([index[str(p)] for p, _ in data.train if index[str(p)] not in picked])
    f, ff = feats["f"], feats["ff"]

    def top1(logits):
        return float((logits.argmax(1) == yv).mean())

    plain, _ = fit(f[train], y, seed)
    aug, _ = fit(np.vstack([f[train], ff[train]]), np.concatenate([y, y]), seed)
    l2 = f / np.linalg.norm(f, axis=1, keepdims=True)
    root_f = np.sqrt(np.maximum(f, 0))
    return {"plain": top1(plain(f[val])),
            "flip TTA": top1(plain(f[val]) + plain(ff[val])),
            "flip aug + TTA": top1(aug(f[val]) + aug(ff[val])),
            "L2": top1(fit(l2[train], y, seed)[0](l2[val])),
            "sqrt": top1(fit(root_f[train], y, seed)[0](root_f[val])),
            "self-training": top1(self_train(f, train, y, pool, seed)(f[val]))}


def main() -> None:
    from edgessl.runtime.measure import device_stamp

    logging.disable(logging.INFO)  # choose_probe_c logs each C
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--fashion-from", type=Path, help="the unpacked dataset-fashion-mnist")
    ap.add_argument("--work", type=Path, default=Path("benchmarks/work/probe_variants"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sets = dict(item.split("=", 1) for item in args.folder)
    if args.fashion_from:
        sets["fashion-mnist"] = str(write_fashion(args.fashion_from, args.work / "fashion"))
    rows = []
    for name, folder in sets.items():
        feats = features(Path(folder), args.work / f"{name}-flip.npz")
        runs = [variant_top1(feats, Path(folder), s) for s in SEEDS]
        row = {"set": name, **{v: {"top1": 100 * float(np.mean([r[v] for r in runs])),
                                   "std": 100 * float(np.std([r[v] for r in runs])),
                                   "runs": [100 * r[v] for r in runs]} for v in VARIANTS}}
        rows.append(row)
        print(name, {v: round(row[v]["top1"], 1) for v in VARIANTS}, flush=True)
    report = {"date": dt.date.today().isoformat(), "host": device_stamp(), "start": START,
              "labels_per_class": K, "seeds": list(SEEDS), "rows": rows}
    lines = ["# Linear-probe variants on the frozen start", "",
             f"{START} frozen + edgessl's linear probe, {K} labels per class, mean ± std over "
             f"{len(SEEDS)} seeds, top-1 % on each set's val split; the change from plain in "
             f"brackets. Host: {report['host']['cpu']}, {report['host']['logical_cores']} "
             f"cores; {report['date']}.", "",
             "| set | " + " | ".join(VARIANTS) + " |", "|---" * (len(VARIANTS) + 1) + "|"]
    for r in rows:
        cells = [f"{r['plain']['top1']:.1f} ± {r['plain']['std']:.1f}"] + [
            f"{r[v]['top1']:.1f} ± {r[v]['std']:.1f} ({r[v]['top1'] - r['plain']['top1']:+.1f})"
            for v in VARIANTS[1:]]
        lines.append(f"| {r['set']} | " + " | ".join(cells) + " |")
    write_results(RESULTS, "probe_variants", report, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
