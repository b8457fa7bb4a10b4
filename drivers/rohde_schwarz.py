"""Rohde & Schwarz SMB100A / SGS100A as a ``MicrowaveSource`` (SMB100A also a ``ListSweepSource``).

Built on QCoDeS's ``RohdeSchwarzSGS100A`` (parameters ``frequency``, ``power``, ``status``, ...),
with the checks of :class:`drivers.checked_visa.CheckedVisaSource` (lab power ceiling on every
command, ``SYSTem:ERRor?`` after every write, typed timeouts and disconnects, RF off on close).

The model comes from ``*IDN?`` and the frequency option from ``*OPT?`` (e.g. ``SMB-B106``: 6 GHz).

List mode (SMB100A; facts RS-4..RS-8 of ``docs/hardware/rohde_schwarz.md``) steps on the rear
[INST TRIG] input: ``LIST:MODE STEP`` with ``LIST:TRIGger:SOURce EXTernal`` is the manual's
"Extern Step": each trigger event starts a single step. ``LIST:TRIGger:EXECute`` belongs to the
single (bus) trigger source and is never sent here. With an external source the list is executed
once: after the last point it does not wrap, so the next pass starts with ``LIST:RESet``
(``restart_list``), which the sweep engine calls between passes anyway. Whether ``LIST:INDex?``
returns the live index is not documented (the manual describes setting it in step mode), so its
answer is checked (an integer inside the armed list) and ``acquire station check`` exercises it.

The SGS100A: no public R&S document confirms a list mode for it, so ``arm_list`` refuses it with
a clear message and its ``constraints.list_max_points`` is 0: the CW sweep steps in software and
records ``list_mode_unavailable`` as the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from qcodes import validators as vals
from qcodes.instrument_drivers.rohde_schwarz import RohdeSchwarzSGS100A

from drivers.checked_visa import CheckedVisaSource
from drivers.source_checks import power_within_ceiling, run_check
from drivers.visa_errors import plain_errors, split_command
from instrument.checks import CheckResult
from instrument.protocols import InstrumentError, MicrowaveConstraints, SafetyLimits

# Per model: lowest frequency, RF level range, list length, upper frequency per frequency option
# (R&S data sheets). The level range is the device's setting range, not a safety limit. The list
# length of 2000 points is unconfirmed (fact RS-9): if an instrument holds fewer, arming a longer
# list fails with its own error before anything is measured. The SGS100A has no confirmed list
# mode (fact RS-10): 0 points.
SGS100A_NO_LIST = ("list mode on the SGS100A is not confirmed by any public R&S document (its "
                   "user manual describes no SOURce:LIST subsystem); the sweep steps in software")
MODELS: dict[str, dict[str, Any]] = {
    "SMB100A": {
        "frequency_min_hz": 100e3, "power_range_dbm": (-145.0, 30.0), "list_max_points": 2000,
        "list_frequency_min_hz": 300e3, "list_unavailable": "",
        "options_max_hz": {"B101": 1.1e9, "B102": 2.2e9, "B103": 3.2e9, "B106": 6e9,
                           "B112": 12.75e9, "B120": 20e9, "B140": 40e9},
    },
    "SGS100A": {
        "frequency_min_hz": 1e6, "power_range_dbm": (-120.0, 25.0), "list_max_points": 0,
        "list_frequency_min_hz": 1e6, "list_unavailable": SGS100A_NO_LIST,
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
        self.list_mode_unavailable: str = spec["list_unavailable"]
        self._list_frequency_min_hz = float(spec["list_frequency_min_hz"])
        self._armed_points = 0
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
        if not self.list_mode_unavailable:  # no LIST subsystem is documented for the SGS100A
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
        """Load a frequency list at one level and arm it for "Extern Step" (facts RS-4..RS-7).

        On return the output is at ``frequencies_hz[0]``, ``list_index()`` is 0 and each edge on
        the [INST TRIG] input steps one point. Everything is checked before the first command is
        sent; on the SGS100A (no confirmed list mode) nothing is sent and this raises.
        """
        self.limits.check_mw_power(power_dbm)  # the lab ceiling first, whatever else is wrong
        if self.list_mode_unavailable:
            raise InstrumentError(self.name, "SOUR:LIST", f"{self.list_mode_unavailable}; use "
                                  "`--mw-stepping software` (or auto)", len(frequencies_hz))
        freqs = self._checked_list(frequencies_hz, power_dbm, size_command="SOUR:LIST:FREQ",
                                   power_command="SOUR:LIST:POW", frequency_command="SOUR:LIST:FREQ")
        for f in freqs:
            if f < self._list_frequency_min_hz:
                minimum_khz = self._list_frequency_min_hz / 1e3
                raise InstrumentError(self.name, "SOUR:LIST:FREQ", "list frequency below the "
                                      f"{self.model}'s list minimum {minimum_khz:g} kHz", float(f))
        with plain_errors():
            self._armed_points = 0
            if self.frequency_mode() != "CW":
                self.frequency_mode("CW")  # a running list cannot be rewritten
            self.write(f'SOUR:LIST:SEL "{LIST_NAME}"')
            self.write("SOUR:LIST:FREQ " + ",".join(f"{f:.2f}" for f in freqs))
            self.write("SOUR:LIST:POW " + ",".join([f"{power_dbm:.2f}"] * len(freqs)))
            self.write("SOUR:LIST:MODE STEP")  # each trigger event: one step (fact RS-5)
            self.write("SOUR:LIST:TRIG:SOUR EXT")  # [INST TRIG]; the list runs once (fact RS-6)
            with self.timeout.set_to(max(self.timeout() or 0.0, LEARN_TIMEOUT_S)):
                self.write("SOUR:LIST:LEAR")
                self.ask("*OPC?")
            self.frequency_mode("LIST")
            self._armed_points = len(freqs)
            index = self.list_index()
        if index != 0:
            raise InstrumentError(self.name, "SOUR:LIST:IND?", "the list did not start at point 0 "
                                  "after arming; a trigger edge arrived while arming?", index)

    def list_index(self) -> int:
        """Index of the list point on the output now (``LIST:INDex?``; live value unconfirmed, RS-8).

        The answer must be an integer inside the armed list; anything else raises, naming the
        reply, so a firmware whose index does not follow the triggers shows up at once.
        """
        answer = self.ask("SOUR:LIST:IND?").strip()
        try:
            index = int(float(answer))
        except ValueError:
            raise InstrumentError(self.name, "SOUR:LIST:IND?", "garbled answer to the list index "
                                  "query", answer) from None
        if float(answer) != index or not 0 <= index < max(self._armed_points, 1):
            raise InstrumentError(self.name, "SOUR:LIST:IND?", f"list index outside the armed list "
                                  f"of {self._armed_points} points (LIST:INDex? as a live index is "
                                  "unconfirmed: run `acquire station check`, or step in software)",
                                  answer)
        return index

    def restart_list(self) -> None:
        """Back to point 0 of the armed list (``LIST:RESet``) without learning it again.

        With an external trigger the list runs once and stays on its last point (fact RS-6);
        the reset puts it back at the start, waiting for the next trigger edge to step.
        """
        with plain_errors():
            if self._armed_points == 0 or self.frequency_mode() != "LIST":
                raise InstrumentError(self.name, "SOUR:LIST:RES", "no list is running; call arm_list first")
            self.write("SOUR:LIST:RES")
            index = self.list_index()
        if index != 0:
            raise InstrumentError(self.name, "SOUR:LIST:IND?", "the list did not go back to point 0 "
                                  "after the reset; a trigger edge arrived meanwhile?", index)

    def abort_list(self) -> None:
        """Leave list mode; the source is back at its CW frequency."""
        with plain_errors():
            self.frequency_mode("CW")
            self._armed_points = 0

    def software_trigger(self) -> None:
        """Refused: the list is armed for the external trigger; ``LIST:TRIGger:EXECute`` belongs
        to the single (bus) trigger source (fact RS-7)."""
        raise InstrumentError(self.name, "SOUR:LIST:TRIG:EXEC", "the list is armed for the external "
                              "[INST TRIG] input; LIST:TRIGger:EXECute belongs to the single trigger "
                              "source. Cable the pulse generator's mw_trigger or step in software")

    # ---- commissioning -------------------------------------------------------------------------

    def station_checks(self) -> list[CheckResult]:
        """Read-back checks for ``acquire station check``: identity, firmware, options, RF off,
        level against the ceiling, frequency mode, list-mode support, error queue. Nothing is
        switched on or changed."""
        role = self.name
        idn = self.get_idn()
        if self.list_mode_unavailable:
            list_check = run_check(role, "list mode", lambda: (None, self.list_mode_unavailable))
        else:
            list_check = run_check(role, "list mode", lambda: (True, (
                "Extern Step on [INST TRIG], runs once per arming; the live LIST:INDex? read-back is "
                "unconfirmed: exercised by the triggered-list check")))
        return [
            run_check(role, "identity", lambda: (True, f"{idn.get('vendor')} {self.model}, "
                                                 f"serial {idn.get('serial')}")),
            run_check(role, "firmware", lambda: (bool(idn.get("firmware")),
                                                 f"firmware {idn.get('firmware')}"),
                      "the *IDN? answer names no firmware; check the instrument"),
            run_check(role, "options (*OPT?)", self._check_options),
            run_check(role, "RF output off (OUTP?)", self._check_rf_off,
                      "switch RF off (front panel RF ON/OFF) before commissioning"),
            run_check(role, "level setting (SOUR:POW?)",
                      lambda: power_within_ceiling(self._query_number("SOUR:POW?"),
                                                   self.limits.mw_power_max_dbm),
                      "lower the level setting below the lab ceiling before switching RF on"),
            run_check(role, "frequency mode (SOUR:FREQ:MODE?)", self._check_cw_mode,
                      "a list or sweep is running from the front panel; set the frequency mode to CW"),
            list_check,
            run_check(role, "error queue (SYST:ERR?)", self._check_error_queue,
                      "read the errors on the instrument's Info panel and clear their cause"),
        ]

    def _query_number(self, query: str) -> float:
        answer = self.ask(query).strip()
        try:
            return float(answer)
        except ValueError:
            raise InstrumentError(self.name, query, "garbled answer", answer) from None

    def _check_options(self) -> tuple[bool, str]:
        f_max_ghz = self.constraints.frequency_max_hz / 1e9
        return True, f"{self.ask('*OPT?').strip()}; upper frequency {f_max_ghz:g} GHz"

    def _check_rf_off(self) -> tuple[bool, str]:
        on = self._query_number("OUTP?") == 1
        return not on, "RF output is ON" if on else "RF output is off"

    def _check_cw_mode(self) -> tuple[bool, str]:
        mode = self.ask("SOUR:FREQ:MODE?").strip().upper()
        return mode in ("CW", "FIX", "FIXED"), f"frequency mode {mode}"

    def _check_error_queue(self) -> tuple[bool, str]:
        errors = self._read_errors()
        return not errors, "; ".join(errors) if errors else "no errors queued"

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
