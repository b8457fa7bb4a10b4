"""``acquire lockin --seconds S``: the seed-000 temporal experiment with the 208 frame/s lock-in camera.

The MW is parked at the steepest point of the resonance (found by a calibration sweep), the coils
play action-potential-like current waveforms, and every lock-in frame is captured losslessly to
``frames.h5`` and converted to a field movie in ``field.h5``. The run is registered in the runs
database like every measurement: its dataset holds the settings, how the capture ended, and the mean
|B| per second of the movie.
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
    open_station,
    prepare_out,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("lockin", help="208 frame/s lock-in capture of coil current waveforms (seed 000)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=2.0, help="capture length in s (default: 2)")
    p.add_argument("--power-dbm", type=float, default=5.0, help="MW power in dBm (default: 5)")
    p.add_argument("--rate-hz", type=float, default=2.0,
                   help="mean firing rate of each coil's waveform (default: 2 per second)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import h5py
    import numpy as np

    from instrument.storage.runs import RunWriter, Step
    from sequences.engine import RunAborted
    from sequences.temporal import run_temporal_imaging

    if not args.seconds > 0:
        raise UsageError(f"--seconds must be positive, got {args.seconds}")
    t0 = time.monotonic()
    out = prepare_out(args)
    with open_station(args) as station:
        for role in ("mw", "pulser", "camera", "stimulus"):
            station[role]  # a missing role is a usage error that names the station file
        if station.world is None:
            raise UsageError("the coil waveform generator is simulated only so far; run with --sim")
        seconds = int(np.ceil(args.seconds))
        writer = RunWriter(out, "lockin_capture", station.world.sample.name,
                           {"second": "s", "mean_abs_field": "T"}, ("second",))
        writer.open({"station_snapshot": station.snapshot(), "simulated": station.simulated,
                     "command": "acquire " + " ".join(sys.argv[1:]),
                     "sequence": {"name": "lockin_capture", "seconds": args.seconds,
                                  "power_dbm": args.power_dbm, "rate_hz": args.rate_hz}}, {}, seconds)
        try:
            result = run_temporal_imaging(
                station.instruments, writer.run_dir, seconds=args.seconds,
                center_hz=station.world.resonance_estimate_hz(), limits=station.limits,
                power_dbm=args.power_dbm, rate_hz=args.rate_hz,
                on_overflow="drop" if args.realtime else "wait", metadata={"simulated": station.simulated})
        except ValueError as exc:
            writer.close("failed", str(exc))
            raise UsageError(str(exc)) from exc
        except RunAborted as exc:  # SIGTERM: the instruments were made safe on the way out
            writer.close("aborted", str(exc))
            print(f"acquire: run {writer.run_id} aborted: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BaseException as exc:
            writer.close("failed" if isinstance(exc, Exception) else "aborted", repr(exc))
            raise
        capture = result.capture
        try:
            with h5py.File(result.field_path, "r") as f:
                t = f["time_s"][...]
                for second in range(seconds):
                    frames = np.flatnonzero((t >= second) & (t < second + 1))
                    if frames.size:
                        mean = float(np.nanmean(np.abs(f["field_t"][frames[0]:frames[-1] + 1])))
                        writer.write(Step(second, {"second": float(second), "mean_abs_field": mean}, {}))
            writer.add_metadata("capture", capture.summary())
            writer.add_metadata("frames_file", str(result.frames_path))
            writer.add_metadata("field_file", str(result.field_path))
        except BaseException as exc:
            writer.close("failed", f"after the capture: {exc!r}")
            raise
        reason = capture.end_reason
        if result.not_made_safe:
            reason += "; not made safe: " + "; ".join(result.not_made_safe)
        writer.close("completed" if capture.completed and not result.not_made_safe else "failed", reason)
    ok = capture.completed and not result.not_made_safe
    print(f"run {writer.run_id} {'completed' if ok else 'ended early'}"
          f"{' (simulated)' if station.simulated else ''}: {reason}", file=sys.stdout if ok else sys.stderr)
    print(f"  frames   {capture.frames_written} written, {capture.frames_dropped} dropped, "
          f"{capture.settings.frame_rate_hz:.1f} frames/s")
    print(f"  parked   {result.calibration.parked_hz / 1e6:.4f} MHz (steepest slope of the resonance)")
    print(f"  time     {time.monotonic() - t0:.1f} s")
    print(f"  raw      {result.frames_path}")
    print(f"  field    {result.field_path}")
    return EXIT_OK if ok else EXIT_FAILED
