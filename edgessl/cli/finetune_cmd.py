"""``edgessl finetune``: a few-label classifier on a backbone."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors


@app.command("finetune")
def finetune_command(
    data: Path | None = typer.Argument(None, help="Labeled data (default: built-in digits)."),
    backbone: str = typer.Option(
        "scratch", help="edgessl checkpoint folder, a weights file for --arch (.safetensors, "
                        ".pt/.pth: tensors only), 'scratch[:NAME]', or an architecture "
                        "('timm:NAME', an edgessl name; see 'edgessl backbones') that gets "
                        "--weights, or timm's hub weights without it."),
    arch: str = typer.Option("resnet_tiny",
                             help="Architecture for plain 'scratch' or a weights file."),
    weights: Path | None = typer.Option(
        None, help="Weights for --backbone's architecture: .safetensors, or .pt/.pth holding "
                   "tensors only; SSL checkpoints (DINO, MoCo, MAE, solo-learn, ...) load "
                   "as they are."),
    weights_key: str | None = typer.Option(
        None, "--weights-key", help="Part of --weights to take: a nested dict ('student') or "
                                    "a name prefix ('module.momentum_encoder'); default: the "
                                    "teacher where there is one."),
    mode: str | None = typer.Option(
        None, help="linear | full (default: linear for pretrained, full for scratch)."),
    labels_per_class: int | None = typer.Option(
        None, "--labels-per-class", "-k", help="Labels per class (default: all)."),
    image_size: int | None = typer.Option(None, help="Pixels (default: the backbone's)."),
    epochs: int | None = typer.Option(None, help="Epochs of --mode full (default 50)."),
    lr: float | None = typer.Option(None, help="Learning rate of --mode full (AdamW, 2e-3)."),
    probe_c: float | None = typer.Option(
        None, help="Linear probe: inverse L2 regularisation (scikit-learn's C) "
                   "[chosen by cross-validation on the labeled images]."),
    hflip: float = typer.Option(0.5, help="Flip probability in full fine-tuning."),
    seed: int = typer.Option(0, help="Seed of the label subset, split and training."),
    out: Path | None = typer.Option(None, help="Checkpoint folder (default models/...)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
) -> None:
    """Train a classifier on K labels per class and evaluate it on the val split."""
    from edgessl.finetune.train import FinetuneConfig, finetune

    with user_errors():
        cfg = FinetuneConfig(
            data=str(data) if data else None, backbone=backbone, arch=arch,
            weights=str(weights) if weights else None, weights_key=weights_key, mode=mode,
            labels_per_class=labels_per_class, image_size=image_size, epochs=epochs, lr=lr,
            probe_c=probe_c,
            hflip=hflip, seed=seed, out=str(out) if out else None, force=force)
        result = finetune(cfg)
    echo(f"saved {result.path}  val top-1 {100 * result.metrics['top1']:.1f}% "
         f"on {result.metrics['samples']} images")
