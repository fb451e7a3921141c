"""The typer app and the error handling every command shares.

Commands live in one file each (``edgessl/cli/<name>_cmd.py``) and call the Python API.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import typer

from edgessl.errors import EdgesslError

app = typer.Typer(
    name="edgessl",
    help="Self-supervised vision backbones from unlabeled images to an edge device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted.

    A plain StreamHandler keeps the stream it was made with; under ``CliRunner`` (and any
    caller that swaps stderr) that stream is closed after the command returns.
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[_CurrentStderrHandler()],
        force=True,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line on stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn EdgesslError (and Ctrl-C) into one line and an exit code; tracebacks with --debug."""
    try:
        yield
    except typer.Exit:
        raise
    except EdgesslError as exc:
        if _state["debug"]:
            raise
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def echo(text: str = "") -> None:
    typer.echo(text)
