"""Pieces every ``acquire`` command shares: usage errors, output directory, station, progress."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from instrument.services.errors import RequestError
from instrument.services.runs import (  # noqa: F401 - shared by the commands, as they were importable here
    add_run_metadata,
    channel_names,
    drive_current_a,
    run_metadata,
    sample_name,
)
from instrument.services.status import (  # noqa: F401 - the exit statuses of every command
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PAUSED,
    EXIT_USAGE,
    short_duration,
)
from instrument.settings import phrase

# 143 (SIGTERM) lives with the stop exceptions; re-exported beside the others
from instrument.signals import EXIT_TERMINATED  # noqa: F401


class UsageError(RequestError):
    """Bad input from the operator: printed as one line, exit status 2."""


def cli_flag(setting: str) -> str:
    """The command-line flag of a setting named in an error text (``power_dbm`` -> ``--power-dbm``)."""
    return "--" + setting.replace("_", "-")


def cli_words(text: str) -> str:
    """An error text from the lower layers, its settings named as this command's flags."""
    return phrase(text, cli_flag)


def default_out_dir() -> Path:
    """Per-user data directory (e.g. ~/.local/share/qdm-acquire/runs on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("qdm-acquire", appauthor=False)) / "runs"


def prepare_out(args: argparse.Namespace) -> Path:
    """The output directory of ``--out`` (or the default), proven writable and locked for this process
    (another process measuring into it is refused at once, naming it), before anything runs."""
    from instrument.storage.errors import FolderBusy, StorageError
    from instrument.storage.folder_lock import lock_folder
    from instrument.storage.paths import check_out_path
    from instrument.storage.runs import check_writable

    try:
        out = check_writable(check_out_path(args.out or default_out_dir()))
        lock_folder(out, command_line())
    except FolderBusy as exc:
        raise UsageError(str(exc).replace("use another one", "use another --out")) from exc
    except StorageError as exc:
        raise UsageError(str(exc)) from exc
    return out


def check_disk(out: Path, n_steps: int, image_shapes: Any, duration_s: float | None = None) -> None:
    """Refuse a run (or a whole scan: all its steps) that cannot fit on the output disk, before it opens."""
    from instrument.storage.budget import check_run_fits
    from instrument.storage.errors import StorageError

    try:
        check_run_fits(out, n_steps, image_shapes, duration_s)
    except StorageError as exc:
        raise UsageError(str(exc).replace("fewer points", "fewer --points")) from exc


def stopped_message(how: str, exc: BaseException) -> str:
    """The line printed when Ctrl-C or SIGTERM stopped a command: what was kept, and that it is safe."""
    outcome = getattr(exc, "outcome", None)
    kept = (f"; {outcome.steps_done} steps of the run are stored" if outcome is not None
            else "; what was measured so far is stored")
    phase = getattr(exc, "phase", "")
    return f"acquire: {how}{' during ' + phase if phase else ''}; the microscope was made safe{kept}"


def open_station(args: argparse.Namespace) -> Any:
    """Build the station named by the global options; station-file problems become usage errors."""
    from instrument.station import StationFileError, build_station

    if args.image_shape and not args.sim:
        raise UsageError("--image-shape applies to the simulated camera only; add --sim")
    if not args.sim:  # a real station's instruments have one owner at a time
        from instrument.storage.errors import FolderBusy
        from instrument.storage.folder_lock import lock_station

        try:
            lock_station(args.station, command_line())
        except FolderBusy as exc:
            raise UsageError(str(exc)) from exc
    try:
        return build_station(args.station, simulated=args.sim, realtime=args.realtime,
                             image_shape=args.image_shape, seed=args.seed)
    except StationFileError as exc:
        raise UsageError(str(exc)) from exc


def add_sweep_options(parser: argparse.ArgumentParser, points: int) -> None:
    """The MW sweep options shared by the CW-ODMR style commands."""
    parser.add_argument("--center-hz", type=float, default=None,
                        help="sweep centre in Hz (default in sim: the bias-field resonance of the sample)")
    parser.add_argument("--span-hz", type=float, default=12e6, help="sweep span in Hz (default: 12 MHz)")
    parser.add_argument("--points", type=int, default=points,
                        help=f"frequency points per sweep (default: {points})")
    parser.add_argument("--power-dbm", type=float, default=0.0, help="MW power in dBm (default: 0)")


def add_stepping_option(parser: argparse.ArgumentParser) -> None:
    """``--mw-stepping``: how a CW sweep steps the MW frequency (``sequences.mw_stepping``)."""
    parser.add_argument("--mw-stepping", choices=("auto", "list", "software"), default="auto",
                        help="auto: the PulseBlaster steps the source's frequency list where the station "
                        "allows it, else one set_frequency per point; list/software: insist (default: auto)")


SWEEP_ORDERS = ("sequential", "random", "interleaved")  # sequences.sweep_order.ORDERS, kept import-free


def add_repeat_options(parser: argparse.ArgumentParser) -> None:
    """``--repeats/--order/--order-seed/--max-runtime``: repeated CW sweeps (``sequences.sweep_order``)."""
    parser.add_argument("--repeats", type=int, default=1,
                        help="sweeps to run and average, each I-off then I-on (default: 1)")
    parser.add_argument("--order", default="sequential", choices=SWEEP_ORDERS,
                        help="frequency order of the sweeps: sequential (every pass up), random (a seeded "
                        "permutation per pass) or interleaved (passes alternate up and down); random and "
                        "interleaved also alternate I-off/I-on from sweep to sweep, so drift averages out "
                        "(default: sequential)")
    parser.add_argument("--order-seed", type=int, default=None,
                        help="seed of a random order (default: drawn and stored with the run)")
    parser.add_argument("--max-runtime", type=parse_duration, default=None, metavar="TIME",
                        help="run only the whole sweeps that fit in TIME: seconds, or e.g. 90s, 20m, 2h, "
                        "1h30m (default: no limit)")


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds of ``"7200"``, ``"90s"``, ``"20m"``, ``"2h"`` or ``"1h30m"`` (an argparse type)."""
    import re

    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
        if not value or parts is None:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a time: give seconds or e.g. 90s, 20m, 2h, 1h30m") from None
        seconds = sum(float(v) * _UNITS[u] for v, u in zip(parts.groups(), "hms", strict=True) if v)
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive, finite time")
    return seconds


MAX_POINTS = 100_000  # 120 Hz steps over a 12 MHz span: far finer than any NV line (~MHz wide)


def check_points(points: int) -> None:
    """Refuse a sweep too short to fit or absurdly long, before anything connects (the sequences and
    the run writer's disk estimate check again)."""
    if points < 5:
        raise UsageError(f"--points must be at least 5, got {points}")
    if points > MAX_POINTS:
        raise UsageError(f"--points {points} is more than {MAX_POINTS} frequencies (steps finer than any "
                         "NV line); use fewer points")


def sweep_frequencies(args: argparse.Namespace, station: Any) -> Any:
    """The sweep's frequencies from ``--center-hz/--span-hz/--points``; in sim the centre defaults to
    the sample's bias-field resonance."""
    import numpy as np

    if not args.span_hz > 0:  # also NaN: a reversed or empty sweep gives NaN maps, not an error
        raise UsageError(f"--span-hz must be a positive width in Hz, got {args.span_hz:g}")
    center = args.center_hz if args.center_hz is not None else station.sample.resonance_hz
    if center is None:
        raise UsageError("give the sweep centre with --center-hz (the station's sample gives no expected "
                         "resonance)")
    return center + np.linspace(-args.span_hz / 2, args.span_hz / 2, args.points)


def command_line() -> str:
    """This process's ``acquire`` command line, as stored with the runs it makes."""
    return "acquire " + " ".join(sys.argv[1:])


class ProgressBar:
    """A tqdm bar with ETA fed by the engine's progress callback; use as a context manager."""

    def __init__(self, total: int, desc: str = "measuring") -> None:
        self.total = total
        self.desc = desc
        self._bar: Any = None

    def __enter__(self) -> ProgressBar:
        from tqdm import tqdm

        self._bar = tqdm(total=self.total, unit="step", desc=self.desc, file=sys.stderr,
                         dynamic_ncols=True, disable=None)
        return self

    def __call__(self, progress: Any) -> None:
        self._bar.update(progress.done - self._bar.n)
        self._bar.set_postfix_str(progress.label, refresh=False)

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def failed_run(prepared: Any, measurement: Any) -> int:
    """Say on stderr why a run stopped and how many of its steps are stored; ``EXIT_FAILED``."""
    outcome = prepared.outcome
    print(f"acquire: run {prepared.run_id} {outcome.status}: {cli_words(outcome.reason)}", file=sys.stderr)
    print(f"acquire: {outcome.steps_done} of {measurement.n_steps} steps are stored in {prepared.run_dir}",
          file=sys.stderr)
    return EXIT_FAILED


def pi_from_calibration(calibration: Any, clock_hz: float) -> Any | None:
    """The pi pulse a Rabi calibration run's fit gives, or ``None`` after saying on stderr why not."""
    from instrument.services.pulsed import pi_pulse_from_run

    try:
        return pi_pulse_from_run(calibration, clock_hz)
    except RequestError as exc:
        print(f"acquire: {cli_words(str(exc))}", file=sys.stderr)
        return None
