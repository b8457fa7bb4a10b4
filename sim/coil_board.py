"""Simulated coil current board on a pseudo-terminal, coupled to the World.

It answers the line protocol documented in ``drivers/coil_board.py`` on the slave end of a pty, so
the real driver talks to it through pyserial exactly as to the board. Enabled channels drive
``world.coil_currents_a``. A dead (open) coil of the sample carries no current: its read-back
(``MEAS?``) stays near 0 A whatever its setpoint, which is how the lab finds a broken coil.
"""

from __future__ import annotations

import numpy as np

from sim.pty_server import PtyLineServer
from sim.world import World

COMMAND_TIME_S = 2e-3  # a command and its reply at 115200 baud
READBACK_NOISE_A = 0.2e-6


class SimCoilBoard:
    """The QDM-COIL board's firmware, simulated.

    Args:
        world: the simulated microscope (its sample defines channels and dead coils).
        max_current_a: hardware ceiling of every channel.
        serial_number: reported by ``*IDN?``.
    """

    def __init__(self, world: World, max_current_a: float = 5e-3, serial_number: str = "SIM0001") -> None:
        self.world = world
        self.max_current_a = max_current_a
        self.serial_number = serial_number
        self.n = len(world.sample.coils)
        self.setpoints = np.zeros(self.n)
        self.enabled = 0
        self.fault: str | None = None  # set to make every current command answer ERR 5
        self.commands: list[str] = []
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
        self.commands.append(line)
        self.world.clock.advance(COMMAND_TIME_S)
        head, _, arg = line.partition(" ")
        try:
            if line == "*IDN?":
                return f"QDM-COIL,{self.n},{self.serial_number},1.0-sim"
            if line == "MAX?":
                return f"{self.max_current_a:.6e}"
            if line == "EN?":
                return str(self.enabled)
            if line == "ZERO":
                self.setpoints[:] = 0
                self.enabled = 0
                self._apply()
                return "OK"
            if head == "CUR?":
                return f"{self.setpoints[self._channel(arg)]:.6e}"
            if head == "MEAS?":
                return f"{self._measured(self._channel(arg)):.6e}"
            if head == "CUR":
                ch_text, sep, amps_text = arg.partition(",")
                if not sep:
                    return "ERR 2 expected CUR <channel>,<amps>"
                channel, amps = self._channel(ch_text), self._number(amps_text)
                if abs(amps) > self.max_current_a:
                    return f"ERR 4 {amps:g} A exceeds the board ceiling {self.max_current_a:g} A"
                if self.fault:
                    return f"ERR 5 {self.fault}"
                self.setpoints[channel] = amps
                self._apply()
                return "OK"
            if head == "EN":
                mask = int(arg)
                if mask < 0 or mask >= 1 << self.n:
                    return f"ERR 3 mask {mask} names channels this board does not have"
                self.enabled = mask
                self._apply()
                return "OK"
        except _BadArgument as exc:
            return str(exc)
        except ValueError:
            return f"ERR 2 malformed argument {arg!r}"
        return f"ERR 1 unknown command {head!r}"

    def _channel(self, text: str) -> int:
        channel = int(text)
        if not 0 <= channel < self.n:
            raise _BadArgument(f"ERR 3 channel {channel} out of range 0..{self.n - 1}")
        return channel

    def _number(self, text: str) -> float:
        value = float(text)
        if not np.isfinite(value):
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
