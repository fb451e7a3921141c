"""The project's error types: one base class the CLI turns into a one-line message."""

from __future__ import annotations

import difflib
import stat
from collections.abc import Iterable
from pathlib import Path


class EdgesslError(Exception):
    """A user mistake or an unmet precondition; the CLI prints it on one line and exits 2."""

    exit_code = 2


class DataError(EdgesslError):
    """Missing, empty or unusable data."""


class ConfigError(EdgesslError):
    """An unknown name, key or bad value in a flag, recipe or profile."""


class CheckpointError(EdgesslError):
    """A checkpoint or artifact that is missing, foreign or does not match."""


class OutputExistsError(EdgesslError):
    """An output that exists already and would be overwritten without --force."""


class DeviceUnavailableError(EdgesslError):
    """A target device, runtime or provider that this host does not offer."""


class OutputWriteError(EdgesslError):
    """An output that cannot be written: a read-only place, a path under a file, a full disk."""


class Interrupted(EdgesslError):
    """A run stopped by SIGINT/SIGTERM after saving what it had (exit code 130, as a shell's)."""

    exit_code = 130


def printable(text: object, lines: bool = False) -> str:
    """``text`` made safe to print on a terminal: every character that is not printable is
    written as its Python escape (``\\x1b``, ``\\x9b``, ``\\u202e``, ``\\n``).

    That covers the C0 and C1 controls and DEL (so no escape sequence can move the cursor,
    clear the screen or retitle the window), bidi overrides and other format characters,
    line and paragraph separators, and undecodable bytes of file names (lone surrogates).
    With ``lines`` the newlines and tabs of a multi-line table are kept; otherwise the text
    stays on one line, as an error message must.
    """
    text = str(text)
    kept = "\n\t" if lines else ""
    if text.translate({ord(c): None for c in kept}).isprintable():
        return text
    return "".join(c if c.isprintable() or c in kept else repr(c)[1:-1] for c in text)


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a settings file, in words ("is a folder"), or None.

    The words follow the path in a message: ``recipe 'x' is a folder, not a file; ...``.
    """
    try:
        info = Path(path).stat()
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of the path is a file, not a folder)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a device, pipe or socket)"
    if info.st_size == 0:
        return "is empty"
    return None


def unknown_choice(kind: str, name: str, choices: Iterable[str]) -> ConfigError:
    """Build the error for an unknown name, with a close-match suggestion.

    Example: ``unknown method 'simclrr'. Did you mean 'simclr'? Choose from: byol, simclr``.
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown {kind} '{printable(name)}'.{hint} Choose from: "
                       f"{', '.join(choices)}")
