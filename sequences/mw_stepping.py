"""How a CW sweep steps the MW frequency: hardware-timed list mode, or one bus command per point.

List mode needs three things from the station: a source with a trigger-stepped frequency list
(``ListSweepSource``), a pulse generator whose channel map has ``mw_trigger`` (cabled to the
source's trigger input) and ``camera_start`` (cabled to the camera's external trigger), and a
camera whose volumes can start on that trigger (``TriggerableCamera``). Then the PulseBlaster
times everything inside a point (``sequences.pulses.stepped_point_sequence``: step, settle,
camera start, volume) and stops; software starts it once per point, so bus latency and pauses
fall between points where nothing is waiting on them. Anything missing falls back to software
stepping, with the reason logged and stored in the run.

A sweep longer than the source's list is split into list segments, each armed and run in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from instrument.protocols import (
    Instrument,
    InstrumentError,
    ListSweepSource,
    PulseGenerator,
    PulseProgram,
    TriggerableCamera,
)
from sequences.pulses import (
    ChannelMap,
    PulseSequenceError,
    SteppedPointTiming,
    stepped_point_program,
)

log = logging.getLogger(__name__)

STEPPING_MODES = ("auto", "list", "software")
LIST_LINES = ("mw_trigger", "camera_start")
SOFTWARE_FIX = "sweep with software stepping (set `mw_stepping` to software)"


class ListSweepStalled(InstrumentError):
    """The source's list index did not follow the pulse generator's trigger edges."""


class SteppingUnavailable(ValueError):
    """List mode was requested but this station cannot run it; the message says what is missing."""


@dataclass(frozen=True)
class SteppingPlan:
    """How a sweep will step: ``mode`` ``"list"`` or ``"software"``, and why.

    Attributes:
        segment_points: points per armed list (list mode).
        n_segments: lists armed per configuration (list mode).
        timing: the periods of one hardware-timed point (list mode).
        programs: the compiled point programs (list mode): a list's first point (no step) and
            every later point (opening with the ``mw_trigger`` step).
    """

    mode: str
    reason: str
    segment_points: int = 0
    n_segments: int = 0
    timing: SteppedPointTiming | None = None
    programs: tuple[PulseProgram, PulseProgram] | None = None

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mw_stepping_mode": self.mode, "mw_stepping_reason": self.reason,
                               "list_segment_points": self.segment_points, "list_n_segments": self.n_segments}
        if self.timing is not None:
            for part in ("settle", "volume", "tail"):
                out[f"list_{part}_periods"] = getattr(self.timing, part)
        return out


def plan_stepping(
    instruments: Mapping[str, Instrument],
    n_points: int,
    request: str,
    channels: ChannelMap,
    point_timing: Callable[[PulseGenerator, TriggerableCamera], SteppedPointTiming],
    modulation_hz: float,
) -> SteppingPlan:
    """Choose list mode or software stepping for a sweep of ``n_points`` on these instruments.

    ``point_timing`` gives the periods of one point for this pulse generator and camera (its clock
    and the frame rate the camera really runs at); it is asked only when list mode is possible.

    Raises:
        SteppingUnavailable: ``request == "list"`` but something list mode needs is missing.
    """
    if request not in STEPPING_MODES:
        raise ValueError(f"MW stepping must be one of {', '.join(STEPPING_MODES)}, got {request!r}")
    if request == "software":
        return SteppingPlan("software", "software stepping requested")
    mw, pulser, camera = (instruments.get(r) for r in ("mw", "pulser", "camera"))
    missing = ""
    if not isinstance(mw, ListSweepSource) or mw.constraints.list_max_points < 1:
        missing = f"the MW source {getattr(mw, 'name', 'mw')!r} has no trigger-stepped list mode"
        why = getattr(mw, "list_mode_unavailable", "")  # a driver may say why (SGS100A: unconfirmed)
        if isinstance(why, str) and why:
            missing += f" ({why})"
    elif not isinstance(pulser, PulseGenerator):
        missing = "no pulse generator (role 'pulser') to trigger the list"
    elif absent := [line for line in LIST_LINES if line not in channels.bits]:
        missing = f"the pulse generator's channel map has no {' or '.join(absent)} line"
    elif not isinstance(camera, TriggerableCamera):
        missing = "the camera cannot start its volumes on an external trigger"
    else:
        try:
            timing = point_timing(pulser, camera)
            limits = pulser.constraints
            first_point, next_point = (
                stepped_point_program(timing, step, modulation_hz, channels, limits.clock_hz,
                                      limits.memory_words)
                for step in (False, True))
        except PulseSequenceError as exc:
            missing = f"the stepped pulse program cannot be built: {exc}"
    if missing:
        if request == "list":
            raise SteppingUnavailable(f"hardware list stepping is not possible: {missing}; "
                                      "use software stepping or complete the station")
        return SteppingPlan("software", missing)
    assert isinstance(mw, ListSweepSource)
    segment = min(mw.constraints.list_max_points, n_points)
    n_segments = -(-n_points // segment)
    reason = f"{mw.name} steps its list on the pulse generator's mw_trigger, one point per program run"
    if n_segments > 1:
        reason += (f"; {n_points} points split into {n_segments} list segments of at most {segment} "
                   f"({mw.name} holds {mw.constraints.list_max_points} list points)")
    return SteppingPlan("list", reason, segment, n_segments, timing, (first_point, next_point))


def check_list_index(source: ListSweepSource, index: int, expected: int, n_points: int,
                     channels: ChannelMap) -> None:
    """Raise ``ListSweepStalled`` naming the likely cause when the list is not where it should be.

    ``index`` and ``expected`` count from 0, as the sources do; messages count points from 1.
    """
    if index == expected:
        return
    bit = channels.bits.get("mw_trigger")
    if index < expected:
        detail = (f"the list stayed at point {index + 1} of {n_points} (index {index}) although the pulse "
                  f"generator should have stepped it to point {expected + 1}; no mw_trigger edge reached "
                  f"the source. Check the cable from the PulseBlaster's mw_trigger output (bit {bit}) to the "
                  f"source's trigger input and the source's trigger settings, or {SOFTWARE_FIX}")
    else:
        detail = (f"the list is at point {index + 1} of {n_points} (index {index}) while point "
                  f"{expected + 1} was measured: the source counted more mw_trigger edges than the "
                  f"PulseBlaster sent. Check the mw_trigger cable (bit {bit}) for reflections or a second "
                  f"source driving it and the source's trigger slope, or {SOFTWARE_FIX}")
    raise ListSweepStalled(source.name, "list index read-back", detail, index)
