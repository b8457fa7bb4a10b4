"""How a measurement process ends, as exit statuses shared by the CLI and the scheduler that runs it."""

from __future__ import annotations

from instrument.signals import EXIT_INTERRUPTED, EXIT_TERMINATED  # noqa: F401 - 130 Ctrl-C, 143 SIGTERM

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_PAUSED = 75  # a long scan paused itself and can be resumed (EX_TEMPFAIL); the scheduler retries it


def short_duration(seconds: float) -> str:
    """``1h05m`` or ``4m09s`` for log lines; ``--`` for NaN (nothing timed yet)."""
    if seconds != seconds:
        return "--"
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
