"""``edgessl finetune``: a few-label classifier on a backbone (images) or an encoder (text).

Text data (a .csv/.jsonl file, or class folders of .txt files; ``edgessl.text.data.is_text_set``)
goes to ``edgessl.text.workflow.finetune_text_set``; everything else to the image pipeline.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors

# Options that mean something for images only; given with text data they are an error.
IMAGE_ONLY = ("arch", "weights", "weights_key", "image_size", "hflip")


def flags_given(ctx: typer.Context, names) -> list[str]:
    """The command-line spelling (``--image-size``) of each of ``names`` the user gave."""
    by_name = {p.name: p for p in ctx.command.params}
    given = []
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.append(max(by_name[name].opts, key=len))
    return given


@app.command("finetune")
def finetune_command(
    ctx: typer.Context,
    data: Path | None = typer.Argument(
        None, help="Labeled data: train/ and val/ folders of class folders (of images, or of "
                   ".txt files with one text per line), class folders, or a .csv/.jsonl file "
                   "with text and label columns.",
        show_default="the built-in digits"),
    backbone: str | None = typer.Option(
        None, help="edgessl checkpoint folder, a pretrained start (efficientnet_lite0.in1k, "
                   "...), a weights file for --arch (.safetensors, .pt/.pth: tensors only), "
                   "'scratch[:NAME]', or an architecture ('timm:NAME', an edgessl name; see "
                   "'edgessl backbones') that gets --weights, or timm's hub weights without it. "
                   "Text data: a text start (all-minilm-l6-v2) or a local Hugging Face "
                   "BERT/GPT-2 folder.",
        show_default="the best pretrained start installed (efficientnet_lite0.in1k); "
                     "all-minilm-l6-v2 for text"),
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
        None, help="linear (a linear probe on frozen features) or full (fine-tune everything); "
                   "text data also takes the other text modes ('edgessl finetune --mode x' "
                   "lists them).",
        show_default="linear for a pretrained backbone, full for scratch"),
    labels_per_class: int | None = typer.Option(
        None, "--labels-per-class", "-k", help="Labels per class.", show_default="all"),
    image_size: int | None = typer.Option(
        None, help="Image side in pixels.",
        show_default="the checkpoint's; 32 for scratch; for a pretrained start its "
                     "training size (224 for efficientnet_lite0.in1k)"),
    epochs: int | None = typer.Option(
        None, help="Epochs of --mode full; text --mode setfit: rounds of sentence pairs.",
        show_default="50; text: 20"),
    lr: float | None = typer.Option(
        None, help="Learning rate of --mode full (AdamW); text --mode setfit: of its pair "
                   "training.", show_default="2e-3; text: 5e-5 (full), 1e-4 (setfit)"),
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
        from edgessl.text.data import is_text_set

        if data is not None and is_text_set(data):
            from edgessl.text.workflow import TextFinetuneRun, finetune_text_set, refuse_image_flags

            refuse_image_flags(flags_given(ctx, IMAGE_ONLY), f"data '{data}'")
            result, path = finetune_text_set(TextFinetuneRun(
                data=str(data), encoder=backbone, mode=mode, labels_per_class=labels_per_class,
                seed=seed, epochs=epochs, lr=lr, probe_c=probe_c,
                out=str(out) if out else None, force=force))
            metrics = result.card["metrics"]
            echo(f"saved {path}  val top-1 {100 * metrics['top1']:.1f}% on "
                 f"{metrics['examples']} texts")
            return
        if mode == "linear" and flags_given(ctx, ["hflip"]):
            from edgessl.errors import ConfigError

            raise ConfigError("--hflip applies to --mode full (its augmentation); the linear "
                              "probe sees each image once, unflipped: leave --hflip out, or "
                              "pass --mode full")
        cfg = FinetuneConfig(
            data=str(data) if data else None, backbone=backbone, arch=arch,
            weights=str(weights) if weights else None, weights_key=weights_key, mode=mode,
            labels_per_class=labels_per_class, image_size=image_size, epochs=epochs, lr=lr,
            probe_c=probe_c,
            hflip=hflip, seed=seed, out=str(out) if out else None, force=force)
        result = finetune(cfg)
    echo(f"saved {result.path}  val top-1 {100 * result.metrics['top1']:.1f}% "
         f"on {result.metrics['samples']} images")
