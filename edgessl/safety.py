"""Checks for files from elsewhere: archives and ONNX models must not reach outside their folder.

An archive member named ``../../.bashrc`` or ``/etc/cron.d/x``, or a link pointing out of the
target folder, would let a downloaded bundle write anywhere; an ONNX tensor whose external data
``location`` is ``../../secret`` would let a model read any file into its weights. Both are
refused with a one-line CheckpointError before anything is written or loaded.

ONNX files are checked by walking the protobuf as a runtime parses it (last value wins, repeated
singular messages merge), not by searching the bytes: a model that writes ``location`` twice is
read by the runtime with the last value, so checking the first would check the wrong file. Only
the standard library is used, so the deploy runtime can vendor this module.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from edgessl.errors import CheckpointError, printable


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


# --- ONNX external data ---------------------------------------------------------------------
#
# Which ONNX messages can hold a TensorProto, by field number (onnx/onnx.proto): a message name
# -> {field: (child message, repeated?)}. Only these fields are followed; all others are skipped
# by their wire type. ``Entry`` is StringStringEntryProto (key = 1, value = 2).
_ONNX_SCHEMA: dict[str, dict[int, tuple[str, bool]]] = {
    "ModelProto": {7: ("GraphProto", False), 20: ("TrainingInfoProto", True),
                   25: ("FunctionProto", True)},
    "TrainingInfoProto": {1: ("GraphProto", False), 2: ("GraphProto", False)},
    "FunctionProto": {7: ("NodeProto", True), 11: ("AttributeProto", True)},
    "GraphProto": {1: ("NodeProto", True), 5: ("TensorProto", True),
                   15: ("SparseTensorProto", True)},
    "NodeProto": {5: ("AttributeProto", True)},
    "AttributeProto": {5: ("TensorProto", False), 6: ("GraphProto", False),
                       22: ("SparseTensorProto", False), 10: ("TensorProto", True),
                       11: ("GraphProto", True), 23: ("SparseTensorProto", True)},
    "SparseTensorProto": {1: ("TensorProto", False), 2: ("TensorProto", False)},
    "TensorProto": {8: ("name", False), 13: ("Entry", True)},
}
# protobuf's own default recursion limit: a deeper file does not parse in a runtime either.
_MAX_DEPTH = 100


class _Malformed(ValueError):
    """The bytes are not a protobuf message (truncated, bad varint, group or wrong wire type)."""


def _varint(data, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < end and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
    raise _Malformed("bad varint")


def _fields(data, ranges):
    """(field number, wire type, start, end) of each field in the byte ranges, in order.

    ``ranges`` are the (start, end) slices of one message: a singular message field that
    appears more than once is merged by protobuf, which is the same as parsing its slices one
    after the other. ``start:end`` is the payload of a length-delimited field (wire type 2).
    """
    for start, end in ranges:
        pos = start
        while pos < end:
            key, pos = _varint(data, pos, end)
            field, wire = key >> 3, key & 7
            begin = pos
            if field == 0:
                raise _Malformed("field number 0")
            if wire == 0:
                _, pos = _varint(data, pos, end)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                length, begin = _varint(data, pos, end)
                pos = begin + length
            else:  # groups (3, 4) are deprecated and never written for ONNX
                raise _Malformed(f"wire type {wire} in field {field}")
            if pos > end:
                raise _Malformed(f"field {field} runs past the end of its message")
            yield field, wire, begin, pos


def _text(data, start: int, end: int) -> str:
    try:
        return bytes(data[start:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("a string that is not UTF-8") from None


def _entry(data, start: int, end: int) -> tuple[str | None, str | None]:
    """(key, value) of a StringStringEntryProto: the LAST of each wins, as in protobuf."""
    key = value = None
    for field, wire, begin, stop in _fields(data, [(start, end)]):
        if field in (1, 2):
            if wire != 2:
                raise _Malformed(f"entry field {field} is not a string")
            if field == 1:
                key = _text(data, begin, stop)
            else:
                value = _text(data, begin, stop)
    return key, value


def _external_locations(data) -> list[tuple[str, list[str]]]:
    """(tensor name, its external data ``location`` values) for every tensor of the model.

    Walks ModelProto -> graph, functions, training info -> nodes -> attributes (t, tensors,
    sparse tensors, g, graphs: subgraphs recursively), initializers and sparse initializers,
    with protobuf's semantics: the last value of a singular field wins and a singular message
    field that appears more than once is merged. So the locations found are the ones a runtime
    (ONNX Runtime, OpenVINO, onnx) will read, whatever order or repetition the bytes use.

    Raises:
        _Malformed: when the bytes are not a protobuf message.
    """
    found = []
    stack = [("ModelProto", [(0, len(data))], 0)]
    while stack:
        kind, ranges, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise _Malformed(f"messages nested over {_MAX_DEPTH} deep")
        schema = _ONNX_SCHEMA[kind]
        merged: dict[int, list[tuple[int, int]]] = {}
        name, locations = "?", []
        for field, wire, begin, end in _fields(data, ranges):
            if field not in schema:
                continue
            if wire != 2:
                raise _Malformed(f"{kind} field {field} has wire type {wire}")
            child, repeated = schema[field]
            if child == "name":
                name = _text(data, begin, end)
            elif child == "Entry":
                key, value = _entry(data, begin, end)
                if key == "location":
                    locations.append(value or "")
            elif repeated:
                stack.append((child, [(begin, end)], depth + 1))
            else:
                merged.setdefault(field, []).append((begin, end))
        stack += [(schema[f][0], r, depth + 1) for f, r in merged.items()]
        if locations:
            found.append((name, locations))
    return found


def _unsafe_location(location: str, folder: Path) -> bool:
    """True when ``location`` is empty, absolute, has ``..`` or leads out of ``folder``."""
    portable = location.replace("\\", "/")
    return (not location or not location.isprintable() or ".." in PurePosixPath(portable).parts
            or PurePosixPath(portable).is_absolute() or Path(location).is_absolute()
            or (len(location) > 1 and location[1] == ":")
            or not _inside(folder, folder / location))


def check_onnx_external_data(path: str | Path) -> list[Path]:
    """Refuse an ONNX file whose external data lies outside the file's own folder.

    The protobuf is walked with the standard library only (the deploy runtime has no ``onnx``
    package), following every place a tensor can sit, with protobuf's merge semantics, so
    the check sees the ``location`` that a runtime will read.

    Returns:
        The external data files it references (all inside its folder), possibly empty.

    Raises:
        CheckpointError: for a damaged protobuf; a tensor with more than one ``location``; an
            empty, absolute, ``..`` or linked location that leads outside the folder.
    """
    import mmap

    path = Path(path)
    try:
        with open(path, "rb") as f:
            if not os.fstat(f.fileno()).st_size:
                return []
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                tensors = _external_locations(data)
    except OSError as exc:
        raise CheckpointError(f"cannot read '{path}': {exc.strerror}") from None
    except _Malformed as exc:
        raise CheckpointError(f"'{path}' is not a valid ONNX model (damaged protobuf: {exc}); "
                              "re-export it with edgessl export") from None
    folder, files = path.parent, []
    for name, locations in tensors:
        shown = ", ".join(f"'{printable(loc)}'" for loc in locations)
        if len(locations) > 1:
            raise CheckpointError(f"'{path}' gives tensor '{printable(name)}' {len(locations)} "
                                  f"external data locations ({shown}); refusing to load an "
                                  "ambiguous model (re-export it with edgessl export)")
        if _unsafe_location(locations[0], folder):
            raise CheckpointError(f"'{path}' reads external data from {shown}, outside its "
                                  f"folder '{folder}'; refusing to load it (keep the .onnx and "
                                  "its .data file together, with a plain file name)")
        target = folder / locations[0]
        if _linked_elsewhere(target):
            raise CheckpointError(f"'{path}' reads external data from {shown}, a file with "
                                  "other hard links (it may be any file on this disk); "
                                  "refusing to load it (copy the .data file instead of linking)")
        files.append(target)
    return list(dict.fromkeys(files))


def _linked_elsewhere(path: Path) -> bool:
    """True for a regular file with more than one hard link: a link inside the folder can be
    the same file as one outside it, which no path check can see."""
    try:
        info = path.stat()
    except OSError:  # missing: the runtime says so itself
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink > 1
