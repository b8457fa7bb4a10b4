"""Replay the messages a manual specifies, in the style of pymeasure's ``expected_protocol``.

A test lists the exchange as ``(sent, reply)`` pairs: ``sent`` is the exact message the driver must
write, ``reply`` the instrument's answer (``None`` for a command, or for a query the instrument
leaves unanswered, so that the driver times out). The fake instrument serves the pairs in order on
the driver's real transport (a loopback TCP socket for VISA drivers, a pseudo-terminal for serial
ones), so nothing in the driver is patched. Any deviation (an unexpected message, a message out of
order, a message after the script ended) is recorded and reported by :meth:`Protocol.verify` with
the position and both messages; so is a script the driver did not finish.

Each pair may carry the facts-file entry it follows (``Exchange("LSTD", None, "SG-9")``) so a
failure names the fact that was broken.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sim.pty_server import PtyLineServer
from sim.scpi_server import ScpiServer


@dataclass(frozen=True)
class Exchange:
    """One message the driver must send, and what the instrument answers (``None``: nothing)."""

    sent: str
    reply: str | None = None
    fact: str = ""
    terminated: bool = True
    """False: a serial reply is written without its ``\\n`` (a reply cut short on the wire)."""


Script = Sequence["Exchange | tuple[str, str | None]"]


class Protocol:
    """The scripted instrument: serves the exchanges in order and records the first deviation."""

    def __init__(self, script: Script) -> None:
        self.exchanges = [e if isinstance(e, Exchange) else Exchange(*e) for e in script]
        self.received: list[str] = []
        self.deviation = ""
        self._lock = threading.Lock()

    def answer(self, message: str) -> str | None:
        """The reply to ``message`` if it is the next expected one; otherwise record the deviation."""
        with self._lock:
            position = len(self.received)
            self.received.append(message)
            if self.deviation:
                return None  # after the first deviation, nothing more is answered
            if position >= len(self.exchanges):
                self.deviation = f"message {position + 1}: {message!r} sent after the script ended"
                return None
            expected = self.exchanges[position]
            if message != expected.sent:
                fact = f" (fact {expected.fact})" if expected.fact else ""
                self.deviation = (f"message {position + 1}: expected {expected.sent!r}{fact}, "
                                  f"got {message!r}")
                return None
            return expected.reply

    def last_terminated(self) -> bool:
        """Whether the reply just served should carry its line terminator."""
        position = len(self.received) - 1
        return not (0 <= position < len(self.exchanges)) or self.exchanges[position].terminated

    @property
    def done(self) -> bool:
        return len(self.received) >= len(self.exchanges)

    def verify(self) -> None:
        """Raise ``AssertionError`` naming the first deviation, or the messages never sent."""
        with self._lock:
            if self.deviation:
                raise AssertionError(f"protocol deviation at {self.deviation}; received {self.received}")
            if len(self.received) < len(self.exchanges):
                missing = [e.sent for e in self.exchanges[len(self.received):]]
                raise AssertionError(f"the driver stopped after {len(self.received)} messages; "
                                     f"never sent {missing}")


@contextlib.contextmanager
def visa_protocol(script: Script) -> Iterator[tuple[str, Protocol]]:
    """A loopback SCPI socket answering ``script``; yields (VISA resource name, protocol).

    The protocol is verified when the block ends without an exception of its own.
    """
    protocol = Protocol(script)
    server = ScpiServer(protocol.answer, name="expected-protocol")
    address = server.start()
    try:
        yield address, protocol
    finally:
        server.stop()
    protocol.verify()


@contextlib.contextmanager
def serial_protocol(script: Script) -> Iterator[tuple[str, Protocol]]:
    """A pseudo-terminal answering ``script`` line by line; yields (port, protocol).

    Each reply is written back terminated by ``\\n``; ``None`` writes nothing.
    """
    protocol = Protocol(script)

    def handle(line: str) -> str:
        reply = protocol.answer(line.strip())
        if reply is None:
            return ""
        return reply + "\n" if protocol.last_terminated() else reply

    server = PtyLineServer(handle, "expected-protocol")
    port = server.start()
    try:
        yield port, protocol
    finally:
        server.stop()
    protocol.verify()
