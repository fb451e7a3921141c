"""Labeled datasets: a root with train/ and val/ ImageFolders, or one ImageFolder split here."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgessl.data.images import list_image_files, require_dir, usable_images
from edgessl.errors import DataError

Sample = tuple[Path, int]


@dataclass(frozen=True)
class LabeledData:
    """A labeled dataset split into train and val.

    Attributes:
        root: the folder the user gave.
        classes: class names, sorted; a label is an index into this list.
        train: (path, label) pairs used for training.
        val: (path, label) pairs used for evaluation.
        split_by: "folders" when train/ and val/ existed, else "seeded split".
    """

    root: Path
    classes: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    split_by: str


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_image_folder(folder: Path, classes: list[str] | None = None) -> tuple[list[str], list]:
    dirs = _class_dirs(folder)
    if not dirs:
        raise DataError(
            f"'{folder}' has no class subfolders; a labeled dataset needs one subfolder per class"
        )
    names = [d.name for d in dirs]
    if classes is not None and names != classes:
        missing = sorted(set(classes) ^ set(names))
        raise DataError(
            f"classes in '{folder}' differ from those in train/ ({', '.join(missing)}); "
            "give both splits the same class subfolders"
        )
    files: list[Path] = []
    labels: list[int] = []
    for index, d in enumerate(dirs):
        found = list_image_files(d)
        files += found
        labels += [index] * len(found)
    good = set(usable_images(files, folder))
    samples = [(f, y) for f, y in zip(files, labels, strict=True) if f in good]
    present = {y for _, y in samples}
    empty = [names[i] for i in range(len(names)) if i not in present]
    if empty:
        raise DataError(f"class folder '{folder / empty[0]}' holds no usable image; "
                        "add images or remove the folder")
    if len(names) < 2:
        raise DataError(f"'{folder}' has only one class ('{names[0]}'); "
                        "a classifier needs two or more class subfolders")
    return names, samples


def stratified_split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list, list]:
    """Split samples per class with a seeded shuffle; every class keeps ≥1 train and ≥1 val."""
    rng = random.Random(seed)
    by_class: dict[int, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s[1], []).append(s)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label])
        rng.shuffle(items)
        if len(items) < 2:
            raise DataError(f"class {label} has {len(items)} image; splitting needs ≥2 per class")
        n_val = min(len(items) - 1, max(1, round(len(items) * val_fraction)))
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def held_out_folder(root: Path) -> Path | None:
    """``root/val`` (or else ``root/test``) when ``root`` also has ``train/``; None otherwise."""
    if not (root / "train").is_dir():
        return None
    return next((root / n for n in ("val", "test") if (root / n).is_dir()), None)


def load_labeled(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> LabeledData:
    """Load a labeled dataset from ``root``.

    ``root`` holds either ``train/`` and ``val/`` (or ``test/``, as CIFAR-style folders do)
    ImageFolders, or class subfolders directly, which are split here (stratified by class,
    seeded by ``seed``).
    """
    root = require_dir(root, "labeled data folder")
    held_out = held_out_folder(root)
    if held_out is not None:
        classes, train = _read_image_folder(root / "train")
        _, val = _read_image_folder(held_out, classes)
        return LabeledData(root, tuple(classes), tuple(train), tuple(val), "folders")
    classes, samples = _read_image_folder(root)
    train, val = stratified_split(samples, val_fraction, seed)
    return LabeledData(root, tuple(classes), tuple(train), tuple(val), "seeded split")


def labels_per_class(samples, k: int | None, seed: int, classes) -> list[Sample]:
    """A stratified, seeded subset with ``k`` samples of each class (all when ``k`` is None).

    Raises:
        DataError: when ``k`` is larger than the smallest class or smaller than 1.
    """
    if k is None:
        return list(samples)
    if k < 1:
        raise DataError(f"--labels-per-class must be ≥ 1, got {k}")
    counts = Counter(y for _, y in samples)
    smallest = min(counts.values())
    if k > smallest:
        label = min(counts, key=lambda c: counts[c])
        raise DataError(
            f"--labels-per-class {k} is larger than class '{classes[label]}' ({smallest} "
            f"training images); use a value ≤ {smallest} or omit it to use all labels"
        )
    rng = random.Random(seed)
    chosen: list[Sample] = []
    for label in sorted(counts):
        items = sorted(s for s in samples if s[1] == label)
        rng.shuffle(items)
        chosen += items[:k]
    return chosen


def fingerprint(paths) -> str:
    """A short, stable hash of a file list (relative names and sizes) identifying a dataset."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(f"{p.parent.name}/{p.name}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]
