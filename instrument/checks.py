"""Commissioning results: what `acquire station check` reports for one check of one instrument.

Drivers may offer ``station_checks() -> list[CheckResult]`` for the checks they can run on their
own (identity, options, read-back at a safe setting); checks that need two instruments (a list
stepped by the pulse generator's trigger line) live in the station-check command.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """One commissioning check: what was tried, what was seen, and what to do when it failed."""

    instrument: str
    """The role in the station file (``mw``, ``camera``), or the driver name before roles exist."""
    check: str
    """Short name of the behaviour checked, e.g. ``identity`` or ``list steps on external trigger``."""
    ok: bool | None
    """True passed, False failed, None not applicable or skipped (``detail`` says why)."""
    detail: str
    """What was measured or read back."""
    fix: str = ""
    """What the operator should do when ``ok`` is False."""
