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
    """The output directory of ``--out`` (or the default), proven writable before anything runs."""
    from instrument.storage.runs import StorageError, check_writable

    try:
        return check_writable(args.out or default_out_dir())
    except StorageError as exc:
        raise UsageError(str(exc)) from exc


def open_station(args: argparse.Namespace) -> Any:
    """Build the station named by the global options; station-file problems become usage errors."""
    from instrument.station import StationFileError, build_station

    if args.image_shape and not args.sim:
        raise UsageError("--image-shape applies to the simulated camera only; add --sim")
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


def check_points(points: int) -> None:
    """Refuse a sweep too short to fit, before anything connects (the sequences check it again)."""
    if points < 5:
        raise UsageError(f"--points must be at least 5, got {points}")


def sweep_frequencies(args: argparse.Namespace, station: Any) -> Any:
    """The sweep's frequencies from ``--center-hz/--span-hz/--points``; in sim the centre defaults to
    the sample's bias-field resonance."""
    import numpy as np

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


