"""Rohde & Schwarz SMB100A / SGS100A as a ``MicrowaveSource`` and ``ListSweepSource``.

Built on QCoDeS's ``RohdeSchwarzSGS100A`` (parameters ``frequency``, ``power``, ``status``, ...),
with the checks of :class:`drivers.checked_visa.CheckedVisaSource` (lab power ceiling on every
command, ``SYSTem:ERRor?`` after every write, typed timeouts and disconnects, RF off on close).

The model comes from ``*IDN?`` and the frequency option from ``*OPT?`` (e.g. ``SMB-B106``: 6 GHz).

List mode steps on the rear TRIG input: ``LIST:MODE STEP`` with ``TRIGger:LIST:SOURce EXTernal``.
In that mode the first trigger after ``FREQ:MODE LIST`` only *starts* the list at point 0; it
does not step. Left alone, a sweep driven by n trigger edges would show point 0 twice and never
reach the last point. ``arm_list`` therefore starts the list itself with ``LIST:TRIGger:EXECute``
and checks that the index reads 0, so that, as for every ``ListSweepSource``, each external edge
after arming steps exactly one point.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from qcodes import validators as vals
from qcodes.instrument_drivers.rohde_schwarz import RohdeSchwarzSGS100A

from drivers.checked_visa import CheckedVisaSource
from drivers.visa_errors import plain_errors, split_command
from instrument.protocols import InstrumentError, MicrowaveConstraints, SafetyLimits

# Per model: lowest frequency, RF level range, list length, upper frequency per frequency option
# (R&S data sheets). The level range is the device's setting range, not a safety limit. The list
# length of 2000 points is an assumption not yet checked against the operating manuals: if an
# instrument holds fewer, arming a longer list fails with its own error before anything is measured.
MODELS: dict[str, dict[str, Any]] = {
    "SMB100A": {
        "frequency_min_hz": 100e3, "power_range_dbm": (-145.0, 30.0), "list_max_points": 2000,
        "options_max_hz": {"B101": 1.1e9, "B102": 2.2e9, "B103": 3.2e9, "B106": 6e9,
                           "B112": 12.75e9, "B120": 20e9, "B140": 40e9},
    },
    "SGS100A": {
        "frequency_min_hz": 1e6, "power_range_dbm": (-120.0, 25.0), "list_max_points": 2000,
        "options_max_hz": {"B106": 6e9, "B106V": 6e9, "B112": 12.75e9, "B112V": 12.75e9},
    },
}
LIST_NAME = "qdm_sweep"
LEARN_TIMEOUT_S = 30.0  # LIST:LEARn computes the hardware settings of every point
_MAX_ERRORS_DRAINED = 25
_ERROR = re.compile(r'^\s*([-+]?\d+)\s*,\s*"(.*)"\s*$')
_POWER_NODES = {"POW", "POWER"}
_POWER_TAIL = {"POW", "POWER", "LEV", "LEVEL", "IMM", "IMMEDIATE", "AMPL", "AMPLITUDE"}


class RohdeSchwarzSource(CheckedVisaSource, RohdeSchwarzSGS100A):
    """An R&S SMB100A or SGS100A with a lab power ceiling, typed errors and trigger-stepped lists.

    Args:
        name: instrument name (unique among open QCoDeS instruments).
        address: VISA resource, e.g. ``TCPIP0::192.168.1.21::5025::SOCKET``.
        limits: lab safety limits; ``limits.mw_power_max_dbm`` is the RF power ceiling.
        frequency_max_hz: upper frequency when ``*OPT?`` does not name the frequency option.
        **kwargs: passed to QCoDeS's ``VisaInstrument``; ``visalib`` defaults to pyvisa-py (``"@py"``).
    """

    _rf_off_command = ":OUTP:STAT 0"

    def __init__(self, name: str, address: str, limits: SafetyLimits,
                 frequency_max_hz: float | None = None, **kwargs: Any) -> None:
        self._prepare(limits, kwargs)
        super().__init__(name, address, **kwargs)
        idn = self.get_idn()
        model = str(idn.get("model") or "")
        if model not in MODELS:
            self.close_without_rf_off()
            raise InstrumentError(name, "*IDN?", f"not an R&S {' / '.join(MODELS)}; check the address",
                                  idn.get("model"))
        self.model = model
        spec = MODELS[model]
        f_max = frequency_max_hz or self._option_frequency_max_hz(spec["options_max_hz"])
        p_min, p_max = spec["power_range_dbm"]
        self._device_power_max_dbm = p_max
        self._constraints = MicrowaveConstraints(
            frequency_min_hz=spec["frequency_min_hz"], frequency_max_hz=f_max,
            power_min_dbm=p_min, power_max_dbm=min(p_max, limits.mw_power_max_dbm),
            list_max_points=int(spec["list_max_points"]),
        )
        self.frequency.vals = vals.Numbers(spec["frequency_min_hz"], f_max)
        self.power.vals = vals.Numbers(p_min, p_max)
        self.frequency_mode = self.add_parameter(
            "frequency_mode", label="Frequency mode", get_cmd="SOUR:FREQ:MODE?",
            set_cmd="SOUR:FREQ:MODE {}", vals=vals.Enum("CW", "LIST"),
            docstring="CW: fixed frequency; LIST: the selected list, stepped by triggers.",
        )
        self.list_position = self.add_parameter(
            "list_position", label="List index", get_cmd="SOUR:LIST:IND?", get_parser=int,
            docstring="Index of the list point on the output now.",
        )
        self.list_points = self.add_parameter(
            "list_points", label="List length", get_cmd="SOUR:LIST:FREQ:POIN?", get_parser=int,
            docstring="Number of frequencies in the selected list.",
        )
        self._connected()

    def _option_frequency_max_hz(self, options_max_hz: dict[str, float]) -> float:
        answer = self.ask("*OPT?")
        installed = {o.strip().split("-", 1)[-1].upper() for o in answer.split(",")}
        found = [options_max_hz[o] for o in installed if o in options_max_hz]
        if not found:
            self.close_without_rf_off()
            raise InstrumentError(self.name, "*OPT?", "no frequency option found; set frequency_max_hz "
                                  "for this instrument in the station file", answer)
        return max(found)

    # ---- MicrowaveSource -----------------------------------------------------------------------

    def set_frequency(self, frequency_hz: float) -> None:
        """Set the CW frequency (Hz); out of the model's range raises before anything is sent."""
        self._check_frequency(frequency_hz, "SOUR:FREQ")
        with plain_errors():
            self.frequency(float(frequency_hz))

    def set_power(self, power_dbm: float) -> None:
        """Set the RF level (dBm); above the lab ceiling raises before anything is sent."""
        self._check_power(power_dbm, "SOUR:POW")
        with plain_errors():
            self.power(float(power_dbm))

    def set_output(self, on: bool) -> None:
        """Switch the RF output on or off."""
        with plain_errors():
            self.status(bool(on))

    # ---- ListSweepSource -----------------------------------------------------------------------

    def arm_list(self, frequencies_hz: Sequence[float], power_dbm: float) -> None:
        """Load a frequency list at one level, arm it for external-trigger stepping and start it.

        On return the output is at ``frequencies_hz[0]``, ``list_index()`` is 0 and each edge on
        the TRIG input steps one point. Everything is checked before the first command is sent.
        """
        freqs = self._checked_list(frequencies_hz, power_dbm, size_command="SOUR:LIST:FREQ",
                                   power_command="SOUR:LIST:POW", frequency_command="SOUR:LIST:FREQ")
        with plain_errors():
            if self.frequency_mode() != "CW":
                self.frequency_mode("CW")  # a running list cannot be rewritten
            self.write(f'SOUR:LIST:SEL "{LIST_NAME}"')
            self.write("SOUR:LIST:FREQ " + ",".join(f"{f:.2f}" for f in freqs))
            self.write("SOUR:LIST:POW " + ",".join([f"{power_dbm:.2f}"] * len(freqs)))
            self.write("SOUR:LIST:MODE STEP")
            self.write("TRIG:LIST:SOUR EXT")
            with self.timeout.set_to(max(self.timeout() or 0.0, LEARN_TIMEOUT_S)):
                self.write("SOUR:LIST:LEAR")
                self.ask("*OPC?")
            self.frequency_mode("LIST")
            self.write("SOUR:LIST:TRIG:EXEC")  # the starting trigger, so external edges step
            index = self.list_index()
        if index != 0:
            raise InstrumentError(self.name, "SOUR:LIST:IND?", "the list did not start at point 0 "
                                  "after arming; a trigger edge arrived while arming?", index)

    def list_index(self) -> int:
        """Index of the list point on the output now, read from the instrument."""
        with plain_errors():
            return int(self.list_position())

    def restart_list(self) -> None:
        """Back to point 0 of the running list (``LIST:RESet``) without learning it again.

        After a reset the list waits for a starting trigger again, so that is sent too, as in
        ``arm_list``: every external edge afterwards steps one point.
        """
        with plain_errors():
            if self.frequency_mode() != "LIST":
                raise InstrumentError(self.name, "SOUR:LIST:RES", "no list is running; call arm_list first")
            self.write("SOUR:LIST:RES")
            self.write("SOUR:LIST:TRIG:EXEC")
            index = self.list_index()
        if index != 0:
            raise InstrumentError(self.name, "SOUR:LIST:IND?", "the list did not go back to point 0 "
                                  "after the reset; a trigger edge arrived meanwhile?", index)

    def abort_list(self) -> None:
        """Leave list mode; the source is back at its CW frequency."""
        with plain_errors():
            self.frequency_mode("CW")

    def software_trigger(self) -> None:
        """Step the list once from the bus, for stations without a trigger cable."""
        self.write("SOUR:LIST:TRIG:EXEC")

    # ---- hooks of CheckedVisaSource ------------------------------------------------------------

    def _powers_in(self, cmd: str) -> list[float]:
        """Any level setting, however spelled: ``[SOUR]:POW[:LEV][:IMM][:AMPL]`` or ``LIST:POW``."""
        header, arg = split_command(cmd)
        if arg is None or header.endswith("?"):
            return []
        nodes = [re.sub(r"\d+$", "", n) for n in header.upper().strip(":").split(":")]
        if not (_POWER_NODES & set(nodes)) or nodes[-1] not in _POWER_TAIL:
            return []
        return [_level(v) for v in arg.split(",")]

    def _read_errors(self) -> list[str]:
        errors: list[str] = []
        for _ in range(_MAX_ERRORS_DRAINED):
            answer = self.ask_raw("SYST:ERR?").strip()
            m = _ERROR.match(answer)
            if not m:
                raise InstrumentError(self.name, "SYST:ERR?", "garbled answer to the error query",
                                      answer) from None
            if int(m.group(1)) == 0:
                break
            errors.append(f"error {m.group(1)} ({m.group(2)})")
        return errors


def _level(text: str) -> float:
    try:
        return float(re.sub(r"(?i)\s*dbm\s*$", "", text.strip()))
    except ValueError:
        return float("nan")  # MAX, UP, ...: refused by the ceiling check rather than guessed
