"""Simulated Windfreak SynthHD on a pseudo-terminal, coupled to the World.

The SynthHD speaks single-letter commands over USB serial: a letter, then a value, or ``?`` to
query (``f2870.0`` sets 2870 MHz, ``f?`` answers ``2870.0000000``); frequencies are in MHz, powers
in dBm; answers end with ``\n``. Commands may be concatenated (``C0f2870W-5``); the simulator
also accepts newlines and spaces between them. Like the device, it has no error queue: an unknown
letter or an out-of-range value changes nothing and answers nothing, so a driver must read settings
back to know. Strictness lives on the test side: every command the simulator did not take is
recorded in :attr:`SimSynthHD.rejected` (with the reason), and tests assert it stays empty.

Facts implemented (entries of ``docs/hardware/synthhd.md``):

* HD-1 ``+`` model, ``-`` serial, ``v0`` firmware, ``v1`` hardware version answered as
  ``Version 2.06`` / ``Version 1.4``, ``v2`` sub-version ``HD`` or ``HDPRO`` (v2 only);
* HD-2 ranges per hardware: v1.4 53 MHz..13999.999999 MHz, v2 10 MHz..15 GHz, v2 PRO 10 MHz..24 GHz;
  power -60..+20 dBm;
* HD-3 ``C`` channel select; ``f`` ``W`` per channel, read back with ``f?`` ``W?``;
* HD-4 RF leaves the port only when the PLL (``E1``), the amplifier (``r1``) and the mute switch
  (``h1`` = unmuted) are all on; the power-up mute state comes from the unit's saved settings
  (unconfirmed): the simulator starts muted, so a driver that forgets ``h1`` sees no RF;
* HD-5 trigger modes ``w``: 0 none, 1 full sweep, 2 single frequency step, ...; ``g1`` runs the
  sweep from its first point, ``c1`` continuous;
* HD-6 the sweep table ``Ld``, ``L<n>f<MHz>``, ``L<n>a<dBm>`` (``X1`` tabular), up to 100 rows, the
  first zero or missing frequency ending it: syntax and length unconfirmed;
* HD-7 the trigger input is active low (steps on the falling edge; inferred): the simulator steps
  once per pulse, which the pulse generator's link delivers at the pulse (1 us wide), so the step's
  time differs by the pulse width only.

A trigger is a call to :meth:`SimSynthHD.trigger` (the pulse-generator simulator calls it on each
pulse wired to the trigger input). :meth:`SimSynthHD.unplug` makes the device vanish mid-sweep.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from sim.pty_server import PtyLineServer
from sim.world import World

MODELS = {
    # hardware -> (v1 answer, v2 sub-version or None, min Hz, max Hz)   (fact HD-2)
    "1": ("Version 1.4", None, 53e6, 13999.999999e6),
    "2": ("Version 2.06", "HD", 10e6, 15e9),
    "2pro": ("Version 2.06", "HDPRO", 10e6, 24e9),
}
POWER_RANGE_DBM = (-60.0, 20.0)
TABLE_MAX_POINTS = 100
# A command is a letter and a plain decimal value (no exponent: "E" is a command letter).
# "+", "-", "p" and "z" are queries that take no value; "v0"/"v1" ask the versions.
_TOKEN = re.compile(r"L(?:d|(\d+)([fa])(\?|[-+0-9.]*))|v[012]|[+\-pz]|[A-Za-z](\?|[-+0-9.]*)|\S")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)$")


@dataclass
class Channel:
    """State of one RF output."""

    frequency_mhz: float = 1000.0
    power_dbm: float = -30.0
    pll_on: bool = False
    pa_on: bool = False
    rf_unmuted: bool = False  # h: the mute switch; starts muted (fact HD-4)
    trigger_mode: int = 0
    sweep_type: int = 0
    continuous: bool = False
    running: bool = False
    step_time_ms: float = 10.0
    table_mhz: dict[int, float] = field(default_factory=dict)
    table_dbm: dict[int, float] = field(default_factory=dict)
    index: int = 0

    @property
    def emitting(self) -> bool:
        """RF leaves the port when the PLL and the amplifier are powered and the output not muted."""
        return self.pll_on and self.pa_on and self.rf_unmuted

    def table(self) -> list[tuple[float, float]]:
        """Points up to the first missing or zero frequency (the table's end mark)."""
        points = []
        for i in range(TABLE_MAX_POINTS):
            f = self.table_mhz.get(i, 0.0)
            if f <= 0:
                break
            points.append((f, self.table_dbm.get(i, self.power_dbm)))
        return points

    def output(self) -> tuple[float, float]:
        table = self.table()
        if self.running and self.sweep_type == 1 and table:
            return table[min(self.index, len(table) - 1)]
        return self.frequency_mhz, self.power_dbm


class SimSynthHD:
    """A simulated SynthHD on a pseudo-terminal.

    Args:
        world: the shared simulated physics.
        hardware_version: ``"1"`` (v1.4), ``"2"`` (v2) or ``"2pro"`` (v2 PRO); see fact HD-2.
        world_channel: the output wired to the microscope (0 = RF out A).
        serial_number: answered to ``-``.
    """

    def __init__(self, world: World, hardware_version: str = "2", world_channel: int = 0,
                 serial_number: int = 1429) -> None:
        if hardware_version not in MODELS:
            raise ValueError(f"unknown SynthHD hardware version {hardware_version!r}; "
                             f"expected one of {sorted(MODELS)}")
        self.world = world
        self.hardware_version = hardware_version
        self.model = "SynthHD"
        self.version_answer, self.sub_version, self.frequency_min_hz, self.frequency_max_hz = \
            MODELS[hardware_version]
        self.world_channel = world_channel
        self.serial_number = serial_number
        self.channels = [Channel(), Channel()]
        self.selected = 0
        self.commands: list[str] = []
        self.rejected: list[tuple[str, str]] = []  # (command, why): what the device would ignore
        self.trigger_count = 0
        self._lock = threading.RLock()
        # Through a lambda: tests replace ``handle`` on the instance to fake a misbehaving device.
        self._server = PtyLineServer(lambda line: self.handle(line), "sim-synthhd")

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> str:
        """The pseudo-terminal's device path ("" before the first ``start``)."""
        return self._server.port

    def start(self) -> str:
        """Open the pseudo-terminal and start answering; returns the device path for pyserial."""
        if not self._server.running:
            self._server.start()
            self._apply()
        return self.port

    def stop(self) -> None:
        """Stop answering and close the pseudo-terminal. Stopping twice is harmless."""
        self._server.stop()

    def unplug(self) -> None:
        """The USB cable is pulled: the port vanishes under the driver."""
        self.stop()

    def __enter__(self) -> SimSynthHD:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- physics coupling ----------------------------------------------------------------------

    def _apply(self) -> None:
        ch = self.channels[self.world_channel]
        f_mhz, p_dbm = ch.output()
        with self.world.lock:
            self.world.mw_frequency_hz = f_mhz * 1e6
            self.world.mw_power_dbm = p_dbm
            self.world.mw_output = ch.emitting

    def trigger(self) -> None:
        """An edge on the trigger input (called by the pulse-generator simulator)."""
        with self._lock:
            self.trigger_count += 1
            for ch in self.channels:
                if not (ch.running and ch.trigger_mode == 2 and ch.sweep_type == 1):
                    continue
                n = len(ch.table())
                if n == 0:
                    continue
                if ch.index + 1 < n:
                    ch.index += 1
                elif ch.continuous:
                    ch.index = 0
                else:
                    ch.running = False  # a single pass ends on its last point
                    ch.frequency_mhz, ch.power_dbm = ch.table()[-1]
            self._apply()

    # ---- command interpreter -------------------------------------------------------------------

    def handle(self, line: str) -> str:
        """Execute one line of (possibly concatenated) commands; returns the answers joined."""
        with self._lock:
            answers = []
            for m in _TOKEN.finditer(line):
                token = m.group(0)
                if token.isspace():
                    continue
                self.commands.append(token)
                answer = self._command(m)
                if answer is not None:
                    answers.append(answer + "\n")
            self._apply()
            return "".join(answers)

    def _command(self, m: re.Match[str]) -> str | None:
        token = m.group(0)
        ch = self.channels[self.selected]
        if token.startswith("L") and len(token) > 1:
            return self._table(token, m, ch)
        if token in ("v0", "v1", "v2"):
            if token == "v2" and self.sub_version is None:
                return self._reject(token, "no sub-version before hardware v2")
            return {"v0": "3.22", "v1": self.version_answer, "v2": self.sub_version}[token]
        letter, arg = token[0], token[1:]
        fixed = {"+": self.model, "-": str(self.serial_number), "p": str(int(ch.pll_on)), "z": "32.5"}
        if letter in fixed and arg == "":
            return fixed[letter]
        query = arg == "?"
        value = None if query else _number(arg)
        if not query and value is None:
            return self._reject(token, "no value")
        return self._setting(token, letter, query, value, ch)

    def _reject(self, token: str, why: str) -> None:
        """The device ignores ``token`` silently; the simulator records why (for strict tests)."""
        self.rejected.append((token, why))
        return None

    def _setting(self, token: str, letter: str, query: bool, value: float | None,
                 ch: Channel) -> str | None:
        if letter == "C":
            if query:
                return str(self.selected)
            if value not in (0, 1):
                return self._reject(token, "channel is 0 or 1")
            self.selected = int(value)
            return None
        ranges = {"f": (self.frequency_min_hz / 1e6, self.frequency_max_hz / 1e6, "frequency_mhz", 0),
                  "W": (*POWER_RANGE_DBM, "power_dbm", 1), "t": (4.0, 10000.0, "step_time_ms", None)}
        if letter in ranges:
            lo, hi, attr, output_field = ranges[letter]
            if query:
                got = ch.output()[output_field] if output_field is not None else getattr(ch, attr)
                return f"{got:.7f}" if letter == "f" else f"{got:.3f}"
            assert value is not None
            if not lo <= value <= hi:
                return self._reject(token, f"outside {lo:g}..{hi:g}")
            setattr(ch, attr, value)
            return None
        flags = {"E": "pll_on", "r": "pa_on", "h": "rf_unmuted", "c": "continuous", "g": "running"}
        if letter in flags:
            if query:
                return str(int(getattr(ch, flags[letter])))
            if value not in (0, 1):
                return self._reject(token, "takes 0 or 1")
            if letter == "g" and value == 1 and not ch.running:
                ch.index = 0
            setattr(ch, flags[letter], bool(value))
            return None
        modes = {"w": ("trigger_mode", range(0, 10)), "X": ("sweep_type", range(0, 2))}
        if letter in modes:
            attr, allowed = modes[letter]
            if query:
                return str(getattr(ch, attr))
            if value is None or value != int(value) or int(value) not in allowed:
                return self._reject(token, f"takes {allowed.start}..{allowed.stop - 1}")
            setattr(ch, attr, int(value))
            return None
        return self._reject(token, "unknown command")

    def _table(self, token: str, m: re.Match[str], ch: Channel) -> str | None:
        if token == "Ld":
            ch.table_mhz.clear()
            ch.table_dbm.clear()
            return None
        if m.group(1) is None:
            return self._reject(token, "unknown table command")
        index, kind, arg = int(m.group(1)), m.group(2), m.group(3)
        if not 0 <= index < TABLE_MAX_POINTS:
            return self._reject(token, f"table rows are 0..{TABLE_MAX_POINTS - 1}")
        table = ch.table_mhz if kind == "f" else ch.table_dbm
        if arg == "?":
            return f"{table.get(index, 0.0):.7f}" if kind == "f" else f"{table.get(index, 0.0):.3f}"
        value = _number(arg)
        if value is None:
            return self._reject(token, "no value")
        valid = (value == 0 or self.frequency_min_hz <= value * 1e6 <= self.frequency_max_hz) if kind == "f" \
            else POWER_RANGE_DBM[0] <= value <= POWER_RANGE_DBM[1]
        if not valid:
            return self._reject(token, "out of range")
        table[index] = value
        return None


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.match(text) else None
