"""``acquire spad odmr``: CW ODMR read by the 16x16 SPAD array (seed 003), with sensitivity."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from instrument.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    ProgressBar,
    UsageError,
    add_sweep_options,
    check_points,
    cli_words,
    command_line,
    open_station,
    prepare_out,
    sweep_frequencies,
)


def add_parser(sub: Any) -> None:
    s = sub.add_parser("spad", help="SPAD-array measurements (seed 003)",
                       description="Measurements with the 16x16 SPAD array. Without --station, the "
                       "bundled SPAD station (instrument/stations/spad.yaml) is used.")
    kinds = s.add_subparsers(dest="spad_kind", metavar="KIND", required=True)
    o = kinds.add_parser("odmr", help="CW-ODMR sweep read as photon counts per SPAD pixel")
    add_sweep_options(o, points=41)
    o.add_argument("--frames-per-point", type=int, default=200,
                   help="SPAD frames summed per frequency; per-pixel fits need about 200 at 5 ms "
                   "frames (default: 200)")
    o.set_defaults(handler=run_odmr)


def run_odmr(args: argparse.Namespace) -> int:
    import numpy as np

    from instrument.analysis.spad_run import analyse_spad_run
    from instrument.protocols import SafetyLimitError
    from instrument.services.report import plot_spad_result
    from instrument.services.runs import run_sequence
    from instrument.station import bundled_station
    from instrument.storage.runs import load_run
    from sequences.engine import LiveSink
    from sequences.spad_odmr import SpadOdmrSweep

    t0 = time.monotonic()
    check_points(args.points)
    if args.station is None:
        args.station = bundled_station("spad.yaml")
    out = prepare_out(args)
    with open_station(args) as station:
        spad = station["spad"]
        freqs = sweep_frequencies(args, station)
        sweep = SpadOdmrSweep(freqs, args.power_dbm, frames_per_point=args.frames_per_point,
                              image_shape=tuple(spad.shape))
        try:
            sweep.check(station.limits)
        except (SafetyLimitError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        frame_period_s = float(spad.frame_period_s())
        with ProgressBar(sweep.n_steps) as bar:
            measured = run_sequence(station, sweep, out, command_line(), sinks=[LiveSink()], on_progress=bar,
                                    sample=station.name, spad_frame_period_s=frame_period_s)
    writer, outcome = measured.writer, measured.outcome
    if outcome.status != "completed":
        print(f"acquire: run {writer.run_id} {outcome.status}: {cli_words(outcome.reason)}", file=sys.stderr)
        return EXIT_FAILED
    result = analyse_spad_run(load_run(out, writer.run_id), frame_period_s)
    figure = plot_spad_result(result, writer.run_dir / "figure.png",
                              title=f"run {writer.run_id}: SPAD CW ODMR")
    fit = result.fit
    print(f"run {writer.run_id} completed{' (simulated)' if station.simulated else ''}")
    print(f"  points       {sweep.n_steps} frequencies, {int(fit.converged.sum())} of {fit.converged.size} "
          "pixels fitted")
    rate_kcps = np.nanmedian(result.count_rate_hz) / 1e3
    print(f"  contrast     {np.nanmedian(fit.contrast):.2%}   "
          f"linewidth {np.nanmedian(fit.fwhm) / 1e6:.2f} MHz   count rate {rate_kcps:.0f} kcps (medians)")
    print(f"  sensitivity  {result.median_sensitivity_t_per_sqrt_hz * 1e9:.0f} nT/sqrt(Hz) per pixel "
          "(median, seed-003 eq. 1)")
    print(f"  time         {time.monotonic() - t0:.1f} s")
    print(f"  data         {out / 'runs.db'} (dataset {writer.run_id}), {writer.run_dir}")
    print(f"  figure       {figure}")
    return EXIT_OK
