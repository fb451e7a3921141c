"""``edgessl finetune``: a few-label classifier on a backbone."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors


@app.command("finetune")
def finetune_command(
    data: Path | None = typer.Argument(
        None, help="Labeled data: train/ and val/ folders of class folders, or class folders.",
        show_default="the built-in digits"),
    backbone: str | None = typer.Option(
        None, help="edgessl checkpoint folder, a pretrained start (efficientnet_lite0.in1k, "
                   "...), a weights file for --arch (.safetensors, .pt/.pth: tensors only), "
                   "'scratch[:NAME]', or an architecture ('timm:NAME', an edgessl name; see "
                   "'edgessl backbones') that gets --weights, or timm's hub weights without it.",
        show_default="the best pretrained start installed (efficientnet_lite0.in1k)"),
    arch: str = typer.Option("resnet_tiny",
                             help="Architecture for plain 'scratch' or a weights file."),
    weights: Path | None = typer.Option(
        None, help="Weights for --backbone's architecture: .safetensors, or .pt/.pth holding "
                   "tensors only; SSL checkpoints (DINO, MoCo, MAE, solo-learn, ...) load "
                   "as they are."),
    weights_key: str | None = typer.Option(
        None, "--weights-key", help="Part of --weights to take: a nested dict ('student') or "
                                    "a name prefix ('module.momentum_encoder').",
        show_default="the teacher, where there is one"),
    mode: str | None = typer.Option(
        None, help="linear (a linear probe on frozen features) or full (fine-tune everything).",
        show_default="linear for a pretrained backbone, full for scratch"),
    labels_per_class: int | None = typer.Option(
        None, "--labels-per-class", "-k", help="Labels per class.", show_default="all"),
    image_size: int | None = typer.Option(
        None, help="Image side in pixels.",
        show_default="the checkpoint's; 32 for scratch; for a pretrained start the data's "
                     "typical side, 128 to the start's training size"),
    epochs: int | None = typer.Option(
        None, help="Epochs of --mode full.", show_default="50"),
    lr: float | None = typer.Option(
        None, help="Learning rate of --mode full (AdamW).", show_default="2e-3"),
    probe_c: float | None = typer.Option(
        None, help="Linear probe: inverse L2 regularisation (scikit-learn's C).",
        show_default="chosen by cross-validation on the labeled images"),
    hflip: float = typer.Option(0.5, help="Flip probability in full fine-tuning."),
    seed: int = typer.Option(0, help="Seed of the label subset, split and training."),
    out: Path | None = typer.Option(
        None, help="Checkpoint folder.", show_default="models/<name>"),
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
