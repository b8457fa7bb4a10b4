"""``acquire analyse RUN``: re-fit a stored CW-ODMR run with other options; results go beside it."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from instrument.commands.common import EXIT_OK, UsageError, add_run_metadata, default_out_dir


def add_parser(sub: Any) -> None:
    a = sub.add_parser("analyse", help="re-fit a stored CW-ODMR run with other options",
                       description="Re-fit both sweeps of a stored CW-ODMR run and store the new fit "
                       "as analysis-TAG.h5 (and figure-TAG.png) in the run's folder; the run's data "
                       "are never changed.")
    a.add_argument("run_id", type=int, metavar="RUN", help="run id, as printed by 'acquire'")
    a.add_argument("--model", choices=("lorentzian", "gaussian"), default="lorentzian",
                   help="line shape (default: lorentzian)")
    a.add_argument("--hyperfine", choices=("15N", "14N", "none"), default="15N",
                   help="nitrogen hyperfine multiplet fitted as one line group (default: 15N)")
    a.add_argument("--background-order", type=int, default=None, metavar="N",
                   help="remove a 2-D polynomial background of order N from the B_NV map (1: plane)")
    a.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="fit on a dask.distributed cluster, e.g. tcp://host:8786 (default: local threads)")
    a.add_argument("--tag", default=None,
                   help="name of this analysis: letters, digits, underscores (default: from the options)")
    a.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instrument.analysis.cw_run import analyse_cw_run, plot_cw_result, save_analysis
    from instrument.storage.recovery import interrupted_note, recover_interrupted_runs
    from instrument.storage.runs import CorruptDatabase, StorageError, load_run

    out = args.out or default_out_dir()
    if args.background_order is not None and not 0 <= args.background_order <= 5:
        raise UsageError(f"--background-order must be 0..5, got {args.background_order}")
    try:
        recover_interrupted_runs(out)
        stored = load_run(out, args.run_id)
    except CorruptDatabase:
        raise
    except StorageError as exc:
        raise UsageError(f"{exc}; give the folder the run was stored in with --out") from exc
    note = interrupted_note(stored)
    if note:
        print(f"acquire: warning: {note}", file=sys.stderr)
    if stored.metadata.get("sequence", {}).get("name") != "cw_odmr":
        raise UsageError(f"run {args.run_id} is not a CW-ODMR run; 'acquire analyse' re-fits CW-ODMR runs")
    isotope = None if args.hyperfine == "none" else args.hyperfine
    options = {"model": args.model, "hyperfine": isotope, "background_order": args.background_order,
               "scheduler": args.scheduler}
    tag = args.tag or "_".join(str(v) for k, v in options.items() if k != "scheduler" and v is not None)
    if not re.fullmatch(r"\w+", tag):
        raise UsageError(f"--tag may hold only letters, digits and underscores, got {tag!r}")
    try:
        result = analyse_cw_run(stored, isotope=isotope, model=args.model,
                                background_order=args.background_order, scheduler=args.scheduler)
    except (ValueError, ConnectionError) as exc:
        raise UsageError(str(exc)) from exc
    path = save_analysis(result, stored.run_dir, f"analysis-{tag}.h5", options)
    figure = plot_cw_result(result, stored.run_dir / f"figure-{tag}.png",
                            title=f"run {args.run_id} re-analysed: {tag}")
    lo, hi = result.field_range_t
    add_run_metadata(out, args.run_id, {f"analysis_{tag}": {"file": str(path), **options,
                                                            "b_nv_range_t": [lo, hi]}})
    print(f"run {args.run_id} re-analysed ({tag})")
    print(f"  B_NV range {lo * 1e6:+.2f} .. {hi * 1e6:+.2f} uT ({result.converged_fraction:.1%} fitted)")
    print(f"  results    {path}")
    print(f"  figure     {figure}")
    return EXIT_OK
