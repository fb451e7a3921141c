"""Atomic outputs: everything is written under a temporary name and renamed into place."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgessl.errors import EdgesslError, OutputExistsError


def _check_writable(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgesslError(f"cannot create output folder '{parent}': {exc.strerror}; "
                           "choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise EdgesslError(f"output folder '{parent}' is not writable; choose another --out")


def _previous(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def recover_replaced(target: str | Path) -> bool:
    """Put back the previous version of ``target`` if a kill hit between the two renames.

    ``atomic_dir`` replaces a folder by renaming it to ``.<name>.old`` and the new one into
    place; a SIGKILL between the two leaves only the old one, which is complete. Returns True
    when it was restored.
    """
    target = Path(target)
    old = _previous(target)
    if not target.exists() and old.is_dir():
        old.rename(target)
        return True
    return False


@contextlib.contextmanager
def atomic_dir(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``.

    Raises:
        OutputExistsError: if ``target`` exists and ``force`` is False.
    """
    target = Path(target)
    recover_replaced(target)
    if target.exists() and not force:
        raise OutputExistsError(f"'{target}' exists; pass --force to overwrite it or choose --out")
    _check_writable(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = _previous(target)
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: str | Path, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed to ``target``."""
    target = Path(target)
    if target.exists() and not force:
        raise OutputExistsError(f"'{target}' exists; pass --force to overwrite it")
    _check_writable(target.parent)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return Path(path)


def file_sha256(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
