"""Finding and decoding images safely: corrupt files are skipped and counted, never fatal."""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgessl.errors import DataError
from edgessl.limits import MAX_ASPECT_RATIO, check_image_shape

log = logging.getLogger("edgessl")

# Every format here is decoded by Pillow's own wheels (>= 10), with no plugin to install. A
# GIF is read as its first frame; netpbm (.ppm/.pgm/.pbm/.pnm) and JPEG 2000 are common in
# scientific and older datasets, .jfif is plain JPEG under another name.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif",
                    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k")
# Files a user may take for images that edgessl does not read (HEIF/AVIF/JPEG XL, which need
# a Pillow plugin; floating-point and HDR, camera raw, vector, layered, medical, ...). They are
# skipped, but never silently: a load says how many, and a folder holding only these says so
# in its error. Any other file (a README, .txt, .csv, .json, .DS_Store) is ignored unremarked.
OTHER_IMAGE_EXTENSIONS = frozenset((
    ".heic", ".heif", ".avif", ".jxl", ".jpf", ".jpx", ".pfm", ".ico", ".icns", ".psd", ".svg",
    ".eps", ".exr", ".hdr", ".dds", ".dng", ".raw", ".cr2", ".cr3", ".nef", ".arw", ".orf",
    ".rw2", ".raf", ".dcm",
))
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
        if path.is_symlink():
            raise DataError(f"{what} '{path}' is a {broken_link(path)}; point the link at an "
                            "existing folder, or pass the folder itself")
        raise DataError(f"{what} '{path}' does not exist; check the path")
    if not path.is_dir():
        if path.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise DataError(f"{what} '{path}' is an archive, not a folder; unpack it and pass "
                            "the folder it holds")
        raise DataError(f"{what} '{path}' is not a folder; pass a folder of images")
    return path


# Datasets are often downloaded packed; given as data they are named as what they are.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".7z", ".rar")


def is_image_name(name: str) -> bool:
    """A file name with an image extension that is not hidden (``.name``)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def broken_link(path: Path) -> str:
    """Why a link whose target is gone is no image: "broken link (its target '...' does not
    exist)"."""
    try:
        target = os.readlink(path)
    except OSError:
        return "broken link (its target does not exist)"
    return f"broken link (its target '{target}' does not exist)"


def walk_files(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, its file names, sorted) for ``root`` and every folder below it, in sorted order.

    Links to folders are followed, since datasets are often built from links to folders kept
    elsewhere (``ln -s /photos/cats data/cats``). Each real folder is read once, so a link
    cycle ends instead of hanging, and two links to one folder do not read its images twice.
    """
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            info = os.stat(dirpath)
        except OSError:  # vanished or unreadable since it was listed
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            log.info("not reading '%s': it links to a folder already read", dirpath)
            dirnames[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirnames.sort()
        yield Path(dirpath), sorted(filenames)


def other_image_extension(name: str) -> str | None:
    """The extension of a file that looks like an image but is not one edgessl reads, or None."""
    ext = os.path.splitext(name)[1].lower()
    return ext if ext in OTHER_IMAGE_EXTENSIONS and not name.startswith(".") else None


@dataclass(frozen=True)
class ImageScan:
    """The image files under a folder, and the image-like files left out.

    Attributes:
        files: image files edgessl reads (``IMAGE_EXTENSIONS``), sorted as walked.
        skipped: extension -> count of files in ``OTHER_IMAGE_EXTENSIONS``, left out.
    """

    files: list[Path]
    skipped: Counter


def scan_image_files(root: Path) -> ImageScan:
    """The image files under ``root`` (recursively, sorted, folder links followed) and a count
    of the image-like files left out; logs nothing (see ``warn_skipped``)."""
    files: list[Path] = []
    skipped: Counter = Counter()
    for folder, names in walk_files(root):
        for name in names:
            if is_image_name(name):
                files.append(folder / name)
            elif ext := other_image_extension(name):
                skipped[ext] += 1
    return ImageScan(files, skipped)


def skipped_note(skipped: Counter) -> str:
    """'12 files that are not images edgessl reads (.gif: 12)', for a non-empty count."""
    total = sum(skipped.values())
    kinds = ", ".join(f"{ext}: {n}" for ext, n in sorted(skipped.items(), key=lambda e: -e[1]))
    return f"{total} file{'s' if total != 1 else ''} that are not images edgessl reads ({kinds})"


def convert_hint() -> str:
    """What to do with image files of formats edgessl does not read."""
    return f"convert them to one of {', '.join(IMAGE_EXTENSIONS)} to use them"


def warn_skipped(skipped: Counter, root: Path) -> None:
    """Warn once that image-like files under ``root`` were left out, when any were."""
    if skipped:
        log.warning("skipped %s under %s; supported: %s (convert them to one of these to use "
                    "them)", skipped_note(skipped), root, ", ".join(IMAGE_EXTENSIONS))


def list_image_files(root: Path) -> list[Path]:
    """All files under ``root`` (recursively, sorted, folder links followed) whose extension is
    an image extension; warns once when image-like files of other formats were left out."""
    scan = scan_image_files(root)
    warn_skipped(scan.skipped, root)
    return scan.files


def no_images_message(root: Path, skipped: Counter | None = None, unreadable: int = 0,
                      what: str = "") -> str:
    """The error for a folder with no usable image: why (nothing found, only formats edgessl
    does not read, only unreadable files) and what to do; ``what`` names the folder's role
    ("--unlabeled") where the message would not say which folder it is."""
    where = f"{what} '{root}'" if what else f"'{root}'"
    if skipped:
        return (f"no usable image in {where}: it holds {skipped_note(skipped)}"
                + (f" and {unreadable} unreadable file(s)" if unreadable else "")
                + f"; {convert_hint()}")
    return (f"no usable image in {where} (looked for {', '.join(IMAGE_EXTENSIONS)}"
            + (f"; skipped {unreadable} unreadable file(s)" if unreadable else "")
            + "); point to a folder that holds images")


def image_files_or_fail(root: Path, what: str = "") -> list[Path]:
    """``list_image_files`` for a folder that must hold images, chosen by name (nothing is
    decoded, so this costs milliseconds on any size of folder).

    Raises:
        DataError: no file with an image extension under ``root`` (``no_images_message``).
    """
    scan = scan_image_files(root)
    if not scan.files:
        raise DataError(no_images_message(root, scan.skipped, what=what))
    warn_skipped(scan.skipped, root)
    return scan.files


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
            check_image_shape(*img.size, str(path))
            if min_side:
                img.draft(None, (2 * min_side, 2 * min_side))  # JPEG only; others ignore it
            img.load()
            if img.mode.startswith("I;16") or img.mode == "I":
                # 16-bit greyscale (PNG, TIFF; either byte order): "I" is the one 16-bit mode
                # Pillow's point() takes, and the top 8 of 16 bits are what an 8-bit view shows
                img = img.convert("I").point(lambda v: v / 256).convert("L")
            elif img.mode == "F":
                img = img.point(lambda v: v * 255).convert("L")
            if min_side and min(img.size) >= 4 * min_side:
                img = img.reduce(min(img.size) // (2 * min_side))
            # after the reduction, so the rotation copies the small image, not the full one
            return ImageOps.exif_transpose(to_rgb(img))


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image ("empty file", "truncated", ...), or None."""
    from PIL import Image, UnidentifiedImageError

    problem = _file_problem(path)
    if problem is not None:
        return problem
    try:
        open_rgb(path, min_side=32)
    except PermissionError:
        return "not readable (permission denied)"
    except DataError:  # the only one open_rgb raises: edgessl.limits.MAX_ASPECT_RATIO
        return f"side ratio over {MAX_ASPECT_RATIO}:1"
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return f"decompression bomb (over Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels)"
    except UnidentifiedImageError:
        return "not an image"
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip this file"
        text = str(exc).lower()
        cut = any(m in text for m in ("truncated", "broken data stream", "premature end"))
        return "truncated" if cut else f"corrupt ({type(exc).__name__}: {_shorten(text)})"
    return None


def _file_problem(path: Path) -> str | None:
    """What is wrong with ``path`` as a file (a broken link, a link loop, empty), or None."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return broken_link(path) if os.path.islink(path) else "vanished (no longer exists)"
    except OSError as exc:  # a link loop (ELOOP), an unreadable folder on the way
        return f"not readable ({exc.strerror or type(exc).__name__})"
    return "empty file" if size == 0 else None


def _shorten(text: str, most: int = 60) -> str:
    """``text`` cut to ``most`` characters with an ellipsis; a quote it opens is closed, so
    the message around it stays balanced."""
    if len(text) <= most:
        return text
    text = text[:most] + "…"
    return text + "'" if text.count("'") % 2 else text


def is_readable_image(path: Path) -> bool:
    """True when ``path`` decodes as an image (cheap header check plus full decode)."""
    return image_problem(path) is None


def usable_images(paths: list[Path], root: Path, skipped: Counter | None = None) -> list[Path]:
    """Keep the images that decode; warn once with the count of skipped files and why.

    Args:
        skipped: the image-like files of other formats left out under ``root``
            (``ImageScan.skipped``), named in the error when nothing else is usable.

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
        # counted by kind ("broken link", "corrupt"); the first file shows its details
        reasons = Counter(problem.split(" (", 1)[0] for problem in problems.values())
        first = next(iter(problems))
        log.warning("skipped %d unreadable or corrupt image file(s) under %s: %s; first: %s (%s)",
                    len(problems), root, ", ".join(f"{n} {r}" for r, n in reasons.most_common()),
                    first, problems[first])
    if not good:
        raise DataError(no_images_message(root, skipped, len(problems)))
    return good


def find_images(root: str | Path, what: str = "image folder") -> list[Path]:
    """All usable images under ``root``, recursively; labels (subfolders) are ignored."""
    root = require_dir(root, what)
    scan = scan_image_files(root)
    warn_skipped(scan.skipped, root)
    return usable_images(scan.files, root, scan.skipped)


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
