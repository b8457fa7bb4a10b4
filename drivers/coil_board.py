"""Multi-channel micro-coil current board over a serial line (a ``CoilDriver``).

The board is the lab's custom current-control PCB of seed 000 (one DC current source per
wire-bonded micro-coil). It speaks a small ASCII line protocol, documented here because it is the
specification both the firmware and ``sim/coil_board.py`` follow.

Line protocol 2.0 (115200 baud, 8N1; every command and reply ends in ``\\n``; one reply per
command; ``firmware/coil_board/coil_board.c`` implements it, ``sim/coil_board.py`` simulates it):

=====================================  ==========================  ===================================
command                                reply                       meaning
=====================================  ==========================  ===================================
``*IDN?``                              ``QDM-COIL,<n>,<sn>,<fw>``  identity; ``<n>`` channels
``MAX?``                               ``<amps>``                  hardware ceiling of every channel
``MAX? <ch>``                          ``<amps>``                  ceiling of channel ``<ch>``
``MAX <ch>,<amps>``                    ``OK``                      lower channel ``<ch>``'s ceiling
``CUR <ch>,<amps>``                    ``OK``                      set channel ``<ch>`` (0-based)
``CUR? <ch>``                          ``<amps>``                  setpoint of channel ``<ch>``
``MEAS? <ch>``                         ``<amps>``                  measured current (read-back)
``EN <mask>``                          ``OK``                      enable outputs, bit k = channel k
``EN?``                                ``<mask>``                  enabled outputs
``ZERO``                               ``OK``                      all 0 A, outputs off, playback off
``WDT <s>``                            ``OK``                      host watchdog timeout, 0.1 .. 60 s
``WDT?``                               ``<s>``                     host watchdog timeout
``WAV <ch>,<amps>,<frames>[,...]``     ``OK``                      append 1..4 segments to a table
``WAV? <ch>``                          ``<queued>,<free>``         segments queued and room left
``WAV?``                               ``<free0>,...,<free11>``    room left in every channel
``WCLR``                               ``OK``                      clear every table (not playing)
``PLAY``                               ``OK``                      arm: the next frame edge starts
``STOP``                               ``OK``                      stop; played channels ramp to 0 A
``STAT?``                              ``<st>,<f>,<ov>,<un>,<wd>``  state IDLE/ARMED/PLAY, frames
                                                                   played, overruns, underruns,
                                                                   watchdog tripped (0/1)
``ERR?``                               ``<code> <text>``           first latched fault (``0 none``)
``CLR``                                ``OK``                      clear faults and a watchdog trip
=====================================  ==========================  ===================================

Errors are replied as ``ERR <code> <text>``: 1 unknown command, 2 malformed argument, 3 channel out
of range, 4 current above the (channel) ceiling, 5 hardware fault (over-temperature, interlock),
6 busy (playback running, table full, no table), 7 watchdog tripped (send ``CLR``). Latched faults
(``ERR?``): 7 watchdog, 8 table exhausted during playback, 9 frame clock edge during an update.
Currents are plain decimal or exponent floats in A (``6.0e-04``).

Waveform tables: each channel holds a ring of segments (a current held for ``<frames>`` frames,
``0`` = hold until ``STOP``); every rising edge on the frame clock input (the camera's frame
output) applies the next frame's current to every playing channel, so each frame sees a known
current. The host streams segments while the table plays (``WAV?`` says how much room is left).
Any received line restarts the watchdog; a host silent for longer than ``WDT`` has every channel
ramped to zero and current commands refused until ``CLR``. Firmware 1.x boards know only the
first table's DC commands (no ``MAX <ch>``, watchdog or tables); the driver works with both.

The board jumps to a new setpoint, so ramping is done here: a change is split into steps no larger
than ``ramp_step_a`` and paced at the lab's ``coil_ramp_rate_a_per_s`` (a burnt micro-coil is not
recoverable). A disabled or open (broken) coil measures ~0 A on ``MEAS?``: ``read_currents`` returns
what flows, so callers compare it with ``setpoints`` to find open coils.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from drivers.port_errors import PORT_ERRORS
from instrument.checks import CheckResult
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    SafetyLimitError,
    SafetyLimits,
)

log = logging.getLogger(__name__)

BAUD_RATE = 115200
ERROR_CODES = {
    1: "unknown command",
    2: "malformed argument",
    3: "channel out of range",
    4: "current above the board ceiling",
    5: "hardware fault",
    6: "busy",
    7: "watchdog tripped",
}
ZERO_READBACK_A = 20e-6
"""Largest read-back of a channel at 0 A that the station check accepts (2 LSB of the 10-bit ADC)."""
_ERROR = re.compile(r"^ERR (\d+)(?: (.*))?$")
_IDN = re.compile(r"^QDM-COIL,(\d+),([^,]*),([^,]*)$")


class LineTransport(Protocol):
    """What the driver needs from a serial port (``serial.Serial`` satisfies it)."""

    def write(self, data: bytes) -> Any: ...

    def readline(self) -> bytes: ...

    def close(self) -> None: ...

    # optional, as in pyserial: ``reset_input_buffer()`` drops bytes not read yet


def open_serial(port: str, timeout_s: float = 1.0) -> LineTransport:
    """Open ``port`` (a device path or a pyserial URL) at the board's settings."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=BAUD_RATE, timeout=timeout_s, write_timeout=timeout_s)
    except (serial.SerialException, OSError) as exc:
        raise InstrumentDisconnected(
            "coil board", "open", f"cannot open serial port: {exc}; check the 'port' in the station file",
            port,
        ) from exc


class CoilBoard:
    """Driver of the multi-channel coil current board.

    Args:
        name: instrument name (its role in the station).
        transport: an open line transport (``open_serial(port)``).
        limits: lab safety limits (current ceiling, ramp rate).
        ceilings_a: per-coil current ceilings from the station file, one number for all or one per
            channel (a fragile coil can get less than the lab limit); ``None``: the lab limit.
        channel_names: coil names by channel, used in messages.
        ramp_step_a: largest current change per ramp step.
        sleep: how to let time pass between ramp steps (the virtual clock in simulation).
        watchdog_s: host watchdog timeout set on a 2.x board; a keep-alive thread sends ``STAT?``
            when the line has been quiet for a quarter of it. ``None``: leave the board's timeout
            and send no keep-alive (a 2.x board then zeroes the coils after 2 s of silence).
    """

    def __init__(
        self,
        name: str,
        transport: LineTransport,
        limits: SafetyLimits,
        ceilings_a: float | Sequence[float] | None = None,
        channel_names: Sequence[str] | None = None,
        ramp_step_a: float = 50e-6,
        sleep: Callable[[float], None] = time.sleep,
        watchdog_s: float | None = 1.0,
    ) -> None:
        self.name = name
        self.limits = limits
        self.ramp_step_a = float(ramp_step_a)
        self.watchdog_s = watchdog_s
        self._io = transport
        self._sleep = sleep
        self._lock = threading.RLock()  # one exchange at a time: keep-alive and stimulus threads
        self._last_exchange = time.monotonic()
        self._closing = threading.Event()
        self._keepalive: threading.Thread | None = None
        try:
            self._handshake(ceilings_a, channel_names)
        except BaseException:
            with contextlib.suppress(Exception):  # a board that failed the handshake keeps no port
                self._io.close()
            raise

    def _handshake(self, ceilings_a: float | Sequence[float] | None, channel_names: Sequence[str] | None
                   ) -> None:
        """Identify the board, read its ceiling and setpoints, and settle the per-coil ceilings."""
        name, limits = self.name, self.limits
        ident = self.ask("*IDN?")
        match = _IDN.match(ident)
        if not match:
            raise InstrumentError(name, "*IDN?", "not a QDM-COIL board (unexpected identity)", ident)
        self._n = int(match.group(1))
        if self._n < 1:
            raise InstrumentError(name, "*IDN?", "board reports no channels", ident)
        self.serial_number, self.firmware = match.group(2), match.group(3)
        self.board_max_a = self._float(self.ask("MAX?"), "MAX?")
        ceilings = np.asarray(limits.coil_current_max_a if ceilings_a is None else ceilings_a, dtype=float)
        ceilings = np.broadcast_to(ceilings, (self._n,)) if ceilings.ndim == 0 else ceilings
        if ceilings.shape != (self._n,) or not np.all(np.isfinite(ceilings)) or np.any(ceilings < 0):
            raise ValueError(
                f"{name}: 'ceilings_a' must be one non-negative number or {self._n} of them "
                f"(one per channel), got {ceilings_a!r}"
            )
        self.ceilings_a = np.minimum(ceilings, limits.coil_current_max_a)
        self.channel_names = list(channel_names or [f"channel {k}" for k in range(self._n)])
        self._setpoints = np.array([self._float(self.ask(f"CUR? {k}"), "CUR?") for k in range(self._n)])
        if self.protocol >= 2:
            self._arm_board()

    @property
    def protocol(self) -> int:
        """Major firmware version: 2 has per-channel ceilings, the watchdog and waveform tables."""
        try:
            return int(self.firmware.split(".")[0])
        except ValueError:
            return 1

    def _arm_board(self) -> None:
        """A 2.x board: a trip left by an earlier session is reported and cleared, the station's
        ceilings go into the firmware too, and the watchdog is set and kept alive."""
        latched = self.ask("ERR?")
        if not latched.startswith("0"):
            log.warning("%s: the board reports an earlier fault: %s; clearing it", self.name, latched)
            self._ok("CLR")
        for k in range(self._n):
            if abs(self._setpoints[k]) > self.ceilings_a[k]:
                raise SafetyLimitError(
                    f"{self.channel_names[k]} current", float(self._setpoints[k]), float(self.ceilings_a[k]),
                    "A", "the board already drives more than this coil's ceiling; send ZERO or raise it")
            self._ok(f"MAX {k},{min(self.ceilings_a[k], self.board_max_a):.6e}")
        if self.watchdog_s is not None:
            self._ok(f"WDT {float(self.watchdog_s):g}")
            self._keepalive = threading.Thread(target=self._keep_alive, name=f"{self.name}-keepalive",
                                               daemon=True)
            self._keepalive.start()

    def _keep_alive(self) -> None:
        assert self.watchdog_s is not None
        quiet_s = self.watchdog_s / 4
        while not self._closing.wait(quiet_s / 2):
            if time.monotonic() - self._last_exchange < quiet_s:
                continue
            try:
                self.ask("STAT?")
            except InstrumentError as exc:  # the next real command reports a dead line
                log.warning("%s: keep-alive failed: %s", self.name, exc)

    # ---- protocol ------------------------------------------------------------------------------

    def ask(self, command: str) -> str:
        """Send one command and return its reply; ``ERR`` replies raise ``InstrumentError``.

        Unread input is dropped first: a reply that arrived after an earlier timeout, or after an
        exchange cut by Ctrl-C, would otherwise be taken as the answer to this command.
        """
        drain = getattr(self._io, "reset_input_buffer", None)
        with self._lock:
            try:
                if drain is not None:
                    drain()
                self._io.write(command.encode("ascii") + b"\n")
                raw = self._io.readline()
            except PORT_ERRORS as exc:
                raise InstrumentDisconnected(self.name, command, f"serial line failed: {exc}") from exc
            finally:
                self._last_exchange = time.monotonic()
        if not raw:
            raise InstrumentTimeout(self.name, command, "no reply; check the cable and that the board is on")
        if not raw.endswith(b"\n"):
            raise InstrumentTimeout(self.name, command, "reply cut short (no end of line)", raw)
        try:
            reply = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise InstrumentError(self.name, command, "garbled reply (not ASCII)", raw) from None
        error = _ERROR.match(reply)
        if error:
            code = int(error.group(1))
            text = error.group(2) or ERROR_CODES.get(code, "unknown error")
            raise InstrumentError(self.name, command, f"board error {code}: {text}")
        return reply

    def _ok(self, command: str) -> None:
        reply = self.ask(command)
        if reply != "OK":
            raise InstrumentError(self.name, command, "expected OK", reply)

    def _float(self, reply: str, command: str) -> float:
        try:
            value = float(reply)
        except ValueError:
            raise InstrumentError(self.name, command, "reply is not a number", reply) from None
        if not np.isfinite(value):
            raise InstrumentError(self.name, command, "reply is not a finite number", reply)
        return value

    # ---- CoilDriver ----------------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return self._n

    @property
    def setpoints(self) -> np.ndarray:
        """Currents last commanded, in A."""
        return self._setpoints.copy()

    def check(self, currents_a: Sequence[float]) -> np.ndarray:
        """Validate a request against the shape, the lab limit and each coil's ceiling."""
        target = np.asarray(currents_a, dtype=float)
        if target.shape != (self._n,):
            raise ValueError(f"{self.name}: expected {self._n} channel currents, got shape {target.shape}")
        for k, current in enumerate(target):
            self.limits.check_coil_current(k, float(current))
            ceiling = min(self.ceilings_a[k], self.board_max_a)
            if abs(current) > ceiling:
                raise SafetyLimitError(
                    f"{self.channel_names[k]} current", float(current), float(ceiling), "A",
                    "lower the drive current or raise this coil's ceiling in the station file",
                )
        return target

    def set_currents(self, currents_a: Sequence[float]) -> None:
        """Ramp every channel to ``currents_a``; an unsafe value refuses the whole request."""
        target = self.check(currents_a)
        start = self._setpoints.copy()
        largest = float(np.max(np.abs(target - start)))
        if largest == 0:
            return
        if np.any(target != 0):
            self._ok(f"EN {int(sum(1 << k for k in range(self._n) if target[k] != 0 or start[k] != 0))}")
        steps = max(1, int(np.ceil(largest / self.ramp_step_a)))
        dwell = largest / self.limits.coil_ramp_rate_a_per_s / steps
        for i in range(1, steps + 1):
            now = start + (target - start) * i / steps
            for k in np.flatnonzero(now != self._setpoints):
                self._ok(f"CUR {k},{now[k]:.6e}")
                self._setpoints[k] = now[k]
            self._sleep(dwell)
        self._ok(f"EN {int(sum(1 << k for k in range(self._n) if target[k] != 0))}")

    def read_currents(self) -> np.ndarray:
        """Measured current of every channel (an open coil reads ~0 A whatever its setpoint)."""
        return np.array([self._float(self.ask(f"MEAS? {k}"), "MEAS?") for k in range(self._n)])

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "QDM-COIL current board", "serial_number": self.serial_number,
                "firmware": self.firmware, "setpoints_a": self._setpoints.tolist(),
                "ceilings_a": self.ceilings_a.tolist()}

    def safe_state(self) -> None:
        """Ramp to zero; if the ramp fails, command ``ZERO``; if that fails too, raise ``InstrumentError``."""
        try:
            self.set_currents(np.zeros(self._n))
            self._ok("EN 0")
        except Exception as ramp_error:  # noqa: BLE001 - fall back to the board's immediate ZERO
            log.warning("%s: ramp to zero failed (%s); sending ZERO", self.name, ramp_error)
            try:
                self._ok("ZERO")
                self._setpoints[:] = 0
            except Exception as exc:
                raise InstrumentError(
                    self.name, "ZERO", f"could not zero the coils ({exc}); current may still flow: "
                    "switch the coil board's supply off") from exc

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            self._closing.set()
            if self._keepalive is not None:
                self._keepalive.join(timeout=2.0)
            with contextlib.suppress(Exception):  # closing a dead port must not hide the shutdown
                self._io.close()

    # ---- commissioning -------------------------------------------------------------------------

    def station_checks(self) -> list[CheckResult]:
        """Identity, firmware, read-back at 0 A, ceilings and watchdog, read from the board."""
        role, out = self.name, []
        out.append(CheckResult(role, "identity", True,
                               f"QDM-COIL board {self.serial_number}, {self._n} channels"))
        new = self.protocol >= 2
        out.append(CheckResult(
            role, "firmware version", new, f"firmware {self.firmware}",
            "" if new else "flash firmware/coil_board (2.x: per-channel ceilings, watchdog, tables)"))
        if np.any(self._setpoints != 0):
            out.append(CheckResult(role, "read-back at zero current", None,
                                   "skipped: coils are driven now; run the check with every coil at 0 A"))
        else:
            measured = self.read_currents()
            worst = int(np.argmax(np.abs(measured)))
            ok = bool(abs(measured[worst]) <= ZERO_READBACK_A)
            out.append(CheckResult(
                role, "read-back at zero current", ok,
                f"largest |I| at 0 A: {abs(measured[worst]) * 1e6:.1f} uA ({self.channel_names[worst]})",
                "" if ok else "a channel reads current with its output at 0 A: check the sense amplifier "
                              "offset and that nothing else feeds the coil"))
        if new:
            got = np.array([self._float(self.ask(f"MAX? {k}"), "MAX?") for k in range(self._n)])
            want = np.minimum(self.ceilings_a, self.board_max_a)
            ok = bool(np.allclose(got, want, rtol=1e-3, atol=2e-7))
            out.append(CheckResult(role, "ceiling", ok,
                                   f"board ceilings {got.min() * 1e3:.3g} .. {got.max() * 1e3:.3g} mA, "
                                   f"station {want.min() * 1e3:.3g} .. {want.max() * 1e3:.3g} mA",
                                   "" if ok else "the board did not take the station's ceilings; reconnect"))
            state = self.ask("STAT?").split(",")
            timeout = self._float(self.ask("WDT?"), "WDT?")
            ok = len(state) == 5 and state[4] == "0"
            out.append(CheckResult(role, "watchdog", ok, f"timeout {timeout:g} s, tripped {state[-1]}",
                                   "" if ok else "the host went silent: check the USB cable and the "
                                                 "keep-alive, then reconnect"))
        else:
            out.append(CheckResult(role, "ceiling", None,
                                   f"firmware {self.firmware} has one board ceiling "
                                   f"({self.board_max_a * 1e3:g} mA); the driver enforces the station's"))
            out.append(CheckResult(role, "watchdog", False, f"firmware {self.firmware} has no host watchdog",
                                   "flash firmware/coil_board 2.x"))
        return out
