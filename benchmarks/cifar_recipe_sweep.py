"""Pick the CIFAR pretraining recipe for a 30-minute CPU budget (run on a GPU machine).

The label-efficiency benchmark allows about 30 minutes of SimCLR pretraining on this 2-core
CPU. This script replays candidate recipes at the epoch count each one reaches in that budget
on the CPU (measured with ``benchmarks/pretrain_throughput.py``-style timing, passed in as
``--epochs``), on whatever device is present, and scores each backbone with a linear probe at
10 labels per class (3 label subsets) and a 20-NN classifier on all labels. Only the choice of
recipe comes from here; the committed numbers come from ``benchmarks/label_efficiency.py`` on
the CPU.

    python benchmarks/cifar_recipe_sweep.py --data DIR --out results.json [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def load_folder(root: Path) -> tuple[torch.Tensor, np.ndarray]:
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    xs, ys = [], []
    for i, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            xs.append(np.asarray(Image.open(f).convert("RGB").resize((32, 32))))
            ys.append(i)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    return x, np.array(ys)


def make_backbone(kind: str):
    from timm.models.resnet import BasicBlock, ResNet

    from edgessl.backbones.factory import Backbone, BackboneSpec, apply_small_image_stem

    ch, stride1, layers = {
        "tiny_small": ((32, 64, 128, 256), True, (1, 1, 1, 1)),
        "tiny_s2": ((32, 64, 128, 256), False, (1, 1, 1, 1)),
        "w48_s2": ((48, 96, 192, 384), False, (1, 1, 1, 1)),
        "tiny_s2_l2": ((32, 64, 128, 256), False, (2, 2, 2, 2)),
        "small16_small": ((16, 32, 64, 128), True, (1, 1, 1, 1)),
    }[kind]
    m = ResNet(BasicBlock, layers, num_classes=0, channels=ch, stem_width=ch[0])
    if stride1:
        apply_small_image_stem(m)
    else:
        m.maxpool = torch.nn.Identity()
    return Backbone(m, BackboneSpec(kind, 32, stride1))


CONFIGS = {
    "tiny_small_e12": dict(bb="tiny_small", epochs=12),
    "tiny_s2_e60": dict(bb="tiny_s2", epochs=60),
    "tiny_s2_e60_b128": dict(bb="tiny_s2", epochs=55, batch=128),
    "tiny_s2_e60_t05": dict(bb="tiny_s2", epochs=60, temperature=0.5),
    "tiny_s2_e60_crop08": dict(bb="tiny_s2", epochs=60, crop=(0.08, 1.0)),
    "tiny_s2_e60_lr1": dict(bb="tiny_s2", epochs=60, lr=1.0),
    "tiny_s2_e60_noblur": dict(bb="tiny_s2", epochs=60, blur=0.0),
    "w48_s2_e45": dict(bb="w48_s2", epochs=45),
    "tiny_s2_l2_e48": dict(bb="tiny_s2_l2", epochs=48),
    "small16_small_e30": dict(bb="small16_small", epochs=30),
    # round 2: combine the two best changes, check seed noise and the epoch sensitivity
    "tiny_s2_e60_noblur_crop08": dict(bb="tiny_s2", epochs=60, blur=0.0, crop=(0.08, 1.0)),
    "tiny_s2_e60_noblur_s1": dict(bb="tiny_s2", epochs=60, blur=0.0, seed=1),
    "tiny_s2_e80_noblur": dict(bb="tiny_s2", epochs=80, blur=0.0),
    "tiny_s2_e45_noblur": dict(bb="tiny_s2", epochs=45, blur=0.0),
}


@torch.no_grad()
def features(backbone, x: torch.Tensor, device) -> np.ndarray:
    backbone.eval()
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(x), 1000):
        b = x[i:i + 1000].to(device).float() / 255
        out.append(backbone((b - mean) / std).float().cpu())
    return torch.cat(out).numpy()


def score(ftr, ytr, fte, yte) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    a = ftr / np.linalg.norm(ftr, axis=1, keepdims=True)
    b = fte / np.linalg.norm(fte, axis=1, keepdims=True)
    sims = b @ a.T
    top = np.argsort(-sims, 1)[:, :20]
    votes = np.zeros((len(b), 10))
    for j in range(20):
        rows = np.arange(len(b))
        np.add.at(votes, (rows, ytr[top[:, j]]), np.exp(sims[rows, top[:, j]] / 0.07))
    knn = float((votes.argmax(1) == yte).mean())
    probes = {}
    for c in (0.03, 0.1, 0.3, 1.0):
        accs = []
        for seed in range(3):
            rng = np.random.default_rng(seed)
            idx = np.concatenate([rng.permutation(np.flatnonzero(ytr == k))[:10]
                                  for k in range(10)])
            sc = StandardScaler().fit(ftr[idx])
            lr = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(ftr[idx]), ytr[idx])
            accs.append(float((lr.predict(sc.transform(fte)) == yte).mean()))
        probes[f"probe10_C{c}"] = float(np.mean(accs))
    return {"knn20": knn, **probes}


def run(name: str, cfg: dict, data: Path, device: str) -> dict:
    from edgessl.ssl.augment import AugmentConfig, BatchViews
    from edgessl.ssl.simclr import SimCLR, SimCLRConfig
    from edgessl.training import cosine_with_warmup, param_groups

    torch.manual_seed(cfg.get("seed", 0))
    xtr, ytr = load_folder(data / "train")
    xte, yte = load_folder(data / "test")
    model = SimCLR(make_backbone(cfg["bb"]), SimCLRConfig(temperature=cfg.get("temperature", 0.2)))
    model = model.to(device).train()
    aug = AugmentConfig(crop_scale=cfg.get("crop", (0.2, 1.0)), blur_p=cfg.get("blur", 0.5))
    views = BatchViews(aug, 32, MEAN, STD, 2)
    batch, epochs = cfg.get("batch", 256), cfg["epochs"]
    lr = cfg.get("lr", 0.5) * batch / 256
    opt = torch.optim.SGD(param_groups(model, 1e-4), lr=lr, momentum=0.9)
    steps = len(xtr) // batch
    sched = cosine_with_warmup(opt, epochs * steps, 2 * steps)
    start = time.perf_counter()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(xtr))
        total = 0.0
        for s in range(steps):
            batch_images = xtr[order[s * batch:(s + 1) * batch]]
            v = [t.to(device, non_blocking=True) for t in views(batch_images)]
            loss, _ = model(v)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        losses.append(total / steps)
    seconds = time.perf_counter() - start
    result = score(features(model.backbone, xtr, device), ytr,
                   features(model.backbone, xte, device), yte)
    return {"name": name, **cfg, "seconds": round(seconds, 1), "final_loss": losses[-1], **result}


def scratch(arch: str, seed: int, k: int, data: Path) -> dict:
    """edgessl's own full fine-tune from random weights on ``k`` labels per class."""
    from edgessl.finetune.train import FinetuneConfig, finetune

    register_variants()
    r = finetune(FinetuneConfig(data=str(data), backbone=f"scratch:{arch}", mode="full",
                                labels_per_class=k, seed=seed, out=f"/tmp/scratch-{arch}-{seed}",
                                force=True))
    return {"name": f"scratch_{arch}_k{k}_s{seed}", "top1": r.metrics["top1"]}


def register_variants() -> None:
    """The sweep's backbones as edgessl names (for ``scratch:NAME``)."""
    from edgessl.backbones import BACKBONES

    for kind in ("tiny_s2", "tiny_small"):
        if kind not in BACKBONES:
            def factory(kind=kind):
                m = make_backbone(kind).model
                m.built_for_small_images = True
                return m
            BACKBONES.register(kind, factory)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--scratch", nargs=3, metavar=("ARCH", "SEED", "K"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.scratch:
        arch, seed, k = args.scratch
        r = scratch(arch, int(seed), int(k), args.data)
        print(json.dumps(r), flush=True)
        args.out.write_text(json.dumps(r))
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = []
    for name in args.only or list(CONFIGS):
        r = run(name, CONFIGS[name], args.data, device)
        print(json.dumps(r), flush=True)
        results.append(r)
    args.out.write_text(json.dumps({"device": device, "results": results}, indent=1))


if __name__ == "__main__":
    main()
