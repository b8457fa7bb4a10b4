"""How a CW sweep steps the MW frequency: hardware-timed list mode, or one bus command per point.

List mode needs three things from the station: a source with a trigger-stepped frequency list
(``ListSweepSource``), a pulse generator whose channel map has ``mw_trigger`` (cabled to the
source's trigger input) and ``camera_start`` (cabled to the camera's external trigger), and a
camera whose volumes can start on that trigger (``TriggerableCamera``). Then the PulseBlaster
times every point (``sequences.pulses.stepped_lockin_sequence``) and software only reads frames.
Anything missing falls back to software stepping, with the reason logged and stored in the run.

A sweep longer than the source's list (or than one pulse program holds) is split into list
segments, each armed and run in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from instrument.protocols import (
    Instrument,
    InstrumentError,
    ListSweepSource,
    PulseGenerator,
    TriggerableCamera,
)
from sequences.pulses import (
    MEMORY_WORDS,
    ChannelMap,
    PulseSequenceError,
    SteppedPointTiming,
    stepped_points_capacity,
)

log = logging.getLogger(__name__)

STEPPING_MODES = ("auto", "list", "software")
LIST_LINES = ("mw_trigger", "camera_start")


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
    """

    mode: str
    reason: str
    segment_points: int = 0
    n_segments: int = 0

    def metadata(self) -> dict[str, Any]:
        return {f"mw_stepping_{k}" if k in ("mode", "reason") else f"list_{k}": v
                for k, v in asdict(self).items()}


def plan_stepping(
    instruments: Mapping[str, Instrument],
    n_points: int,
    request: str,
    channels: ChannelMap,
    timing: SteppedPointTiming,
    modulation_hz: float,
) -> SteppingPlan:
    """Choose list mode or software stepping for a sweep of ``n_points`` on these instruments.

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
    elif not isinstance(pulser, PulseGenerator):
        missing = "no pulse generator (role 'pulser') to trigger the list"
    elif absent := [line for line in LIST_LINES if line not in channels.bits]:
        missing = f"the pulse generator's channel map has no {' or '.join(absent)} line"
    elif not isinstance(camera, TriggerableCamera):
        missing = "the camera cannot start its volumes on an external trigger"
    if missing:
        if request == "list":
            raise SteppingUnavailable(f"hardware list stepping is not possible: {missing}; "
                                      "use software stepping or complete the station")
        return SteppingPlan("software", missing)
    assert isinstance(mw, ListSweepSource) and isinstance(pulser, PulseGenerator)
    source_max = mw.constraints.list_max_points
    try:
        program_max = stepped_points_capacity(timing, modulation_hz, channels, pulser.clock_hz,
                                              int(getattr(pulser, "memory_words", MEMORY_WORDS)))
    except PulseSequenceError as exc:
        if request == "list":
            raise SteppingUnavailable(f"hardware list stepping is not possible: {exc}") from exc
        return SteppingPlan("software", f"the stepped pulse program cannot be built: {exc}")
    segment = min(source_max, program_max, n_points)
    if segment < 2 and n_points > 1:
        why = f"a list segment would hold {segment} point(s) ({mw.name} holds {source_max}, " \
              f"one pulse program {program_max})"
        if request == "list":
            raise SteppingUnavailable(f"hardware list stepping is not possible: {why}")
        return SteppingPlan("software", why)
    n_segments = -(-n_points // segment)
    reason = f"{mw.name} steps its list on the pulse generator's mw_trigger"
    if n_segments > 1:
        limit = f"{mw.name} holds {source_max} list points" if source_max <= program_max else \
            f"one pulse program holds {program_max} points"
        reason += f"; {n_points} points split into {n_segments} list segments of at most {segment} ({limit})"
    return SteppingPlan("list", reason, segment, n_segments)


def check_list_index(source: ListSweepSource, index: int, expected: int, n_points: int,
                     channels: ChannelMap) -> None:
    """Raise ``ListSweepStalled`` naming the likely cause when the list is not where it should be."""
    if index == expected:
        return
    bit = channels.bits.get("mw_trigger")
    if index < expected:
        detail = (f"the list stayed at point {index} although the pulse generator should have stepped "
                  f"it to point {expected} of {n_points}; no mw_trigger edge reached the source. Check "
                  f"the cable from the PulseBlaster's mw_trigger output (bit {bit}) to the source's "
                  "trigger input and the source's trigger settings, or sweep with software stepping")
    else:
        detail = (f"the list is at point {index} while point {expected} of {n_points} was measured: the "
                  "camera missed a volume-start trigger or the source got extra edges; raise the step "
                  "settle time or check the camera_start cable")
    raise ListSweepStalled(source.name, "list index read-back", detail, index)
