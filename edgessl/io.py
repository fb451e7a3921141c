"""Atomic outputs: everything is written under a temporary name and renamed into place."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgessl.errors import OutputExistsError, OutputWriteError

# errno values that mean "this place cannot take the output" (as opposed to a bad input file).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _check_writable(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create output folder '{parent}': {exc.strerror}; "
                               "choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise OutputWriteError(f"output folder '{parent}' is not writable; choose another --out")


def check_output_path(target: str | Path) -> Path:
    """Check before a long run that ``target`` could be written, creating nothing.

    The nearest existing ancestor must be a writable folder (not a file).

    Raises:
        OutputWriteError: when ``target`` lies under a file or a read-only folder.
    """
    target = Path(target).expanduser()
    ancestor = target.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputWriteError(f"cannot write '{target}': '{ancestor}' is a file, not a folder; "
                               "choose another --out")
    if not os.access(ancestor, os.W_OK):
        raise OutputWriteError(f"cannot write '{target}': folder '{ancestor}' is not writable; "
                               "choose another --out")
    return target


def write_failure(exc: BaseException, target: Path) -> OutputWriteError | None:
    """The one-line error for a failed write (disk full, quota, read-only), else None.

    Libraries report a full disk in their own exception types (safetensors, torch.save), so
    the message text is checked as well as ``errno``.
    """
    full = "no space left on device" in str(exc).lower()
    if not full and not (isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS):
        return None
    reason = "no space left on device" if full else (exc.strerror or str(exc)).lower()
    return OutputWriteError(f"could not write '{target}': {reason}; the previous output (if "
                            "any) is unchanged: free some space or choose another --out")


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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        failure = write_failure(exc, target)
        if failure is not None:
            raise failure from None
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
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        failure = write_failure(exc, target)
        if failure is not None:
            raise failure from None
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
