"""A pseudo-terminal line server for the simulated USB-serial instruments.

A simulator supplies one function that answers a received line (without its ``\\n``); the server
opens a pty in raw mode (no echo, no line editing: bytes pass as on a USB CDC port), reads the
master end on a thread and writes back every non-empty answer. Drivers open ``port`` (the slave
end) with pyserial exactly as they open the real instrument's port.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable


class PtyLineServer:
    """Serve one simulated serial instrument on a pseudo-terminal.

    Args:
        handler: answers one line; returns the bytes' text to write back ("" for no answer).
        name: the serving thread's name.
    """

    def __init__(self, handler: Callable[[str], str], name: str) -> None:
        self.handler = handler
        self.name = name
        self.port = ""
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._master is not None

    def start(self) -> str:
        """Open the pty and start answering; returns the device path. Starting twice is harmless."""
        if self._master is None:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            self.port = os.ttyname(self._slave)
            self._stop.clear()
            self._thread = threading.Thread(target=self._serve, args=(self._master,), name=self.name,
                                            daemon=True)
            self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop answering and close the pty (the port vanishes under a driver). Stopping twice is harmless."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def _serve(self, master: int) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                # a short select timeout lets stop() end the thread before it closes the fds
                if not select.select([master], [], [], 0.05)[0]:
                    continue
                chunk = os.read(master, 4096)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                reply = self.handler(line.decode("ascii", errors="replace"))
                if reply:
                    with contextlib.suppress(OSError):
                        os.write(master, reply.encode("ascii"))
