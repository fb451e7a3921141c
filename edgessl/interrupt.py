"""SIGINT and SIGTERM: one mechanism for every long command.

A signal never kills edgessl half-way through a write. ``GracefulStop`` handles both signals in
one of two ways:

- at once (``deferred=False``, what every CLI command runs under): the signal raises
  ``StopSignal`` where the program is, so every ``with`` block and ``finally`` on the way out
  runs (atomic writers delete their temporaries) and the CLI prints the one-line Interrupted
  error with exit code 130;
- deferred (``deferred=True``, training loops): the signal only sets ``requested``; the loop
  checks it after each step, saves a checkpoint and raises ``Interrupted`` itself. A second
  signal stops at once, as above.

``StopSignal`` derives from ``KeyboardInterrupt`` on purpose: library code that catches
``Exception`` (converters retrying another way, for example) must not swallow a stop.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# signals_held: how deep the critical sections are nested, and the signals that waited
_hold: dict = {"depth": 0, "pending": []}


class StopSignal(KeyboardInterrupt):
    """Raised by the handler of SIGINT/SIGTERM; ``signal_name`` says which one arrived."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def interrupted_message(exc: BaseException) -> str:
    """The one-line message for a stop: which signal, and that nothing half-written was kept."""
    name = exc.signal_name if isinstance(exc, StopSignal) else "SIGINT"
    return (f"interrupted by {name}: stopped before finishing; outputs being written were "
            "discarded and earlier ones are unchanged")


class GracefulStop:
    """While active, SIGINT and SIGTERM stop the run cleanly instead of killing the process.

    Args:
        deferred: True for a training loop that checks ``requested`` after each step and saves
            before stopping; False to raise ``StopSignal`` at once.

    Each handler restores the handlers it replaced when it raises, so a run stuck in native
    code can still be stopped by signalling again. Outside the main thread (where Python
    cannot install handlers) it does nothing.
    """

    def __init__(self, deferred: bool = True) -> None:
        self.deferred = deferred
        self.requested: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        if _hold["depth"]:
            _hold["pending"].append(signum)
            return
        name = signal.Signals(signum).name
        if self.deferred and self.requested is None:
            self.requested = name
            return
        self._restore()
        raise StopSignal(name)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()


def stop_on_signals() -> GracefulStop:
    """SIGINT/SIGTERM raise ``StopSignal`` at once inside the ``with`` block."""
    return GracefulStop(deferred=False)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back for a short critical section (the renames that publish an
    output); one that arrives meanwhile is raised again when the block ends.

    A Python-level hold rather than ``pthread_sigmask``: the kernel may deliver a signal to
    any thread that does not block it (torch and OpenVINO start many), and Python then runs
    the handler in the main thread all the same.
    """
    _hold["depth"] += 1
    try:
        yield
    finally:
        _hold["depth"] -= 1
        if not _hold["depth"] and _hold["pending"]:
            signum = _hold["pending"][0]
            _hold["pending"].clear()
            signal.raise_signal(signum)
