"""The exceptions a serial port raises when the device behind it vanishes.

pyserial raises ``SerialException`` or ``OSError``, but on POSIX a few calls (``reset_input_buffer``,
``in_waiting``) go through ``termios`` and raise ``termios.error``, which is neither.
"""

from __future__ import annotations

import serial

try:
    from termios import error as _TermiosError
except ImportError:  # Windows has no termios

    class _TermiosError(Exception):  # type: ignore[no-redef]
        """Never raised: stands in for termios.error where there is none."""


PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, _TermiosError)
