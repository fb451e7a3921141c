"""The built-in dataset: scikit-learn's real handwritten digits as a 32x32 RGB ImageFolder.

1,797 images of 10 classes (8x8 grey, 17 levels) from the UCI optical-recognition data, shipped
inside scikit-learn, so the quickstart and the tests need no download.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgessl.data.labeled import stratified_split
from edgessl.errors import OutputExistsError, OutputWriteError
from edgessl.io import atomic_dir

DIGITS_MARKER = "edgessl-digits.json"


def write_digits(
    out_dir: str | Path,
    image_size: int = 32,
    val_fraction: float = 0.2,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Write the digits as ``out_dir/{train,val}/<digit>/<index>.png`` (RGB, ``image_size`` px).

    The split is stratified and seeded. The folder is assembled under a temporary name and
    renamed, so an interrupted call leaves nothing half written.

    Returns:
        ``out_dir`` as a Path.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputWriteError(f"'{out_dir}' is a file, not a folder; choose another OUT_DIR "
                               "(--force replaces a folder, never a file)")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise OutputExistsError(f"'{out_dir}' exists and is not empty; pass --force to replace it")
    digits = load_digits()
    samples = [(i, int(y)) for i, y in enumerate(digits.target)]
    train, val = stratified_split(samples, val_fraction, seed)
    with atomic_dir(out_dir, force=True) as tmp:
        for split, items in (("train", train), ("val", val)):
            for index, label in items:
                pixels = (digits.images[index] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
                img = Image.fromarray(pixels, mode="L").resize(
                    (image_size, image_size), Image.Resampling.BICUBIC
                )
                folder = tmp / split / str(label)
                folder.mkdir(parents=True, exist_ok=True)
                img.convert("RGB").save(folder / f"{index:04d}.png")
        info = {"source": "sklearn.datasets.load_digits", "image_size": image_size,
                "val_fraction": val_fraction, "seed": seed,
                "train": len(train), "val": len(val)}
        (tmp / DIGITS_MARKER).write_text(json.dumps(info, indent=2))
    return out_dir


def edgessl_home() -> Path:
    """Where edgessl keeps its cache (``$EDGESSL_HOME``, default ``~/.cache/edgessl``)."""
    return Path(os.environ.get("EDGESSL_HOME", Path.home() / ".cache" / "edgessl"))


def default_digits_dir() -> Path:
    """The built-in digits dataset, written on first use into the edgessl cache."""
    root = edgessl_home() / "data" / "digits"
    if not (root / DIGITS_MARKER).is_file():
        write_digits(root, force=True)
    return root
