"""``acquire odmr`` (the default command): CW-ODMR I-off/I-on sweep, per-pixel fits, B_NV map."""

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
    add_run_metadata,
    add_stepping_option,
    add_sweep_options,
    check_disk,
    check_points,
    command_line,
    drive_current_a,
    open_station,
    prepare_out,
    run_metadata,
    sample_name,
    sweep_frequencies,
)


def add_parser(sub: Any) -> None:
    o = sub.add_parser("odmr", help="CW-ODMR I-off/I-on sweep, per-pixel fits and the B_NV map (default)",
                       description="CW-ODMR with the lock-in camera: sweep around one NV resonance with "
                       "the coils off, then on; fit every pixel; map B_NV of the coils.")
    o.add_argument("--coils", default="L1C1", metavar="NAMES",
                   help="comma-separated coils to drive, e.g. L1C1,L2C3 (default: L1C1)")
    o.add_argument("--current-a", type=float, default=None,
                   help="drive current per coil in A (default: the sample's, 600 uA)")
    add_sweep_options(o, points=61)
    o.add_argument("--frames-per-point", type=int, default=4,
                   help="lock-in frames averaged per frequency (default: 4)")
    add_stepping_option(o)
    o.add_argument("--no-figure", action="store_true", help="do not write the PNG figure")
    o.set_defaults(handler=run)


def coil_currents(station: Any, names: str, current_a: float | None) -> Any:
    """Current vector for the station's coil channels with ``names`` driven at ``current_a``."""
    import numpy as np

    world = station.world
    n = station["coils"].n_channels
    labels = [c.name for c in world.sample.coils] if world is not None else [f"C{i + 1}" for i in range(n)]
    drive = drive_current_a(station, current_a)
    currents = np.zeros(n)
    for name in filter(None, (s.strip() for s in names.split(","))):
        if name not in labels:
            raise UsageError(f"unknown coil {name!r}; the station's coils are {', '.join(labels)}")
        currents[labels.index(name)] = drive
    return currents


def check_limits_early(args: argparse.Namespace) -> None:
    """Refuse unsafe settings from the station file's limits before connecting to any instrument."""
    from instrument.protocols import SafetyLimitError
    from instrument.station import StationFileError, read_limits

    try:
        limits = read_limits(args.station)
        limits.check_mw_power(args.power_dbm)
        if args.current_a is not None:
            limits.check_coil_current(0, args.current_a)
    except (StationFileError, SafetyLimitError) as exc:
        raise UsageError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:

    from instrument.protocols import SafetyLimitError
    from instrument.storage.runs import RunWriter, load_run
    from sequences.cw_odmr import CwOdmrSweep
    from sequences.engine import Engine, LiveSink

    t0 = time.monotonic()
    check_points(args.points)
    check_limits_early(args)
    out = prepare_out(args)
    with open_station(args) as station:
        freqs = sweep_frequencies(args, station)
        sweep = CwOdmrSweep(freqs, args.power_dbm, coil_currents(station, args.coils, args.current_a),
                            image_shape=station["camera"].shape, frames_per_point=args.frames_per_point,
                            stepping=args.mw_stepping)
        try:
            sweep.check(station.limits)
        except (SafetyLimitError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        check_disk(out, sweep.n_steps, sweep.image_shapes, sweep.estimated_duration_s)
        writer = RunWriter(out, "cw_odmr", sample_name(station), sweep.scalars, sweep.setpoints)
        metadata = run_metadata(station, command_line())
        with ProgressBar(sweep.n_steps) as bar:
            engine = Engine(station.instruments, station.limits, [writer, LiveSink()], metadata,
                            on_progress=bar)
            outcome = engine.run(sweep)
    where = writer.run_dir
    if outcome.status != "completed":
        print(f"acquire: run {writer.run_id} {outcome.status}: {outcome.reason}", file=sys.stderr)
        print(f"acquire: {outcome.steps_done} of {sweep.n_steps} steps are stored in {where}",
              file=sys.stderr)
        return EXIT_FAILED

    from instrument.analysis.cw_run import FIGURE_NAME, analyse_cw_run, plot_cw_result, save_analysis

    stored = load_run(out, writer.run_id)
    plan = (stored.metadata.get("sequence") or {}).get("plan") or {}
    result = analyse_cw_run(stored)
    save_analysis(result, where)
    lo, hi = result.field_range_t
    add_run_metadata(out, writer.run_id, {"b_nv_range_t": [lo, hi],
                                          "converged_fraction": result.converged_fraction})
    figure = None
    if not args.no_figure:
        figure = plot_cw_result(result, where / FIGURE_NAME,
                                title=f"run {writer.run_id}: CW ODMR, coils {args.coils}")
    rows, cols = result.b_nv_t.shape
    print(f"run {writer.run_id} completed{' (simulated)' if station.simulated else ''}")
    print(f"  points     {sweep.n_steps} ({args.points} frequencies x I-off/I-on), image {rows}x{cols}")
    if plan:
        print(f"  MW steps   {plan.get('mw_stepping_mode')} ({plan.get('mw_stepping_reason')})")
    print(f"  B_NV range {lo * 1e6:+.2f} .. {hi * 1e6:+.2f} uT "
          f"({result.converged_fraction:.1%} of pixels fitted)")
    print(f"  time       {time.monotonic() - t0:.1f} s")
    print(f"  data       {out / 'runs.db'} (dataset {writer.run_id}), {where}")
    if figure:
        print(f"  figure     {figure}")
    return EXIT_OK
