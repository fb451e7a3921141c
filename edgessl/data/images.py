"""Finding and decoding images safely: corrupt files are skipped and counted, never fatal."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from edgessl.errors import DataError

log = logging.getLogger("edgessl")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def require_dir(path: str | Path, what: str = "data folder") -> Path:
    """Return ``path`` as a Path, or raise a DataError if it is not an existing folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{what} '{path}' does not exist; check the path")
    if not path.is_dir():
        raise DataError(f"{what} '{path}' is not a folder; pass a folder of images")
    return path


def list_image_files(root: Path) -> list[Path]:
    """All files under ``root`` (recursively, sorted) whose extension is an image extension."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                files.append(Path(dirpath) / name)
    return files


def open_rgb(path: str | Path):
    """Decode one image as RGB (grayscale, palette, RGBA, 16-bit and CMYK are converted).

    Returns:
        A ``PIL.Image.Image`` in RGB mode.

    Raises:
        OSError/ValueError (from Pillow) when the file is not a decodable image.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                img = img.point(lambda v: v / 256).convert("L")
            return img.convert("RGB")


def is_readable_image(path: Path) -> bool:
    """True when ``path`` decodes as an image (cheap header check plus full decode)."""
    try:
        open_rgb(path)
    except Exception:  # noqa: BLE001 - any decoder failure means "skip this file"
        return False
    return True


def usable_images(paths: list[Path], root: Path) -> list[Path]:
    """Keep the images that decode; warn once with the count of skipped files.

    Raises:
        DataError: when no file under ``root`` is a usable image.
    """
    good = [p for p in paths if is_readable_image(p)]
    skipped = len(paths) - len(good)
    if skipped:
        log.warning("skipped %d unreadable or corrupt image file(s) under %s", skipped, root)
    if not good:
        raise DataError(
            f"no usable image in '{root}' (looked for {', '.join(IMAGE_EXTENSIONS)}); "
            "point to a folder that holds images"
        )
    return good


def find_images(root: str | Path, what: str = "image folder") -> list[Path]:
    """All usable images under ``root``, recursively; labels (subfolders) are ignored."""
    root = require_dir(root, what)
    return usable_images(list_image_files(root), root)
