"""Which start pays off with few labels? Top-1 at 1, 5, 10, 25 and all labels per class.

For each dataset, one SimCLR pretraining run on the unlabeled train images (from scratch) and
one SimCLR run continued from the default pretrained start, then for each label budget K and
seed (a different stratified label subset and initialisation):

- scratch: the same architecture, random weights, full fine-tune (``edgessl finetune --mode
  full``, its defaults: AdamW, 50 epochs, light crop/flip augmentation);
- SSL + linear / SSL + full: the SSL backbone frozen with a linear probe, or fine-tuned;
- pretrained + linear / pretrained + full: the default pretrained start (EfficientNet-Lite0,
  ImageNet) at ``finetune``'s default size, frozen with a linear probe (what ``edgessl
  finetune`` does without ``--backbone``), or fine-tuned end to end;
- pretrained + SSL + linear: SimCLR continued from that start on the unlabeled train images
  for ``--continued-budget`` (``edgessl pretrain --budget``, its continued-SSL defaults), then
  a linear probe;
- pixels: logistic regression on raw pixels.

Accuracy is top-1 on the held-out split (digits and --folder sets: val; CIFAR: test), never
used for any choice. "all" labels is one run (the subset does not change with the seed) and,
on CIFAR, full fine-tunes run ``--all-epochs`` epochs instead of 50 to fit the CPU budget.

    python benchmarks/label_efficiency.py                      # both datasets, 3 seeds
    python benchmarks/label_efficiency.py --stage pretrain     # only the SSL runs
    python benchmarks/label_efficiency.py --datasets cifar10 --ks 10 \
        --arms pretrained_linear pretrained_ssl_linear         # some arms only
    python benchmarks/label_efficiency.py --datasets --folder emoji=DIR --ks 10 \
        --arms pixels scratch pretrained_linear               # an image set of your own

``--folder NAME=DIR`` adds any folder of class folders (edgessl splits off val with its seeded
split); ``benchmarks/unseen_sets.py`` builds the image sets edgessl was never tuned on.
Results go to benchmarks/results/label_efficiency.{json,md,png}; finished evaluations are
cached in --work (rerunning continues where it stopped; the pretraining resumes too), and the
results already in label_efficiency.json are kept when --work holds no cache yet, so a run
with a few arms adds rows without repeating the others. CIFAR needs
../shared/data/cifar10-subset (or --cifar DIR) and is skipped with a message when absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from results_io import write_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_CIFAR = HERE.parent.parent / "shared" / "data" / "cifar10-subset"
KS = (1, 5, 10, 25, None)
ARMS = ("scratch", "ssl_linear", "ssl_full", "pixels", "pretrained_linear", "pretrained_full",
        "pretrained_ssl_linear")
ARM_NAMES = {"scratch": "scratch (full FT)", "ssl_linear": "SSL + linear probe",
             "ssl_full": "SSL + full FT", "pixels": "pixel logistic regression",
             "pretrained_linear": "pretrained + linear probe (default)",
             "pretrained_full": "pretrained + full FT",
             "pretrained_ssl_linear": "pretrained + continued SSL + linear probe"}
SSL_ARMS = ("ssl_linear", "ssl_full")


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
    for spec in args.folder:
        name, _, folder = spec.partition("=")
        root = Path(folder).expanduser()
        if not name or not root.is_dir():
            raise SystemExit(f"--folder {spec}: expected NAME=DIR with DIR a folder of class "
                             "folders")
        from edgessl.data.images import typical_side
        from edgessl.data.labeled import load_labeled

        side = min(64, max(16, typical_side([p for p, _ in load_labeled(root).train[:200]])))
        out.append(Dataset(name, root, side, "resnet_tiny", dict(epochs=args.folder_epochs)))
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


def _start_size(ds: Dataset) -> int:
    """The side ``finetune`` gives the default start (so both probes compare at one size)."""
    from edgessl.backbones.pretrained import DEFAULT_START, PRETRAINED, default_size

    return default_size(PRETRAINED.get(DEFAULT_START))


def continued_stage(ds: Dataset, args) -> Path:
    """SimCLR continued from the default pretrained start for ``--continued-budget``."""
    from edgessl.backbones.pretrained import DEFAULT_START
    from edgessl.checkpoint import read_card
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    out = args.work / f"{ds.name}-continued-simclr"
    if out.is_dir() and read_card(out).training.get("complete"):
        return out
    t = time.perf_counter()
    pretrain(PretrainConfig(data=str(ds.root), method="simclr", backbone=DEFAULT_START,
                            image_size=_start_size(ds), budget=args.continued_budget, seed=0,
                            out=str(out), force=True))
    print(f"{ds.name}: continued SSL in {time.perf_counter() - t:.0f} s")
    return out


def evaluate(ds: Dataset, arm: str, k: int | None, seed: int, ckpts: dict, args) -> float:
    """Top-1 (fraction) of one arm at ``k`` labels per class with ``seed``."""
    from edgessl.data.labeled import load_labeled
    from edgessl.finetune.baseline import pixel_logistic_regression
    from edgessl.finetune.train import FinetuneConfig, finetune

    if arm == "pixels":  # on the seed's split, as finetune splits a single folder
        return pixel_logistic_regression(load_labeled(ds.root, 0.2, seed), k, seed,
                                         ds.image_size)
    epochs = ds.all_epochs if k is None and not arm.endswith("linear") else None
    common = dict(data=str(ds.root), labels_per_class=k, seed=seed, hflip=ds.hflip,
                  out=str(args.work / "ft" / f"{ds.name}-{arm}-{k}-{seed}"), force=True)
    if arm == "scratch":
        cfg = FinetuneConfig(backbone=f"scratch:{ds.backbone}", mode="full",
                             image_size=ds.image_size, epochs=epochs, **common)
    elif arm.startswith("pretrained"):
        from edgessl.backbones.pretrained import DEFAULT_START

        backbone = (str(ckpts["continued"]) if arm == "pretrained_ssl_linear"
                    else DEFAULT_START)
        mode = "full" if arm == "pretrained_full" else "linear"
        cfg = FinetuneConfig(backbone=backbone, mode=mode, epochs=epochs, **common)
    else:
        mode = "linear" if arm == "ssl_linear" else "full"
        cfg = FinetuneConfig(backbone=str(ckpts["ssl"]), mode=mode, epochs=epochs, **common)
    return float(finetune(cfg).metrics["top1"])


def evaluate_stage(ds: Dataset, ckpts: dict, args, cache: dict) -> None:
    seeds = range(args.seeds)
    for k in args.ks:
        for seed in (seeds if k is not None else [0]):
            for arm in args.arms:
                key = f"{ds.name}|{arm}|{k}|{seed}"
                if key in cache:
                    continue
                t = time.perf_counter()
                cache[key] = evaluate(ds, arm, k, seed, ckpts, args)
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
    lines = ["# Label efficiency", "", "Top-1 (%) on the held-out split (digits and --folder "
             "sets: val, CIFAR: test), mean ± std over 3 label subsets (seeds); `all` is a "
             "single run. Scratch and SSL share the architecture; full fine-tunes are "
             "`edgessl finetune --mode full` with its defaults (50 epochs; 15 at all CIFAR "
             "labels), the probe is `--mode linear` with C chosen by cross-validation on "
             "the labeled images.", "",
             "Commands (each adds to the results before it; the folders are made by "
             "`benchmarks/unseen_sets.py`):", "",
             *[f"    {c}" for c in [*summary["meta"].get("earlier_commands", []),
                                    summary["meta"]["command"]]],
             "", f"Host of the last command: {summary['meta'].get('host', 'not recorded')}"
             + (f"; earlier commands ran on {', '.join(summary['meta']['earlier_hosts'])}"
                if summary["meta"].get("earlier_hosts") else ""), ""]
    for name, arms in summary["datasets"].items():
        meta = summary["meta"]["pretraining"].get(name, {})
        shown = [a for a in ARMS if a in arms]
        lines += [f"## {name}", ""]
        if meta.get("summary"):
            lines += [f"Pretraining: {meta['summary']}", ""]
        if meta.get("continued"):
            lines += [f"Continued SSL: {meta['continued']}", ""]
        lines += ["| labels per class | " + " | ".join(ARM_NAMES[a] for a in shown) + " |",
                  "|---" * (len(shown) + 1) + "|"]
        for k in KS:
            if all(str(k) not in arms.get(arm, {}) for arm in shown):
                continue
            cells = []
            for arm in shown:
                r = arms.get(arm, {}).get(str(k))
                cells.append("" if r is None else f"{r['mean']:.1f}" + (
                    f" ± {r['std']:.1f}" if len(r["runs"]) > 1 else ""))
            lines.append(f"| {k or 'all'} | " + " | ".join(cells) + " |")
        s, lin = arms.get("scratch", {}).get("10"), arms.get("ssl_linear", {}).get("10")
        if s and lin:
            lines += ["", f"At 10 labels per class, SSL + linear probe beats scratch by "
                          f"**{lin['mean'] - s['mean']:.1f} points**."]
        px, pre = arms.get("pixels", {}).get("10"), arms.get("pretrained_linear", {}).get("10")
        cont = arms.get("pretrained_ssl_linear", {}).get("10")
        if px and pre:
            lines += ["", f"At 10 labels per class, the default start (pretrained + linear "
                          f"probe) beats pixels by **{pre['mean'] - px['mean']:.1f} points**"
                          + (f" and scratch by {pre['mean'] - s['mean']:.1f}" if s else "")
                          + "."]
        if pre and cont:
            lines += ["", f"Continued SSL changes the pretrained start's probe by "
                          f"**{cont['mean'] - pre['mean']:+.1f} points** at 10 labels per "
                          "class."]
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
        for arm in [a for a in ARMS if a in arms]:
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


def _cache_from(old: dict) -> dict:
    """Cache entries rebuilt from a results file (runs are stored in seed order)."""
    cache = {}
    for name, arms in old.get("datasets", {}).items():
        for arm, ks in arms.items():
            for k, r in ks.items():
                for seed, top1 in enumerate(r["runs"]):
                    cache[f"{name}|{arm}|{k}|{seed}"] = top1 / 100
    return cache


def _host() -> str:
    from edgessl.devices.host import cpu_info

    cpu = cpu_info()
    return f"{cpu.model} ({', '.join(cpu.flags) or 'no AVX'}), {cpu.logical_cores} cores"


def main() -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="*", default=["digits", "cifar10"],
                    choices=["digits", "cifar10"])
    ap.add_argument("--folder", action="append", default=[], metavar="NAME=DIR",
                    help="an extra dataset: a folder of class folders (repeatable)")
    ap.add_argument("--folder-epochs", type=int, default=30,
                    help="SimCLR epochs from scratch on a --folder set")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--continued-budget", default="5m",
                    help="time budget of the SSL continued from the pretrained start")
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
    ap.add_argument("--rerun", action="store_true",
                    help="measure --arms again on these datasets even where results exist "
                         "(after a change to what an arm does)")
    args = ap.parse_args()
    args.ks = [None if k == "all" else int(k) for k in args.ks]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    cache_file = args.work / "cache.json"
    previous = args.out / "label_efficiency.json"
    old = json.loads(previous.read_text()) if previous.is_file() else {"meta": {}, "datasets": {}}
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else _cache_from(old)
    meta = {"command": " ".join(["python benchmarks/label_efficiency.py", *sys.argv[1:]]),
            "host": _host(), "pretraining": old["meta"].get("pretraining", {}),
            "earlier_hosts": [h for h in dict.fromkeys([*old["meta"].get("earlier_hosts", []),
                                                        old["meta"].get("host")])
                              if h and h != _host()],
            "earlier_commands": list(dict.fromkeys(
                [*old["meta"].get("earlier_commands", []),
                 *([old["meta"]["command"]] if "command" in old["meta"] else [])]))}
    sets = datasets(args)
    if args.rerun:
        again = {(d.name, arm) for d in sets for arm in args.arms}
        cache = {key: v for key, v in cache.items() if tuple(key.split("|")[:2]) not in again}
    for ds in sets:
        ckpts = {}
        if any(a in SSL_ARMS for a in args.arms) or args.stage == "pretrain":
            ckpts["ssl"] = pretrain_stage(ds, args)
        if "pretrained_ssl_linear" in args.arms and args.stage != "pretrain":
            ckpts["continued"] = continued_stage(ds, args)
        if args.stage != "pretrain":
            evaluate_stage(ds, ckpts, args, cache)
        from edgessl.checkpoint import read_card

        entry = meta["pretraining"].setdefault(ds.name, {})
        if "continued" in ckpts:
            tr = read_card(ckpts["continued"]).training
            entry["continued"] = (
                f"SimCLR from efficientnet_lite0.in1k at {_start_size(ds)} px, budget "
                f"{args.continued_budget}: {tr['epochs']} epochs of batch {tr['batch_size']}, "
                f"lr {tr['lr']:.3g}, freeze {tr['freeze']}, BatchNorm statistics held, "
                f"{tr['seconds'] / 60:.1f} min on {tr['device']}")
        if "ssl" not in ckpts:
            continue
        tr = read_card(ckpts["ssl"]).training
        entry.update({
            "backbone": ds.backbone, "image_size": ds.image_size, "epochs": tr["epochs"],
            "seconds": tr["seconds"], "knn_top1": tr.get("knn_top1"), "device": tr["device"],
            "summary": f"SimCLR, {ds.backbone} at {ds.image_size} px, {tr['epochs']} epochs, "
                       f"batch {tr['batch_size']}, {tr['seconds'] / 60:.1f} min on "
                       f"{tr['device']}, final kNN top-1 {tr.get('knn_top1')}%"})
    if args.stage == "pretrain":
        return
    names = list(dict.fromkeys([*old["datasets"], *(d.name for d in sets)]))
    summary = summarise(names, cache, meta)
    write_results(args.out, "label_efficiency", summary, markdown(summary))
    plot(summary, args.out / "label_efficiency.png")
    print(markdown(summary))


if __name__ == "__main__":
    main()
