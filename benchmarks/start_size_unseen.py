"""Which input side should the pretrained start get on a user's images? Old rule vs new.

The default start (EfficientNet-Lite0, ImageNet) frozen, every stage pooled, and the linear
probe ``edgessl finetune`` fits (standardised features, C by cross-validation on the labeled
images), at 10 labels per class, mean over 3 seeds (each seed: edgessl's split and label
subset), top-1 on the val split. For each set two sides:

- old: the data's typical side, at least 128, at most the start's training size (224);
- new (``default_size`` today): the training size (224), whatever the images' size;
- above, for images larger than the training size: their side up to 1.3 times the training
  size (288), the test-resolution effect of Touvron et al. 2019, which did not pay here.

Sets: ``emoji``, ``elpv`` and ``galaxy`` from ``benchmarks/unseen_sets.py``, and Fashion-MNIST
from Debian's ``dataset-fashion-mnist`` package (MIT; 200 test images per class written as
28 px PNGs by ``--fashion-from``), which was not looked at before the rule was chosen.
Raw-pixel logistic regression (``pixel_logistic_regression`` at the typical side, at most
64 px, on each seed's split) is printed beside them.

    python benchmarks/unseen_sets.py --out /tmp/unseen
    apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb deb
    python benchmarks/start_size_unseen.py --folder emoji=/tmp/unseen/emoji \\
        --folder elpv=/tmp/unseen/elpv --folder galaxy=/tmp/unseen/galaxy \\
        --fashion-from deb/usr/share/datasets

Features are cached in ``--work`` (one .npz per set and side). Writes
results/start_size_unseen.{json,md}. ``--start efficientnet_lite2.in1k`` measures another start
the same way (old and new rules at its own training size, no "above" column) into
results/start_size_unseen-<start>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import time
from pathlib import Path

import numpy as np
from results_io import write_results

RESULTS = Path(__file__).resolve().parent / "results"
K, SEEDS, DEFAULT = 10, (0, 1, 2), "efficientnet_lite0.in1k"
FASHION = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle_boot")


def write_fashion(source: Path, root: Path, per_class: int = 200) -> Path:
    """The first ``per_class`` test images of each Fashion-MNIST class as PNG folders."""
    from PIL import Image

    images = next(source.rglob("t10k-images-idx3-ubyte.gz"))
    labels = next(source.rglob("t10k-labels-idx1-ubyte.gz"))
    x = np.frombuffer(gzip.open(images).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.frombuffer(gzip.open(labels).read(), np.uint8, offset=8)
    for c, name in enumerate(FASHION):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in np.where(y == c)[0][:per_class]:
            Image.fromarray(x[i]).save(root / name / f"{i:05d}.png")
    return root


def old_side(start, data_side: int) -> int:
    side = min(max(data_side, 128), start.input_size)
    return max(32, 32 * (side // 32))


def features(root: Path, start: str, side: int, cache: Path) -> dict:
    """Every image's pooled features at ``side`` (cached)."""
    import torch

    from edgessl.backbone_source import resolve_backbone
    from edgessl.data.labeled import load_labeled
    from edgessl.data.tensors import load_uint8, normalize_fn

    if cache.is_file():
        f = np.load(cache)
        return {"paths": list(f["paths"]), "mean": f["mean"]}
    source = resolve_backbone(start, side, None, None, None)
    backbone = source.backbone.eval()
    normalize = normalize_fn(source.mean, source.std)
    data = load_labeled(root, 0.2, 0)
    paths = sorted({str(p) for p, _ in data.train} | {str(p) for p, _ in data.val})
    chunks = []
    with torch.no_grad():
        for i in range(0, len(paths), 64):
            batch = torch.stack([load_uint8(Path(p), side) for p in paths[i:i + 64]])
            chunks.append(backbone(normalize(batch)).numpy())
    feats = np.concatenate(chunks)
    np.savez(cache, paths=np.array(paths), mean=feats)
    return {"paths": paths, "mean": feats}


def probe_top1(f: dict, root: Path, seed: int) -> float:
    """edgessl's linear probe on the seed's label subset, top-1 on the seed's val split."""
    from sklearn.linear_model import LogisticRegression

    from edgessl.data.labeled import labels_per_class, load_labeled
    from edgessl.finetune.train import _sample_span, choose_probe_c, standardise

    index = {p: i for i, p in enumerate(f["paths"])}
    data = load_labeled(root, 0.2, seed)
    train = labels_per_class(data.train, K, seed, data.classes)
    x = f["mean"][[index[str(p)] for p, _ in train]].astype(np.float64)
    v = f["mean"][[index[str(p)] for p, _ in data.val]].astype(np.float64)
    y, yv = np.array([c for _, c in train]), np.array([c for _, c in data.val])
    mu, sigma = standardise(x)
    z, zv = (x - mu) / sigma, (v - mu) / sigma
    basis = _sample_span(z)
    c = choose_probe_c(z @ basis.T, y, seed)
    clf = LogisticRegression(C=c, max_iter=5000).fit(z @ basis.T, y)
    return float((clf.predict(zv @ basis.T) == yv).mean())


def pixels(root: Path, side: int) -> list[float]:
    from edgessl.data.labeled import load_labeled
    from edgessl.finetune.baseline import pixel_logistic_regression

    return [pixel_logistic_regression(load_labeled(root, 0.2, s), K, s, side) for s in SEEDS]


def main() -> None:
    from edgessl.backbones.pretrained import PRETRAINED, default_size
    from edgessl.data.images import typical_side
    from edgessl.data.labeled import load_labeled
    from edgessl.runtime.measure import device_stamp

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--fashion-from", type=Path, help="the unpacked dataset-fashion-mnist")
    ap.add_argument("--work", type=Path, default=Path("benchmarks/work/start_size"))
    ap.add_argument("--start", default=DEFAULT, help="the pretrained start to measure; "
                    "another than the default writes start_size_unseen-<start>.{json,md}")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sets = dict(item.split("=", 1) for item in args.folder)
    if args.fashion_from:
        sets["fashion-mnist"] = str(write_fashion(args.fashion_from, args.work / "fashion"))
    start = PRETRAINED.get(args.start)
    tag = "" if args.start == DEFAULT else f"-{args.start}"
    rows = []
    for name, folder in sets.items():
        root = Path(folder)
        side = typical_side([p for p, _ in load_labeled(root).train])
        row = {"set": name, "typical_side": side,
               "pixels": 100 * np.mean(pixels(root, min(side, 64)))}
        rules = [("old", old_side(start, side)), ("new", default_size(start))]
        if side > start.input_size and not tag:  # measured for the default start only
            rules.append(("above", 32 * (min(side, int(1.3 * start.input_size)) // 32)))
        for rule, size in rules:
            begin = time.perf_counter()
            f = features(root, start.name, size, args.work / f"{name}{tag}-{size}.npz")
            runs = [100 * probe_top1(f, root, s) for s in SEEDS]
            row[rule] = {"side": size, "top1": float(np.mean(runs)), "std": float(np.std(runs)),
                         "runs": runs, "seconds": time.perf_counter() - begin}
        rows.append(row)
        print(row, flush=True)
    report = {"date": dt.date.today().isoformat(), "host": device_stamp(), "start": start.name,
              "labels_per_class": K, "seeds": list(SEEDS), "rows": rows}
    lines = ["# Input side of the pretrained start: old rule vs new", "",
             f"{start.name} frozen + edgessl's linear probe, {K} labels per class, mean ± std over "
             f"{len(SEEDS)} seeds, top-1 % on each set's val split. Host: "
             f"{report['host']['cpu']}, {report['host']['logical_cores']} cores; "
             f"{report['date']}.", "",
             "| set | typical side | pixels | old side | old top-1 | new side | new top-1 | "
             "gain | above: side, top-1 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        above = (f"{r['above']['side']}, {r['above']['top1']:.1f} ± {r['above']['std']:.1f}"
                 if "above" in r else "-")
        lines.append(f"| {r['set']} | {r['typical_side']} | {r['pixels']:.1f} | "
                     f"{r['old']['side']} | {r['old']['top1']:.1f} ± {r['old']['std']:.1f} | "
                     f"{r['new']['side']} | {r['new']['top1']:.1f} ± {r['new']['std']:.1f} | "
                     f"{r['new']['top1'] - r['old']['top1']:+.1f} | {above} |")
    write_results(RESULTS, f"start_size_unseen{tag}", report, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
