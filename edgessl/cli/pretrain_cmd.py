"""``edgessl pretrain``: self-supervised pretraining.

Every flag left out keeps the value of the ``--config`` recipe, else the default of
``PretrainConfig``; ``--aug`` and ``--opt`` change single fields of the method's augmentation
preset and options. Run under ``torchrun --nproc_per_node N -m edgessl pretrain ...`` for DDP.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors


@app.command("pretrain")
def pretrain_command(
    data: Path | None = typer.Argument(None, help="Unlabeled images (default: built-in digits)."),
    config: Path | None = typer.Option(
        None, "--config", help="TOML recipe of these settings; flags given here override it."),
    method: str | None = typer.Option(
        None, help="SSL method: simclr, moco, byol, dino, vicreg, mae [simclr]."),
    backbone: str | None = typer.Option(
        None, help="edgessl/timm name (timm:NAME), checkpoint folder or weights file "
                   "[resnet_tiny]; see `edgessl backbones`."),
    weights: Path | None = typer.Option(
        None, help="Start from these weights (.safetensors, or .pt/.pth read weights-only)."),
    weights_key: str | None = typer.Option(
        None, help="Part of --weights to load (e.g. teacher, student, state_dict)."),
    image_size: int | None = typer.Option(None, help="Training resolution in pixels [32]."),
    epochs: int | None = typer.Option(None, help="Passes over the data [30]."),
    batch_size: int | None = typer.Option(None, help="Images per step, all processes [256]."),
    optimizer: str | None = typer.Option(None, help="sgd or adamw [the method's]."),
    lr: float | None = typer.Option(
        None, help="Peak learning rate [the method's base LR x batch / 256]."),
    weight_decay: float | None = typer.Option(
        None, help="Weight decay, not on norms/biases [1e-4 SGD, 0.05 AdamW]."),
    warmup_epochs: int | None = typer.Option(None, help="Linear warm-up epochs [2]."),
    grad_clip: float | None = typer.Option(None, help="Clip the gradient norm (0 = off) [0]."),
    seed: int | None = typer.Option(None, help="Random seed [0]."),
    aug: list[str] | None = typer.Option(
        None, "--aug", help="Augmentation field KEY=VALUE, repeatable (e.g. blur_p=0, "
                            "crop_scale=0.08,1, local_crops=4)."),
    opt: list[str] | None = typer.Option(
        None, "--opt", help="Method option KEY=VALUE, repeatable (e.g. temperature=0.1)."),
    hflip: float | None = typer.Option(None, help="Flip probability (same as --aug hflip=P)."),
    eval_data: Path | None = typer.Option(
        None, help="Labeled folder for the online kNN top-1 (train/ + val/ or class folders)."),
    eval_every: int | None = typer.Option(None, help="Epochs between kNN evaluations [1]."),
    knn_k: int | None = typer.Option(None, help="Neighbours of the kNN classifier [20]."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N [auto]."),
    precision: str | None = typer.Option(
        None, help="auto (bf16 on capable GPUs), fp32 or bf16 [auto]."),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="NHWC layout [on for CNNs]."),
    compile_model: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the backbone [off]."),
    sync_bn: bool | None = typer.Option(
        None, "--sync-bn/--no-sync-bn", help="SyncBatchNorm under torchrun [off]."),
    out: Path | None = typer.Option(None, help="Checkpoint folder (default models/...)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the unfinished run in --out (same flags)."),
) -> None:
    """Pretrain a backbone on unlabeled images; writes model.safetensors, card.json and history."""
    from edgessl.config import from_dict
    from edgessl.errors import ConfigError
    from edgessl.ssl.pretrain import PretrainConfig, pretrain
    from edgessl.ssl.recipe import load_recipe, merge, parse_assignments

    with user_errors():
        if resume and force:
            raise ConfigError("--resume continues the run in --out and --force replaces it; "
                              "pass only one of them")
        augment = parse_assignments(aug, "--aug")
        if hflip is not None:
            augment["hflip"] = hflip
        flags = {
            "data": str(data) if data else None, "method": method, "backbone": backbone,
            "weights": str(weights) if weights else None, "weights_key": weights_key,
            "image_size": image_size, "epochs": epochs, "batch_size": batch_size,
            "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
            "warmup_epochs": warmup_epochs, "grad_clip": grad_clip, "seed": seed,
            "augment_overrides": augment or None,
            "method_options": parse_assignments(opt, "--opt") or None,
            "eval_data": str(eval_data) if eval_data else None, "eval_every": eval_every,
            "knn_k": knn_k, "device": device, "precision": precision,
            "channels_last": channels_last, "compile": compile_model, "sync_bn": sync_bn,
            "out": str(out) if out else None, "force": force or None, "resume": resume or None,
        }
        recipe = load_recipe(config) if config else {}
        cfg = from_dict(PretrainConfig, merge(recipe, flags),
                        where=f"recipe '{config}'" if config else "pretrain flags")
        result = pretrain(cfg)
    if os.environ.get("RANK", "0") != "0":  # torchrun: the first process reports
        return
    last = result.history[-1] if result.history else {}
    knn = f"  kNN top-1 {last['knn_top1']:.1f}%" if last.get("knn_top1") is not None else ""
    echo(f"saved {result.path}  final loss {result.losses[-1]:.4f}{knn}  "
         f"{result.images_per_second:.0f} images/s  {result.seconds:.0f} s")
