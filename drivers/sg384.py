"""SRS SG382/SG384/SG386 as a ``MicrowaveSource`` and ``ListSweepSource``, built on QCoDeS's SG384.

What this adds to QCoDeS's driver:

* the model from ``*IDN?`` sets the frequency range (SG382 2.025 GHz, SG384 4.05 GHz,
  SG386 6.075 GHz; type-N output from 950 kHz);
* every write is followed by ``LERR?``; a non-zero code raises ``InstrumentError`` naming the
  instrument, the command and its value;
* every RF power that would leave through the bus (``AMPR`` and list points) is checked against the
  lab ceiling first, whichever parameter or method sent it;
* list mode stepped by the rear-panel trigger input (``LSTD LSTC? LSTP LSTR LSTE LSTI?``): the
  power of a list point goes in field 5 (AMPR, type-N), never in field 4 (OFSL, the BNC's DC
  offset); an old list is deleted before a new one is created (facts SG-4, SG-5, SG-9 of
  ``docs/hardware/sg384.md``);
* ``station_checks()``: identity, firmware, options and RF-off read-backs for ``acquire station
  check``; nothing is switched on;
* VISA timeouts and lost connections become ``InstrumentTimeout`` / ``InstrumentDisconnected``;
* ``close()`` turns RF off first; ``safe_state()`` never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qcodes import validators as vals
from qcodes.instrument_drivers.stanford_research import SG384

from drivers.checked_visa import CheckedVisaSource
from drivers.source_checks import power_within_ceiling, run_check
from drivers.visa_errors import plain_errors, split_command
from instrument.checks import CheckResult
from instrument.protocols import InstrumentError, MicrowaveConstraints, SafetyLimits

MODEL_FREQUENCY_MAX_HZ = {"SG382": 2.025e9, "SG384": 4.05e9, "SG386": 6.075e9}
FREQUENCY_MIN_HZ = 950e3  # type-N output
POWER_RANGE_DBM = (-110.0, 16.5)  # type-N output (AMPR)
LIST_MAX_POINTS = 2000
LIST_POINT_FIELDS = 15
# 0-based positions of the LSTP fields after the point index (fact SG-4): 1 FREQ, 2 PHAS, 3 AMPL,
# 4 OFSL, 5 AMPR, 6 DISP, 7 enable bits, 8-15 modulation, clock and doubler settings.
FIELD_FREQ = 0
FIELD_OFSL = 3
FIELD_AMPR = 4
OPTIONS = {1: "timebase (OCXO or rubidium)", 2: "rear RF doublers", 3: "IQ modulation",
           4: "option 4"}  # OPTN? k (fact SG-11, inferred from a public driver)

# SG380 manual, "Error Codes".
ERROR_TEXT = {
    10: "illegal value", 11: "illegal mode", 12: "not allowed", 13: "recall failed",
    14: "no clock option", 15: "no RF doubler option", 16: "no IQ option", 17: "failed self test",
    30: "lost data", 32: "no listener", 110: "illegal command", 111: "undefined command",
    112: "illegal query", 113: "illegal set", 114: "null parameter", 115: "extra parameters",
    116: "missing parameters", 117: "parameter overflow", 118: "invalid floating point number",
    120: "invalid integer", 121: "integer overflow", 122: "invalid hexadecimal", 126: "syntax error",
    127: "illegal units", 128: "missing units", 170: "communication error", 171: "over run",
    254: "too many errors",
}
_MAX_ERRORS_DRAINED = 25


class SG384Source(CheckedVisaSource, SG384):
    """An SRS SG38x signal generator with a lab power ceiling, typed errors and trigger-stepped lists.

    Args:
        name: instrument name (unique among open QCoDeS instruments).
        address: VISA resource, e.g. ``TCPIP0::192.168.1.20::5025::SOCKET``.
        limits: lab safety limits; ``limits.mw_power_max_dbm`` is the RF power ceiling.
        **kwargs: passed to QCoDeS's ``VisaInstrument``; ``visalib`` defaults to pyvisa-py (``"@py"``).
    """

    _rf_off_command = "ENBR 0"
    _device_power_max_dbm = POWER_RANGE_DBM[1]

    def __init__(self, name: str, address: str, limits: SafetyLimits, **kwargs: Any) -> None:
        self._prepare(limits, kwargs)
        super().__init__(name, address, **kwargs)
        idn = self.get_idn()
        model = str(idn.get("model") or "")
        if model not in MODEL_FREQUENCY_MAX_HZ:
            self.close_without_rf_off()
            raise InstrumentError(name, "*IDN?", f"not an SRS SG38x signal generator (expected one of "
                                  f"{sorted(MODEL_FREQUENCY_MAX_HZ)}); check the address", idn.get("model"))
        self.model = model
        self._constraints = MicrowaveConstraints(
            frequency_min_hz=FREQUENCY_MIN_HZ,
            frequency_max_hz=MODEL_FREQUENCY_MAX_HZ[model],
            power_min_dbm=POWER_RANGE_DBM[0],
            power_max_dbm=min(POWER_RANGE_DBM[1], limits.mw_power_max_dbm),
            list_max_points=LIST_MAX_POINTS,
        )
        self.frequency.vals = vals.Numbers(FREQUENCY_MIN_HZ, MODEL_FREQUENCY_MAX_HZ[model])
        self.list_enable = self.add_parameter(
            "list_enable", label="List mode", get_cmd="LSTE?", set_cmd="LSTE {}",
            val_mapping={False: 0, True: 1},
            docstring="List mode on: the rear-panel trigger input steps through the list.",
        )
        self.list_position = self.add_parameter(
            "list_position", label="List index", get_cmd="LSTI?", get_parser=int,
            docstring="Index of the list point on the output now.",
        )
        self.list_size = self.add_parameter(
            "list_size", label="List size", get_cmd="LSTS?", get_parser=int,
            docstring="Number of points of the list in memory (0: none).",
        )
        self._connected()

    # ---- MicrowaveSource -----------------------------------------------------------------------

    def set_power(self, power_dbm: float) -> None:
        """Set the type-N output power (dBm); above the lab ceiling raises before anything is sent."""
        self._check_power(power_dbm, "AMPR")
        with plain_errors():
            self.amplitude_RF(float(power_dbm))

    def set_output(self, on: bool) -> None:
        """Switch the type-N RF output on or off."""
        with plain_errors():
            self.enable_RF("ON" if on else "OFF")

    # ---- ListSweepSource -----------------------------------------------------------------------

    def arm_list(self, frequencies_hz: Sequence[float], power_dbm: float) -> None:
        """Load a frequency list at one power and arm it; the trigger input steps through it.

        On return the output is at ``frequencies_hz[0]`` and ``list_index()`` is 0. Everything is
        checked before the first command is sent. The old list, if any, is deleted first
        (``LSTD``): ``LSTC?`` is not relied on while a list exists (fact SG-9).
        """
        freqs = self._checked_list(frequencies_hz, power_dbm, size_command="LSTC?", power_command="LSTP",
                                   frequency_command="LSTP")
        points = [self._list_point(f, power_dbm) for f in freqs]
        for i, point in enumerate(points):  # the same guard write_raw applies, before anything is sent
            for power in self._powers_in(f"LSTP {i},{point}"):
                self.limits.check_mw_power(power)
        with plain_errors():
            self._list_armed = False
            self.write("LSTD")  # also leaves list mode; accepted without a list (fact SG-5)
            command = f"LSTC? {len(freqs)}"
            created = self.ask(command).strip()
            if created != "1":
                self._raise_device_errors(command, f"list not created (answer {created!r}, expected '1')")
            for i, point in enumerate(points):
                self.write(f"LSTP {i},{point}")
            self.write("LSTR")
            self.list_enable(True)
            self._list_armed = True

    def set_frequency(self, frequency_hz: float) -> None:
        """Set the CW frequency (Hz); out of the model's range raises before anything is sent.

        Whether the SG384 refuses ``FREQ`` while a list runs is unconfirmed (fact SG-10), so it is
        never sent then: with a list armed this raises, naming ``abort_list`` as the fix.
        """
        self._check_frequency(frequency_hz, "FREQ")
        if self.__dict__.get("_list_armed"):
            raise InstrumentError(self.name, "FREQ", "a frequency list is armed; call abort_list() "
                                  "before setting a CW frequency", frequency_hz)
        with plain_errors():
            self.frequency(float(frequency_hz))

    def list_index(self) -> int:
        """Index of the list point on the output now, read from the instrument (``LSTI?``)."""
        answer = self.ask("LSTI?").strip()
        try:
            index = int(answer)
        except ValueError:
            raise InstrumentError(self.name, "LSTI?", "garbled answer to the list index query",
                                  answer) from None
        if index < 0:
            raise InstrumentError(self.name, "LSTI?", "negative list index", index)
        return index

    def restart_list(self) -> None:
        """Back to point 0 of the armed list (``LSTR``) without loading it again."""
        with plain_errors():
            if not (self.list_size() > 0 and self.list_enable()):
                raise InstrumentError(self.name, "LSTR", "no list is armed; call arm_list first")
            self.write("LSTR")

    def abort_list(self) -> None:
        """Leave list mode and free the list; the source is back in CW mode."""
        with plain_errors():
            if self.list_size() > 0:
                self.write("LSTE 0")
                self.write("LSTD")
            self._list_armed = False

    def software_trigger(self) -> None:
        """Step the list once from the bus (``*TRG``), for stations without a trigger cable."""
        self.write("*TRG")

    @staticmethod
    def _list_point(frequency_hz: float, power_dbm: float) -> str:
        """The 15 LSTP fields: frequency in FREQ, power in AMPR (type-N), everything else ``N``."""
        fields = ["N"] * LIST_POINT_FIELDS
        fields[FIELD_FREQ] = f"{frequency_hz:.6f}"
        fields[FIELD_AMPR] = f"{power_dbm:.2f}"
        return ",".join(fields)

    # ---- commissioning -------------------------------------------------------------------------

    def station_checks(self) -> list[CheckResult]:
        """Read-back checks for ``acquire station check``: identity, firmware, options, RF off,
        power setting against the ceiling, list memory, error queue. Nothing is switched on."""
        role = self.name
        idn = self.get_idn()
        return [
            run_check(role, "identity", lambda: (True, f"{idn.get('vendor')} {self.model}, "
                                                 f"serial {idn.get('serial')}")),
            run_check(role, "firmware",
                      lambda: (bool(idn.get("firmware")), f"firmware {idn.get('firmware')}"),
                      "the *IDN? answer names no firmware; update the SG384 firmware"),
            run_check(role, "options (OPTN?)", self._check_options),
            run_check(role, "RF output off (ENBR?)", self._check_rf_off,
                      "switch the type-N output off (front panel RF ON/OFF) before commissioning"),
            run_check(role, "power setting (AMPR?)",
                      lambda: power_within_ceiling(_query_number(self, "AMPR?"),
                                                   self.limits.mw_power_max_dbm),
                      "lower the SG384's AMPR setting below the lab ceiling before switching RF on"),
            run_check(role, "list memory (LSTS?)", lambda: (True, f"{int(_query_number(self, 'LSTS?'))} "
                                                          "list points in memory")),
            run_check(role, "list mode off (LSTE?)", self._check_list_off,
                      "a list is enabled from an earlier session: CW frequency settings may be refused "
                      "while it runs (fact SG-10); disable it (LSTE 0) or let the next sweep delete it"),
            run_check(role, "error queue (LERR?)", self._check_error_queue,
                      "read the errors on the SG384's front panel and clear their cause"),
        ]

    def _check_options(self) -> tuple[bool, str]:
        installed = [name for k, name in OPTIONS.items() if _query_number(self, f"OPTN? {k}") == 1]
        return True, "installed: " + (", ".join(installed) if installed else "none")

    def _check_list_off(self) -> tuple[bool, str]:
        enabled = _query_number(self, "LSTE?") == 1
        return not enabled, "list mode is enabled" if enabled else "list mode is off"

    def _check_rf_off(self) -> tuple[bool, str]:
        on = _query_number(self, "ENBR?") == 1
        return not on, "type-N output is ON" if on else "type-N output is off"

    def _check_error_queue(self) -> tuple[bool, str]:
        errors = self._read_errors()
        return not errors, "; ".join(errors) if errors else "no errors queued"

    # ---- hooks of CheckedVisaSource ------------------------------------------------------------

    def _powers_in(self, cmd: str) -> list[float]:
        header, arg = split_command(cmd)
        header = header.upper()
        if arg is None:
            return []
        if header == "AMPR":
            return [_number(arg.upper().removesuffix("DBM"))]
        if header == "LSTP":
            fields = [f.strip() for f in arg.split(",")][1:]  # after the point index (fact SG-4)
            if len(fields) > FIELD_AMPR and fields[FIELD_AMPR].upper() != "N":
                return [_number(fields[FIELD_AMPR].upper().removesuffix("DBM"))]
        return []

    def _read_errors(self) -> list[str]:
        errors: list[str] = []
        for _ in range(_MAX_ERRORS_DRAINED):
            answer = self.ask_raw("LERR?").strip()
            try:
                code = int(answer)
            except ValueError:
                raise InstrumentError(self.name, "LERR?", "garbled answer to the error query",
                                      answer) from None
            if code == 0:
                break
            errors.append(f"error {code} ({ERROR_TEXT.get(code, 'unknown')})")
        return errors


def _query_number(source: SG384Source, query: str) -> float:
    """A numeric answer, or ``InstrumentError`` naming the garbled reply."""
    answer = source.ask(query).strip()
    try:
        return float(answer)
    except ValueError:
        raise InstrumentError(source.name, query, "garbled answer", answer) from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
