"""Checks for files from elsewhere: archives and ONNX models must not reach outside their folder.

An archive member named ``../../.bashrc`` or ``/etc/cron.d/x``, or a link pointing out of the
target folder, would let a downloaded bundle write anywhere; an ONNX initializer whose external
data ``location`` is ``../../secret`` would let a model read any file into its weights. Both are
refused with a one-line CheckpointError before anything is written or loaded. Only the standard
library is used, so the deploy runtime can vendor this module.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from edgessl.errors import CheckpointError


def _inside(root: Path, path: Path) -> bool:
    """True when ``path`` (resolved, links followed) lies inside ``root`` (resolved)."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return False
    return True


def _unsafe_name(name: str) -> str | None:
    """Why an archive member name is unsafe (absolute, parent references), or None."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in pure.parts:
        return "a '..' path"
    return None


def _check_tar_member(member, dest: Path, archive: Path) -> None:
    where = f"archive '{archive}' member '{member.name}'"
    why = _unsafe_name(member.name)
    if why is not None:
        raise CheckpointError(f"{where} is {why}, which would be written outside '{dest}'; "
                              "refusing to extract it (the archive is damaged or malicious)")
    target = dest / member.name
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        # A symlink is relative to its own folder, a hard link to the archive's root.
        base = target.parent if member.issym() else dest
        if PurePosixPath(link).is_absolute() or not _inside(dest, base / link):
            raise CheckpointError(f"{where} is a link to '{member.linkname}', outside '{dest}'; "
                                  "refusing to extract it (the archive is damaged or malicious)")
    elif not (member.isfile() or member.isdir()):
        raise CheckpointError(f"{where} is a device or pipe, not a file; refusing to extract it")
    if not _inside(dest, target.parent):  # a link extracted earlier must not lead outside
        raise CheckpointError(f"{where} would be written through a link outside '{dest}'; "
                              "refusing to extract it")


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a tar (optionally gzip/bz2/xz) or zip archive into ``dest``, refusing escapes.

    Every member is checked before anything is written: no absolute paths, no ``..``, no
    symbolic or hard links pointing outside ``dest``, no devices or pipes. Python's own
    ``data`` filter is applied as well where available.

    Returns:
        ``dest`` as a Path.

    Raises:
        CheckpointError: for an unreadable archive or any member that would leave ``dest``.
    """
    import tarfile
    import zipfile

    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise CheckpointError(f"archive '{archive}' does not exist; check the path")
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                why = _unsafe_name(name)
                if why is not None:
                    raise CheckpointError(f"archive '{archive}' member '{name}' is {why}; "
                                          "refusing to extract it")
            zf.extractall(dest)
        return dest
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError) as exc:
        raise CheckpointError(f"'{archive}' is not a readable tar or zip archive ({exc})"
                              ) from None
    with tar:
        members = tar.getmembers()
        for member in members:
            _check_tar_member(member, dest, archive)
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            tar.extractall(dest, members=members, **kwargs)
        except getattr(tarfile, "FilterError", tarfile.TarError) as exc:
            raise CheckpointError(f"archive '{archive}': {exc}; refusing to extract it"
                                  ) from None
    return dest


_LOCATION_KEY = b"\x0a\x08location"  # StringStringEntryProto field 1 = "location"


def _varint(data, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
    raise ValueError("bad varint")


def _scan_locations(path: Path) -> list[str]:
    """External data locations found in the raw protobuf bytes, without the ``onnx`` package.

    Serializers write an entry's key before its value; an entry written otherwise cannot be
    checked this way and is reported as the unreadable location "?".
    """
    import mmap

    locations = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = data.find(_LOCATION_KEY)
        while pos != -1:
            at = pos + len(_LOCATION_KEY)
            try:
                if data[at] != 0x12:
                    raise ValueError("value first")
                length, start = _varint(data, at + 1)
                locations.append(bytes(data[start:start + length]).decode("utf-8", "replace"))
            except (ValueError, IndexError):
                locations.append("?")
            pos = data.find(_LOCATION_KEY, at)
    return locations


def check_onnx_external_data(path: str | Path) -> list[Path]:
    """Refuse an ONNX file whose external data lies outside the file's own folder.

    The raw protobuf bytes are scanned for external-data ``location`` entries, so neither the
    ``onnx`` package nor a full parse is needed (the deploy runtime has onnxruntime only).

    Returns:
        The external data files it references (all inside its folder), possibly empty.

    Raises:
        CheckpointError: for an absolute, ``..`` or linked location that leads outside the
            folder, or an entry that cannot be read.
    """
    path = Path(path)
    try:
        locations = _scan_locations(path) if path.stat().st_size else []
    except OSError as exc:
        raise CheckpointError(f"cannot read '{path}': {exc.strerror}") from None
    folder = path.parent
    files = []
    for location in dict.fromkeys(locations):
        target = folder / location
        if (not location or location == "?"
                or PurePosixPath(location.replace("\\", "/")).is_absolute()
                or Path(location).is_absolute() or not _inside(folder, target)):
            raise CheckpointError(f"'{path}' reads external data from '{location}', outside "
                                  f"its folder '{folder}'; refusing to load it (keep the .onnx "
                                  "and its .data file together, with a plain file name)")
        files.append(target)
    return files
