"""Labeled datasets: a root with train/ and val/ ImageFolders, or one ImageFolder split here."""

from __future__ import annotations

import hashlib
import logging
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

log = logging.getLogger("edgessl")

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


def _class_layout(folder: Path, classes: list[str] | None = None) -> list[Path]:
    """The class folders of ``folder``, after the checks that need only a listing (nothing is
    decoded, so a wrong layout is refused in milliseconds, not after reading every image).

    Raises:
        DataError: no class folders (saying so when images lie loose in ``folder``), images
            beside the class folders (they would have no class), class folders other than
            ``classes`` (train/'s), or a single class.
    """
    dirs = _class_dirs(folder)
    loose = _top_images(folder)
    if not dirs:
        if loose:
            raise DataError(
                f"'{folder}' holds {_count(loose)} but no class subfolders; a labeled "
                "dataset keeps each class's images in a subfolder named after the class "
                f"('{folder / '<class>' / loose[0].name}'): sort them into class folders "
                "(only the DATA of 'edgessl pretrain' may be unlabeled)")
        raise DataError(f"'{folder}' has no class subfolders; a labeled dataset needs one "
                        "subfolder per class")
    names = [d.name for d in dirs]
    if classes is not None and names != classes:
        raise DataError(_class_mismatch(folder, classes, names))
    if loose:
        raise DataError(
            f"'{folder}' holds {_count(loose)} beside its class folders (first: "
            f"'{loose[0].name}'), which would have no class; move them into their class "
            "folder, or out of this folder")
    if len(names) < 2:
        wrapper = ""
        if _class_dirs(dirs[0]) and not _top_images(dirs[0]):
            wrapper = f"; if '{names[0]}' holds the class folders, pass '{dirs[0]}'"
        raise DataError(f"'{folder}' has only one class ('{names[0]}'); a classifier needs two "
                        f"or more class subfolders{wrapper}")
    return dirs


def _count(images: list) -> str:
    return f"{len(images)} image{'s' if len(images) != 1 else ''}"


def _class_mismatch(folder: Path, classes: list[str], names: list[str]) -> str:
    """Which class folders ``folder`` (val/, test/) lacks or adds compared with train/."""
    lacks = [c for c in classes if c not in names]
    adds = [n for n in names if n not in classes]
    parts = ([f"it lacks {', '.join(lacks[:5])}{' ...' if len(lacks) > 5 else ''}"] if lacks
             else []) + ([f"train/ lacks {', '.join(adds[:5])}{' ...' if len(adds) > 5 else ''}"]
                         if adds else [])
    return (f"classes in '{folder}' differ from those in train/ ({'; '.join(parts)}); give both "
            "splits the same class subfolders (a class train/ lacks can never be predicted)")


def _read_image_folder(folder: Path, dirs: list[Path]) -> tuple[list[str], list]:
    """(class names, (image, label) samples) of the class folders ``dirs`` of ``folder``,
    every image decoded once (unreadable ones skipped and counted)."""
    names = [d.name for d in dirs]
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
    single = [label for label in sorted(by_class) if len(by_class[label]) < 2]
    if len(single) > 1:  # all of them at once, not one per run
        shown = ", ".join(f"'{classes[y]}'" if classes else str(y) for y in single[:5])
        raise DataError(f"{len(single)} classes have 1 image ({shown}"
                        f"{' ...' if len(single) > 5 else ''}); splitting needs ≥ 2 per class: "
                        "add images to them, remove those folders, or give train/ and val/ "
                        "folders")
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
        n_val = _val_count(len(items), val_fraction)
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def _val_count(n: int, val_fraction: float) -> int:
    """Images of a class of ``n`` (≥ 2) that the seeded split holds out: at least 1, and 1
    left for training."""
    return min(n - 1, max(1, round(n * val_fraction)))


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
    held_out = check_labeled_layout(root)
    if held_out is not None:  # the layouts were checked: the class folders are as listed
        classes, train = _read_image_folder(root / "train", _class_dirs(root / "train"))
        _, val = _read_image_folder(held_out, _class_dirs(held_out))
        warn_val_copies(train, val, held_out)
        return LabeledData(root, tuple(classes), tuple(train), tuple(val), "folders")
    classes, samples = _read_image_folder(root, _class_dirs(root))
    train, val = stratified_split(samples, val_fraction, seed, classes)
    warn_val_copies(train, val, root)
    return LabeledData(root, tuple(classes), tuple(train), tuple(val), "seeded split")


def check_labeled_layout(root: Path, labels_per_class: int | None = None,
                         val_fraction: float = 0.2) -> Path | None:
    """Refuse a folder that is no labeled dataset, from its listing alone (milliseconds: call
    it before any slow work); returns its held-out split folder (val/, test/) or None when
    ``load_labeled`` would split it.

    Args:
        labels_per_class: ``--labels-per-class``, refused when larger than some class's train
            images can be (counted by name; the exact check follows the decoding).

    Raises:
        DataError: as ``load_labeled`` would for the layout (no class folders, one class,
            images beside class folders, train/ and val/ with other classes, ...), or a
            ``labels_per_class`` over the files a class has.
    """
    root = require_dir(root, "labeled data folder")
    held_out = held_out_folder(root)
    if held_out is not None:
        dirs = _class_layout(root / "train")
        _class_layout(held_out, [d.name for d in dirs])
    else:
        _check_not_split(root, [d.name for d in _class_dirs(root)])
        dirs = _class_layout(root)
    if labels_per_class is not None:
        files = {d.name: len(scan_image_files(d).files) for d in dirs}
        if all(n >= (1 if held_out else 2) for n in files.values()):  # else load_labeled says
            train = {c: n if held_out else n - _val_count(n, val_fraction)
                     for c, n in files.items()}
            name = min(train, key=lambda c: train[c])
            if labels_per_class > train[name]:
                raise DataError(_too_many_labels(labels_per_class, name, train[name]))
    return held_out


def warn_val_copies(train: Sequence[Sample], val: Sequence[Sample], where: Path) -> int:
    """Warn when val images are byte-for-byte copies of train images (their val top-1 is
    then a training score); returns how many. Only files of a size that both sides have are
    read and hashed, so most sets cost a listing."""
    by_size: dict[int, list[Path]] = {}
    for p, _ in train:
        by_size.setdefault(p.stat().st_size, []).append(p)
    digests: dict[int, dict[str, Path]] = {}  # size -> digest -> a train image of it
    copies: list[tuple[Path, Path]] = []
    for p, _ in val:
        size = p.stat().st_size
        if size not in by_size:
            continue
        if size not in digests:
            digests[size] = {_digest(q): q for q in reversed(by_size[size])}
        twin = digests[size].get(_digest(p))
        if twin is not None:
            copies.append((p, twin))
    if copies:
        log.warning("%d of %d val images in %s are byte-for-byte copies of train images "
                    "(first: '%s' = '%s'): their val top-1 is a training score; remove the "
                    "copies from one side", len(copies), len(val), where, *copies[0])
    return len(copies)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        raise DataError(_too_many_labels(k, classes[label], smallest))
    rng = random.Random(seed)
    chosen: list[Sample] = []
    for label in sorted(counts):
        items = sorted(s for s in samples if s[1] == label)
        rng.shuffle(items)
        chosen += items[:k]
    return chosen


def _too_many_labels(k: int, name: str, smallest: int) -> str:
    return (f"--labels-per-class {k} is larger than class '{name}' ({smallest} training "
            f"image{'s' if smallest != 1 else ''}); use a value ≤ {smallest} or omit it to use "
            "all labels")


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

    ``root`` must be a single folder of two or more class folders (what ``load_labeled``
    splits, images in subfolders of a class folder included, as finetune reads them); any
    other tree (a train/val root, images at the top) is not a labeled set and gives []. The
    split is
    ``stratified_split``'s, which depends on the samples and not on their order, so it is
    the one finetune makes without decoding the images a second time.
    """
    root = Path(root)
    if held_out_folder(root) is not None:
        return []
    try:  # the layout finetune accepts, the same checks (a class of only nested albums too)
        _check_not_split(root, [d.name for d in _class_dirs(root)])
        dirs = _class_layout(root)
    except DataError:  # not a labeled set: finetune refuses it, nothing to keep out
        return []
    label = {d.name: i for i, d in enumerate(dirs)}
    folders = [(p, p.relative_to(root).parts[0]) for p in images]
    samples = [(p, label[f]) for p, f in folders if f in label]  # not hidden folders
    try:
        _, val = stratified_split(samples, val_fraction, seed, list(label))
    except DataError:  # a class finetune could not split: it refuses the folder, no leak
        return []
    return [p for p, _ in val]


def _top_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (not in its subfolders)."""
    return [p for p in folder.iterdir() if p.is_file() and is_image_name(p.name)]
