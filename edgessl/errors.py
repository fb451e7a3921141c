"""The project's error types: one base class the CLI turns into a one-line message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


def printable(text: object) -> str:
    """``text`` with control characters escaped, so that a message stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def unknown_choice(kind: str, name: str, choices: Iterable[str]) -> ConfigError:
    """Build the error for an unknown name, with a close-match suggestion.

    Example: ``unknown method 'simclrr'. Did you mean 'simclr'? Choose from: byol, simclr``.
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown {kind} '{printable(name)}'.{hint} Choose from: "
                       f"{', '.join(choices)}")
