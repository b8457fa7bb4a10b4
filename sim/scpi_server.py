"""A small threaded SCPI-over-TCP server on the loopback interface for instrument simulators.

A simulator supplies one function that answers a single command (``"FREQ?"`` -> ``"2.87e9"``,
``"FREQ 2.87e9"`` -> ``None``); the server does the sockets: it listens on 127.0.0.1 on an
ephemeral port, reads newline-terminated lines (``\\r\\n`` accepted), splits ``;``-joined
commands, and writes each answer back terminated by ``\\n``. Drivers reach it through pyvisa-py as
``TCPIP0::127.0.0.1::<port>::SOCKET``, exactly as they reach a real instrument's raw socket port.

Two faults can be switched on for tests: ``mute`` (queries are read but never answered, so the
driver sees a VISA timeout) and ``drop_connections()`` (the instrument vanishes from the network).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import socket
import socketserver
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Handler = Callable[[str], "str | None"]

LOOPBACK = "127.0.0.1"


class _Connection(socketserver.StreamRequestHandler):
    server: _TcpServer

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._register(self.request)

    def handle(self) -> None:
        owner = self.server.owner
        for raw in self.rfile:
            line = raw.decode("ascii", errors="replace").strip()
            if not line:
                continue
            replies = []
            for command in line.split(";"):
                command = command.strip()
                if not command:
                    continue
                try:
                    reply = owner.handler(command)
                except Exception:  # a simulator bug must not kill the connection silently
                    log.exception("%s: handler failed on %r", owner.name, command)
                    reply = None
                if reply is not None:
                    replies.append(reply)
            if replies and not owner.mute:
                with contextlib.suppress(OSError):
                    self.wfile.write((";".join(replies) + "\n").encode("ascii", errors="replace"))
                    self.wfile.flush()

    def finish(self) -> None:
        self.server.owner._unregister(self.request)
        with contextlib.suppress(OSError):
            super().finish()


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: ScpiServer) -> None:
        self.owner = owner
        super().__init__((LOOPBACK, 0), _Connection)


class ScpiServer:
    """Serve one simulated SCPI instrument on 127.0.0.1.

    Args:
        handler: answers one command; returns the reply text (no terminator) or ``None``.
        name: used in log messages and thread names.
    """

    def __init__(self, handler: Handler, name: str = "scpi") -> None:
        self.handler = handler
        self.name = name
        self.mute = False
        self._server: _TcpServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name}: server is not running; call start() first")
        return self._server.server_address[1]

    @property
    def resource_name(self) -> str:
        """The pyvisa-py resource string of the raw socket."""
        return f"TCPIP0::{LOOPBACK}::{self.port}::SOCKET"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Start listening; returns the VISA resource string. Starting twice is harmless."""
        if self._server is None:
            self._server = _TcpServer(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"{self.name}-scpi", daemon=True,
            )
            self._thread.start()
        return self.resource_name

    def stop(self) -> None:
        """Stop listening and close every client connection. Stopping twice is harmless."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def drop_connections(self) -> None:
        """Close every open client connection, as a power-cycled or unplugged instrument would."""
        with self._clients_lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _register(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.add(sock)
        if self._server is None:  # stopped between accept and here
            self.drop_connections()

    def _unregister(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.discard(sock)

    def __enter__(self) -> ScpiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ScpiDevice(abc.ABC):
    """Base of the simulated SCPI instruments: one ``ScpiServer`` answering through ``handle``.

    Subclasses implement ``handle(command) -> reply or None`` and ``_reset_state``; this class owns
    the server's lifecycle, the log of received commands and the count of trigger edges.
    """

    def __init__(self, name: str) -> None:
        self._lock = threading.RLock()
        self._server = ScpiServer(self.handle, name=name)
        self.commands: list[str] = []  # every command received, for tests and debugging
        self.trigger_count = 0
        self._reset_state()

    @abc.abstractmethod
    def handle(self, command: str) -> str | None:
        """Answer one command line (None: no reply)."""

    @abc.abstractmethod
    def _reset_state(self) -> None:
        """Power-on state (also what ``*RST`` restores)."""

    def start(self) -> str:
        """Start serving; returns the VISA resource string (``TCPIP0::127.0.0.1::PORT::SOCKET``)."""
        return self._server.start()

    def stop(self) -> None:
        """Stop serving and drop every connection."""
        self._server.stop()

    @property
    def server(self) -> ScpiServer:
        """The TCP server, for fault injection (``mute``, ``drop_connections()``)."""
        return self._server

    def __enter__(self) -> ScpiDevice:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
