"""``edgessl compare``: which start to ship, cross-validated on your labeled images."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors
from edgessl.cli.finetune_cmd import flags_given

# Flags that only some arms use (a flag given while --arms has none of them is ignored).
ARM_FLAGS = {"ssl_epochs": ("ssl",), "continued_epochs": ("pretrained_ssl",),
             "full_epochs": ("scratch", "pretrained_full"),
             "start": ("pretrained", "pretrained_full", "pretrained_ssl"),
             "pretrained_size": ("pretrained", "pretrained_full", "pretrained_ssl"),
             "arch": ("scratch", "ssl"), "hflip": ("scratch", "pretrained_full")}


def warn_unused_flags(ctx: typer.Context, arms: tuple[str, ...]) -> None:
    """Say which given flags no arm of ``arms`` uses, rather than ignoring them silently."""
    for name, users in ARM_FLAGS.items():
        if not set(users) & set(arms):
            for flag in flags_given(ctx, [name]):
                logging.getLogger("edgessl").warning(
                    "%s is used only by the %s arm%s, and --arms has none: it is ignored",
                    flag, ", ".join(users), "s" if len(users) > 1 else "")


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    data: Path | None = typer.Argument(
        None, help="Labeled images: class folders (or train/ and val/ folders, pooled).",
        show_default="the built-in digits"),
    unlabeled: Path | None = typer.Option(
        None, help="Unlabeled images for the SSL arms.",
        show_default="the data folder's images outside the compared labels"),
    labels_per_class: int | None = typer.Option(
        None, "--labels-per-class", "-k", help="Labeled images of each class to compare at.",
        show_default="all"),
    folds: int = typer.Option(3, help="Stratified cross-validation folds."),
    arms: str = typer.Option(
        "pixels,scratch,ssl,pretrained,pretrained_full,pretrained_ssl",
        help="Comma-separated starts to compare."),
    start: str = typer.Option("efficientnet_lite0.in1k",
                              help="Pretrained start (see 'edgessl backbones')."),
    arch: str = typer.Option("resnet_tiny_s2", help="Architecture of scratch and SSL."),
    image_size: int = typer.Option(32, help="Image side for pixels, scratch and SSL."),
    pretrained_size: int | None = typer.Option(
        None, help="Image side for the pretrained arms.",
        show_default="finetune's for the start and these images (128 px and up)"),
    ssl_epochs: int = typer.Option(30, help="Epochs of SSL from scratch."),
    continued_epochs: int = typer.Option(5, help="Epochs of SSL continued from the start."),
    full_epochs: int = typer.Option(30, help="Epochs of each full fine-tune."),
    hflip: float = typer.Option(0.5, help="Flip probability in full fine-tunes."),
    seed: int = typer.Option(0, help="Seed of labels, folds and training."),
    out: Path = typer.Option(Path("compare"), help="Folder for compare.json/.md/.png."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """Cross-validate pixels, scratch, SSL, a pretrained start (frozen and fine-tuned) and
    pretrained + continued SSL on your labeled images, and say which to ship."""
    from edgessl.compare import CompareConfig, compare
    from edgessl.compare.report import format_table

    with user_errors():
        names = [a.strip() for a in arms.split(",")]
        if any(names) and not all(names):  # "pixels,,ssl": a typo, not a shorter list
            from edgessl.errors import ConfigError, printable

            raise ConfigError(f"--arms '{printable(arms)}' has an empty item; write "
                              "comma-separated arm names like pixels,scratch,ssl")
        cfg = CompareConfig(
            data=str(data) if data else None, unlabeled=str(unlabeled) if unlabeled else None,
            labels_per_class=labels_per_class, folds=folds,
            arms=tuple(a for a in names if a), start=start,
            arch=arch, image_size=image_size, pretrained_size=pretrained_size,
            ssl_epochs=ssl_epochs, continued_epochs=continued_epochs, full_epochs=full_epochs,
            hflip=hflip, seed=seed, out=str(out), force=force)
        warn_unused_flags(ctx, cfg.arms)
        result = compare(cfg)
    echo(format_table(result))
    echo(f"wrote {result.path}/compare.json, compare.md, compare.png")
