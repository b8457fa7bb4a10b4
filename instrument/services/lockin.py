"""The seed-000 temporal experiment as a service: a ``LockInRequest`` checked into a ``LockInPlan``,
recorded as a stored run (raw ``frames.h5``, field movie ``field.h5``). Each second of capture is a
step of the run, stored as soon as its frames are written (frames, mean lock-in signal); the mean
|B| per second of the field movie, which exists only after the capture, is added to the run's
metadata (``field_per_second``) at the end.

``acquire lockin`` and the GUI's lock-in panel both call ``plan_lockin`` and ``record_lockin``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrument.services.runs import channel_names
from instrument.settings import setting

ROLES = ("mw", "pulser", "camera", "stimulus")
STOPPED = "stopped by the operator"
ABORTED = "aborted by the operator"


@dataclass(frozen=True)
class LockInRequest:
    """What the operator asks of a lock-in capture (SI units).

    Args:
        seconds: capture length (camera time).
        power_dbm: MW power.
        rate_hz: mean firing rate of each coil's action-potential waveform.
        coils: coil names that play waveforms (empty: every channel of the stimulus).
        center_hz: centre of the calibration sweep; the MW is parked on the steepest slope near it
            (None: the simulated sample's resonance).
        modulation_hz: MW / camera lock-in modulation frequency.
        frame_rate_hz: camera frame rate.
        frames_per_volume: frames the camera buffers and hands over at once; a live view sees one
            new frame per volume.
    """

    seconds: float
    power_dbm: float = 5.0
    rate_hz: float = 2.0
    coils: tuple[str, ...] = ()
    center_hz: float | None = None
    modulation_hz: float = 6250.0
    frame_rate_hz: float = 208.0
    frames_per_volume: int = 208

    def parameters(self) -> dict[str, Any]:
        return {"name": "lockin_capture", "seconds": self.seconds, "power_dbm": self.power_dbm,
                "rate_hz": self.rate_hz, "coils": list(self.coils), "center_hz": self.center_hz,
                "modulation_hz": self.modulation_hz, "frame_rate_hz": self.frame_rate_hz,
                "frames_per_volume": self.frames_per_volume}


@dataclass
class LockInPlan:
    """A checked request: the waveforms to play and the calibration centre."""

    request: LockInRequest
    waveforms: Any  # sequences.temporal.CoilWaveforms
    center_hz: float
    channel_names: list[str]

    @property
    def n_frames(self) -> int:
        """Frames the capture is expected to hold (every frame that starts within the capture length)."""
        return math.ceil(self.request.seconds * self.request.frame_rate_hz - 1e-9)


@dataclass
class LockInOutcome:
    run_id: int | None
    status: str  # "completed", "aborted" or "failed"
    reason: str
    result: Any = None  # sequences.temporal.TemporalResult, None when the run failed before capturing


def stimulus_channel_names(station: Any) -> list[str]:
    """Coil name per stimulus channel (the sample's coils in simulation)."""
    return channel_names(station, "stimulus")


def plan_lockin(station: Any, request: LockInRequest, channel_names: list[str] | None = None) -> LockInPlan:
    """Check a request against the station and its limits before anything moves.

    Raises:
        ValueError: the request cannot run (too short, unknown coil, bad frequency); says why.
        SafetyLimitError: the MW power or a coil's waveform peak exceeds a lab limit.
    """
    from sequences.pulses import lockin_modulation_frequency_hz
    from sequences.temporal import AP_DURATION_S, check_temporal, firing_pattern

    names = channel_names if channel_names is not None else stimulus_channel_names(station)
    baseline_s = 0.25
    r = request
    least = baseline_s + AP_DURATION_S
    if not (math.isfinite(r.seconds) and r.seconds > least):
        raise ValueError(f"a {r.seconds:g} s capture leaves no room for a {AP_DURATION_S:g} s spike after "
                         f"the {baseline_s:g} s baseline; raise {setting('seconds')} above {least:g} s")
    if not (math.isfinite(r.modulation_hz) and r.modulation_hz > 0):
        raise ValueError(f"modulation frequency must be positive, got {r.modulation_hz:g} Hz")
    if not (math.isfinite(r.frame_rate_hz) and 0 < r.frame_rate_hz <= r.modulation_hz / 2):
        raise ValueError(f"frame rate must be positive and at most half the modulation frequency "
                         f"({r.modulation_hz / 2:g} Hz: a frame integrates whole modulation periods), "
                         f"got {r.frame_rate_hz:g} Hz")
    try:
        lockin_modulation_frequency_hz(r.modulation_hz, station["pulser"].clock_hz)
    except ValueError as exc:
        raise ValueError(f"modulation frequency {r.modulation_hz:g} Hz: {exc}") from exc
    if not 1 <= r.frames_per_volume <= 512:
        raise ValueError(f"frames per volume must lie in 1-512 (the heliCam's SensNFrames), "
                         f"got {r.frames_per_volume}")
    if not (math.isfinite(r.rate_hz) and 0 < r.rate_hz < 1e3):
        raise ValueError(f"firing rate must lie in (0, 1000) per second, got {r.rate_hz:g}")
    unknown = [c for c in r.coils if c not in names]
    if unknown:
        raise ValueError(f"{setting('coils')}: unknown coil(s) {', '.join(unknown)}; the stimulus drives "
                         f"{', '.join(names)}")
    center = r.center_hz if r.center_hz is not None else station.sample.resonance_hz
    if center is None:
        raise ValueError(f"give the calibration centre {setting('center_hz')} (the resonance to park on): "
                         "the station's sample gives no expected resonance")
    if not (math.isfinite(center) and center > 0):
        raise ValueError(f"calibration centre must be a positive frequency, got {center:g} Hz")
    channels = [names.index(c) for c in r.coils] if r.coils else list(range(len(names)))
    waveforms = firing_pattern(channels, len(names), r.seconds - baseline_s, r.rate_hz, start_s=baseline_s)
    check_temporal(station.limits, r.power_dbm, waveforms, r.seconds)
    return LockInPlan(r, waveforms, float(center), names)


def overflow_policy(station: Any) -> str:
    """A simulated camera on a virtual clock may wait for the writer; anything paced by a wall clock
    (real camera, ``--realtime``) drops and counts what does not fit."""
    return "drop" if station.realtime else "wait"


def _status(result: Any) -> tuple[str, str]:
    capture = result.capture
    reason = capture.end_reason
    if capture.completed or (reason == STOPPED and not capture.frames_dropped):
        return "completed", reason
    if reason.startswith((ABORTED, "interrupted")):
        return "aborted", reason
    return "failed", reason


def record_lockin(station: Any, out: Path, plan: LockInPlan, command: str,
                  on_capture: Callable[[Any, Any], None] | None = None,
                  aborted: Callable[[], bool] | None = None) -> LockInOutcome:
    """Run the temporal experiment (``sequences.temporal.TemporalCapture``) through the engine as a
    stored run; returns how it ended.

    Args:
        station: the station (roles ``mw``, ``pulser``, ``camera``, ``stimulus``).
        out: the output directory; the run's ``frames.h5`` and ``field.h5`` go in its run folder.
        plan: a checked request (``plan_lockin``).
        command: the command line recorded with the run.
        on_capture: passed to the capture (a live viewer, the operator's stop).
        aborted: whether the operator aborted; an abort that leaves too few frames for the field
            movie (e.g. during the slope calibration) then ends the run as aborted, not failed.

    Raises:
        RunAborted: SIGTERM; the instruments were made safe and the run is closed as aborted.
        ValueError: the experiment refused (e.g. no baseline frames); the run is closed as failed.
        StorageWriteFailed: the frame writer stopped early (a full disk), so too few frames came; the
            message gives the writer's reason.
    """
    from instrument.services.runs import add_run_metadata, prepare_run
    from sequences.engine import RunAborted
    from sequences.temporal import TemporalCapture

    r = plan.request
    holder: dict[str, Any] = {}
    sequence = TemporalCapture(
        r.seconds, plan.center_hz, plan.waveforms, lambda: holder["run"].run_dir, power_dbm=r.power_dbm,
        modulation_hz=r.modulation_hz, frame_rate_hz=r.frame_rate_hz, frames_per_volume=r.frames_per_volume,
        on_overflow=overflow_policy(station), metadata={"simulated": station.simulated},
        describe={**{k: v for k, v in r.parameters().items() if k != "name"}, "center_hz": plan.center_hz},
        on_capture=on_capture)
    prepared = prepare_run(station, sequence, out, command)
    holder["run"] = prepared
    outcome = prepared.run()
    run_id = prepared.run_id
    if outcome.status != "completed":
        error = outcome.error
        if outcome.status == "aborted" and error is None:
            raise RunAborted(outcome.reason)  # SIGTERM: the engine closed the run as aborted
        if isinstance(error, Exception) and aborted is not None and aborted():
            reason = f"{ABORTED} ({type(error).__name__}: {error})"
            add_run_metadata(out, run_id, {"status": "aborted", "end_reason": reason})
            return LockInOutcome(run_id, "aborted", reason)
        raise error if error is not None else RuntimeError(outcome.reason)
    result = sequence.result
    assert result is not None
    status, reason = _status(result)
    if result.not_made_safe:
        status, reason = "failed", reason + "; not made safe: " + "; ".join(result.not_made_safe)
    add_run_metadata(out, run_id, {
        "capture": result.capture.summary(), "parked_hz": result.calibration.parked_hz,
        "frames_file": str(result.frames_path), "field_file": str(result.field_path),
        "field_per_second": result.field_per_second, "status": status, "end_reason": reason})
    return LockInOutcome(run_id, status, reason, result)
