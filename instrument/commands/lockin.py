"""``acquire lockin --seconds S``: the seed-000 temporal experiment with the 208 frame/s lock-in camera.

The MW is parked at the steepest point of the resonance (found by a calibration sweep), the coils
play action-potential-like current waveforms, and every lock-in frame is captured losslessly to
``frames.h5`` and converted to a field movie in ``field.h5``. The run is registered in the runs
database like every measurement: its dataset holds the settings, one step per second of capture
(stored while the capture runs: frames written, mean lock-in signal), how the capture ended, and the
mean |B| per second of the movie.

The measurement itself is ``instrument.services.lockin`` (shared with the GUI's lock-in panel).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from instrument.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    command_line,
    open_station,
    prepare_out,
)
from instrument.services.lockin import (  # noqa: F401 - the lock-in names, as they were importable here
    ABORTED,
    ROLES,
    STOPPED,
    LockInOutcome,
    LockInPlan,
    LockInRequest,
    overflow_policy,
    plan_lockin,
    record_lockin,
    stimulus_channel_names,
)


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
        if not station.simulated:
            raise UsageError("the coil waveform generator is simulated only so far; run with --sim")
        try:
            plan = plan_lockin(station, request)
        except (ValueError, SafetyLimitError) as exc:
            raise UsageError(str(exc)) from exc
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
