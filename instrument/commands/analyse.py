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
    a.add_argument("--estimator", choices=("lsq", "poisson"), default="lsq",
                   help="lsq: least squares (default); poisson: maximum likelihood for photon counts")
    a.add_argument("--bin", type=int, default=1, metavar="N", dest="bin_factor",
                   help="sum NxN pixels before the fit (default 1: no binning)")
    a.add_argument("--outliers", action="store_true",
                   help="find outlier pixels (chi-square, width, contrast) and refit them from their "
                   "neighbours")
    a.add_argument("--background", default=None,
                   choices=("mean", "gaussian", "polynomial", "masked-polynomial", "interpolate"),
                   help="subtract this background from the B_NV map (polynomial order: --background-order, "
                   "default 1; masked-polynomial and interpolate need --background-region)")
    a.add_argument("--background-region", default=None, metavar="R0:R1,C0:C1",
                   help="the sample's region in pixels of the fitted map (half-open), left out of the "
                   "background")
    a.add_argument("--sigma-px", type=float, default=10.0, metavar="S",
                   help="width of the gaussian background filter in fitted pixels (default 10)")
    a.add_argument("--export", choices=("netcdf", "mat"), default=None,
                   help="also write the maps with coordinates and provenance as analysis-TAG.nc or .mat")
    a.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="fit on a dask.distributed cluster, e.g. tcp://host:8786 (default: local threads)")
    a.add_argument("--vector", action="store_true",
                   help="fit all eight NV lines with the exact Hamiltonian: B vector, D and E maps")
    a.add_argument("--bias-mt", default=None, metavar="BX,BY,BZ",
                   help="approximate bias field in mT (NV_AXES frame) for --vector: picks among the "
                   "symmetry-equivalent solutions (default: reported as ambiguous)")
    a.add_argument("--tag", default=None,
                   help="name of this analysis: letters, digits, underscores (default: from the options)")
    a.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instrument.services.cw_reanalysis import CwAnalysisOptions, reanalyse_cw
    from instrument.storage.recovery import interrupted_note, recover_interrupted_runs
    from instrument.storage.runs import CorruptDatabase, StorageError, load_run

    out = args.out or default_out_dir()
    if args.background_order is not None and not 0 <= args.background_order <= 5:
        raise UsageError(f"--background-order must be 0..5, got {args.background_order}")
    if args.bin_factor < 1:
        raise UsageError(f"--bin must be a whole number >= 1 (1: no binning), got {args.bin_factor}")
    region = _region(args.background_region)
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
    if args.vector:
        single_line = (("--estimator", args.estimator != "lsq"), ("--bin", args.bin_factor != 1),
                       ("--outliers", args.outliers), ("--background", args.background),
                       ("--export", args.export))
        unused = [name for name, given in single_line if given]
        if unused:
            raise UsageError(f"{', '.join(unused)} apply to the single-line fit, not to --vector; "
                             "leave them out or drop --vector")
        return _run_vector(args, stored, out, isotope)
    options = CwAnalysisOptions(
        model=args.model, hyperfine=isotope, background_order=args.background_order,
        scheduler=args.scheduler, estimator=args.estimator, bin_factor=args.bin_factor,
        outliers=args.outliers, background=args.background, background_region=region,
        sigma_px=args.sigma_px, export=args.export)
    tag = args.tag or options.tag()
    if not re.fullmatch(r"\w+", tag):
        raise UsageError(f"--tag may hold only letters, digits and underscores, got {tag!r}")
    try:
        done = reanalyse_cw(out, stored, options, tag)
    except (ValueError, ConnectionError) as exc:
        raise UsageError(str(exc)) from exc
    result = done.result
    for message in result.warnings:
        print(f"acquire: warning: run {args.run_id}: {message}", file=sys.stderr)
    lo, hi = result.field_range_t
    print(f"run {args.run_id} re-analysed ({tag})")
    print(f"  B_NV range {lo * 1e6:+.2f} .. {hi * 1e6:+.2f} uT ({result.converged_fraction:.1%} fitted)")
    if result.drift is not None:
        print(f"  drift      {result.drift['max_shift_px']:.2f} px between the passes"
              f"{' (corrected)' if result.drift['corrected'] else ''}")
    print(f"  results    {done.analysis_file}")
    print(f"  figure     {done.figure}")
    if done.export_file is not None:
        print(f"  export     {done.export_file}")
    return EXIT_OK


def _region(text: str | None) -> tuple[int, int, int, int] | None:
    """``R0:R1,C0:C1`` as four integers; None when not given."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+):(\d+)\s*,\s*(\d+):(\d+)\s*", text)
    if not match:
        raise UsageError(f"--background-region must be R0:R1,C0:C1 (pixel rows and columns), got {text!r}")
    r0, r1, c0, c1 = (int(v) for v in match.groups())
    return r0, r1, c0, c1


def _run_vector(args: argparse.Namespace, stored: Any, out: Any, isotope: str | None) -> int:
    """``--vector``: exact-Hamiltonian B, D, E maps of every sweep, stored as analysis-TAG.h5."""
    import numpy as np

    from instrument.analysis.vector_run import analyse_vector_run, save_vector_analysis

    bias = None
    if args.bias_mt is not None:
        try:
            bias = np.array([float(v) for v in args.bias_mt.split(",")]) * 1e-3
        except ValueError:
            bias = None
        if bias is None or bias.shape != (3,):
            raise UsageError(f"--bias-mt must be three numbers BX,BY,BZ in mT, got {args.bias_mt!r}")
    tag = args.tag or f"vector_{isotope or 'none'}"
    if not re.fullmatch(r"\w+", tag):
        raise UsageError(f"--tag may hold only letters, digits and underscores, got {tag!r}")
    options = {"vector": True, "hyperfine": isotope, "model": args.model,
               "bias_t": None if bias is None else bias.tolist()}
    try:
        result = analyse_vector_run(stored, bias_t=bias, hyperfine=isotope, model=args.model)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    path = save_vector_analysis(result, stored.run_dir / f"analysis-{tag}.h5", options)
    median = np.nanmedian(result.fits[0].b_t.reshape(-1, 3), axis=0)
    add_run_metadata(out, args.run_id, {f"analysis_{tag}": {"file": str(path), **options,
                                                            "converged_fraction": result.converged_fraction,
                                                            "median_b_t": median.tolist(),
                                                            "drift": result.drift}})
    print(f"run {args.run_id} vector fit ({tag}): {result.converged_fraction:.1%} of pixels fitted")
    print(f"  median B {median[0] * 1e3:+.4f}, {median[1] * 1e3:+.4f}, {median[2] * 1e3:+.4f} mT")
    if result.fits[0].ambiguity:
        print(f"  note: {result.fits[0].ambiguity}")
    print(f"  results  {path}")
    return EXIT_OK
