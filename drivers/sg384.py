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

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from qcodes import validators as vals
from qcodes.instrument_drivers.stanford_research import SG384

from drivers.visa_errors import (
    command_value,
    enable_tcp_nodelay,
    peer_closed,
    plain_errors,
    split_command,
    visa_errors,
)
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    MicrowaveConstraints,
    SafetyLimits,
)

log = logging.getLogger(__name__)

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


class SG384Source(SG384):
    """An SRS SG38x signal generator with a lab power ceiling, typed errors and trigger-stepped lists.

    Args:
        name: instrument name (unique among open QCoDeS instruments).
        address: VISA resource, e.g. ``TCPIP0::192.168.1.20::5025::SOCKET``.
        limits: lab safety limits; ``limits.mw_power_max_dbm`` is the RF power ceiling.
        **kwargs: passed to QCoDeS's ``VisaInstrument``; ``visalib`` defaults to pyvisa-py (``"@py"``).
    """

    def __init__(self, name: str, address: str, limits: SafetyLimits, **kwargs: Any) -> None:
        if "pyvisa_sim_file" not in kwargs:
            kwargs.setdefault("visalib", "@py")
        self.limits = limits
        self._closed = False
        self._idn: dict[str, str | None] | None = None
        self._check_errors = False  # QCoDeS queries *IDN? during construction; LERR? after writes only
        super().__init__(name, address, **kwargs)
        enable_tcp_nodelay(self.visa_handle)
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
        self._check_errors = True
        self._drain_errors()  # stale errors from a previous session must not blame our first write

    def get_idn(self) -> dict[str, str | None]:
        """``*IDN?`` once per connection: the identity does not change while connected."""
        if self._idn is None:
            self._idn = super().get_idn()
        return dict(self._idn)

    # ---- MicrowaveSource -----------------------------------------------------------------------

    @property
    def constraints(self) -> MicrowaveConstraints:
        return self._constraints

    def set_frequency(self, frequency_hz: float) -> None:
        """Set the CW frequency (Hz); out of the model's range raises before anything is sent."""
        self._check_frequency(frequency_hz, "FREQ")
        with plain_errors():
            self.frequency(float(frequency_hz))

    def set_power(self, power_dbm: float) -> None:
        """Set the type-N output power (dBm); above the lab ceiling raises before anything is sent."""
        self.limits.check_mw_power(power_dbm)
        lo, hi = POWER_RANGE_DBM
        if not lo <= power_dbm <= hi:
            raise InstrumentError(self.name, "AMPR", f"power outside the {self.model} type-N range "
                                  f"{lo:g}..{hi:g} dBm", power_dbm)
        with plain_errors():
            self.amplitude_RF(float(power_dbm))

    def set_output(self, on: bool) -> None:
        """Switch the type-N RF output on or off."""
        with plain_errors():
            self.enable_RF("ON" if on else "OFF")

    def safe_state(self) -> None:
        """RF off. Never raises: a failure is logged, because this runs while handling other errors."""
        if self.__dict__.get("_closed", True):
            return
        try:
            self.write("ENBR 0")
        except Exception as exc:  # noqa: BLE001 - must not mask the error being handled
            log.error("%s: could not switch RF off: %s", self.name, exc)

    def close(self) -> None:
        """Switch RF off, then release the connection. Closing twice is harmless."""
        self.safe_state()
        self.close_without_rf_off()

    def close_without_rf_off(self) -> None:
        """Release the connection without touching the output (used when the device is not ours)."""
        if not self.__dict__.get("_closed", True):
            self._closed = True
            super().close()

    def write(self, cmd: str) -> None:
        with plain_errors():
            super().write(cmd)

    def ask(self, cmd: str) -> str:
        with plain_errors():
            return super().ask(cmd)

    # ---- ListSweepSource -----------------------------------------------------------------------

    def arm_list(self, frequencies_hz: Sequence[float], power_dbm: float) -> None:
        """Load a frequency list at one power and arm it; the trigger input steps through it.

        On return the output is at ``frequencies_hz[0]`` and ``list_index()`` is 0. Everything is
        checked before the first command is sent.
        """
        freqs = np.asarray(frequencies_hz, dtype=float).ravel()
        self.limits.check_mw_power(power_dbm)
        if not 0 < len(freqs) <= LIST_MAX_POINTS:
            raise InstrumentError(self.name, "LSTC?", f"list of {len(freqs)} points; the {self.model} "
                                  f"holds 1..{LIST_MAX_POINTS}; split the sweep or step in software",
                                  len(freqs))
        lo, hi = POWER_RANGE_DBM
        if not lo <= power_dbm <= hi:
            raise InstrumentError(self.name, "LSTP", f"power outside {lo:g}..{hi:g} dBm", power_dbm)
        for f in freqs:
            self._check_frequency(f, "LSTP")
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

    def abort_list(self) -> None:
        """Leave list mode and free the list; the source is back in CW mode."""
        with plain_errors():
            if self.list_size() > 0:
                self.write("LSTE 0")
                self.write("LSTD")

    def software_trigger(self) -> None:
        """Step the list once from the bus (``*TRG``), for stations without a trigger cable."""
        with plain_errors():
            self.write("*TRG")

    @staticmethod
    def _list_point(frequency_hz: float, power_dbm: float) -> str:
        fields = ["N"] * LIST_POINT_FIELDS
        fields[0] = f"{frequency_hz:.6f}"
        fields[3] = f"{power_dbm:.2f}"
        return ",".join(fields)

    # ---- checks and bus traffic ----------------------------------------------------------------

    def _check_frequency(self, frequency_hz: float, command: str) -> None:
        c = self._constraints
        if not (np.isfinite(frequency_hz) and c.frequency_min_hz <= frequency_hz <= c.frequency_max_hz):
            raise InstrumentError(
                self.name, command, f"frequency outside the {self.model} range "
                f"{c.frequency_min_hz / 1e6:g} MHz..{c.frequency_max_hz / 1e9:g} GHz", frequency_hz,
            )

    def _check_power_in_command(self, cmd: str) -> None:
        """The last guard: no RF power above the lab ceiling leaves through the bus."""
        header, arg = split_command(cmd)
        header = header.upper()
        if header == "AMPR" and arg is not None:
            value = command_value(cmd)
            self.limits.check_mw_power(value if isinstance(value, float) else float("nan"))
        elif header == "LSTP" and arg is not None:
            fields = arg.split(",")
            if len(fields) > 4 and fields[4].strip().upper() != "N":
                try:
                    power = float(fields[4])
                except ValueError:
                    power = float("nan")
                self.limits.check_mw_power(power)

    def write_raw(self, cmd: str) -> None:
        self._check_power_in_command(cmd)
        with visa_errors(self.name, cmd, self._timeout_s()):
            super().write_raw(cmd)
        if self._check_errors:
            self._raise_device_errors(cmd)

    def ask_raw(self, cmd: str) -> str:
        try:
            with visa_errors(self.name, cmd, self._timeout_s()):
                return super().ask_raw(cmd)
        except InstrumentTimeout as exc:
            if peer_closed(self.visa_handle):
                raise InstrumentDisconnected(self.name, cmd, "the instrument closed the connection; "
                                             "reconnect it and restart the run", exc.value) from exc
            raise

    def _timeout_s(self) -> float | None:
        try:
            timeout_ms = self.visa_handle.timeout
        except Exception:  # noqa: BLE001 - only used to word an error message
            return None
        return None if timeout_ms is None else timeout_ms / 1000

    def _read_errors(self) -> list[int]:
        codes: list[int] = []
        for _ in range(_MAX_ERRORS_DRAINED):
            answer = self.ask_raw("LERR?").strip()
            try:
                code = int(answer)
            except ValueError:
                raise InstrumentError(self.name, "LERR?", "garbled answer to the error query",
                                      answer) from None
            if code == 0:
                break
            codes.append(code)
        return codes

    def _drain_errors(self) -> None:
        stale = self._read_errors()
        if stale:
            log.info("%s: discarded stale error codes %s", self.name, stale)

    def _raise_device_errors(self, cmd: str, detail: str = "") -> None:
        codes = self._read_errors()
        if not codes and not detail:
            return
        words = "; ".join(f"error {c} ({ERROR_TEXT.get(c, 'unknown')})" for c in codes)
        text = ", ".join(t for t in (detail, words) if t)
        raise InstrumentError(self.name, cmd, f"the instrument refused it: {text}", command_value(cmd))
