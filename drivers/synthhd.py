"""Windfreak SynthHD over USB serial as a ``MicrowaveSource`` and ``ListSweepSource``.

The SynthHD speaks single-letter commands (``f`` frequency in MHz, ``W`` power in dBm, ``E`` PLL,
``r`` amplifier and ``h`` mute switch, ``C`` channel, ``X``/``w``/``c``/``g`` sweep type, trigger
mode, continuous and run, ``L<n>f``/``L<n>a`` table points); a query is the letter and ``?``. It
has no error queue and silently ignores what it cannot do, so this driver reads every setting back
and raises ``InstrumentError`` (naming instrument, command and value) when the device did not take
it. Facts (HD-1..HD-7) and their sources are in ``docs/hardware/synthhd.md``.

* RF on is PLL, amplifier *and* unmute (``E1 r1 h1``, fact HD-4); a muted unit with PLL and
  amplifier on emits nothing, so all three are read back. RF off mutes first.
* The hardware version (``v1``: "Version 2.x" or "Version 1.4", fact HD-1) decides the frequency
  range (HD-2); an answer that is neither raises rather than guessing a range.
* The tabular sweep steps on the trigger input in trigger mode ``w2`` ("single frequency step").
  The table syntax (``Ld``, ``L<n>f``, ``L<n>a``), its 100-row length and the trigger edge (the
  input is active low: the step comes on the falling edge of the pulse) are unconfirmed (HD-6,
  HD-7), so nothing relies on them unchecked: after starting the sweep the output frequency must be
  the table's first point, and every later index is found from the frequency read back.
* The device cannot report its table position, so ``list_index()`` reads the output frequency back
  and finds it in the armed list; ``arm_list`` therefore needs frequencies at least 1 Hz apart.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import serial
from qcodes import validators as vals
from qcodes.instrument import Instrument

from drivers.port_errors import PORT_ERRORS
from drivers.source_checks import power_within_ceiling, run_check
from instrument.checks import CheckResult
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    MicrowaveConstraints,
    SafetyLimits,
)

# Hardware -> frequency range of the RF outputs (fact HD-2, windfreak-python's SynthHD models).
FREQUENCY_RANGE_HZ = {"SynthHD v1.4": (53e6, 13999.999999e6), "SynthHD v2": (10e6, 15e9),
                      "SynthHD PRO v2": (10e6, 24e9)}
POWER_RANGE_DBM = (-60.0, 20.0)  # the sweep power range; narrower than the CW range (HD-2)
TABLE_MAX_POINTS = 100  # sweep table rows (L0..L99); unconfirmed (fact HD-6)
TRIGGER_EDGE = "falling"  # the trigger input is active low (fact HD-7, inferred from qudi)
_VERSION = re.compile(r"(\d+)\.(\d+)")
TRIGGER_SINGLE_STEP = 2
FREQUENCY_TOLERANCE_HZ = 1.0  # read-back resolution (0.1 Hz) with margin
_POWER_VALUES = re.compile(r"(?:W|\[|\]|L\d+a)\s*([-+]?[0-9.]+)")


class SynthHDSource(Instrument):
    """One RF output of a Windfreak SynthHD, with a lab power ceiling and read-back checks.

    Args:
        name: instrument name (unique among open QCoDeS instruments).
        port: serial device, e.g. ``/dev/ttyACM0`` or ``COM5``.
        limits: lab safety limits; ``limits.mw_power_max_dbm`` is the RF power ceiling.
        channel: 0 for RF out A, 1 for RF out B.
        timeout_s: how long to wait for an answer.
        **kwargs: passed to QCoDeS's ``Instrument``.
    """

    def __init__(self, name: str, port: str, limits: SafetyLimits, channel: int = 0,
                 timeout_s: float = 1.0, **kwargs: Any) -> None:
        if channel not in (0, 1):
            raise InstrumentError(name, "C", "channel must be 0 (RF out A) or 1 (RF out B)", channel)
        self._closed = True
        super().__init__(name, **kwargs)
        self.limits = limits
        self.port = port
        self.channel = channel
        self._lock = threading.Lock()
        self._armed: np.ndarray | None = None
        self._cw_mhz: float | None = None
        try:
            self._serial = serial.Serial(port, baudrate=115200, timeout=timeout_s, write_timeout=timeout_s)
        except (serial.SerialException, OSError) as exc:
            super().close()
            raise InstrumentDisconnected(name, f"open {port}", f"cannot open the serial port ({exc}); "
                                         "check the USB cable and the port in the station file") from exc
        self._closed = False
        self._serial.reset_input_buffer()
        model = self.ask("+")
        if "SYNTHHD" not in model.upper():
            self.close_without_rf_off()
            raise InstrumentError(name, "+", "not a Windfreak SynthHD; check the serial port", model)
        self.model = model
        self.hardware_version = self.ask("v1")
        self.firmware_version = self.ask("v0")
        try:
            self.hardware = self._hardware(self.hardware_version)
        except InstrumentError:
            self.close_without_rf_off()
            raise
        self.trigger_edge = TRIGGER_EDGE
        f_min, f_max = FREQUENCY_RANGE_HZ[self.hardware]
        self._constraints = MicrowaveConstraints(
            frequency_min_hz=f_min, frequency_max_hz=f_max, power_min_dbm=POWER_RANGE_DBM[0],
            power_max_dbm=min(POWER_RANGE_DBM[1], limits.mw_power_max_dbm),
            list_max_points=TABLE_MAX_POINTS,
        )
        self.write(f"C{channel}")
        if self.ask("C?") != str(channel):
            self.close_without_rf_off()
            raise InstrumentError(name, f"C{channel}", "the SynthHD did not select the channel", channel)
        self.frequency = self.add_parameter(
            "frequency", label="Frequency", unit="Hz", get_cmd="f?", set_cmd=False,
            get_parser=lambda s: self._number("f?", s) * 1e6, vals=vals.Numbers(f_min, f_max),
            docstring="Output frequency; during a sweep, the point on the output now.",
        )
        self.power = self.add_parameter(
            "power", label="Power", unit="dBm", get_cmd="W?", set_cmd=False,
            get_parser=lambda s: self._number("W?", s), docstring="Output power.",
        )
        self.pll_enabled = self.add_parameter(
            "pll_enabled", label="PLL on", get_cmd="E?", set_cmd=False, val_mapping={False: "0", True: "1"},
        )
        self.amplifier_enabled = self.add_parameter(
            "amplifier_enabled", label="Amplifier on", get_cmd="r?", set_cmd=False,
            val_mapping={False: "0", True: "1"},
        )
        self.rf_unmuted = self.add_parameter(
            "rf_unmuted", label="RF unmuted", get_cmd="h?", set_cmd=False,
            val_mapping={False: "0", True: "1"}, docstring="h1: the output mute switch is open.",
        )
        self.trigger_mode = self.add_parameter(
            "trigger_mode", label="Trigger mode", get_cmd="w?", set_cmd="w{}", get_parser=int,
            vals=vals.Ints(0, 9), docstring="0: none, 1: full sweep, 2: single frequency step, ...",
        )
        self.sweep_running = self.add_parameter(
            "sweep_running", label="Sweep running", get_cmd="g?", set_cmd=False,
            val_mapping={False: "0", True: "1"},
        )

    # ---- MicrowaveSource -----------------------------------------------------------------------

    @property
    def constraints(self) -> MicrowaveConstraints:
        return self._constraints

    def get_idn(self) -> dict[str, str | None]:
        return {"vendor": "Windfreak Technologies", "model": getattr(self, "model", None),
                "serial": None, "firmware": getattr(self, "firmware_version", None)}

    def set_frequency(self, frequency_hz: float) -> None:
        """Set the CW frequency (Hz) and check that the device took it."""
        self._check_frequency(frequency_hz, "f")
        command = f"f{frequency_hz / 1e6:.7f}"
        self.write(command)
        got = self.frequency()
        if abs(got - frequency_hz) > FREQUENCY_TOLERANCE_HZ:
            raise InstrumentError(self.name, command, f"the SynthHD did not take the frequency; it reports "
                                  f"{got / 1e6:.7f} MHz", frequency_hz)

    def set_power(self, power_dbm: float) -> None:
        """Set the output power (dBm); above the lab ceiling raises before anything is sent."""
        self.limits.check_mw_power(power_dbm)
        self._check_power_range(power_dbm, "W")
        command = f"W{power_dbm:.3f}"
        self.write(command)
        got = self.power()
        if abs(got - power_dbm) > 0.01:
            raise InstrumentError(self.name, command, f"the SynthHD did not take the power; it reports "
                                  f"{got:.3f} dBm", power_dbm)

    def set_output(self, on: bool) -> None:
        """Switch the output on (PLL, amplifier, unmute) or off (mute, amplifier, PLL), read back.

        All three must read back as asked: a muted unit with PLL and amplifier on emits nothing.
        """
        commands = ("E1", "r1", "h1") if on else ("h0", "r0", "E0")
        for command in commands:
            self.write(command)
        states = {"E": self.pll_enabled(), "r": self.amplifier_enabled(), "h": self.rf_unmuted()}
        wrong = [f"{k}?={int(v)}" for k, v in states.items() if v != bool(on)]
        if wrong:
            raise InstrumentError(self.name, " ".join(commands), "the SynthHD did not switch its output "
                                  f"({', '.join(wrong)})", bool(on))

    def safe_state(self) -> None:
        """RF off (amplifier, then PLL), read back; raises ``InstrumentError`` if RF may still be on."""
        if self.__dict__.get("_closed", True):
            return
        fix = "switch the SynthHD off (unplug its USB power)"
        try:
            self.write("h0")  # mute first: the fastest way to stop RF leaving the port
            self.write("r0")
            self.write("E0")
            state = self.ask("E?")
        except Exception as exc:
            self.log.error("could not switch RF off: %s", exc)
            raise InstrumentError(self.name, "E0", f"could not switch RF off ({exc}); {fix}") from exc
        if state != "0":
            self.log.error("RF may still be on: the SynthHD reports its PLL powered after E0")
            raise InstrumentError(self.name, "E0", f"the PLL still reads powered after E0; {fix}", state)

    def close(self) -> None:
        """Switch RF off, then release the serial port (even if RF off failed). Closing twice is harmless."""
        try:
            self.safe_state()
        finally:
            self.close_without_rf_off()

    def close_without_rf_off(self) -> None:
        if not self.__dict__.get("_closed", True):
            self._closed = True
            with contextlib.suppress(serial.SerialException, OSError):  # the port may have vanished
                self._serial.close()
            super().close()

    # ---- ListSweepSource -----------------------------------------------------------------------

    def arm_list(self, frequencies_hz: Sequence[float], power_dbm: float) -> None:
        """Load the sweep table at one power and start it in single-step trigger mode.

        On return the output is at ``frequencies_hz[0]``; each trigger edge steps one point and
        the sweep wraps after the last (continuous mode).
        """
        freqs = np.asarray(frequencies_hz, dtype=float).ravel()
        self.limits.check_mw_power(power_dbm)
        if not 0 < len(freqs) <= TABLE_MAX_POINTS:
            raise InstrumentError(self.name, "L", f"list of {len(freqs)} points; the SynthHD table holds "
                                  f"1..{TABLE_MAX_POINTS}; split the sweep or step in software", len(freqs))
        self._check_power_range(power_dbm, "L0a")
        for f in freqs:
            self._check_frequency(f, "L0f")
        if len(freqs) > 1 and np.min(np.abs(np.diff(np.sort(freqs)))) < FREQUENCY_TOLERANCE_HZ:
            raise InstrumentError(self.name, "L", "frequencies closer than 1 Hz: the table position "
                                  "could not be read back; make the list points distinct", len(freqs))
        self.write("g0")
        if self._armed is None:
            self._cw_mhz = self._number("f?", self.ask("f?"))
        self.write("Ld")
        for i, f in enumerate(freqs):
            self.write(f"L{i}f{f / 1e6:.7f}")
            self.write(f"L{i}a{power_dbm:.3f}")
        for command in ("X1", f"w{TRIGGER_SINGLE_STEP}", "c1", "g1"):
            self.write(command)
        self._armed = freqs
        self._check_started()

    def restart_list(self) -> None:
        """Back to point 0 of the armed table: stop the sweep and run it again (``g0``, ``g1``)."""
        if self._armed is None:
            raise InstrumentError(self.name, "g1", "no list is armed; call arm_list first")
        self.write("g0")
        self.write("g1")
        self._check_started()

    def _check_started(self) -> None:
        assert self._armed is not None
        if not self.sweep_running():
            raise InstrumentError(self.name, "g1", "the sweep did not start", len(self._armed))
        index = self.list_index()
        if index != 0:
            raise InstrumentError(self.name, "g1", "the sweep did not start at point 0", index)

    def list_index(self) -> int:
        """Index of the point on the output now, found from the output frequency read back."""
        if self._armed is None:
            raise InstrumentError(self.name, "f?", "no list is armed; call arm_list first")
        f = self.frequency()
        matches = np.flatnonzero(np.abs(self._armed - f) <= FREQUENCY_TOLERANCE_HZ)
        if len(matches) == 0:
            raise InstrumentError(self.name, "f?", "the output frequency is not a point of the armed list; "
                                  "was the sweep stopped from elsewhere?", f)
        return int(matches[0])

    def abort_list(self) -> None:
        """Stop the sweep, leave trigger mode and go back to the CW frequency in use before arming."""
        self.write("g0")
        self.write("w0")
        self.write("X0")
        self._armed = None
        if self._cw_mhz is not None:
            self.set_frequency(self._cw_mhz * 1e6)

    # ---- commissioning -------------------------------------------------------------------------

    def station_checks(self) -> list[CheckResult]:
        """Read-back checks for ``acquire station check``: identity, hardware and firmware, RF off,
        power setting against the ceiling, sweep stopped. Nothing is switched on or changed."""
        role = self.name
        return [
            run_check(role, "identity", lambda: (True, f"{self.model}, serial {self.ask('-')}")),
            run_check(role, "hardware version (v1)", lambda: (True, f"{self.hardware_version!r} -> "
                                                             f"{self.hardware}, {self._range_text()}")),
            run_check(role, "firmware (v0)", lambda: (bool(self.firmware_version),
                                                      f"firmware {self.firmware_version!r}"),
                      "the SynthHD answered no firmware version; update its firmware"),
            run_check(role, "RF output off (E? r? h?)", self._check_rf_off,
                      "switch the SynthHD's output off (E0 r0 h0, or unplug it) before commissioning"),
            run_check(role, "power setting (W?)",
                      lambda: power_within_ceiling(self.power(), self.limits.mw_power_max_dbm),
                      "lower the SynthHD's power setting below the lab ceiling before switching RF on"),
            run_check(role, "sweep stopped (g?)", lambda: (not self.sweep_running(), "sweep running"
                                                           if self.sweep_running() else "sweep stopped"),
                      "stop the sweep (g0) before commissioning"),
            run_check(role, "trigger input", lambda: (True, f"active low: steps on the {self.trigger_edge} "
                                                      "edge (unconfirmed; exercised by the triggered-list "
                                                      "check)")),
        ]

    def _range_text(self) -> str:
        c = self._constraints
        return f"{c.frequency_min_hz / 1e6:g} MHz..{c.frequency_max_hz / 1e9:g} GHz"

    def _check_rf_off(self) -> tuple[bool, str]:
        states = {"PLL": self.pll_enabled(), "amplifier": self.amplifier_enabled(),
                  "unmuted": self.rf_unmuted()}
        emitting = all(states.values())
        detail = ", ".join(f"{k} {'on' if v else 'off'}" for k, v in states.items())
        return not emitting, ("RF is ON: " if emitting else "RF off: ") + detail

    def _hardware(self, version: str) -> str:
        """``Version 2.06`` -> SynthHD v2 (or PRO, from ``v2``); ``Version 1.4`` -> SynthHD v1.4."""
        m = _VERSION.search(version)
        if not m:
            raise InstrumentError(self.name, "v1", "unrecognised hardware version; expected "
                                  "'Version 1.4' or 'Version 2.x'", version)
        major, minor = int(m.group(1)), int(m.group(2))
        if major >= 2:
            sub = self.ask("v2").strip().upper()
            return "SynthHD PRO v2" if sub == "HDPRO" else "SynthHD v2"
        if (major, minor) >= (1, 4):
            return "SynthHD v1.4"
        raise InstrumentError(self.name, "v1", "hardware before v1.4 is not supported (its range and "
                              "commands are not documented here)", version)

    # ---- bus traffic ---------------------------------------------------------------------------

    def write_raw(self, cmd: str) -> None:
        for text in _POWER_VALUES.findall(cmd):  # the last guard: nothing above the ceiling leaves
            self.limits.check_mw_power(_float(text))
        with self._lock:
            self._send(cmd)

    def ask_raw(self, cmd: str) -> str:
        with self._lock:
            self._send(cmd)
            try:
                line = self._serial.readline()
            except (serial.SerialException, OSError) as exc:
                raise InstrumentDisconnected(self.name, cmd, f"serial port vanished ({exc}); reconnect the "
                                             "SynthHD and restart the run", None) from exc
        if not line.endswith(b"\n"):
            raise InstrumentTimeout(self.name, cmd, f"no complete answer within {self._serial.timeout:g} s "
                                    f"(got {line!r}); check the USB cable", None)
        return line.decode("ascii", errors="replace").strip()

    def write(self, cmd: str) -> None:
        self.write_raw(cmd)  # QCoDeS's wrapper would append context to our typed errors' args

    def ask(self, cmd: str) -> str:
        return self.ask_raw(cmd)

    def _send(self, cmd: str) -> None:
        if self.__dict__.get("_closed", True):
            raise InstrumentDisconnected(self.name, cmd, "the serial port is closed")
        try:
            # A reply that came after an earlier timeout (or an interrupted exchange) must not be
            # read as the answer to this command.
            self._serial.reset_input_buffer()
            self._serial.write((cmd + "\n").encode("ascii"))
            self._serial.flush()
        except PORT_ERRORS as exc:
            raise InstrumentDisconnected(self.name, cmd, f"serial port vanished ({exc}); reconnect the "
                                         "SynthHD and restart the run") from exc

    # ---- checks --------------------------------------------------------------------------------

    def _check_frequency(self, frequency_hz: float, command: str) -> None:
        c = self._constraints
        if not (np.isfinite(frequency_hz) and c.frequency_min_hz <= frequency_hz <= c.frequency_max_hz):
            raise InstrumentError(self.name, command, f"frequency outside the SynthHD range "
                                  f"{c.frequency_min_hz / 1e6:g} MHz..{c.frequency_max_hz / 1e9:g} GHz",
                                  frequency_hz)

    def _check_power_range(self, power_dbm: float, command: str) -> None:
        lo, hi = POWER_RANGE_DBM
        if not lo <= power_dbm <= hi:
            raise InstrumentError(self.name, command, f"power outside the SynthHD range {lo:g}..{hi:g} dBm",
                                  power_dbm)

    def _number(self, command: str, answer: str) -> float:
        try:
            return float(answer)
        except ValueError:
            raise InstrumentError(self.name, command, "garbled answer", answer) from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
