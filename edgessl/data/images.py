"""Finding and decoding images safely: corrupt files are skipped and counted, never fatal."""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from pathlib import Path

from edgessl.errors import DataError
from edgessl.limits import MAX_ASPECT_RATIO, check_image_shape

log = logging.getLogger("edgessl")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Transparent pixels are shown on white, as a browser or an image viewer shows them. Without
# this, PIL's convert("RGB") keeps whatever colour a transparent pixel happens to store (black,
# or a palette entry), so the same icon arrives on a different background from file to file.
# On Noto emoji (9 categories, 10 labels each) that cost EfficientNet-Lite0 5 points.
ALPHA_BACKGROUND = (255, 255, 255)


def to_rgb(image):
    """A PIL image in RGB mode; transparency (RGBA, LA, PA, or a palette/greyscale image with a
    transparent colour) is composited onto ``ALPHA_BACKGROUND``."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def require_dir(path: str | Path, what: str = "data folder") -> Path:
    """Return ``path`` as a Path, or raise a DataError if it is not an existing folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{what} '{path}' does not exist; check the path")
    if not path.is_dir():
        raise DataError(f"{what} '{path}' is not a folder; pass a folder of images")
    return path


def is_image_name(name: str) -> bool:
    """A file name with an image extension that is not hidden (``.name``)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def list_image_files(root: Path) -> list[Path]:
    """All files under ``root`` (recursively, sorted) whose extension is an image extension."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if is_image_name(name):
                files.append(Path(dirpath) / name)
    return files


def open_rgb(path, min_side: int | None = None):
    """Decode one image as RGB, upright (grayscale, palette, RGBA, 16-bit and CMYK converted).

    Every image edgessl reads goes through here (training data, predict, calibration, the
    deploy runtime), so the EXIF orientation a phone writes is applied once for all of them:
    a portrait photo stored sideways with ``Orientation = 6`` arrives upright.

    Args:
        path: a file path or a binary file object.
        min_side: the size the caller will shrink the image to, in pixels. When given, a large
            image is decoded small: a JPEG at 1/2 to 1/8 scale by its decoder (``draft``), any
            other format reduced by an integer factor right after decoding, keeping the shorter
            side at least ``2 * min_side``. A 50-megapixel photo then costs a few MiB, not 150.

    Returns:
        A ``PIL.Image.Image`` in RGB mode.

    Raises:
        DataError: when its sides differ more than ``edgessl.limits.MAX_ASPECT_RATIO`` times
            (checked from the header, before decoding).
        OSError/ValueError (from Pillow) when the file is not a decodable image;
        ``PIL.Image.DecompressionBombWarning``/``DecompressionBombError`` when its header
        claims more pixels than Pillow's limit (``Image.MAX_IMAGE_PIXELS``).
    """
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            check_image_shape(*img.size, str(getattr(path, "name", path)))
            if min_side:
                img.draft(None, (2 * min_side, 2 * min_side))  # JPEG only; others ignore it
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                img = img.point(lambda v: v / 256).convert("L")
            elif img.mode == "F":
                img = img.point(lambda v: v * 255).convert("L")
            if min_side and min(img.size) >= 4 * min_side:
                img = img.reduce(min(img.size) // (2 * min_side))
            # after the reduction, so the rotation copies the small image, not the full one
            return ImageOps.exif_transpose(to_rgb(img))


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image ("empty file", "truncated", ...), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        open_rgb(path, min_side=32)
    except DataError:  # the only one open_rgb raises: edgessl.limits.MAX_ASPECT_RATIO
        return f"side ratio over {MAX_ASPECT_RATIO}:1"
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return f"decompression bomb (over Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels)"
    except UnidentifiedImageError:
        return "not an image"
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip this file"
        text = str(exc).lower()
        cut = any(m in text for m in ("truncated", "broken data stream", "premature end"))
        return "truncated" if cut else f"corrupt ({type(exc).__name__}: {text[:60]})"
    return None


def is_readable_image(path: Path) -> bool:
    """True when ``path`` decodes as an image (cheap header check plus full decode)."""
    return image_problem(path) is None


def usable_images(paths: list[Path], root: Path) -> list[Path]:
    """Keep the images that decode; warn once with the count of skipped files and why.

    Raises:
        DataError: when no file under ``root`` is a usable image.
    """
    good, problems = [], {}
    for p in paths:
        problem = image_problem(p)
        if problem is None:
            good.append(p)
        else:
            problems[p] = problem
    if problems:
        reasons = Counter(problems.values())
        first = next(iter(problems))
        log.warning("skipped %d unreadable or corrupt image file(s) under %s: %s; first: %s (%s)",
                    len(problems), root, ", ".join(f"{n} {r}" for r, n in reasons.most_common()),
                    first, problems[first])
    if not good:
        raise DataError(
            f"no usable image in '{root}' (looked for {', '.join(IMAGE_EXTENSIONS)}"
            + (f"; skipped {len(problems)} unreadable file(s)" if problems else "")
            + "); point to a folder that holds images"
        )
    return good


def find_images(root: str | Path, what: str = "image folder") -> list[Path]:
    """All usable images under ``root``, recursively; labels (subfolders) are ignored."""
    root = require_dir(root, what)
    return usable_images(list_image_files(root), root)


def typical_side(paths, sample: int = 64) -> int | None:
    """The median shorter side (px) of up to ``sample`` of ``paths``, read from their headers.

    Nothing is decoded (Pillow reads the size from the header), so this costs milliseconds.
    Returns None when no file could be read.
    """
    import statistics

    from PIL import Image

    paths = list(paths)
    step = max(1, len(paths) // sample)
    sides = []
    for path in paths[::step][:sample]:
        try:
            with Image.open(path) as img:
                sides.append(min(img.size))
        except (OSError, ValueError):
            continue
    return int(statistics.median(sides)) if sides else None
