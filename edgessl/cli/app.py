"""The typer app, and the one place where every command's errors become one line.

Commands live in one file each (``edgessl/cli/<name>_cmd.py``) and call the Python API. The
root command (``EdgesslCommand``) turns what goes wrong in any of them into one ``error: ...``
line on stderr: click's usage errors (exit 2, with click's "did you mean" and where to get
help), the project's EdgesslError (its exit code; a traceback with ``--debug``) and Ctrl-C
(exit 130). Everything printed goes through ``echo``, ``fail`` or the logging handler, which
escape control characters: labels, paths and messages may come from untrusted files.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from edgessl import __version__
from edgessl.errors import EdgesslError, printable

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import (
        ClickException,
        NoArgsIsHelpError,
        NoSuchOption,
        UsageError,
    )
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click.exceptions import ClickException, NoSuchOption, UsageError

    NoArgsIsHelpError = ()  # older click prints the help and exits without raising


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line on stderr and return the Exit to raise."""
    typer.secho(f"error: {printable(message)}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def usage_message(exc: ClickException) -> str:
    """click's message for a usage error, lower-cased like ours, plus where to get help.

    ``No such option: --epoch (Possible options: --epochs, --warmup-epochs)`` ->
    ``no such option: --epoch. Did you mean --epochs? See 'edgessl pretrain --help'``.
    """
    if isinstance(exc, NoSuchOption) and exc.possibilities:
        # the closest option only, as our own errors suggest a name (click lists every
        # option that shares a few letters)
        close = difflib.get_close_matches(exc.option_name, exc.possibilities, n=1, cutoff=0)
        message = f"no such option: {exc.option_name}. Did you mean {close[0]}?"
    else:
        message = " ".join(exc.format_message().split()).rstrip(".")
        if message[:2].istitle():  # "No such option", not "MODEL is missing"
            message = message[0].lower() + message[1:]
    ctx = exc.ctx if isinstance(exc, UsageError) else None
    if ctx is not None:
        message += f"{' See' if message.endswith('?') else '; see'} '{ctx.command_path} --help'"
    return message


class EdgesslCommand(TyperGroup):
    """The ``edgessl`` group: one error line for every command, however it fails."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra: Any) -> Any:
        if not standalone_mode:  # a caller that handles click's exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # a bare `edgessl` or `edgessl data`: the help
            exc.show()
            code = exc.exit_code
        except ClickException as exc:  # usage errors: unknown option, bad value, missing arg
            typer.secho(f"error: {printable(usage_message(exc))}", fg=typer.colors.RED,
                        err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.secho("error: aborted", fg=typer.colors.RED, err=True)
            code = 1
        # Without standalone mode click returns the code of a typer.Exit, or the command's
        # return value (None: our commands return nothing) when it finished.
        sys.exit(code if isinstance(code, int) else 0)

    def format_commands(self, ctx: typer.Context, formatter) -> None:
        # each command's first sentence, wrapped, not cut at the column where it would wrap
        rows = [(name, command.get_short_help_str(limit=1000))
                for name, command in sorted(self.commands.items()) if not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: typer.Context) -> Any:
        from edgessl.interrupt import interrupted_message, stop_on_signals

        try:
            with stop_on_signals():  # SIGINT/SIGTERM: cleanup runs, then one line, exit 130
                return super().invoke(ctx)
        except UsageError as exc:
            if exc.ctx is None and ctx.invoked_subcommand:
                # click's parser raises some errors ("requires an argument") without the
                # context of the command they belong to; name it for the help hint
                command = self.get_command(ctx, ctx.invoked_subcommand)
                exc.ctx = typer.Context(command, parent=ctx, info_name=ctx.invoked_subcommand)
            raise
        except EdgesslError as exc:
            if ctx.find_root().params.get("debug"):  # --debug, parsed into the root context
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt as exc:
            raise fail(interrupted_message(exc), 130) from None
        except OSError as exc:
            # a path the file system refused (too long, a loop of links, not a folder, no
            # permission): the user's path, not a bug, so one line naming it
            if exc.filename is None or ctx.find_root().params.get("debug"):
                raise
            name = str(exc.filename)
            shown = name if len(name) <= 200 else f"{name[:100]}...{name[-50:]}"
            raise fail(f"cannot use '{shown}': {exc.strerror or exc}; check the path",
                       2) from None


def _argument_name(param) -> str:
    name = param.metavar or param.name.upper()
    return name if param.nargs == 1 or name.endswith("...") else f"{name}..."


def expand_home(value: Any) -> Any:
    """A path (or list of paths) with a leading ``~`` made the user's home, as a shell does.

    The shell leaves ``~`` alone in ``--out=~/x`` and in quotes; taken literally, that makes a
    folder named ``~`` in the working directory, which a later ``rm -rf ~`` would confuse
    with the home folder. Values that are not paths (texts to classify, names) are untouched.
    """
    from pathlib import Path

    if isinstance(value, Path):
        return value.expanduser()
    if isinstance(value, (list, tuple)) and any(isinstance(v, Path) for v in value):
        return type(value)(expand_home(v) for v in value)
    return value


class PlainHelpCommand(TyperCommand):
    """A command whose ``--help`` is plain text in click's conventions, and whose path
    arguments and options expand ``~`` (``expand_home``) whatever the shell did.

    Arguments read ``MODEL`` (required) or ``[DATA]`` (optional), and a default described
    in words (``show_default="the method's"``) prints as ``[default: the method's]`` like a
    literal one, not in click's extra parentheses.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        ctx.params = {name: expand_home(value) for name, value in ctx.params.items()}
        return super().invoke(ctx)

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: typer.Context, formatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            if isinstance(param.show_default, str):
                text = text.replace(f"default: ({param.show_default})",
                                    f"default: {param.show_default}")
            if param.param_type_name == "argument":
                sections["Arguments"].append((_argument_name(param), text))
            else:
                sections["Options"].append((name, text))
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class EdgesslTyper(typer.Typer):
    """A Typer whose commands are ``PlainHelpCommand`` and whose help is plain text."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=EdgesslCommand, rich_markup_mode=None, **kwargs)

    def command(self, *args: Any, cls: type | None = None, **kwargs: Any):
        return super().command(*args, cls=cls or PlainHelpCommand, **kwargs)


app = EdgesslTyper(
    name="edgessl",
    help="Self-supervised vision backbones from unlabeled images to an edge device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, with control
    characters escaped (log messages quote file names, labels and keys from files).

    A plain StreamHandler keeps the stream it was made with; under ``CliRunner`` (and any
    caller that swaps stderr) that stream is closed after the command returns.
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), lines=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"edgessl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    # --debug is read back from this command's context by EdgesslCommand.invoke
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[_CurrentStderrHandler()],
        force=True,
    )


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """The block of a command whose EdgesslErrors are the user's to fix.

    Kept so that command bodies read as before; the translation into one line (and the
    ``--debug`` traceback) happens once for all commands, in ``EdgesslCommand.invoke``.
    """
    yield


def echo(text: str = "", err: bool = False) -> None:
    """Print ``text`` on stdout (stderr with ``err``) with control characters escaped
    (newlines and tabs kept)."""
    typer.echo(printable(text, lines=True), err=err)


def check_device_or_profile(profile_given: bool, device_given: bool) -> None:
    """Refuse ``--device`` beside ``--profile``, which names its own device.

    Raises:
        ConfigError: both were given.
    """
    if profile_given and device_given:
        from edgessl.errors import ConfigError

        raise ConfigError("pass either --device or --profile, not both: a profile names its "
                          "own device")
