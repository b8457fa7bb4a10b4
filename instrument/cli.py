"""The ``acquire`` command: run measurements on a real or simulated QDM station.

Heavy modules are imported inside the commands so that ``acquire --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the operator: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names the problem and where to look, instead of argparse's usage dump.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def default_out_dir() -> Path:
    """Per-user data directory (e.g. ~/.local/share/qdm-acquire/runs on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("qdm-acquire", appauthor=False)) / "runs"


def _shape(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS such as 64x64, got {text!r}") from None
    if rows < 8 or cols < 8:
        raise argparse.ArgumentTypeError(f"image shape must be at least 8x8, got {text!r}")
    return rows, cols


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="acquire",
        description="Run widefield NV (QDM) measurements on a real or simulated station. "
        "With no command, runs a CW-ODMR field map of the station's sample (see 'acquire odmr --help').",
    )
    p.add_argument("--sim", action="store_true",
                   help="back every instrument with the simulated microscope (no hardware needed)")
    p.add_argument("--station", metavar="FILE",
                   help="station YAML file (default: the bundled seed-000 lock-in QDM station)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help=f"where runs are stored (default: {default_out_dir()})")
    p.add_argument("--realtime", action="store_true",
                   help="pace the simulation to the wall clock (default: virtual time, faster)")
    p.add_argument("--seed", type=int, help="random seed of the simulation (default: station file's)")
    p.add_argument("--image-shape", type=_shape, metavar="ROWSxCOLS",
                   help="simulated image shape over the same field of view (default: 300x300 sensor)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    o = sub.add_parser("odmr", help="CW-ODMR I-off/I-on sweep, per-pixel fits and the B_NV map (default)",
                       description="CW-ODMR with the lock-in camera: sweep around one NV resonance with "
                       "the coils off, then on; fit every pixel; map B_NV of the coils.")
    o.add_argument("--coils", default="L1C1", metavar="NAMES",
                   help="comma-separated coils to drive, e.g. L1C1,L2C3 (default: L1C1)")
    o.add_argument("--current-a", type=float, default=None,
                   help="drive current per coil in A (default: the sample's, 600 uA)")
    o.add_argument("--center-hz", type=float, default=None,
                   help="sweep centre in Hz (default in sim: the bias-field resonance of the sample)")
    o.add_argument("--span-hz", type=float, default=12e6, help="sweep span in Hz (default: 12 MHz)")
    o.add_argument("--points", type=int, default=61, help="frequency points per sweep (default: 61)")
    o.add_argument("--power-dbm", type=float, default=0.0, help="MW power in dBm (default: 0)")
    o.add_argument("--frames-per-point", type=int, default=4,
                   help="lock-in frames averaged per frequency (default: 4)")
    o.add_argument("--no-figure", action="store_true", help="do not write the PNG figure")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``acquire`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, "odmr"])
    try:
        if args.command == "odmr":
            return run_odmr(args)
        parser.error(f"unknown command {args.command!r}")
    except UsageError as exc:
        print(f"acquire: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _progress_bar.close()
        print("acquire: interrupted; the microscope was made safe and the steps measured so far are "
              "stored", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _open_station(args: argparse.Namespace) -> Any:
    from instrument.station import StationFileError, build_station

    if args.image_shape and not args.sim:
        raise UsageError("--image-shape applies to the simulated camera only; add --sim")
    try:
        return build_station(args.station, simulated=args.sim, realtime=args.realtime,
                             image_shape=args.image_shape, seed=args.seed)
    except StationFileError as exc:
        raise UsageError(str(exc)) from exc


def _prepare_out(args: argparse.Namespace) -> Path:
    from instrument.storage.runs import StorageError, check_writable

    try:
        return check_writable(args.out or default_out_dir())
    except StorageError as exc:
        raise UsageError(str(exc)) from exc


def _coil_currents(station: Any, names: str, current_a: float | None) -> Any:
    import numpy as np

    coils = station.world.sample.coils if station.world is not None else None
    n = station["coils"].n_channels
    labels = [c.name for c in coils] if coils else [f"C{i + 1}" for i in range(n)]
    drive = current_a if current_a is not None else (
        station.world.sample.drive_current_a if station.world is not None else None)
    if drive is None:
        raise UsageError("give the coil drive current with --current-a")
    currents = np.zeros(n)
    for name in filter(None, (s.strip() for s in names.split(","))):
        if name not in labels:
            raise UsageError(f"unknown coil {name!r}; the station's coils are {', '.join(labels)}")
        currents[labels.index(name)] = drive
    return currents


def run_odmr(args: argparse.Namespace) -> int:
    """The CW-ODMR field-map measurement (the default command)."""
    import numpy as np

    from instrument.protocols import SafetyLimitError
    from instrument.storage.runs import RunWriter, load_run
    from sequences.cw_odmr import CwOdmrSweep
    from sequences.engine import Engine, LiveSink

    t0 = time.monotonic()
    out = _prepare_out(args)
    with _open_station(args) as station:
        center = args.center_hz
        if center is None:
            if station.world is None:
                raise UsageError("give the sweep centre with --center-hz (no simulated sample to ask)")
            center = station.world.resonance_estimate_hz()
        if args.points < 5:
            raise UsageError(f"--points must be at least 5, got {args.points}")
        freqs = center + np.linspace(-args.span_hz / 2, args.span_hz / 2, args.points)
        camera = station["camera"]
        sweep = CwOdmrSweep(freqs, args.power_dbm, _coil_currents(station, args.coils, args.current_a),
                            image_shape=camera.shape, frames_per_point=args.frames_per_point)
        try:
            sweep.check(station.limits)
        except (SafetyLimitError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        writer = RunWriter(out, "cw_odmr", station.world.sample.name if station.world else station.name,
                           sweep.scalars, sweep.setpoints)
        metadata = {"station_snapshot": station.snapshot(), "simulated": station.simulated,
                    "command": "acquire " + " ".join(sys.argv[1:])}
        engine = Engine(station.instruments, station.limits, [writer, LiveSink()], metadata,
                        on_progress=_progress_bar(sweep.n_steps))
        outcome = engine.run(sweep)
        _progress_bar.close()
    where = writer.run_dir
    if outcome.status != "completed":
        print(f"run {writer.run_id} {outcome.status}: {outcome.reason}", file=sys.stderr)
        print(f"{outcome.steps_done} of {sweep.n_steps} steps are stored in {where}", file=sys.stderr)
        return EXIT_FAILED

    from instrument.analysis.cw_run import FIGURE_NAME, analyse_cw_run, plot_cw_result, save_analysis

    run = load_run(out, writer.run_id)
    result = analyse_cw_run(run)
    save_analysis(result, where)
    lo, hi = result.field_range_t
    _add_summary(out, writer.run_id, {"b_nv_range_t": [lo, hi],
                                      "converged_fraction": result.converged_fraction})
    figure = None
    if not args.no_figure:
        figure = plot_cw_result(result, where / FIGURE_NAME,
                                title=f"run {writer.run_id}: CW ODMR, coils {args.coils}")
    elapsed = time.monotonic() - t0
    print(f"run {writer.run_id} completed{' (simulated)' if station.simulated else ''}")
    print(f"  points     {sweep.n_steps} ({args.points} frequencies x I-off/I-on), "
          f"image {result.b_nv_t.shape[0]}x{result.b_nv_t.shape[1]}")
    print(f"  B_NV range {lo * 1e6:+.2f} .. {hi * 1e6:+.2f} uT "
          f"({result.converged_fraction:.1%} of pixels fitted)")
    print(f"  time       {elapsed:.1f} s")
    print(f"  data       {out / 'runs.db'} (dataset {writer.run_id}), {where}")
    if figure:
        print(f"  figure     {figure}")
    return EXIT_OK


def _add_summary(out: Path, run_id: int, summary: dict[str, Any]) -> None:
    import json

    from qcodes.dataset import initialise_or_create_database_at, load_by_id

    initialise_or_create_database_at(str(out / "runs.db"))
    ds = load_by_id(run_id)
    for tag, value in summary.items():
        ds.add_metadata(tag, json.dumps(value))


class _ProgressBar:
    """tqdm progress bar with ETA, created lazily so --help never imports tqdm."""

    def __init__(self) -> None:
        self._bar: Any = None

    def __call__(self, total: int) -> Any:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="step", desc="measuring", file=sys.stderr,
                         dynamic_ncols=True, disable=None)

        def update(progress: Any) -> None:
            self._bar.update(progress.done - self._bar.n)
            self._bar.set_postfix_str(progress.label, refresh=False)

        return update

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


_progress_bar = _ProgressBar()


if __name__ == "__main__":
    sys.exit(main())
