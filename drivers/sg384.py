"""SRS SG382/SG384/SG386 as a ``MicrowaveSource`` and ``ListSweepSource``, built on QCoDeS's SG384.

What this adds to QCoDeS's driver:

* the model from ``*IDN?`` sets the frequency range (SG382 2.025 GHz, SG384 4.05 GHz,
  SG386 6.075 GHz; type-N output from 950 kHz);
* every write is followed by ``LERR?``; a non-zero code raises ``InstrumentError`` naming the
  instrument, the command and its value;
* every RF power that would leave through the bus (``AMPR`` and list points) is checked against the
  lab ceiling first, whichever parameter or method sent it;
* list mode stepped by the rear-panel trigger input (``LSTC? LSTP LSTE LSTR LSTI? LSTD``);
* VISA timeouts and lost connections become ``InstrumentTimeout`` / ``InstrumentDisconnected``;
* ``close()`` turns RF off first; ``safe_state()`` never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qcodes import validators as vals
from qcodes.instrument_drivers.stanford_research import SG384

from drivers.checked_visa import CheckedVisaSource
from drivers.visa_errors import plain_errors, split_command
from instrument.protocols import InstrumentError, MicrowaveConstraints, SafetyLimits

MODEL_FREQUENCY_MAX_HZ = {"SG382": 2.025e9, "SG384": 4.05e9, "SG386": 6.075e9}
FREQUENCY_MIN_HZ = 950e3  # type-N output
POWER_RANGE_DBM = (-110.0, 16.5)  # type-N output (AMPR)
LIST_MAX_POINTS = 2000
LIST_POINT_FIELDS = 15

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

    def set_frequency(self, frequency_hz: float) -> None:
        """Set the CW frequency (Hz); out of the model's range raises before anything is sent."""
        self._check_frequency(frequency_hz, "FREQ")
        with plain_errors():
            self.frequency(float(frequency_hz))

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
        checked before the first command is sent.
        """
        freqs = self._checked_list(frequencies_hz, power_dbm, size_command="LSTC?", power_command="LSTP",
                                   frequency_command="LSTP")
        with plain_errors():
            if self.list_size() > 0 and self.list_enable():
                self.list_enable(False)
            created = self.ask(f"LSTC? {len(freqs)}").strip()
            if created != "1":
                self._raise_device_errors(f"LSTC? {len(freqs)}", f"list not created (answer {created!r})")
            for i, f in enumerate(freqs):
                self.write(f"LSTP {i},{self._list_point(f, power_dbm)}")
            self.write("LSTR")
            self.list_enable(True)

    def list_index(self) -> int:
        """Index of the list point on the output now, read from the instrument."""
        with plain_errors():
            return int(self.list_position())

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

    def software_trigger(self) -> None:
        """Step the list once from the bus (``*TRG``), for stations without a trigger cable."""
        self.write("*TRG")

    @staticmethod
    def _list_point(frequency_hz: float, power_dbm: float) -> str:
        fields = ["N"] * LIST_POINT_FIELDS
        fields[0] = f"{frequency_hz:.6f}"
        fields[3] = f"{power_dbm:.2f}"
        return ",".join(fields)

    # ---- hooks of CheckedVisaSource ------------------------------------------------------------

    def _powers_in(self, cmd: str) -> list[float]:
        header, arg = split_command(cmd)
        header = header.upper()
        if arg is None:
            return []
        if header == "AMPR":
            return [_number(arg.upper().removesuffix("DBM"))]
        if header == "LSTP":
            fields = arg.split(",")  # index, frequency, phase, AMPL, AMPR, ...
            if len(fields) > 4 and fields[4].strip().upper() != "N":
                return [_number(fields[4])]
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


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
