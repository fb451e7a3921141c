"""``edgessl data``: built-in datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import EdgesslTyper, app, echo, user_errors

data_app = EdgesslTyper(help="Write a built-in dataset to a folder.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _digits_entry(path: Path) -> bool:
    """What ``write_digits`` puts in its folder (train/, val/ and the marker file)."""
    from edgessl.data.digits import DIGITS_MARKER

    if path.is_symlink():
        return False
    if path.is_dir():
        return path.name in ("train", "val")
    return path.name == DIGITS_MARKER


@data_app.command("digits")
def digits(
    out_dir: Path = typer.Argument(..., help="Folder to write train/ and val/ ImageFolders to."),
    image_size: int = typer.Option(32, help="Side of the written PNGs in pixels."),
    val_fraction: float = typer.Option(0.2, help="Share of each class in val/."),
    seed: int = typer.Option(0, help="Seed of the stratified split."),
    force: bool = typer.Option(False, "--force",
                               help="Replace an OUT_DIR written by an earlier 'data digits'."),
) -> None:
    """scikit-learn's 1,797 real handwritten digits as 32x32 RGB PNGs, split train/val."""
    from edgessl.data.digits import write_digits

    with user_errors():
        from edgessl.config import MAX_SEED, Range, check_value
        from edgessl.io import check_replaceable
        from edgessl.limits import MAX_IMAGE_SIDE

        check_value("image_size", image_size, Range(ge=1, le=MAX_IMAGE_SIDE, note="pixels"),
                    "--image-size")
        check_value("val_fraction", val_fraction, Range(gt=0, lt=1), "--val-fraction")
        check_value("seed", seed, Range(ge=0, le=MAX_SEED), "--seed")
        check_replaceable(out_dir, force, "OUT_DIR", own=_digits_entry,
                          what="an earlier digits folder")
        path = write_digits(out_dir, image_size, val_fraction, seed, force)
    echo(f"wrote the digits dataset to {path} (train/ and val/, 10 classes)")
