"""What every VISA microwave source driver here adds to its QCoDeS base driver.

``CheckedVisaSource`` is a mixin placed before a QCoDeS ``VisaInstrument`` driver in the bases.
It makes the bus safe and the failures readable:

* every command that would carry an RF power is checked against the lab ceiling in ``write_raw``,
  the one place all traffic passes, so no parameter or method can exceed it;
* after each write the device's error queue is read; an error raises ``InstrumentError`` naming the
  instrument, the command and its value;
* VISA timeouts and lost connections become ``InstrumentTimeout`` / ``InstrumentDisconnected``;
* ``safe_state()`` switches RF off (raising if it could not), ``close()`` does it before disconnecting.

A driver supplies ``_rf_off_command``, ``_device_power_max_dbm`` and two methods:
``_read_errors() -> list[str]`` drains its error queue (one readable entry per error) and
``_powers_in(cmd) -> list[float]`` says which RF powers (dBm) a command would set, NaN for one
that cannot be read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from drivers.visa_errors import command_value, enable_tcp_nodelay, peer_closed, plain_errors, visa_errors
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    MicrowaveConstraints,
    SafetyLimits,
)

log = logging.getLogger(__name__)


class CheckedVisaSource:
    """Mixin for a QCoDeS VISA microwave source; see the module docstring."""

    _rf_off_command = ""
    model = ""
    limits: SafetyLimits
    _constraints: MicrowaveConstraints
    name: str
    visa_handle: Any

    def _prepare(self, limits: SafetyLimits, kwargs: dict[str, Any]) -> None:
        """Call before the QCoDeS constructor: pyvisa-py by default, no error checks while it runs."""
        if "pyvisa_sim_file" not in kwargs:
            kwargs.setdefault("visalib", "@py")
        self.limits = limits
        self._closed = False
        self._idn: dict[str, str | None] | None = None
        self._check_errors = False

    def _connected(self) -> None:
        """Call after the QCoDeS constructor: fast sockets, stale errors discarded, checks on."""
        enable_tcp_nodelay(self.visa_handle)
        stale = self._read_errors()
        if stale:
            log.info("%s: discarded stale errors %s", self.name, stale)
        self._check_errors = True

    # ---- MicrowaveSource basics ----------------------------------------------------------------

    @property
    def constraints(self) -> MicrowaveConstraints:
        return self._constraints

    def connect_message(self, idn_param: str = "IDN", begin_time: float | None = None) -> None:
        """Log the identity: QCoDeS prints it, which would mix into the ``acquire`` command's output."""
        log.info("%s: connected to %s", self.name, self.get_idn())

    def get_idn(self) -> dict[str, str | None]:
        """``*IDN?`` once per connection: the identity does not change while connected."""
        if self._idn is None:
            self._idn = super().get_idn()  # type: ignore[misc]
        return dict(self._idn)

    def safe_state(self) -> None:
        """RF off; raises ``InstrumentError`` if the source did not take the command."""
        if self.__dict__.get("_closed", True):
            return
        try:
            self.write(self._rf_off_command)
        except Exception as exc:
            log.error("%s: could not switch RF off: %s", self.name, exc)
            fix = "switch the source off at its front panel"
            raise InstrumentError(self.name, self._rf_off_command,
                                  f"could not switch RF off ({exc}); {fix}") from exc

    def close(self) -> None:
        """Switch RF off, then release the connection (even if RF off failed). Closing twice is harmless."""
        try:
            self.safe_state()
        finally:
            self.close_without_rf_off()

    def close_without_rf_off(self) -> None:
        """Release the connection without touching the output (used when the device is not ours)."""
        if not self.__dict__.get("_closed", True):
            self._closed = True
            super().close()  # type: ignore[misc]

    # ---- checks --------------------------------------------------------------------------------

    def _check_frequency(self, frequency_hz: float, command: str) -> None:
        c = self._constraints
        if not (np.isfinite(frequency_hz) and c.frequency_min_hz <= frequency_hz <= c.frequency_max_hz):
            raise InstrumentError(
                self.name, command, f"frequency outside the {self.model} range "
                f"{c.frequency_min_hz / 1e6:g} MHz..{c.frequency_max_hz / 1e9:g} GHz", frequency_hz,
            )

    def _check_power(self, power_dbm: float, command: str) -> None:
        """Lab ceiling first (SafetyLimitError), then the device's own range (InstrumentError)."""
        self.limits.check_mw_power(power_dbm)
        c = self._constraints
        if power_dbm < c.power_min_dbm:
            raise InstrumentError(self.name, command, f"power below the {self.model} minimum "
                                  f"{c.power_min_dbm:g} dBm", power_dbm)
        if power_dbm > self._device_power_max_dbm:
            raise InstrumentError(self.name, command, f"power above the {self.model} maximum "
                                  f"{self._device_power_max_dbm:g} dBm", power_dbm)

    def _checked_list(self, frequencies_hz: Sequence[float], power_dbm: float, *, size_command: str,
                      power_command: str, frequency_command: str) -> np.ndarray:
        """The list as floats, once the ceiling, its length and every point are checked.

        ``arm_list`` calls it before it sends anything; the commands name where each check belongs.
        """
        freqs = np.asarray(frequencies_hz, dtype=float).ravel()
        self.limits.check_mw_power(power_dbm)
        max_points = self._constraints.list_max_points
        if not 0 < len(freqs) <= max_points:
            raise InstrumentError(self.name, size_command, f"list of {len(freqs)} points; the {self.model} "
                                  f"holds 1..{max_points}; split the sweep or step in software", len(freqs))
        self._check_power(power_dbm, power_command)
        for f in freqs:
            self._check_frequency(f, frequency_command)
        return freqs

    _device_power_max_dbm = 0.0

    # ---- bus traffic ---------------------------------------------------------------------------

    def write(self, cmd: str) -> None:
        with plain_errors():
            super().write(cmd)  # type: ignore[misc]

    def ask(self, cmd: str) -> str:
        with plain_errors():
            return super().ask(cmd)  # type: ignore[misc]

    def _check_ceiling(self, cmd: str) -> None:
        """The last guard: no power above the ceiling leaves, in any ``;``-joined part of a message."""
        for part in cmd.split(";"):
            for power in self._powers_in(part):
                self.limits.check_mw_power(power)

    def write_raw(self, cmd: str) -> None:
        self._check_ceiling(cmd)
        with visa_errors(self.name, cmd, self._timeout_s()):
            super().write_raw(cmd)  # type: ignore[misc]
        if self._check_errors:
            self._raise_device_errors(cmd)

    def ask_raw(self, cmd: str) -> str:
        self._check_ceiling(cmd)  # a setting hidden in a query message is guarded too
        try:
            with visa_errors(self.name, cmd, self._timeout_s()):
                return super().ask_raw(cmd)  # type: ignore[misc]
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

    def _raise_device_errors(self, cmd: str, detail: str = "") -> None:
        errors = self._read_errors()
        if not errors and not detail:
            return
        text = ", ".join(t for t in (detail, "; ".join(errors)) if t)
        raise InstrumentError(self.name, cmd, f"the instrument refused it: {text}", command_value(cmd))
