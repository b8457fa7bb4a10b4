"""Typed errors for VISA instruments: timeouts, lost connections and refused commands.

pyvisa reports a timeout as ``VisaIOError(VI_ERROR_TMO)`` and a dropped socket as
``VisaIOError(VI_ERROR_CONN_LOST)`` or a plain ``OSError``; drivers turn these into
``InstrumentTimeout`` / ``InstrumentDisconnected`` naming the instrument, the command and the value
it carried, so the sequence engine can pause safely and an operator can read what happened.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator

import pyvisa
from pyvisa import constants

from instrument.protocols import InstrumentDisconnected, InstrumentError, InstrumentTimeout, SafetyLimitError

_DISCONNECTED_CODES = {
    constants.StatusCode.error_connection_lost,
    constants.StatusCode.error_invalid_object,
    constants.StatusCode.error_resource_not_found,
    constants.StatusCode.error_closing_failed,
    constants.StatusCode.error_io,
}

_HEADER = re.compile(r"^\s*(\S+?)(\?)?(?:\s+(.*))?$")


def split_command(command: str) -> tuple[str, str | None]:
    """``"FREQ 2.87e9"`` -> ``("FREQ", "2.87e9")``; ``"LSTI?"`` -> ``("LSTI?", None)``."""
    m = _HEADER.match(command)
    if not m:
        return command.strip(), None
    header = m.group(1) + (m.group(2) or "")
    return header, (m.group(3).strip() if m.group(3) else None)


def command_value(command: str) -> float | str | None:
    """The value a command carried, as a number when it is one (for error messages)."""
    _, arg = split_command(command)
    if arg is None:
        return None
    try:
        return float(arg)
    except ValueError:
        return arg


def enable_tcp_nodelay(resource: pyvisa.resources.Resource) -> None:
    """Send small commands at once on raw TCP sockets.

    Without it Nagle's algorithm holds the ``LERR?`` that follows every write until the instrument
    acknowledges the write, which costs a delayed-ACK period (about 40 ms) per command. pyvisa-py
    0.8 reads ``VI_ATTR_TCPIP_NODELAY`` but refuses to set it, so its socket is set directly.
    """
    info = resource.resource_info
    if info.interface_type != constants.InterfaceType.tcpip or info.resource_class != "SOCKET":
        return
    try:
        resource.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, constants.VI_TRUE)
        return
    except Exception:  # noqa: BLE001 - pyvisa-py raises its own UnknownAttribute here
        pass
    sock = _socket_of(resource)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _socket_of(resource: pyvisa.resources.Resource) -> socket.socket | None:
    session = getattr(resource.visalib, "sessions", {}).get(resource.session)
    sock = getattr(session, "interface", None)
    return sock if isinstance(sock, socket.socket) else None


def peer_closed(resource: pyvisa.resources.Resource) -> bool:
    """True when a pyvisa-py raw socket was closed by the instrument.

    pyvisa-py waits for the timeout on a socket at end-of-file instead of reporting it, so a
    vanished instrument first looks like a slow one; this tells the two apart.
    """
    try:
        sock = _socket_of(resource)
        if sock is None:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - a closed session has no socket to ask
        return False


@contextlib.contextmanager
def visa_errors(instrument: str, command: str, timeout_s: float | None = None) -> Iterator[None]:
    """Turn pyvisa and socket failures inside the block into typed instrument errors."""
    value = command_value(command)
    try:
        yield
    except pyvisa.errors.VisaIOError as exc:
        if exc.error_code == constants.StatusCode.error_timeout:
            after = f" within {timeout_s:g} s" if timeout_s else ""
            raise InstrumentTimeout(
                instrument, command, f"no answer{after}; check the cable, address and that the "
                "instrument is switched on", value,
            ) from exc
        if exc.error_code in _DISCONNECTED_CODES:
            raise InstrumentDisconnected(
                instrument, command, f"connection lost ({exc.abbreviation}); reconnect the instrument "
                "and restart the run, which resumes from the last stored point", value,
            ) from exc
        raise InstrumentError(instrument, command, f"VISA error {exc.abbreviation}: {exc.description}",
                              value) from exc
    except pyvisa.errors.InvalidSession as exc:
        raise InstrumentDisconnected(instrument, command, "the VISA session is closed", value) from exc
    except (ConnectionError, OSError) as exc:
        raise InstrumentDisconnected(
            instrument, command, f"connection lost ({exc}); reconnect the instrument", value
        ) from exc


@contextlib.contextmanager
def plain_errors() -> Iterator[None]:
    """Undo QCoDeS's habit of appending context tuples to exception args for our typed errors.

    QCoDeS adds ``"setting x to y"`` to ``args`` of any exception passing through a parameter,
    which turns ``str(exc)`` into a tuple repr. Our errors already name instrument, command and
    value, so their message is restored.
    """
    try:
        yield
    except (InstrumentError, SafetyLimitError) as exc:
        exc.args = exc.args[:1]
        raise
