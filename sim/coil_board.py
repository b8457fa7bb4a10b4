"""Simulated coil current board on a pseudo-terminal, coupled to the World.

It answers the line protocol documented in ``drivers/coil_board.py`` (protocol 2.0, the one
``firmware/coil_board/coil_board.c`` implements) on the slave end of a pty, so the real driver
talks to it through pyserial exactly as to the board. Enabled channels drive
``world.coil_currents_a``. A dead (open) coil of the sample carries no current: its read-back
(``MEAS?``) stays near 0 A whatever its setpoint, which is how the lab finds a broken coil.

Waveform playback follows the firmware: per-channel rings of (current, frames) segments, stepped
by ``frame_edge()`` (the camera's frame output; the station cables the simulated camera's frame
hook to it). Where the simulator differs from the firmware: currents are not quantised to DAC
codes, a watchdog trip or STOP sets the currents to zero at once (the firmware ramps at 10 mA/s),
and the watchdog is checked when a line or a frame edge arrives (the firmware checks every
millisecond).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from sim.pty_server import PtyLineServer
from sim.world import World

COMMAND_TIME_S = 2e-3  # a command and its reply at 115200 baud
READBACK_NOISE_A = 0.2e-6
FIRMWARE_DEPTH = 16  # segments per channel ring in the ATmega328P firmware
MAX_SEGMENTS_PER_LINE = 4


class SimCoilBoard:
    """The QDM-COIL board's firmware, simulated.

    Args:
        world: the simulated microscope (its sample defines channels and dead coils).
        max_current_a: hardware ceiling of every channel.
        serial_number: reported by ``*IDN?``.
    """

    def __init__(self, world: World, max_current_a: float = 5e-3, serial_number: str = "SIM0001",
                 depth: int = FIRMWARE_DEPTH, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.world = world
        self.max_current_a = max_current_a
        self.serial_number = serial_number
        self.n = len(world.sample.coils)
        self.setpoints = np.zeros(self.n)
        self.ceilings = np.full(self.n, max_current_a)
        self.enabled = 0
        self.fault: str | None = None  # set to make every current command answer ERR 5
        self.commands: list[str] = []
        self.depth = int(depth)
        self.tables: list[deque[list[float]]] = [deque() for _ in range(self.n)]  # [amps, frames, used]
        self.state = "IDLE"
        self.playing = 0
        self.frames_played = 0
        self.overruns = 0
        self.underruns = 0
        self.watchdog_s = 2.0
        self.tripped = False
        self.latched: str | None = None
        self._monotonic = monotonic
        self._last_line = monotonic()
        self._lock = threading.RLock()  # lines (pty thread) and frame edges (camera thread)
        self.clock_source: Any = None
        """The simulated camera whose frame output is cabled to the frame clock input (its
        ``frame_hook`` is taken while a table plays, so idle frames cost nothing extra)."""
        self._previous_hook: Callable[[float], None] | None = None
        self._rng = np.random.default_rng(0)
        self._server = PtyLineServer(lambda line: self.handle(line.strip()) + "\n", "sim-coil-board")

    # ---- pty plumbing --------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pseudo-terminal and serve it; returns the port name for the driver."""
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    # ---- firmware ------------------------------------------------------------------------------

    def handle(self, line: str) -> str:
        """Answer one command line (the protocol of ``drivers/coil_board.py``)."""
        with self._lock:
            self.commands.append(line)
            # Queries cost the line's time but move nothing: the driver's keep-alive (STAT?) runs in
            # its own thread, concurrently with the sequence on real hardware, so it must not move
            # the shared virtual clock past a pulse the sequence is about to catch (camera_start).
            if not line.split(" ", 1)[0].endswith("?"):
                self.world.clock.advance(COMMAND_TIME_S)
            self.check_watchdog()
            self._last_line = self._monotonic()
            try:
                return self._answer(line)
            except _BadArgument as exc:
                return str(exc)
            except ValueError:
                return f"ERR 2 malformed argument {line.partition(' ')[2]!r}"

    def _answer(self, line: str) -> str:
        head, _, arg = line.partition(" ")
        if line == "*IDN?":
            return f"QDM-COIL,{self.n},{self.serial_number},2.0-sim"
        if line == "MAX?":
            return f"{self.max_current_a:.6e}"
        if head == "MAX?":
            return f"{self.ceilings[self._channel(arg)]:.6e}"
        if line == "EN?":
            return str(self.enabled)
        if line == "ZERO":
            self._stop_playback()
            self.setpoints[:] = 0
            self.enabled = 0
            self._apply()
            return "OK"
        if head == "CUR?":
            return f"{self.setpoints[self._channel(arg)]:.6e}"
        if head == "MEAS?":
            return f"{self._measured(self._channel(arg)):.6e}"
        if line == "WAV?":
            return ",".join(str(self.depth - len(t)) for t in self.tables)
        if head == "WAV?":
            k = self._channel(arg)
            return f"{len(self.tables[k])},{self.depth - len(self.tables[k])}"
        if head in ("CUR", "MAX"):
            ch_text, sep, amps_text = arg.partition(",")
            if not sep:
                return f"ERR 2 expected {head} <channel>,<amps>"
            channel, amps = self._channel(ch_text), self._number(amps_text)
            return self._set_current(channel, amps) if head == "CUR" else self._set_ceiling(channel, amps)
        if head == "EN":
            mask = int(arg)
            if mask < 0 or mask >= 1 << self.n:
                return f"ERR 3 mask {mask} names channels this board does not have"
            if self.state != "IDLE":
                return "ERR 6 playback running; send STOP"
            if self.tripped and mask:
                return "ERR 7 watchdog tripped (host silent); send CLR"
            self.enabled = mask
            self._apply()
            return "OK"
        if head == "WDT":
            seconds = float(arg)
            if not 0.1 <= seconds <= 60:
                return "ERR 2 watchdog timeout must be 0.1 .. 60 s"
            self.watchdog_s = seconds
            return "OK"
        if line == "WDT?":
            return f"{self.watchdog_s:.6e}"
        if head == "WAV":
            return self._append(arg)
        if line == "WCLR":
            if self.state != "IDLE":
                return "ERR 6 playback running; send STOP"
            self._clear_tables()
            return "OK"
        if line == "PLAY":
            return self._play()
        if line == "STOP":
            self._stop_playback()
            self._apply()
            return "OK"
        if line == "STAT?":
            return (f"{self.state},{self.frames_played},{self.overruns},{self.underruns},"
                    f"{int(self.tripped)}")
        if line == "ERR?":
            return self.latched or "0 none"
        if line == "CLR":
            self.latched, self.overruns, self.underruns, self.tripped = None, 0, 0, False
            return "OK"
        return f"ERR 1 unknown command {head!r}"

    def _set_current(self, channel: int, amps: float) -> str:
        if abs(amps) > self.ceilings[channel]:
            return f"ERR 4 {amps:g} A exceeds the channel ceiling {self.ceilings[channel]:g} A"
        if self.tripped:
            return "ERR 7 watchdog tripped (host silent); send CLR"
        if self.playing >> channel & 1:
            return "ERR 6 channel is playing a table; send STOP"
        if self.fault:
            return f"ERR 5 {self.fault}"
        self.setpoints[channel] = amps
        self._apply()
        return "OK"

    def _set_ceiling(self, channel: int, amps: float) -> str:
        if amps < 0:
            return "ERR 2 expected MAX <channel>,<amps>"
        if amps > self.max_current_a:
            return f"ERR 4 ceiling {amps:g} A above the hardware ceiling {self.max_current_a:g} A"
        if abs(self.setpoints[channel]) > amps:
            return "ERR 4 setpoint above the new ceiling; lower the current first"
        self.ceilings[channel] = amps
        return "OK"

    def _append(self, arg: str) -> str:
        ch_text, _, rest = arg.partition(",")
        channel = self._channel(ch_text)
        fields = rest.split(",") if rest else []
        if not fields or len(fields) % 2 or len(fields) > 2 * MAX_SEGMENTS_PER_LINE:
            return "ERR 2 expected WAV <channel>,<amps>,<frames> (at most 4 segments a line)"
        segments = []
        for amps_text, frames_text in zip(fields[::2], fields[1::2], strict=True):
            amps, frames = self._number(amps_text), int(frames_text)
            if not 0 <= frames <= 65535:
                return "ERR 2 frames must be 0 (hold) .. 65535"
            if abs(amps) > self.ceilings[channel]:
                return f"ERR 4 {amps:g} A exceeds the channel ceiling {self.ceilings[channel]:g} A"
            segments.append([amps, frames, 0])
        if self.tripped:
            return "ERR 7 watchdog tripped (host silent); send CLR"
        if len(self.tables[channel]) + len(segments) > self.depth:
            return "ERR 6 table full; wait for WAV? to report room"
        self.tables[channel].extend(segments)
        return "OK"

    def _play(self) -> str:
        if self.tripped:
            return "ERR 7 watchdog tripped (host silent); send CLR"
        if self.state != "IDLE":
            return "ERR 6 playback already running"
        mask = sum(1 << k for k in range(self.n) if self.tables[k])
        if not mask:
            return "ERR 6 no table loaded; send WAV first"
        self.playing, self.frames_played, self.state = mask, 0, "ARMED"
        self.enabled |= mask
        camera = self.clock_source
        if camera is not None and camera.frame_hook != self._on_frame:
            self._previous_hook, camera.frame_hook = camera.frame_hook, self._on_frame
        return "OK"

    def _on_frame(self, t_s: float) -> None:
        if self._previous_hook is not None:
            self._previous_hook(t_s)
        self.frame_edge(t_s)

    # ---- frame clock and watchdog ----------------------------------------------------------------

    def frame_edge(self, t_s: float | None = None) -> None:
        """A rising edge on the frame clock input: the next frame's current on every playing channel."""
        with self._lock:
            self.check_watchdog()
            if self.state == "ARMED":
                self.state = "PLAY"
            if self.state != "PLAY":
                return
            for k in range(self.n):
                if not self.playing >> k & 1:
                    continue
                table = self.tables[k]
                if not table:
                    self.underruns += 1
                    self._latch(f"8 table exhausted on channel {k} at frame {self.frames_played}")
                    self._stop_playback()
                    self._apply()
                    return
                head = table[0]
                self.setpoints[k] = head[0]
                if head[1]:
                    head[2] += 1
                    if head[2] >= head[1]:
                        table.popleft()
            self.frames_played += 1
            self._apply()

    def check_watchdog(self) -> None:
        """Trip if the host has been silent for longer than the watchdog timeout."""
        with self._lock:
            if not self.tripped and self._monotonic() - self._last_line > self.watchdog_s:
                self.tripped = True
                self._latch("7 watchdog: host silent, channels ramped to 0")
                self._stop_playback()
                self.setpoints[:] = 0
                self.enabled = 0
                self._apply()

    def _latch(self, text: str) -> None:
        self.latched = self.latched or text

    def _clear_tables(self) -> None:
        for table in self.tables:
            table.clear()

    def _stop_playback(self) -> None:
        camera = self.clock_source
        if camera is not None and camera.frame_hook == self._on_frame:
            camera.frame_hook, self._previous_hook = self._previous_hook, None
        for k in range(self.n):
            if self.playing >> k & 1:
                self.setpoints[k] = 0.0
        self.playing, self.state = 0, "IDLE"
        self._clear_tables()

    def _channel(self, text: str) -> int:
        channel = int(text)
        if not 0 <= channel < self.n:
            raise _BadArgument(f"ERR 3 channel {channel} out of range 0..{self.n - 1}")
        return channel

    def _number(self, text: str) -> float:
        value = float(text)
        if not np.isfinite(value) or abs(value) > 1.0:
            raise _BadArgument(f"ERR 2 current {text!r} is not finite")
        return value

    def _driven(self) -> np.ndarray:
        on = np.array([(self.enabled >> k) & 1 for k in range(self.n)], dtype=bool)
        alive = np.array([not c.dead for c in self.world.sample.coils])
        return np.where(on & alive, self.setpoints, 0.0)

    def _apply(self) -> None:
        with self.world.lock:
            self.world.coil_currents_a = self._driven()

    def _measured(self, channel: int) -> float:
        return float(self._driven()[channel] + READBACK_NOISE_A * self._rng.standard_normal())


class _BadArgument(Exception):
    """An argument the firmware rejects; the message is the ERR reply."""
