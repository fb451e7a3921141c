"""Every SSL method trains on real natural images: a short run of each on cifar10-subset.

Each method pretrains for ``--epochs`` epochs on the 10,000 train images with its own defaults
(CNN methods on resnet_tiny_s2, MAE on vit_tiny; 32 px, batch 256) and reports the loss of the
first and last epoch and the online kNN top-1 on the test split against the train split.
A few epochs show that each method learns (loss falls, kNN above the random-init backbone);
they do not rank the methods, which need far longer schedules to separate.

    python benchmarks/methods_cifar.py [--epochs 3] [--cifar DIR] [--methods simclr byol]

Writes benchmarks/results/methods_cifar.{json,md}. Skips with a message when the CIFAR folder
is absent.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from results_io import write_results

HERE = Path(__file__).resolve().parent
DEFAULT_CIFAR = HERE.parent.parent / "shared" / "data" / "cifar10-subset"


def random_init_knn(cifar: Path, backbone: str) -> float:
    """kNN top-1 of the untrained backbone: what pretraining has to beat."""
    import torch

    from edgessl.backbones import BackboneSpec, create_backbone
    from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD
    from edgessl.ssl.monitor import KnnData, knn_accuracy

    torch.manual_seed(0)
    model = create_backbone(BackboneSpec.for_images(backbone, 32))
    data = KnnData.load(cifar, 32)
    return round(knn_accuracy(model, data, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu")), 2)


def main() -> None:
    from edgessl.ssl import METHODS
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=METHODS.names())
    ap.add_argument("--work", type=Path, default=Path("benchmarks/work/methods_cifar"))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if not args.cifar.is_dir():
        print(f"skipping: '{args.cifar}' does not exist (pass --cifar DIR)")
        return
    rows = []
    baselines: dict[str, float] = {}
    for method in args.methods:
        backbone = "vit_tiny" if METHODS.get(method).needs_vit else "resnet_tiny_s2"
        if backbone not in baselines:
            baselines[backbone] = random_init_knn(args.cifar, backbone)
        t = time.perf_counter()
        result = pretrain(PretrainConfig(
            data=str(args.cifar), method=method, backbone=backbone, image_size=32,
            epochs=args.epochs, batch_size=256, eval_data=str(args.cifar),
            eval_every=args.epochs, out=str(args.work / method), force=True))
        row = {"method": method, "backbone": backbone, "epochs": args.epochs,
               "first_loss": round(result.losses[0], 4), "last_loss": round(result.losses[-1], 4),
               "knn_top1": result.history[-1]["knn_top1"],
               "random_init_knn_top1": baselines[backbone],
               "images_per_second": round(result.images_per_second, 1),
               "seconds": round(time.perf_counter() - t, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    import torch

    meta = {"command": " ".join(["python benchmarks/methods_cifar.py", *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.processor() or platform.machine()}, "
                       f"{torch.get_num_threads()} threads, torch {torch.__version__}"}
    lines = ["# Every method on cifar10-subset (CPU)", "",
             f"Command: `{meta['command']}`, {meta['date']}, {meta['machine']}.", "",
             "kNN top-1 (%): test split against the train split, k = 20. A few epochs only: "
             "this shows each method trains on natural images; it does not rank them. Read "
             "with care: DINO's loss can rise in its first epochs (teacher temperature "
             "warm-up, centring), and MAE's features are weak for kNN and linear probes "
             "before fine-tuning (He et al. 2022), so MAE can sit at or below the random "
             "backbone here.", "",
             "| method | backbone | epochs | loss first → last | kNN top-1 | random-init kNN | "
             "images/s | seconds |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['backbone']} | {r['epochs']} | {r['first_loss']} → "
                     f"{r['last_loss']} | {r['knn_top1']} | {r['random_init_knn_top1']} | "
                     f"{r['images_per_second']} | {r['seconds']} |")
    write_results(args.out, "methods_cifar", {"meta": meta, "rows": rows},
                  "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
