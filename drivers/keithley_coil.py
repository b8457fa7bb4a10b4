"""One micro-coil driven by one channel of a Keithley 2450 SMU (a one-channel ``CoilDriver``).

Uses QCoDeS's ``Keithley2450`` driver: the SMU sources current and measures the current that really
flows, with a voltage compliance set low enough to protect the coil (a 1.6 kOhm micro-coil needs
1 V at 600 uA). An open (broken) coil cannot carry the current: the SMU hits its voltage limit and
the measured current stays near zero, so ``read_currents`` disagrees with ``setpoints``.

QCoDeS's driver speaks the 2450's SCPI command set only. A 2450 set to the TSP (or SCPI2400)
command set answers ``*LANG?`` with that name and QCoDeS then adds no parameters, so every call
would end in an ``AttributeError``; this driver detects it and raises :class:`WrongCommandSet`
naming the fix (facts K-1..K-3 of ``docs/hardware/keithley.md``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from drivers.source_checks import run_check
from instrument.checks import CheckResult
from instrument.protocols import InstrumentError, InstrumentTimeout, SafetyLimitError, SafetyLimits

log = logging.getLogger(__name__)

# Fact K-2: the front-panel path to the command set (2450 reference manual, "*LANG"; the menu path
# is inferred from the manual's front-panel system settings). *LANG is kept in non-volatile memory
# and takes effect after a reboot.
COMMAND_SET_FIX = ("switch the 2450 to SCPI mode (front panel MENU > System > Settings > Command Set > "
                   "SCPI, or send *LANG SCPI) and power-cycle it")


class WrongCommandSet(InstrumentError):
    """The SMU is not in the SCPI command set that QCoDeS's Keithley 2450 driver speaks."""


def check_command_set(name: str, smu: Any) -> None:
    """Raise ``WrongCommandSet`` when QCoDeS found the 2450 outside its SCPI command set.

    QCoDeS's ``Keithley2450`` asks ``*LANG?`` when it connects and, when the answer is not
    ``SCPI``, returns without adding a single parameter (fact K-3).
    """
    if "source_function" in getattr(smu, "parameters", {}):
        return
    language: str | None = None
    with contextlib.suppress(Exception):  # only to word the message: the missing parameters decide
        language = str(smu.ask("*LANG?")).strip()
    seen = f"*LANG? answered {language!r}" if language else "QCoDeS added no parameters"
    raise WrongCommandSet(name, "*LANG?", f"the Keithley 2450 is not in the SCPI command set ({seen}); "
                          f"{COMMAND_SET_FIX}", language)


class KeithleyCoilChannel:
    """A Keithley 2450 sourcing the current of one coil.

    Args:
        name: instrument name (its role in the station).
        smu: a connected ``qcodes...Keithley2450``.
        limits: lab safety limits (current ceiling, ramp rate).
        ceiling_a: this coil's current ceiling from the station file (capped by the lab limit).
        voltage_limit_v: compliance voltage; keep it just above what the coil needs.
        ramp_step_a: largest current change per ramp step.
        sleep: how to let time pass between ramp steps.
    """

    def __init__(
        self,
        name: str,
        smu: Any,
        limits: SafetyLimits,
        ceiling_a: float | None = None,
        voltage_limit_v: float = 2.0,
        ramp_step_a: float = 50e-6,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.smu = smu
        self.limits = limits
        self.ceiling_a = (limits.coil_current_max_a if ceiling_a is None
                          else min(limits.coil_current_max_a, float(ceiling_a)))
        self.ramp_step_a = float(ramp_step_a)
        self._sleep = sleep
        self._setpoint = 0.0
        check_command_set(name, smu)
        self._call("configure", self._configure, voltage_limit_v)

    def _configure(self, voltage_limit_v: float) -> None:
        self.smu.source_function("current")
        self.smu.sense_function("current")
        self.smu.source.limit(voltage_limit_v)
        self.smu.source.current(0.0)
        self._setpoint = 0.0

    def _call(self, command: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a QCoDeS call, turning VISA and parse failures into typed instrument errors."""
        import pyvisa

        try:
            return fn(*args)
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(self.name, command, "no answer; check the cable") from exc
            raise InstrumentError(self.name, command, f"VISA error: {exc}") from exc
        except AttributeError as exc:  # parameters QCoDeS did not add: the wrong command set
            raise WrongCommandSet(self.name, command, f"the SMU has no such setting ({exc}); "
                                  f"{COMMAND_SET_FIX}") from exc
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise InstrumentError(self.name, command, f"unexpected answer from the SMU: {exc}") from exc

    @property
    def n_channels(self) -> int:
        return 1

    @property
    def setpoints(self) -> np.ndarray:
        return np.array([self._setpoint])

    def check(self, currents_a: Sequence[float]) -> float:
        target = np.asarray(currents_a, dtype=float)
        if target.shape != (1,):
            raise ValueError(f"{self.name}: a Keithley coil channel takes 1 current, got {target.shape}")
        current = float(target[0])
        self.limits.check_coil_current(0, current)
        if abs(current) > self.ceiling_a:
            raise SafetyLimitError(f"{self.name} current", current, self.ceiling_a, "A",
                                   "lower the drive current or raise this coil's ceiling in the station file")
        return current

    def set_currents(self, currents_a: Sequence[float]) -> None:
        """Ramp to the requested current, output on while any current flows."""
        target = self.check(currents_a)
        start = self._setpoint
        change = abs(target - start)
        if change == 0:
            return
        if target != 0:
            self._call("output on", self.smu.output_enabled, True)
        steps = max(1, int(np.ceil(change / self.ramp_step_a)))
        dwell = change / self.limits.coil_ramp_rate_a_per_s / steps
        for i in range(1, steps + 1):
            value = start + (target - start) * i / steps
            self._call("source current", self.smu.source.current, value)
            self._setpoint = value
            self._sleep(dwell)
        if target == 0:
            self._call("output off", self.smu.output_enabled, False)

    def read_currents(self) -> np.ndarray:
        """Measured current; ~0 A for an open coil even with a non-zero setpoint."""
        if not self._call("output state", self.smu.output_enabled):
            return np.array([0.0])  # output off: nothing flows, and the 2450 refuses to measure
        value = self._call("measure current", self.smu.sense.current)
        try:
            measured = float(value)
        except (TypeError, ValueError):
            raise InstrumentError(self.name, "measure current", "reading is not a number", value) from None
        if not np.isfinite(measured):
            raise InstrumentError(self.name, "measure current", "reading is not finite", value)
        return np.array([measured])

    def station_checks(self) -> list[CheckResult]:
        """Read-back checks at zero current for ``acquire station check``; nothing is changed."""
        role = self.name

        def identity() -> tuple[bool, str]:
            idn = self.smu.get_idn()
            return idn.get("model") in ("2450", "MODEL 2450"), f"{idn.get('vendor')} {idn.get('model')}, " \
                f"serial {idn.get('serial')}, firmware {idn.get('firmware')}"

        def command_set() -> tuple[bool, str]:
            language = str(self.smu.ask("*LANG?")).strip()
            return language == "SCPI", f"*LANG? = {language}"

        def at_zero() -> tuple[bool, str]:
            current = float(self._call("source current", self.smu.source.current))
            on = bool(self._call("output state", self.smu.output_enabled))
            ok = abs(current) <= 1e-12 and (not on or self._setpoint != 0)
            return ok, f"source current {current:g} A, output {'on' if on else 'off'}"

        def compliance() -> tuple[bool, str]:
            limit = float(self._call("voltage limit", self.smu.source.limit))
            return limit > 0, f"voltage compliance {limit:g} V"

        return [
            run_check(role, "identity (*IDN?)", identity, "check the address: this is not a Keithley 2450"),
            run_check(role, "command set (*LANG?)", command_set, COMMAND_SET_FIX),
            run_check(role, "zero current, output off", at_zero,
                      "ramp the coil to zero and switch the output off before commissioning"),
            run_check(role, "voltage compliance", compliance, "set a voltage compliance for the coil"),
        ]

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "Keithley 2450 coil channel", "setpoint_a": self._setpoint,
                "ceiling_a": self.ceiling_a, "smu": self.smu.snapshot(update=False)}

    def safe_state(self) -> None:
        """Ramp to zero; if that fails, switch the output off; else raise ``InstrumentError``."""
        try:
            self.set_currents([0.0])
        except Exception as ramp_error:  # noqa: BLE001 - fall back to switching the output off
            log.warning("%s: ramp to zero failed (%s); switching the output off", self.name, ramp_error)
            try:
                self.smu.output_enabled(False)
            except Exception as exc:
                raise InstrumentError(
                    self.name, "output off", f"could not stop the coil current ({exc}); current may still "
                    "flow: press OUTPUT on the Keithley's front panel") from exc

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            with contextlib.suppress(Exception):  # a vanished SMU must not hide the shutdown
                self.smu.close()
