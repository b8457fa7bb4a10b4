"""Helpers for the ``station_checks()`` of the microwave-source drivers.

Every check reads back; none switches RF on or changes a setting. A check that raises becomes a
failed ``CheckResult`` naming what went wrong, so one bad answer does not hide the other checks.
"""

from __future__ import annotations

from collections.abc import Callable

from instrument.checks import CheckResult
from instrument.protocols import InstrumentError, SafetyLimitError

Check = Callable[[], tuple[bool | None, str]]


def run_check(role: str, check: str, fn: Check, fix: str = "") -> CheckResult:
    """Run one read-back check; an instrument error becomes a failed result with its message."""
    try:
        ok, detail = fn()
    except (InstrumentError, SafetyLimitError, ValueError) as exc:
        return CheckResult(role, check, False, f"{type(exc).__name__}: {exc}",
                           fix or "check the connection and the instrument's front panel")
    return CheckResult(role, check, ok, detail, fix if ok is False else "")


def power_within_ceiling(set_dbm: float, ceiling_dbm: float) -> tuple[bool, str]:
    """The power setting that RF on would emit, against the lab ceiling."""
    ok = set_dbm <= ceiling_dbm
    word = "within" if ok else "above"
    return ok, f"power setting {set_dbm:g} dBm, {word} the lab ceiling {ceiling_dbm:g} dBm"
