"""Stop requests as exceptions, and the exit-status convention every ``acquire`` command follows.

- Ctrl-C (SIGINT): ``KeyboardInterrupt``; exit status 130 (128 + 2).
- SIGTERM: ``Terminated``; exit status 143 (128 + 15).

Both are ``BaseException``s, so code that catches every ``Exception`` (QCoDeS's flush, weakref
callbacks, a driver's retry loop) cannot swallow a stop request. Light on purpose: the ``acquire``
entry point imports it before anything heavy.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM


class RunAborted(BaseException):
    """A run was stopped on request (SIGTERM, or an operator's abort)."""


class Terminated(RunAborted):
    """SIGTERM: whatever ran was closed as aborted and the microscope made safe; exit 143.

    Attributes:
        outcome: how the run ended, where an engine closed one (``sequences.engine.RunOutcome``).
        phase: what the process was doing, where known (``the fit after the measurement``).
    """

    exit_code = EXIT_TERMINATED

    def __init__(self, message: str = "terminated by SIGTERM") -> None:
        super().__init__(message)
        self.outcome: Any = None


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated by SIGTERM")


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` inside the block (main thread only), instead of killing the
    process without a word; a run's own guard takes over while it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
