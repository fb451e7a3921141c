"""Which features of a frozen pretrained start transfer best at a few labels per class?

For each labeled set, the default start (EfficientNet-Lite0, ImageNet) is run once at the size
``finetune`` gives it, with ``features = "stages"``; its last 1280 values are the final layer's
pooled features (``tests/test_feature_pooling.py`` checks that). A logistic-regression probe as
``finetune --mode linear`` fits it (standardised, C by cross-validation on the labeled images)
is trained at K labels per class on several seeded label subsets, on:

- ``final``: the final layer alone (what edgessl used before ``stages``);
- ``stages``: every stage pooled and joined to the final layer (what the starts use now).

Top-1 is on the set's val split (a seeded 20% split when it has none; CIFAR: its test split).

    python benchmarks/feature_pooling.py --folder emoji=benchmarks/work/unseen/emoji \\
        --folder elpv=benchmarks/work/unseen/elpv          # cifar10-subset is added when found

Writes benchmarks/results/feature_pooling.{json,md}. The unseen sets come from
``benchmarks/unseen_sets.py``.
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


def _probe(train_x, train_y, test_x, test_y, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression

    from edgessl.finetune.train import choose_probe_c, standardise

    mu, sigma = standardise(train_x)  # as finetune does
    z, zt = (train_x - mu) / sigma, (test_x - mu) / sigma
    c = choose_probe_c(z, train_y, seed)
    clf = LogisticRegression(C=c, max_iter=5000).fit(z, train_y)
    return float((clf.predict(zt) == test_y).mean())


def _features(backbone, paths, side: int, mean, std) -> np.ndarray:
    import torch

    from edgessl.data.preprocess import preprocess_batch

    out = []
    with torch.no_grad():
        for i in range(0, len(paths), 64):
            x = preprocess_batch(paths[i:i + 64], side, mean, std)
            out.append(backbone(torch.from_numpy(x)).numpy())
    return np.concatenate(out)


def run_set(name: str, root: Path, k: int, subsets: int) -> dict:
    from edgessl.backbone_source import resolve_backbone
    from edgessl.backbones.pretrained import DEFAULT_START, PRETRAINED, default_size
    from edgessl.data.labeled import labels_per_class, load_labeled

    start = PRETRAINED.get(DEFAULT_START)
    data = load_labeled(root, 0.2, 0)
    picks = [labels_per_class(data.train, k, seed, data.classes) for seed in range(subsets)]
    train = sorted({p for pick in picks for p, _ in pick})
    side = default_size(start)
    source = resolve_backbone(start.name, side, "resnet_tiny")
    assert source.backbone.spec.features == "stages"
    backbone = source.backbone.eval()
    final_width = backbone.model.num_features
    t = time.perf_counter()
    feats = dict(zip(train, _features(backbone, train, side, start.mean, start.std),
                     strict=True))
    val_x = _features(backbone, [p for p, _ in data.val], side, start.mean, start.std)
    seconds = time.perf_counter() - t
    val_y = np.array([y for _, y in data.val])
    scores: dict[str, list[float]] = {"final": [], "stages": []}
    for seed, pick in enumerate(picks):
        x = np.stack([feats[p] for p, _ in pick])
        y = np.array([label for _, label in pick])
        scores["final"].append(_probe(x[:, -final_width:], y, val_x[:, -final_width:], val_y,
                                      seed))
        scores["stages"].append(_probe(x, y, val_x, val_y, seed))
    row = {"set": name, "classes": len(data.classes), "val_images": len(val_y), "side": side,
           "widths": {"final": final_width, "stages": backbone.num_features},
           "feature_seconds": round(seconds, 1),
           **{key: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_subset": v}
              for key, v in scores.items()}}
    print(f"{name:>10}: final {100 * row['final']['mean']:.1f}  stages "
          f"{100 * row['stages']['mean']:.1f}  ({side} px, {seconds:.0f} s)", flush=True)
    return row


def main() -> None:
    from dataclasses import asdict

    import torch

    from edgessl.devices.host import cpu_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--subsets", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sets = [("cifar10-subset", args.cifar)] if (args.cifar / "train").is_dir() else []
    for item in args.folder:
        name, _, folder = item.partition("=")
        sets.append((name, Path(folder)))
    if not sets:
        raise SystemExit("no labeled set: pass --folder NAME=DIR (or --cifar DIR)")
    rows = [run_set(name, root, args.k, args.subsets) for name, root in sets]
    result = {"labels_per_class": args.k, "subsets": args.subsets, "rows": rows,
              "host": {**asdict(cpu_info()), "python": platform.python_version()}}
    lines = [f"| set | classes | side | final layer ({rows[0]['widths']['final']}) | every stage "
             f"+ final ({rows[0]['widths']['stages']}) | gain |", "|---|---|---|---|---|---|"]
    for r in rows:
        f, s = r["final"], r["stages"]
        lines.append(f"| {r['set']} | {r['classes']} | {r['side']} px | {100 * f['mean']:.1f} ± "
                     f"{100 * f['std']:.1f} | {100 * s['mean']:.1f} ± {100 * s['std']:.1f} | "
                     f"{100 * (s['mean'] - f['mean']):+.1f} |")
    host = result["host"]
    isa = ", ".join(host.get("flags", ())) or "no AVX"
    lines += ["", f"EfficientNet-Lite0 (ImageNet) frozen, logistic regression as finetune fits "
              f"it, {args.k} labels per class, mean ± std over {args.subsets} label subsets, "
              f"top-1 on each set's val split. Host: {host.get('model', '?')}, "
              f"{host.get('logical_cores', '?')} cores ({isa}).", "",
              "    python benchmarks/feature_pooling.py " + " ".join(
                  f"--folder {f}" for f in args.folder)]
    write_results(HERE / "results", "feature_pooling", result, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
