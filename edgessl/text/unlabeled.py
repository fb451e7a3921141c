"""Unlabeled text for self-supervised pretraining: a ``.txt`` file, or a folder of them.

One example per line. Files are read as labeled sets are (``edgessl.text.data``): UTF-8
(a byte-order mark is allowed; other bytes are an error naming the file and line), blank
lines skipped, whitespace stripped, lines longer than ``MAX_TEXT_CHARS`` cut there and
counted. A folder is searched recursively for ``.txt`` files (hidden ones skipped), in
sorted order, so the same folder always gives the same lines in the same order.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from edgessl.errors import DataError, printable
from edgessl.text.data import MAX_TEXT_CHARS, TEXT_SUFFIX, _read_text

log = logging.getLogger("edgessl")


@dataclass(frozen=True)
class UnlabeledText:
    """Lines of unlabeled text.

    Attributes:
        root: the file or folder the user gave.
        lines: the non-blank lines, stripped, in file order.
        files: how many ``.txt`` files were read.
        truncated: lines cut at ``MAX_TEXT_CHARS``.
    """

    root: Path
    lines: tuple[str, ...]
    files: int
    truncated: int = 0

    def fingerprint(self) -> str:
        """A short, stable hash of the lines (identifies the data in a card)."""
        h = hashlib.sha256()
        for line in self.lines:
            h.update(line.encode() + b"\n")
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """What a card records about the data."""
        return {"path": str(self.root), "fingerprint": self.fingerprint(),
                "lines": len(self.lines), "files": self.files, "truncated": self.truncated}


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def text_files(path: str | Path) -> list[Path] | None:
    """The ``.txt`` files of ``path`` when it is unlabeled text, else None.

    Unlabeled text is a ``.txt`` file, or a folder whose (non-hidden) files are all
    ``.txt`` files, at least one. This is what ``edgessl pretrain`` uses to tell text from
    images.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return [path] if path.suffix.lower() == TEXT_SUFFIX else None
    if not path.is_dir():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file() and _visible(p, path))
    if not files or any(p.suffix.lower() != TEXT_SUFFIX for p in files):
        return None
    return files


def read_unlabeled_text(path: str | Path, min_lines: int = 1) -> UnlabeledText:
    """Read unlabeled text (a ``.txt`` file or a folder of them), one example per line.

    Args:
        path: the file or folder.
        min_lines: fewest non-blank lines accepted (a contrastive batch needs two).

    Raises:
        DataError: a missing path, a folder with files other than ``.txt``, a file that is
            not UTF-8 (naming the file and line), or fewer than ``min_lines`` lines.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"unlabeled text '{printable(path)}' does not exist; check the path")
    files = text_files(path)
    if files is None:
        raise DataError(f"'{printable(path)}' is not unlabeled text; give a {TEXT_SUFFIX} file "
                        f"or a folder holding only {TEXT_SUFFIX} files, one example per line")
    lines, truncated = [], 0
    for file in files:
        for line in _read_text(file).splitlines():
            line = line.strip()
            if not line:
                continue
            if len(line) > MAX_TEXT_CHARS:
                line, truncated = line[:MAX_TEXT_CHARS], truncated + 1
            lines.append(line)
    if len(lines) < min_lines:
        raise DataError(f"'{printable(path)}' holds {len(lines)} non-blank line"
                        f"{'' if len(lines) == 1 else 's'}; pretraining needs at least "
                        f"{min_lines}: add text, one example per line")
    if truncated:
        log.warning("%d lines in '%s' are longer than %d characters and were cut there",
                    truncated, path, MAX_TEXT_CHARS)
    return UnlabeledText(path, tuple(lines), len(files), truncated)
