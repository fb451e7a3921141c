"""Labeled text sets: class folders of ``.txt`` files, or a ``.csv`` / ``.jsonl`` file.

Formats:

- a folder with one subfolder per class, each holding ``.txt`` files with one example per
  line (or ``train/`` and ``val/`` folders, each laid out so, for a split of your own);
- a ``.csv`` file with a header row naming a ``text`` and a ``label`` column;
- a ``.jsonl`` file with one JSON object per line with ``text`` and ``label`` keys.

Files are read as UTF-8 (a byte-order mark is allowed). Leading and trailing whitespace is
stripped. Blank lines are skipped (in ``.txt`` files, in a JSONL file, and a CSV row whose
every field is blank), but a row with a label and an empty or blank text is an error that
names its line and counts such rows. In JSONL the text must be a JSON string; the label a
string, or a number or boolean taken as JSON writes it (``0``, ``1.5``, ``true``): labels
such as 0/1 are common, while a null, list or object is refused, as is a CSV row with more
non-empty fields than its header (an unquoted comma in a text). An example longer than
``MAX_TEXT_CHARS`` characters is cut there (and counted in ``TextSet.truncated``).
Splits and label subsets use the image pipeline's helpers (``edgessl.data.labeled``), so a
seed picks the same kind of stratified subsets for text as for images.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgessl.data.images import is_image_name
from edgessl.data.labeled import held_out_folder, stratified_split
from edgessl.data.labeled import labels_per_class as _labels_per_class
from edgessl.errors import ConfigError, DataError, file_problem, printable
from edgessl.limits import MAX_CLASSES, MAX_LABEL_CHARS

log = logging.getLogger("edgessl")

# Longest example kept, in characters. The encoders here read at most 512 tokens (MiniLM 256),
# and an English WordPiece token averages about 4 characters, so 4,000 characters hold more
# than any of them reads; beyond that a "line" is a whole document pasted on one line, and
# tokenising it would only cost time and memory before truncation throws it away.
MAX_TEXT_CHARS = 4000
TEXT_SUFFIX = ".txt"
TABLE_SUFFIXES = (".csv", ".jsonl")
TEXT_COLUMN, LABEL_COLUMN = "text", "label"

TextSample = tuple[str, int]
Row = tuple[str, str, str]  # (label, text, where: "file line N")


@dataclass(frozen=True)
class TextSet:
    """A labeled text set split into train and val.

    Attributes:
        root: the folder or file the user gave.
        classes: class names, sorted; a label is an index into this list.
        train, val: (text, label) pairs.
        split_by: "folders" (train/ and val/ given) or "seeded split".
        truncated: examples cut at ``MAX_TEXT_CHARS``.
    """

    root: Path
    classes: tuple[str, ...]
    train: tuple[TextSample, ...]
    val: tuple[TextSample, ...]
    split_by: str
    truncated: int = 0
    val_fraction: float | None = None  # of a seeded split; None when the data had val/

    def labels_per_class(self, k: int | None, seed: int = 0) -> list[TextSample]:
        """``k`` training examples of each class (stratified, seeded); all when ``k`` is None.

        Raises:
            DataError: ``k`` is below 1 or above the smallest class's training examples.
        """
        if k is None:
            return list(self.train)
        counts = Counter(y for _, y in self.train)
        smallest = min(counts.values())
        if k < 1 or k > smallest:
            label = min(counts, key=lambda c: counts[c])
            raise DataError(f"labels per class must be between 1 and {smallest} (class "
                            f"'{self.classes[label]}' has {smallest} training examples), got "
                            f"{k}; use a smaller value or omit it to use all labels")
        return _labels_per_class(self.train, k, seed, self.classes)

    def fingerprint(self) -> str:
        """A short, stable hash of the examples and labels (identifies the data in a card)."""
        h = hashlib.sha256()
        for part, samples in (("train", self.train), ("val", self.val)):
            for text, y in sorted(samples):
                h.update(f"{part}\t{self.classes[y]}\t{text}\n".encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """What a model card records about the data."""
        return {"path": str(self.root), "fingerprint": self.fingerprint(),
                "classes": len(self.classes), "train": len(self.train), "val": len(self.val),
                "split_by": self.split_by, "val_fraction": self.val_fraction,
                "truncated": self.truncated}


def decode_utf8(data: bytes, where: Path) -> str:
    """``data`` as text; undecodable bytes raise a DataError naming the file and line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"'{printable(where)}' line {line} is not UTF-8 text (byte "
                        f"0x{data[exc.start]:02x}); save the file as UTF-8") from None


def _read_text(path: Path) -> str:
    problem = file_problem(path)
    if problem is not None and problem != "is empty":
        raise DataError(f"text file '{printable(path)}' {problem}")
    try:
        return decode_utf8(path.read_bytes(), path)
    except OSError as exc:
        raise DataError(f"cannot read '{printable(path)}': {exc.strerror}") from None


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_rows(folder: Path) -> tuple[list[str], list[Row]]:
    """Class names (the subfolders) and one row per line of their ``.txt`` files."""
    dirs = _class_dirs(folder)
    if not dirs:
        raise DataError(f"'{printable(folder)}' has no class subfolders; a labeled text set is "
                        "one subfolder per class of .txt files, or a .csv/.jsonl file with "
                        "text and label columns")
    rows: list[Row] = []
    for d in dirs:
        files = sorted(p for p in d.rglob(f"*{TEXT_SUFFIX}") if not p.name.startswith("."))
        for file in files:
            for n, line in enumerate(_read_text(file).splitlines(), start=1):
                if line.strip():  # one example per line: a blank line separates, it is no row
                    rows.append((d.name, line, f"'{file}' line {n}"))
    return [d.name for d in dirs], rows


def _csv_rows(path: Path) -> list[Row]:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in (TEXT_COLUMN, LABEL_COLUMN) if c not in columns]
    if missing:
        have = ", ".join(printable(c) for c in columns) or "none"
        raise DataError(f"CSV '{printable(path)}' has no {' and no '.join(missing)} column "
                        f"(its columns: {have}); name the header's columns "
                        f"'{TEXT_COLUMN}' and '{LABEL_COLUMN}'")
    reader.fieldnames = columns
    rows = []
    try:
        for record in reader:
            where = f"'{path}' line {reader.line_num}"
            extra = [v for v in record.get(None, []) if v.strip()]  # beyond the header's
            if extra:  # (empty ones, as from a trailing comma, are harmless)
                raise DataError(f"{printable(where)} has {len(columns) + len(record[None])} "
                                f"fields, the header {len(columns)}; put a text that holds "
                                'a comma in double quotes ("like, this")')
            if not any((record.get(c) or "").strip() for c in columns):
                continue  # a blank row, as a spreadsheet writes at the end: no example
            label, text = record.get(LABEL_COLUMN), record.get(TEXT_COLUMN)
            rows.append((label or "", text or "", where))
    except csv.Error as exc:
        raise DataError(f"CSV '{printable(path)}' line {reader.line_num} cannot be parsed "
                        f"({exc}); check its quoting") from None
    return rows


def _jsonl_rows(path: Path) -> list[Row]:
    rows = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"'{path}' line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{printable(where)} is not JSON ({exc.msg}); write one JSON "
                            "object per line") from None
        if not isinstance(record, dict) or TEXT_COLUMN not in record or LABEL_COLUMN not in record:
            keys = ", ".join(map(str, record)) if isinstance(record, dict) else "not an object"
            raise DataError(f"{printable(where)} has no '{TEXT_COLUMN}' and '{LABEL_COLUMN}' "
                            f"keys (it has: {printable(keys) or 'none'}); write objects like "
                            '{"text": "...", "label": "..."}')
        rows.append((_json_label(record[LABEL_COLUMN], where),
                     _json_text(record[TEXT_COLUMN], where), where))
    return rows


def _json_kind(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN or an infinity"
    kinds = {type(None): "null", bool: "a boolean", list: "a list", dict: "an object"}
    return kinds.get(type(value), "a number")


def _json_text(value: object, where: str) -> str:
    """A JSONL row's text: a JSON string, nothing else (a number or null there is a mistake
    in the file, never a sentence to learn from)."""
    if isinstance(value, str):
        return value
    raise DataError(f"{printable(where)} has {_json_kind(value)} as its '{TEXT_COLUMN}' "
                    f"({printable(json.dumps(value))[:40]}), not a string; write each text "
                    'as a JSON string ("text": "...") or delete the row')


def _json_label(value: object, where: str) -> str:
    """A JSONL row's label: a string, or a finite number or a boolean as JSON writes it
    (0/1 labels are common); null, a list or an object is refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return json.dumps(value)
    raise DataError(f"{printable(where)} has {_json_kind(value)} as its '{LABEL_COLUMN}' "
                    f"({printable(json.dumps(value))[:40]}); give every row a label: a "
                    'string ("label": "spam") or a number')


def _examples(rows: list[Row], declared: list[str] | None, source: Path):
    """Class names and (text, label) samples; long texts truncated.

    Raises:
        DataError: a row with an empty label or an empty text (naming the first such line,
            with their count), or too few or too many classes.
    """
    by_class: dict[str, list[str]] = {name: [] for name in declared or []}
    truncated = 0
    empty_texts = [where for _, text, where in rows if not text.strip()]
    if empty_texts:
        more = f" ({len(empty_texts)} such rows)" if len(empty_texts) > 1 else ""
        raise DataError(f"{printable(empty_texts[0])} has an empty text{more}; "
                        "give every row a text, or delete the row")
    for label, text, where in rows:
        text, label = text.strip(), label.strip()
        if not label:
            raise DataError(f"{printable(where)} has an empty label; give every example one")
        if len(label) > MAX_LABEL_CHARS:
            raise DataError(f"{printable(where)} has a label of {len(label)} characters (at "
                            f"most {MAX_LABEL_CHARS}); are the text and label columns swapped?")
        if len(text) > MAX_TEXT_CHARS:
            text, truncated = text[:MAX_TEXT_CHARS], truncated + 1
        by_class.setdefault(label, []).append(text)
    empty = [c for c, texts in by_class.items() if not texts]
    if empty:
        raise DataError(f"class '{printable(empty[0])}' in '{printable(source)}' has no "
                        "examples (no non-empty lines); add examples or remove the class")
    if len(by_class) < 2:
        names = ", ".join(f"'{printable(c)}'" for c in by_class) or "none"
        raise DataError(f"'{printable(source)}' has {len(by_class)} class ({names}); a "
                        "classifier needs two or more")
    if len(by_class) > MAX_CLASSES:
        raise DataError(f"'{printable(source)}' has {len(by_class)} classes (at most "
                        f"{MAX_CLASSES}); is the label column the right one?")
    if truncated:
        log.warning("%d examples in '%s' are longer than %d characters and were cut there",
                    truncated, source, MAX_TEXT_CHARS)
    classes = sorted(by_class)
    samples = [(t, i) for i, c in enumerate(classes) for t in by_class[c]]
    return classes, samples, truncated


def read_examples(path: Path) -> tuple[list[str], list[TextSample], int]:
    """Class names, (text, label) samples and the truncated count of one folder or file."""
    if path.is_dir():
        declared, rows = _folder_rows(path)
    elif path.suffix.lower() == ".csv":
        declared, rows = None, _csv_rows(path)
    elif path.suffix.lower() == ".jsonl":
        declared, rows = None, _jsonl_rows(path)
    else:
        raise ConfigError(f"'{printable(path)}' is not a labeled text set; give a folder of "
                          f"class folders of .txt files, or a {' or '.join(TABLE_SUFFIXES)} "
                          "file with text and label columns")
    return _examples(rows, declared, path)


def _split(samples: list[TextSample], classes: list[str], val_fraction: float, seed: int):
    counts = Counter(y for _, y in samples)
    for y, n in sorted(counts.items()):
        if n < 2:
            raise DataError(f"class '{printable(classes[y])}' has {n} example; a seeded "
                            "train/val split needs at least 2 per class: add examples")
    return stratified_split(samples, val_fraction, seed)


def _count_files(folder: Path) -> tuple[int, int]:
    """(.txt files, image files) in ``folder``'s tree; hidden files and folders skipped."""
    texts = images = 0
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        texts += sum(f.endswith(TEXT_SUFFIX) and not f.startswith(".") for f in files)
        images += sum(is_image_name(f) for f in files)
    return texts, images


def _class_kind(folder: Path) -> str | None:
    """"images", "text" or None (neither) for one class folder.

    Images win over as many ``.txt`` files or fewer (notes, or a caption or annotation per
    picture, which the image loader ignores); a text class holds no images.

    Raises:
        DataError: the folder holds images and more ``.txt`` files than images.
    """
    texts, images = _count_files(folder)
    if images and images >= texts:
        return "images"
    if texts and images:
        raise DataError(f"class folder '{printable(folder)}' holds {texts} .txt files and "
                        f"{images} images, so it is neither a text class nor an image class; "
                        "move the .txt files or the images out (.txt files among as many "
                        "images or more are ignored)")
    return "text" if texts else None


def _class_folders(path: Path) -> list[Path]:
    """The folders that would be classes: those of ``train/`` and ``val/`` when both are
    there, else the subfolders of ``path``."""
    held_out = held_out_folder(path)
    roots = [path / "train", held_out] if held_out is not None else [path]
    return [d for root in roots for d in _class_dirs(root)]


def is_text_set(path: str | Path) -> bool:
    """True when ``path`` is a labeled text set, False when it is an image folder (or not a
    folder or table at all: the image pipeline then says what is wrong, as before).

    A ``.csv`` / ``.jsonl`` file is text. A folder is judged by its class folders (those of
    ``train/`` and ``val/`` where both are there): text when they hold ``.txt`` files, images
    when they hold images. Files beside the class folders (a README.txt, a LICENSE.txt) are
    ignored, and so are ``.txt`` files in a class folder of as many images or more (notes,
    captions), since the image loader reads images only. A folder without class folders of
    either kind is judged by all its files (images first: the image pipeline then explains
    the layout).

    Raises:
        DataError: a class folder holding images and more ``.txt`` files than images, class
            folders of text beside class folders of images (ambiguous), or no images and
            no ``.txt`` files at all (empty).
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        return path.suffix.lower() in TABLE_SUFFIXES
    kinds: dict[str, Path] = {}
    for folder in _class_folders(path):
        kind = _class_kind(folder)
        if kind is not None:
            kinds.setdefault(kind, folder)
    if len(kinds) == 2:
        raise DataError(f"'{printable(path)}' has class folders of images "
                        f"('{printable(kinds['images'].name)}') and of .txt files "
                        f"('{printable(kinds['text'].name)}'), so it is neither a text set nor "
                        "an image set; keep one kind of class folder per set")
    if kinds:
        return "text" in kinds
    texts, images = _count_files(path)
    if not texts and not images:
        what = "holds no images and no .txt files" if _class_dirs(path) else \
            "has no class subfolders"
        raise DataError(f"'{printable(path)}' {what}; give one subfolder per class of images "
                        "or of .txt files (one example per line), or a .csv/.jsonl file with "
                        "text and label columns")
    return not images


def load_text_set(path: str | Path, val_fraction: float = 0.2, seed: int = 0) -> TextSet:
    """Read a labeled text set (see the module docstring for the formats) and split it.

    Args:
        path: a folder (class folders, or train/ and val/ of class folders) or a file.
        val_fraction: share of each class held out when the data has no val/ folder.
        seed: seeds the stratified split.

    Raises:
        DataError: a missing or empty path, no classes, a class without examples, a file
            that is not UTF-8 (naming the file and line), a CSV without text/label columns.
        ConfigError: a file of another type, or ``val_fraction`` outside (0, 1).
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val fraction must lie between 0 and 1, got {val_fraction}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"labeled text set '{printable(path)}' does not exist; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"labeled text set '{printable(path)}' is empty; add examples")
    held_out = held_out_folder(path) if path.is_dir() else None
    if held_out is not None:
        classes, train, cut = read_examples(path / "train")
        val_classes, val, val_cut = read_examples(held_out)
        if val_classes != classes:
            differ = sorted(set(classes) ^ set(val_classes))
            raise DataError(f"classes in '{printable(held_out)}' differ from those in train/ "
                            f"({printable(', '.join(differ[:5]))}); give both splits the same "
                            "class folders")
        return TextSet(path, tuple(classes), tuple(train), tuple(val), "folders", cut + val_cut)
    classes, samples, cut = read_examples(path)
    train, val = _split(samples, classes, val_fraction, seed)
    return TextSet(path, tuple(classes), tuple(train), tuple(val), "seeded split", cut,
                   val_fraction)
