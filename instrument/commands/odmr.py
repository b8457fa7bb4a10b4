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
    add_repeat_options,
    add_stepping_option,
    add_sweep_options,
    check_disk,
    check_points,
    cli_words,
    command_line,
    open_station,
    prepare_out,
    sweep_frequencies,
)
from instrument.services.cw import coil_currents  # noqa: F401 - importable here as before


def add_parser(sub: Any) -> None:
    o = sub.add_parser("odmr", help="CW-ODMR I-off/I-on sweep, per-pixel fits and the B_NV map (default)",
                       description="CW-ODMR with the station's camera (the lock-in camera, or an intensity "
                       "camera in MW-on/MW-off frame pairs): sweep around one NV resonance with the coils "
                       "off, then on; fit every pixel; map B_NV of the coils.")
    o.add_argument("--coils", default="L1C1", metavar="NAMES",
                   help="comma-separated coils to drive, e.g. L1C1,L2C3 (default: L1C1)")
    o.add_argument("--current-a", type=float, default=None,
                   help="drive current per coil in A (default: the sample's, 600 uA)")
    add_sweep_options(o, points=61)
    o.add_argument("--frames-per-point", type=int, default=4,
                   help="lock-in frames (intensity camera: MW-on/MW-off frame pairs) averaged per frequency "
                   "(default: 4)")
    o.add_argument("--exposure-s", type=float, default=None,
                   help="intensity camera: exposure of each frame in s, gated by the pulse program "
                   "(default: 0.01)")
    o.add_argument("--frame-period-s", type=float, default=None,
                   help="intensity camera: time between frames in s; the MW switch toggles with it "
                   "(default: 0.012)")
    add_stepping_option(o)
    add_repeat_options(o)
    o.add_argument("--no-figure", action="store_true", help="do not write the PNG figure")
    o.set_defaults(handler=run)


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


def sweeps_line(sweeps: dict, note: str) -> str:
    """How many sweeps were averaged, in which order, their spread, and why the run stopped."""
    seed = f" (seed {sweeps['order_seed']})" if sweeps.get("order_seed") is not None else ""
    line = f"{len(sweeps['complete'])} averaged, {sweeps['order']} order{seed}"
    if sweeps["excluded"]:
        line += f"; incomplete sweeps left out: {', '.join(str(int(s) + 1) for s in sweeps['excluded'])}"
    spread = sweeps["spread"]["b_nv_t"]
    if spread == spread:  # not NaN: two or more sweeps
        line += f"; B_NV of the mean spectrum spreads {spread * 1e6:.3g} uT (1 sd) over sweeps"
    return line + (f"; {cli_words(note)}" if note else "")


def run(args: argparse.Namespace) -> int:
    from instrument.protocols import SafetyLimitError
    from instrument.services.cw import CwOdmrRequest, build_cw_sweep, run_cw_odmr
    from instrument.services.report import FIGURE_NAME, pixel_size_of, plot_cw_result

    t0 = time.monotonic()
    check_points(args.points)
    check_limits_early(args)
    out = prepare_out(args)
    with open_station(args) as station:
        request = CwOdmrRequest(sweep_frequencies(args, station), args.power_dbm, args.coils, args.current_a,
                                args.frames_per_point, args.mw_stepping, exposure_s=args.exposure_s,
                                frame_period_s=args.frame_period_s, repeats=args.repeats, order=args.order,
                                order_seed=args.order_seed, max_runtime_s=args.max_runtime)
        try:
            sweep = build_cw_sweep(station, request)
            n_steps = sweep.n_steps
        except (SafetyLimitError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        check_disk(out, sweep.n_steps, sweep.image_shapes, sweep.estimated_duration_s)
        with ProgressBar(n_steps) as bar:
            measured = run_cw_odmr(station, request, out, command_line(), on_progress=bar)
    run_id, where, outcome = measured.run.run_id, measured.run.run_dir, measured.outcome
    if outcome.status != "completed":
        print(f"acquire: run {run_id} {outcome.status}: {cli_words(outcome.reason)}", file=sys.stderr)
        print(f"acquire: {outcome.steps_done} of {n_steps} steps are stored in {where}", file=sys.stderr)
        return EXIT_FAILED
    result = measured.field_map
    for message in result.warnings:
        print(f"acquire: warning: run {run_id}: {message}", file=sys.stderr)
    plan = measured.plan
    lo, hi = result.field_range_t
    figure = None
    if not args.no_figure:
        from instrument.storage.runs import load_run

        pixel_size_m = pixel_size_of(load_run(out, run_id).metadata)
        title = f"run {run_id}: CW ODMR, coils {args.coils}"
        figure = plot_cw_result(result, where / FIGURE_NAME, title=title, pixel_size_m=pixel_size_m)
    rows, cols = result.b_nv_t.shape
    print(f"run {run_id} completed{' (simulated)' if station.simulated else ''}")
    print(f"  points     {n_steps} ({args.points} frequencies x I-off/I-on"
          f"{f' x {sweep.planned_sweeps} sweeps' if sweep.planned_sweeps > 1 else ''}), image {rows}x{cols}")
    if result.sweeps is not None:
        print(f"  sweeps     {sweeps_line(result.sweeps, outcome.reason)}")
    elif outcome.reason:  # one sweep ran: a runtime limit held no more
        print(f"  sweeps     {cli_words(outcome.reason)}")
    if plan:
        print(f"  MW steps   {plan.get('mw_stepping_mode')} ({plan.get('mw_stepping_reason')})")
    print(f"  B_NV range {lo * 1e6:+.2f} .. {hi * 1e6:+.2f} uT "
          f"({result.converged_fraction:.1%} of pixels fitted)")
    if result.drift is not None:
        n_passes = len(result.drift["shifts_px"])
        between = "I-off and I-on" if n_passes == 2 else f"{n_passes} passes"
        print(f"  drift      {result.drift['max_shift_px']:.2f} px between {between}"
              f"{' (corrected)' if result.drift['corrected'] else ''}")
    print(f"  time       {time.monotonic() - t0:.1f} s")
    print(f"  data       {out / 'runs.db'} (dataset {run_id}), {where}")
    if figure:
        print(f"  figure     {figure}")
    return EXIT_OK
