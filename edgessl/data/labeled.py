"""Labeled datasets: a root with train/ and val/ ImageFolders, or one ImageFolder split here."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgessl.data.images import (
    convert_hint,
    is_image_name,
    require_dir,
    scan_image_files,
    skipped_note,
    usable_images,
    warn_skipped,
)
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
    skipped: dict[str, Counter] = {}
    for index, d in enumerate(dirs):
        scan = scan_image_files(d)
        files += scan.files
        labels += [index] * len(scan.files)
        skipped[d.name] = scan.skipped
    all_skipped = sum(skipped.values(), Counter())
    warn_skipped(all_skipped, folder)  # once for the folder, not once per class
    good = set(usable_images(files, folder, all_skipped))
    samples = [(f, y) for f, y in zip(files, labels, strict=True) if f in good]
    present = {y for _, y in samples}
    empty = [names[i] for i in range(len(names)) if i not in present]
    if empty:
        raise DataError(_empty_class_message(folder / empty[0], skipped[empty[0]]))
    if len(names) < 2:
        raise DataError(f"'{folder}' has only one class ('{names[0]}'); "
                        "a classifier needs two or more class subfolders")
    return names, samples


def _empty_class_message(class_dir: Path, skipped: Counter) -> str:
    if skipped:
        return (f"class folder '{class_dir}' holds no usable image, only {skipped_note(skipped)}; "
                f"{convert_hint()}, or remove the folder")
    return f"class folder '{class_dir}' holds no usable image; add images or remove the folder"


def stratified_split(samples: list[Sample], val_fraction: float, seed: int,
                     classes: Sequence[str] | None = None) -> tuple[list, list]:
    """Split samples per class with a seeded shuffle; every class keeps ≥1 train and ≥1 val.

    Args:
        samples: (item, label) pairs.
        classes: class names indexed by label, for the error; labels are shown without them.

    Raises:
        DataError: when a class has fewer than 2 samples, naming the class.
    """
    rng = random.Random(seed)
    by_class: dict[int, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s[1], []).append(s)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label])
        rng.shuffle(items)
        if len(items) < 2:
            fix = (f"add an image to '{classes[label]}' or remove that folder" if classes
                   else f"add an example of class {label} or remove that class")
            name = f"'{classes[label]}'" if classes else str(label)
            raise DataError(f"class {name} has {len(items)} image; splitting needs ≥ 2 per class: "
                            f"{fix}")
        n_val = min(len(items) - 1, max(1, round(len(items) * val_fraction)))
        val += items[:n_val]
        train += items[n_val:]
    return train, val


HELD_OUT_NAMES = ("val", "valid", "validation", "test")
"""Names of the held-out split beside ``train/``, in the order they are looked for."""

SPLIT_NAMES = ("train", *HELD_OUT_NAMES)


def held_out_folder(root: Path) -> Path | None:
    """``root/val`` (or else valid/, validation/, test/) when ``root`` also has ``train/``;
    None otherwise."""
    if not (root / "train").is_dir():
        return None
    return next((root / n for n in HELD_OUT_NAMES if (root / n).is_dir()), None)


def _check_not_split(root: Path, names: list[str]) -> None:
    """A root whose "classes" are split folders is a train/val root with a split missing."""
    splits = [n for n in names if n.lower() in SPLIT_NAMES]
    if not splits:
        return
    found = ", ".join(f"{n}/" for n in splits)
    others = [n for n in names if n not in splits]
    keep = "keep either train/ and val/ (each with one subfolder per class), or class folders only"
    if others:
        raise DataError(f"'{root}' mixes split folders ({found}) with class folders "
                        f"({', '.join(others[:5])}); {keep}")
    if not any(n.lower() == "train" for n in splits):
        raise DataError(f"'{root}' has {found} but no train/ folder; add train/ with the same "
                        "class subfolders, or put the class folders directly in it to have them "
                        "split here")
    if len(splits) == 1:
        raise DataError(f"'{root}' has {found} but no val/ folder beside it; add val/ with the "
                        "same class subfolders, or put the class folders directly in it to have "
                        "them split here")
    raise DataError(f"'{root}' has {found}; name the split folders in lower case, train/ and "
                    "val/")


def load_labeled(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> LabeledData:
    """Load a labeled dataset from ``root``.

    ``root`` holds either ``train/`` and ``val/`` (or ``valid/``, ``validation/`` or
    ``test/``, as Roboflow- and CIFAR-style folders do) ImageFolders, or class subfolders
    directly, which are split here (stratified by class, seeded by ``seed``). Split folders
    without their partner (``train/`` alone) are an error, not two classes.
    """
    root = require_dir(root, "labeled data folder")
    held_out = held_out_folder(root)
    if held_out is not None:
        classes, train = _read_image_folder(root / "train")
        _, val = _read_image_folder(held_out, classes)
        return LabeledData(root, tuple(classes), tuple(train), tuple(val), "folders")
    _check_not_split(root, [d.name for d in _class_dirs(root)])
    classes, samples = _read_image_folder(root)
    train, val = stratified_split(samples, val_fraction, seed, classes)
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


DEFAULT_VAL_FRACTION = 0.2  # finetune's share of each class held out when it splits a folder


def finetune_val_images(root: str | Path, images: list[Path],
                        val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> list[Path]:
    """The ones of ``images`` (the usable images under ``root``, as ``find_images`` gives them)
    that ``finetune`` holds out as val when it splits ``root`` itself, or [].

    ``root`` must be a single folder of two or more class folders with images directly
    inside them (what ``load_labeled`` splits); any other tree (a train/val root, images
    at the top, nested albums) is not a labeled set and gives []. The split is
    ``stratified_split``'s, which depends on the samples and not on their order, so it is
    the one finetune makes without decoding the images a second time.
    """
    root = Path(root)
    if held_out_folder(root) is not None or _top_images(root):
        return []
    dirs = _class_dirs(root)
    if len(dirs) < 2 or any(not _top_images(d) for d in dirs):
        return []
    label = {d.name: i for i, d in enumerate(dirs)}
    folders = [(p, p.relative_to(root).parts[0]) for p in images]
    samples = [(p, label[f]) for p, f in folders if f in label]  # not hidden folders
    try:
        _check_not_split(root, list(label))
        _, val = stratified_split(samples, val_fraction, seed, list(label))
    except DataError:  # a class finetune could not split: it refuses the folder, no leak
        return []
    return [p for p, _ in val]


def _top_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (not in its subfolders)."""
    return [p for p in folder.iterdir() if p.is_file() and is_image_name(p.name)]
