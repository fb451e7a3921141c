"""Does SSL pay off with few labels? Top-1 at 1, 5, 10, 25 and all labels per class.

For each dataset, one SimCLR pretraining run on the unlabeled train images, then for each
label budget K and seed (a different stratified label subset and initialisation):

- scratch: the same architecture, random weights, full fine-tune (``edgessl finetune --mode
  full``, its defaults: AdamW, 50 epochs, light crop/flip augmentation);
- SSL + linear: the pretrained backbone frozen, linear probe (``--mode linear``);
- SSL + full: the pretrained backbone fine-tuned end to end (``--mode full``);
- pixels: logistic regression on raw pixels.

Accuracy is top-1 on the held-out split (digits: val; CIFAR: test), never used for any choice.
"all" labels is one run (the subset does not change with the seed) and, on CIFAR, full
fine-tunes run ``--all-epochs`` epochs instead of 50 to fit the CPU budget.

    python benchmarks/label_efficiency.py                      # both datasets, 3 seeds
    python benchmarks/label_efficiency.py --stage pretrain     # only the SSL runs
    python benchmarks/label_efficiency.py --datasets digits --seeds 1

Results go to benchmarks/results/label_efficiency.{json,md,png}; finished evaluations are
cached in --work (rerunning continues where it stopped; the pretraining resumes too).
CIFAR needs ../shared/data/cifar10-subset (or --cifar DIR) and is skipped with a message when
the folder is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_CIFAR = HERE.parent.parent / "shared" / "data" / "cifar10-subset"
KS = (1, 5, 10, 25, None)
ARMS = ("scratch", "ssl_linear", "ssl_full", "pixels")
ARM_NAMES = {"scratch": "scratch (full FT)", "ssl_linear": "SSL + linear probe",
             "ssl_full": "SSL + full FT", "pixels": "pixel logistic regression"}


@dataclass(frozen=True)
class Dataset:
    """One benchmark dataset and its pretraining recipe."""

    name: str
    root: Path
    image_size: int
    backbone: str
    pretrain: dict = field(default_factory=dict)
    all_epochs: int | None = None  # full fine-tune epochs at K = all (None = default 50)
    hflip: float = 0.5


def datasets(args) -> list[Dataset]:
    from edgessl.data.digits import write_digits

    out = []
    if "digits" in args.datasets:
        root = args.work / "digits"
        if not (root / "train").is_dir():
            write_digits(root, image_size=16)
        # The quickstart's recipe (benchmarks/results/quickstart_sweep.md): no flips or blur
        # for handwriting, crops down to 25% of the area, batch 128.
        out.append(Dataset("digits", root, 16, "resnet_tiny", dict(
            epochs=args.digits_epochs, batch_size=128, lr=0.5,
            augment_overrides={"crop_scale": (0.25, 1.0), "hflip": 0.0, "blur_p": 0.0}),
            hflip=0.0))
    if "cifar10" in args.datasets:
        if not args.cifar.is_dir():
            print(f"skipping cifar10: '{args.cifar}' does not exist (pass --cifar DIR)")
        else:
            # 100 epochs of resnet_tiny_s2 is about 30 minutes on a 2-core CPU; recipe from
            # benchmarks/results/cifar_recipe_sweep.jsonl (no blur at 32 px).
            out.append(Dataset("cifar10", args.cifar, 32, "resnet_tiny_s2", dict(
                epochs=args.cifar_epochs, batch_size=256, lr=0.5,
                augment_overrides={"blur_p": 0.0}), all_epochs=args.all_epochs))
    return out


def pretrain_stage(ds: Dataset, args) -> Path:
    """The SimCLR checkpoint of ``ds`` (trained, resumed or reused)."""
    from edgessl.checkpoint import read_card
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    out = args.work / f"{ds.name}-simclr"
    if out.is_dir() and read_card(out).training.get("complete"):
        return out
    resume = out.is_dir()
    t = time.perf_counter()
    result = pretrain(PretrainConfig(
        data=str(ds.root), method="simclr", backbone=ds.backbone, image_size=ds.image_size,
        seed=0, out=str(out), resume=resume, force=not resume, eval_data=str(ds.root),
        eval_every=10, **ds.pretrain))
    print(f"{ds.name}: pretrained in {time.perf_counter() - t:.0f} s, "
          f"{result.images_per_second:.0f} images/s, final kNN top-1 "
          f"{result.history[-1]['knn_top1']}%")
    return out


def evaluate(ds: Dataset, arm: str, k: int | None, seed: int, ckpt: Path, args) -> float:
    """Top-1 (fraction) of one arm at ``k`` labels per class with ``seed``."""
    from edgessl.data.labeled import load_labeled
    from edgessl.finetune.baseline import pixel_logistic_regression
    from edgessl.finetune.train import FinetuneConfig, finetune

    if arm == "pixels":
        return pixel_logistic_regression(load_labeled(ds.root), k, seed, ds.image_size)
    epochs = ds.all_epochs if k is None and arm != "ssl_linear" else None
    common = dict(data=str(ds.root), labels_per_class=k, seed=seed, hflip=ds.hflip,
                  out=str(args.work / "ft" / f"{ds.name}-{arm}-{k}-{seed}"), force=True)
    if arm == "scratch":
        cfg = FinetuneConfig(backbone=f"scratch:{ds.backbone}", mode="full",
                             image_size=ds.image_size, epochs=epochs, **common)
    else:
        mode = "linear" if arm == "ssl_linear" else "full"
        cfg = FinetuneConfig(backbone=str(ckpt), mode=mode, epochs=epochs, **common)
    return float(finetune(cfg).metrics["top1"])


def evaluate_stage(ds: Dataset, ckpt: Path, args, cache: dict) -> None:
    seeds = range(args.seeds)
    for k in args.ks:
        for seed in (seeds if k is not None else [0]):
            for arm in ARMS:
                key = f"{ds.name}|{arm}|{k}|{seed}"
                if key in cache:
                    continue
                t = time.perf_counter()
                cache[key] = evaluate(ds, arm, k, seed, ckpt, args)
                print(f"{key}: {100 * cache[key]:.1f}% ({time.perf_counter() - t:.0f} s)",
                      flush=True)
                (args.work / "cache.json").write_text(json.dumps(cache, indent=1))


def summarise(names: list[str], cache: dict, meta: dict) -> dict:
    table: dict = {}
    for key, top1 in cache.items():
        name, arm, k, _seed = key.split("|")
        if name in names:
            table.setdefault(name, {}).setdefault(arm, {}).setdefault(k, []).append(100 * top1)
    out = {"meta": meta, "datasets": {}}
    for name, arms in table.items():
        out["datasets"][name] = {arm: {k: {"mean": round(float(np.mean(v)), 2),
                                           "std": round(float(np.std(v)), 2), "runs": v}
                                       for k, v in ks.items()} for arm, ks in arms.items()}
    return out


def markdown(summary: dict) -> str:
    lines = ["# Label efficiency", "", "Top-1 (%) on the held-out split (digits: val, CIFAR: "
             "test), mean ± std over 3 label subsets (seeds); `all` is a single run. Scratch "
             "and SSL share the architecture; full fine-tunes are `edgessl finetune --mode "
             "full` with its defaults (50 epochs; 15 at all CIFAR labels), the probe is "
             "`--mode linear` with C chosen by cross-validation on the labeled images.", "",
             f"Command: `{summary['meta']['command']}`", ""]
    for name, arms in summary["datasets"].items():
        meta = summary["meta"]["pretraining"].get(name, {})
        lines += [f"## {name}", "", f"Pretraining: {meta.get('summary', '')}", "",
                  "| labels per class | " + " | ".join(ARM_NAMES[a] for a in ARMS) + " |",
                  "|---" * (len(ARMS) + 1) + "|"]
        for k in KS:
            if all(str(k) not in arms.get(arm, {}) for arm in ARMS):
                continue
            cells = []
            for arm in ARMS:
                r = arms.get(arm, {}).get(str(k))
                cells.append("" if r is None else f"{r['mean']:.1f}" + (
                    f" ± {r['std']:.1f}" if len(r["runs"]) > 1 else ""))
            lines.append(f"| {k or 'all'} | " + " | ".join(cells) + " |")
        s, lin = arms.get("scratch", {}).get("10"), arms.get("ssl_linear", {}).get("10")
        if s and lin:
            lines += ["", f"At 10 labels per class, SSL + linear probe beats scratch by "
                          f"**{lin['mean'] - s['mean']:.1f} points**."]
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        arms = summary["datasets"][name]
        for arm in ARMS:
            ks = [k for k in KS if str(k) in arms.get(arm, {})]
            xs = [k if k is not None else 100 for k in ks]
            ys = [arms[arm][str(k)]["mean"] for k in ks]
            err = [arms[arm][str(k)]["std"] for k in ks]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=ARM_NAMES[arm])
        ax.set_xscale("log")
        ax.set_xticks([1, 5, 10, 25, 100], ["1", "5", "10", "25", "all"])
        ax.set_xlabel("labels per class")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "cifar10"],
                    choices=["digits", "cifar10"])
    ap.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cifar-epochs", type=int, default=100)
    ap.add_argument("--digits-epochs", type=int, default=60)
    ap.add_argument("--ks", nargs="+", default=["1", "5", "10", "25", "all"],
                    help="labels per class to evaluate ('all' = every label)")
    ap.add_argument("--all-epochs", type=int, default=15,
                    help="full fine-tune epochs at all labels on CIFAR")
    ap.add_argument("--stage", choices=["pretrain", "evaluate", "all"], default="all")
    ap.add_argument("--work", type=Path, default=Path("benchmarks/work/label_efficiency"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.ks = [None if k == "all" else int(k) for k in args.ks]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    cache_file = args.work / "cache.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    meta = {"command": " ".join(["python benchmarks/label_efficiency.py", *sys.argv[1:]]),
            "pretraining": {}}
    sets = datasets(args)
    for ds in sets:
        ckpt = pretrain_stage(ds, args)
        if args.stage != "pretrain":
            evaluate_stage(ds, ckpt, args, cache)
        from edgessl.checkpoint import read_card

        tr = read_card(ckpt).training
        meta["pretraining"][ds.name] = {
            "backbone": ds.backbone, "image_size": ds.image_size, "epochs": tr["epochs"],
            "seconds": tr["seconds"], "knn_top1": tr.get("knn_top1"), "device": tr["device"],
            "summary": f"SimCLR, {ds.backbone} at {ds.image_size} px, {tr['epochs']} epochs, "
                       f"batch {tr['batch_size']}, {tr['seconds'] / 60:.1f} min on "
                       f"{tr['device']}, final kNN top-1 {tr.get('knn_top1')}%"}
    if args.stage == "pretrain":
        return
    summary = summarise([d.name for d in sets], cache, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "label_efficiency.json").write_text(json.dumps(summary, indent=1))
    (args.out / "label_efficiency.md").write_text(markdown(summary))
    plot(summary, args.out / "label_efficiency.png")
    print(markdown(summary))


if __name__ == "__main__":
    main()
