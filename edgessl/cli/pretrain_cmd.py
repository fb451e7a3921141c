"""``edgessl pretrain``: self-supervised pretraining."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors


@app.command("pretrain")
def pretrain_command(
    data: Path | None = typer.Argument(None, help="Unlabeled images (default: built-in digits)."),
    method: str = typer.Option("simclr", help="SSL method."),
    backbone: str = typer.Option("resnet_tiny", help="edgessl or timm backbone name."),
    image_size: int = typer.Option(32, help="Training resolution in pixels."),
    epochs: int = typer.Option(30, help="Passes over the data."),
    batch_size: int = typer.Option(256, help="Images per step."),
    lr: float = typer.Option(0.5, help="Peak learning rate (SGD, cosine schedule)."),
    seed: int = typer.Option(0, help="Random seed."),
    hflip: float | None = typer.Option(None, help="Override the flip probability (0 = off)."),
    out: Path | None = typer.Option(None, help="Checkpoint folder (default models/...)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the unfinished run in --out (same flags)."),
) -> None:
    """Pretrain a backbone on unlabeled images; writes model.safetensors and card.json."""
    import dataclasses

    from edgessl.ssl import METHODS
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    with user_errors():
        if resume and force:
            from edgessl.errors import ConfigError

            raise ConfigError("--resume continues the run in --out and --force replaces it; "
                              "pass only one of them")
        augment = None
        if hflip is not None:
            augment = dataclasses.replace(METHODS.get(method).augment, hflip=hflip)
        cfg = PretrainConfig(
            data=str(data) if data else None, method=method, backbone=backbone,
            image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
            augment=augment, out=str(out) if out else None, force=force, resume=resume)
        result = pretrain(cfg)
    echo(f"saved {result.path}  final loss {result.losses[-1]:.4f}  "
         f"{result.images_per_second:.0f} images/s  {result.seconds:.0f} s")
