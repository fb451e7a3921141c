"""Outputs: locked, atomic, never replacing anything without --force, with the user's umask.

Everything edgessl writes goes through ``atomic_dir`` / ``atomic_file``: the output is written
under a temporary dot-name beside its target and renamed into place, so a failure or a signal
leaves the previous output as it was and no temporary behind. While one run writes a target it
holds a lock on it (``output_lock``), so a second run to the same place fails at once instead
of silently winning; the lock is an ``flock`` the kernel drops when its process dies, so a
killed run never blocks the next one. Commands check their outputs before any work with
``check_outputs`` (exists without --force, unwritable, two outputs the same, an output that is,
holds or lies inside an input). JSON is written strictly (no bare NaN/Infinity).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from edgessl.errors import ConfigError, EdgesslError, OutputExistsError, OutputWriteError
from edgessl.interrupt import signals_held

log = logging.getLogger("edgessl")

# errno values that mean "this place cannot take the output" (as opposed to a bad input file).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
# A write that failed with less than this free beside the target failed for want of space,
# whatever the library called it (OpenVINO says "basic_ios::clear", torch.save "file write
# failed").
LOW_SPACE_BYTES = 1 << 20


def _check_writable(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create output folder '{parent}': {exc.strerror}; "
                               "choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise OutputWriteError(f"output folder '{parent}' is not writable; choose another --out")


def check_output_path(target: str | Path, flag: str = "--out") -> Path:
    """Check before a long run that ``target`` could be written, creating nothing.

    The nearest existing ancestor must be a writable folder (not a file). ``flag`` is the
    option or argument that gave ``target``, for the message.

    Raises:
        OutputWriteError: when ``target`` lies under a file or a read-only folder.
    """
    target = Path(target).expanduser()
    ancestor = target.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputWriteError(f"cannot write '{target}': '{ancestor}' is a file, not a folder; "
                               f"choose another {flag}")
    if not os.access(ancestor, os.W_OK):
        raise OutputWriteError(f"cannot write '{target}': folder '{ancestor}' is not writable; "
                               f"choose another {flag}")
    return target


def _identity(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _relation(out: Path, inp: Path) -> str | None:
    """How output ``out`` overlaps input ``inp`` (both real paths), or None."""
    if out == inp or (out.exists() and inp.exists() and os.path.samefile(out, inp)):
        return "is"
    if out in inp.parents:
        return "contains"
    if inp in out.parents:
        return "lies inside"
    return None


def _input_paths(inputs: Mapping[str, str | Path | Iterable | None]) -> list[tuple[str, Path]]:
    """(name, real path) of every input; an artifact brings its companions (``.xml``: ``.bin``)."""
    from edgessl.runtime_specs import companion_files

    found = []
    for name, value in inputs.items():
        if value is None:
            continue
        values = [value] if isinstance(value, (str, Path)) else list(value)
        for path in (Path(v).expanduser() for v in values):
            found.append((name, _identity(path)))
            found += [(name, _identity(f)) for f in companion_files(path)]
    return found


def check_outputs(outputs: Mapping[str, str | Path | None],
                  inputs: Mapping[str, str | Path | Iterable | None] | None = None,
                  force: bool = False) -> None:
    """Check, before any work, that a command may write ``outputs``.

    Every command calls this with all it will write and all it reads, so that no output is
    replaced without --force, no input is overwritten or written into, and a long run does
    not fail at its end.

    Args:
        outputs: option name ("--out", "--json") -> path; None (not asked for) and "-"
            (stdout) are skipped.
        inputs: argument or option name ("MODEL", "--data") -> a path or several; None skipped.
        force: existing outputs may be replaced (never an input, even so).

    Raises:
        ConfigError: an output that is, contains or lies inside an input, or two outputs
            with the same path.
        OutputExistsError: an output exists and ``force`` is False.
        OutputWriteError: an output's place is a file or is not writable.
    """
    sources = _input_paths(inputs or {})
    seen: dict[Path, str] = {}
    for name, value in outputs.items():
        if value is None or str(value) == "-":
            continue
        path = Path(value).expanduser()
        real = _identity(path)
        if real in seen:
            raise ConfigError(f"{seen[real]} and {name} both write '{path}'; give each output "
                              "its own path")
        seen[real] = name
        for source, inp in sources:
            relation = _relation(real, inp)
            if relation is not None:
                raise ConfigError(f"{name} '{path}' {relation} the input {source} ('{inp}'); "
                                  f"an output never replaces or writes into what the command "
                                  f"reads: choose another {name}")
        if (path.exists() or path.is_symlink()) and not force:
            raise OutputExistsError(f"'{path}' ({name}) exists; pass --force to overwrite it "
                                    f"or choose another {name}")
        if name == "--out":  # every command's --out is a folder that --force replaces whole
            check_replaceable(path, force, name)
        check_output_path(path, name)


# What a file manager may add to a folder that was copied around.
DESKTOP_LITTER = (".DS_Store", "Thumbs.db", "desktop.ini")
# A folder holding one of these at its top was written by edgessl: a checkpoint (image or
# text), an export (image or text), a deploy bundle, a compare run, the digits dataset.
OUTPUT_MARKERS = ("card.json", "metadata.json", "text_model.json", "bundle.json",
                  "compare.json", "edgessl-digits.json")


def _written_by_edgessl(folder: Path) -> bool:
    return any((folder / name).is_file() for name in OUTPUT_MARKERS)


def check_replaceable(out: str | Path, force: bool, flag: str = "--out", own=None,
                      what: str = "a folder edgessl wrote") -> None:
    """Refuse an output folder that ``--force`` would replace but that edgessl never wrote.

    ``--force`` replaces the output folder as a whole, so a user who takes ``--out`` for "a
    folder to write into" (``--out ~/Desktop``, ``--out .``) would lose everything in it.
    It may replace an empty folder, a symbolic link (the link, never what it points to), and
    a folder edgessl wrote: with ``own`` (entry -> bool, a command's own outputs), one whose
    every entry is its own; without, one that holds an ``OUTPUT_MARKERS`` file.

    Raises:
        ConfigError: ``out`` is the working folder or holds it.
        OutputExistsError: ``out`` is a file, or a folder holding other files (even with
            ``force``).
    """
    from edgessl.errors import printable

    out = Path(out).expanduser()
    try:
        real, here = Path(os.path.realpath(out)), Path.cwd().resolve()
    except OSError:  # the working folder was deleted under us: no output can be it
        real = here = None
    if here is not None and (real == here or real in here.parents):
        where = "the current folder" if real == here else "a folder around the current one"
        raise ConfigError(f"{flag} '{printable(out)}' is {where}, which the output would "
                          f"replace; choose a new folder for it (such as "
                          f"'{printable(out / 'edgessl-out')}')")
    if not force or out.is_symlink() or not out.exists():
        return  # check_outputs refuses what exists without --force
    if not out.is_dir():
        raise OutputExistsError(f"{flag} '{printable(out)}' is a file, not {what}; --force "
                                f"replaces only {what}, never other files: choose another "
                                f"{flag}")
    entries = [p for p in out.iterdir() if p.name not in DESKTOP_LITTER]
    if own is None and (not entries or _written_by_edgessl(out)):
        return
    foreign = sorted(p.name for p in entries if own is None or not own(p))
    if foreign:
        shown = ", ".join(printable(n) for n in foreign[:3]) + (" ..." if len(foreign) > 3
                                                                 else "")
        raise OutputExistsError(f"{flag} '{printable(out)}' holds {len(foreign)} file(s) that "
                                f"are not {what} ({shown}); --force replaces only {what}, never "
                                f"other files: choose another {flag}")


def _free_bytes(target: Path) -> int | None:
    folder = Path(target).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def write_failure(exc: BaseException, target: Path) -> OutputWriteError | None:
    """The one-line error for a failed write (disk full, quota, read-only), else None.

    Decided by what the failure is: an ``errno`` of ``WRITE_ERRNOS``, or any library error
    while the target's file system has (almost) no space left, measured before the partial
    output is removed. Libraries that wrap ENOSPC in their own types (safetensors) are also
    recognised by their message.
    """
    if isinstance(exc, EdgesslError) or not isinstance(exc, Exception):
        return None  # a user error or a stop is reported as itself
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        reason = os.strerror(exc.errno).lower()
    elif "no space left on device" in str(exc).lower():
        reason = "no space left on device"
    else:
        free = _free_bytes(target)
        if free is None or free >= LOW_SPACE_BYTES:
            return None
        reason = "no space left on device"
    return OutputWriteError(f"could not write '{target}': {reason}; the previous output (if "
                            "any) is unchanged: free some space or choose another --out")


@contextlib.contextmanager
def disk_errors(path: str | Path) -> Iterator[None]:
    """Around a library's write of ``path``: a failure while the disk is (almost) full becomes
    ``OSError(ENOSPC)``, which ``atomic_dir``/``atomic_file`` report as one line.

    For writes whose partial file is removed before the error reaches ``atomic_dir`` (a
    ``TemporaryDirectory`` cleaning up), where free space would look normal again.
    """
    try:
        yield
    except Exception as exc:
        if isinstance(exc, (OSError, EdgesslError)):
            raise
        free = _free_bytes(Path(path))
        if free is None or free >= LOW_SPACE_BYTES:
            raise
        raise OSError(errno.ENOSPC, f"No space left on device ({type(exc).__name__} "
                                    f"writing '{path}')") from exc


def _previous(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def recover_replaced(target: str | Path) -> bool:
    """Put back the previous version of ``target`` if a kill hit between the two renames.

    ``atomic_dir`` replaces a folder by renaming it to ``.<name>.old`` and the new one into
    place; a SIGKILL between the two leaves only the old one, which is complete. Returns True
    when it was restored.
    """
    target = Path(os.path.abspath(target))
    if not target.name:  # the file system's root: never an output of edgessl's
        return False
    old = _previous(target)
    if not target.exists() and old.is_dir():
        old.rename(target)
        return True
    return False


# Locks this process holds: absolute target -> nesting depth (a pretraining run holds its
# output's lock for the whole run and saves through atomic_dir, which takes it again).
_held: dict[str, int] = {}


def _lock_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def _acquire(lock: Path, target: Path) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``lock``; None where the platform
    or file system has no locks."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames still protect each output
        return None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputWriteError(f"cannot create the lock '{lock}' for '{target}': "
                                   f"{exc.strerror}; choose a writable --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise OutputExistsError(f"another edgessl run{pid} is writing '{target}'; wait "
                                    "for it to finish or choose another --out") from None
        except OSError:  # a file system without flock (some network mounts)
            os.close(fd)
            return None
        # The holder before us unlinks the file as it releases it: a lock on a file no
        # longer at this path locks nothing, so open it again.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            with contextlib.suppress(OSError):  # the pid is for the message only
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


@contextlib.contextmanager
def output_lock(target: str | Path, force: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (file ``.<name>.lock`` beside it) for the block.

    A run that writes ``target`` more than once (a checkpoint every epoch) holds it for the
    whole run. Re-entrant within a process. The kernel releases it when the process dies, so
    a killed run leaves at most a stale lock file, which never blocks.

    Args:
        target: the output file or folder.
        force: False to refuse a ``target`` that exists once the lock is held.

    Raises:
        OutputExistsError: another process holds the lock; or ``target`` exists and
            ``force`` is False.
    """
    target = Path(target)
    key = str(target.absolute())
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    _check_writable(target.parent)
    lock = _lock_file(target)
    fd = _acquire(lock, target)
    _held[key] = 1
    try:
        if (target.exists() or target.is_symlink()) and not force:
            raise _exists_error(target)
        yield
    finally:
        del _held[key]
        if fd is not None:
            lock.unlink(missing_ok=True)  # before closing: see _acquire
            os.close(fd)


def _new_temp(target: Path, folder: bool) -> Path:
    """A new empty folder or file ``.<name>.<random>.tmp`` beside ``target``.

    Created with mode 0777 / 0666 so that the umask applies, as for any file the user makes
    (``tempfile`` would make it 0700 / 0600, and the output would keep that mode).
    """
    for _ in range(100):
        path = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            if folder:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue
    raise OutputWriteError(f"cannot create a temporary name beside '{target}'")


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(tmp: Path) -> None:
    """Give ``tmp`` and all in it the modes a file the user made would have: folders and
    executables 0777 & ~umask, other files 0666 & ~umask.

    Libraries write some files 0600 (safetensors, ``tempfile``); outputs are copied to devices
    and shared, so they get the user's modes, whoever wrote them.
    """
    mask = _umask()
    paths = [tmp, *tmp.rglob("*")] if tmp.is_dir() else [tmp]
    for path in paths:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        full = 0o777 if path.is_dir() or mode & 0o111 else 0o666
        if mode & 0o777 != full & ~mask:
            os.chmod(path, full & ~mask)


def _exists_error(target: Path) -> OutputExistsError:
    return OutputExistsError(f"'{target}' exists; pass --force to overwrite it or choose "
                             "another output")


def _publish_dir(tmp: Path, target: Path, force: bool) -> None:
    if target.exists() or target.is_symlink():
        if not force:  # made by something else while this run wrote: never replace it
            raise _exists_error(target)
        old = _previous(target)
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def _publish_file(tmp: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(tmp, target)
        return
    try:  # a hard link fails if the target exists: no window between check and rename
        os.link(tmp, target)
    except FileExistsError:
        raise _exists_error(target) from None
    except OSError:  # no hard links here (some file systems): check, then rename
        if target.exists() or target.is_symlink():
            raise _exists_error(target) from None
        os.replace(tmp, target)
    else:
        tmp.unlink()


@contextlib.contextmanager
def _atomic(target: str | Path, force: bool, folder: bool) -> Iterator[Path]:
    target = Path(target)
    with output_lock(target):
        if folder:
            recover_replaced(target)
        if (target.exists() or target.is_symlink()) and not force:
            raise _exists_error(target)
        _check_writable(target.parent)
        tmp = _new_temp(target, folder)
        try:
            yield tmp
            _apply_umask(tmp)
            with signals_held():  # never stop between the two renames
                (_publish_dir if folder else _publish_file)(tmp, target, force)
        except BaseException as exc:
            failure = write_failure(exc, target)  # before the partial output is removed
            if folder:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            if failure is not None:
                raise failure from None
            raise


def atomic_dir(target: str | Path, force: bool = False):
    """Yield a temporary folder beside ``target``; on success it replaces ``target``.

    ``target`` is locked for the block; it is checked for existence on entry and again when
    the result is renamed into place.

    Raises:
        OutputExistsError: if ``target`` exists and ``force`` is False, or another run is
            writing it.
        OutputWriteError: the disk is full or the place is not writable.
    """
    return _atomic(target, force, folder=True)


def atomic_file(target: str | Path, force: bool = False):
    """Yield a temporary file beside ``target``; on success it is renamed to ``target``.

    As ``atomic_dir``: locked, never replaces an existing file unless ``force``.
    """
    return _atomic(target, force, folder=False)


def _finite(data: Any, where: str, bad: list[str]) -> Any:
    """``data`` with non-finite floats as None (their places appended to ``bad``), numpy
    scalars and arrays as Python values and tuples as lists."""
    if hasattr(data, "tolist") and not isinstance(data, (str, bytes)):
        data = data.tolist()  # numpy arrays and scalars
    if isinstance(data, float):
        if math.isfinite(data):
            return data
        bad.append(where or "the value")
        return None
    if isinstance(data, Mapping):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), bad)
                for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v, f"{where}[{i}]", bad) for i, v in enumerate(data)]
    return data


def dumps_json(data: Any, where: str = "JSON output") -> str:
    """Strict JSON text: a non-finite float becomes null, and a warning says where.

    Bare ``NaN``/``Infinity`` (what ``json.dumps`` writes by default) are not JSON, and strict
    parsers refuse the whole file.
    """
    bad: list[str] = []
    clean = _finite(data, "", bad)
    if bad:
        log.warning("%s: %d non-finite value%s written as null (%s%s)", where, len(bad),
                    "" if len(bad) == 1 else "s", ", ".join(bad[:5]),
                    ", ..." if len(bad) > 5 else "")
    return json.dumps(clean, indent=2, allow_nan=False, default=str) + "\n"


def write_json(path: str | Path, data: Any, force: bool = False) -> Path:
    """Write ``data`` as indented strict JSON (see ``dumps_json``), atomically.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
    """
    text = dumps_json(data, f"'{path}'")
    with atomic_file(path, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def require_finite(values: Any, what: str, hint: str,
                   error: type[EdgesslError] = EdgesslError) -> None:
    """Raise if ``values`` (an array or number) holds NaN or infinity.

    Args:
        values: the numbers to check (anything ``numpy.asarray`` takes).
        what: what they are, for the message ("the artifact's outputs on 40 val images").
        hint: what to do about it.
        error: the EdgesslError subclass to raise.

    Raises:
        EdgesslError: (``error``) naming how many values are NaN and how many infinite.
    """
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    if finite.all():
        return
    nan, inf = int(np.isnan(array).sum()), int((~finite).sum() - np.isnan(array).sum())
    parts = [f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "infinite")) if n]
    raise error(f"{what} are not finite ({' and '.join(parts)} of {array.size} "
                       f"values); {hint}")


def file_sha256(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
