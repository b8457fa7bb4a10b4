"""``acquire lockin --seconds S``: the seed-000 temporal experiment with the 208 frame/s lock-in camera.

The MW is parked at the steepest point of the resonance (found by a calibration sweep), the coils
play action-potential-like current waveforms, and every lock-in frame is captured losslessly to
``frames.h5`` and converted to a field movie in ``field.h5``. The run is registered in the runs
database like every measurement: its dataset holds the settings, how the capture ended, and the mean
|B| per second of the movie.

The GUI's lock-in panel runs the same ``record_lockin`` with the same checks (``LockInRequest``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrument.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    channel_names,
    command_line,
    open_station,
    prepare_out,
    run_metadata,
    sample_name,
)

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
                         f"the {baseline_s:g} s baseline; capture for more than {least:g} s")
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
        raise ValueError(f"unknown coil(s) {', '.join(unknown)}; the stimulus drives {', '.join(names)}")
    center = r.center_hz
    if center is None:
        if station.world is None:
            raise ValueError("give the calibration centre (the resonance to park on): no simulated sample "
                             "to ask")
        center = station.world.resonance_estimate_hz()
    if not (math.isfinite(center) and center > 0):
        raise ValueError(f"calibration centre must be a positive frequency, got {center:g} Hz")
    channels = [names.index(c) for c in r.coils] if r.coils else list(range(len(names)))
    waveforms = firing_pattern(channels, len(names), r.seconds - baseline_s, r.rate_hz, start_s=baseline_s)
    check_temporal(station.limits, r.power_dbm, waveforms, r.seconds)
    return LockInPlan(r, waveforms, float(center), names)


def overflow_policy(station: Any) -> str:
    """A simulated camera on a virtual clock may wait for the writer; anything paced by a wall clock
    (real camera, ``--realtime``) drops and counts what does not fit."""
    world = station.world
    return "wait" if world is not None and not world.clock.realtime else "drop"


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
    """Run the temporal experiment as a stored run; returns how it ended.

    Args:
        station: the station (roles ``mw``, ``pulser``, ``camera``, ``stimulus``).
        out: the output directory; the run's ``frames.h5`` and ``field.h5`` go in its run folder.
        plan: a checked request (``plan_lockin``).
        command: the command line recorded with the run.
        on_capture: passed to ``run_temporal_imaging`` (a live viewer, the operator's stop).
        aborted: whether the operator aborted; an abort that leaves too few frames for the field
            movie (e.g. during the slope calibration) then ends the run as aborted, not failed.

    Raises:
        RunAborted: SIGTERM; the instruments were made safe and the run is closed as aborted.
        ValueError: the experiment refused (e.g. no baseline frames); the run is closed as failed.
        StorageWriteFailed: the frame writer stopped early (a full disk), so too few frames came; the
            message gives the writer's reason.
    """
    import h5py
    import numpy as np

    from instrument.storage.runs import RunWriter, Step
    from sequences.engine import RunAborted
    from sequences.temporal import run_temporal_imaging

    r = plan.request
    seconds = int(np.ceil(r.seconds))
    writer = RunWriter(out, "lockin_capture", sample_name(station), {"second": "s", "mean_abs_field": "T"},
                       ("second",))
    writer.open(run_metadata(station, command, sequence={**r.parameters(), "center_hz": plan.center_hz}),
                {}, seconds)
    try:
        result = run_temporal_imaging(
            station.instruments, writer.run_dir, seconds=r.seconds, center_hz=plan.center_hz,
            limits=station.limits, waveforms=plan.waveforms, power_dbm=r.power_dbm,
            modulation_hz=r.modulation_hz, frame_rate_hz=r.frame_rate_hz,
            frames_per_volume=r.frames_per_volume,
            on_overflow=overflow_policy(station), metadata={"simulated": station.simulated},
            on_capture=on_capture)
    except RunAborted as exc:  # SIGTERM: the instruments were made safe on the way out
        writer.close("aborted", str(exc))
        raise
    except BaseException as exc:
        if isinstance(exc, Exception) and aborted is not None and aborted():
            reason = f"{ABORTED} ({type(exc).__name__}: {exc})"
            writer.close("aborted", reason)
            return LockInOutcome(writer.run_id, "aborted", reason)
        if isinstance(exc, ValueError):
            from instrument.storage.frames import early_stop_reason

            # "no baseline frames" after a capture the writer stopped (a full disk) is that stop
            early = early_stop_reason(writer.run_dir / "frames.h5") if writer.run_dir else None
            reason = f"the capture stopped early: {early} (so: {exc})" if early else str(exc)
            writer.close("failed", reason)
            if early:  # a storage failure, not a bad request: exit 1 with the writer's own reason
                from instrument.storage.errors import StorageWriteFailed

                raise StorageWriteFailed(reason, 0, "disk" in early) from exc
        else:
            writer.close("failed" if isinstance(exc, Exception) else "aborted", repr(exc))
        raise
    try:
        with h5py.File(result.field_path, "r") as f:
            t = f["time_s"][...]
            for second in range(seconds):
                frames = np.flatnonzero((t >= second) & (t < second + 1))
                if frames.size:
                    mean = float(np.nanmean(np.abs(f["field_t"][frames[0]:frames[-1] + 1])))
                    writer.write(Step(second, {"second": float(second), "mean_abs_field": mean}, {}))
        writer.add_metadata("capture", result.capture.summary())
        writer.add_metadata("parked_hz", result.calibration.parked_hz)
        writer.add_metadata("frames_file", str(result.frames_path))
        writer.add_metadata("field_file", str(result.field_path))
    except BaseException as exc:
        writer.close("failed", f"after the capture: {exc!r}")
        raise
    status, reason = _status(result)
    if result.not_made_safe:
        status, reason = "failed", reason + "; not made safe: " + "; ".join(result.not_made_safe)
    writer.close(status, reason)
    return LockInOutcome(writer.run_id, status, reason, result)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("lockin", help="208 frame/s lock-in capture of coil current waveforms (seed 000)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=2.0, help="capture length in s (default: 2)")
    p.add_argument("--power-dbm", type=float, default=5.0, help="MW power in dBm (default: 5)")
    p.add_argument("--rate-hz", type=float, default=2.0,
                   help="mean firing rate of each coil's waveform (default: 2 per second)")
    p.add_argument("--coils", default="", metavar="NAMES",
                   help="comma-separated coils that play waveforms (default: all)")
    p.add_argument("--center-hz", type=float, default=None,
                   help="centre of the calibration sweep; the MW parks on the steepest slope near it "
                   "(default in sim: the sample's resonance)")
    p.add_argument("--modulation-hz", type=float, default=6250.0,
                   help="lock-in modulation frequency (default: 6250 Hz)")
    p.add_argument("--frame-rate-hz", type=float, default=208.0, help="camera frame rate (default: 208)")
    p.add_argument("--frames-per-volume", type=int, default=208,
                   help="frames the camera hands over at once (default: 208, one second)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instrument.protocols import SafetyLimitError

    t0 = time.monotonic()
    request = LockInRequest(args.seconds, args.power_dbm, args.rate_hz,
                            tuple(c.strip() for c in args.coils.split(",") if c.strip()),
                            args.center_hz, args.modulation_hz, args.frame_rate_hz, args.frames_per_volume)
    out = prepare_out(args)
    with open_station(args) as station:
        for role in ROLES:
            station[role]  # a missing role is a usage error that names the station file
        if station.world is None:
            raise UsageError("the coil waveform generator is simulated only so far; run with --sim")
        try:
            plan = plan_lockin(station, request)
        except (ValueError, SafetyLimitError) as exc:
            raise UsageError(str(exc).replace("capture for more than", "use --seconds above")) from exc
        try:
            outcome = record_lockin(station, out, plan, command_line())
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    capture = outcome.result.capture
    completed = outcome.status == "completed"
    print(f"run {outcome.run_id} {'completed' if completed else 'ended early'}"
          f"{' (simulated)' if station.simulated else ''}: {outcome.reason}",
          file=sys.stdout if completed else sys.stderr)
    print(f"  frames   {capture.frames_written} written, {capture.frames_dropped} dropped, "
          f"{capture.settings.frame_rate_hz:.1f} frames/s")
    parked_mhz = outcome.result.calibration.parked_hz / 1e6
    print(f"  parked   {parked_mhz:.4f} MHz (steepest slope of the resonance)")
    print(f"  time     {time.monotonic() - t0:.1f} s")
    print(f"  raw      {outcome.result.frames_path}")
    print(f"  field    {outcome.result.field_path}")
    if outcome.status == "aborted" and outcome.reason.startswith("interrupted"):
        return EXIT_INTERRUPTED  # Ctrl-C: the same status as every command (SIGTERM gives 143)
    return EXIT_OK if completed else EXIT_FAILED
