"""Bounds on what a file or a flag can make edgessl allocate, with the reason for each.

A 4 KB PNG can declare 1 x 2,000,000 pixels, and a model's metadata can ask for 100000 px
inputs; without a bound either runs into the out-of-memory killer with no message. Every reader
of images checks against these numbers, and the validation of flags and of the fields of
artifacts and cards (``edgessl.config``, ``edgessl.artifact``) uses the same ones, so one place
says what the tool supports.
The pixel count of an image file is bounded by Pillow's own decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``, about 89 megapixels), which ``data.images.open_rgb`` enforces.
Standard library only: the deploy runtime vendors this module.
"""

from __future__ import annotations

from edgessl.errors import DataError, printable

# Largest model input side, in pixels. The biggest common vision inputs are 518 (DINOv2) and
# 1024 (SAM); 4096 leaves room for high-resolution work, while one float32 [3, 4096, 4096]
# input is already 192 MiB and a training batch of them tens of GiB: beyond it, only mistakes.
MAX_IMAGE_SIDE = 4096
# Largest long side : short side of an image file. Panoramas run to about 12:1. The centre
# crop keeps a square of the short side, so at 50:1 it already throws away 98% of the image;
# beyond that the prediction says nothing about the picture. (Memory no longer depends on it:
# resize_center_crop resizes only the crop, so a 1 x 2,000,000 PNG, which once took 3.5 GB,
# costs its own decode at most.)
MAX_ASPECT_RATIO = 50
# Most classes a model's labels may list. ImageNet-21k has 21841; a list of millions of
# strings is not a classifier edgessl made.
MAX_CLASSES = 100_000
# Longest class name, in characters: a label is a word or a phrase, not a document.
MAX_LABEL_CHARS = 1000


def check_image_shape(width: int, height: int, where: str) -> None:
    """Refuse an image file whose sides differ by more than MAX_ASPECT_RATIO times.

    Raises:
        DataError: naming the file, its size and the bound.
    """
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise DataError(f"image '{printable(where)}' is {width} x {height} pixels, a side ratio "
                        f"over {MAX_ASPECT_RATIO}:1 (edgessl.limits.MAX_ASPECT_RATIO): its "
                        "centre crop would keep almost nothing of it; crop it to the part that "
                        "matters first")
