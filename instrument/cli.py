"""The ``acquire`` command: run measurements on a real or simulated QDM station.

Each sub-command lives in its own module under ``instrument.commands``. Heavy modules are imported
inside the commands so that ``acquire --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import NoReturn

from instrument.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    default_out_dir,
    stopped_message,
)
from instrument.signals import Terminated, sigterm_raises
from instrument.storage import folder_lock
from instrument.storage.errors import StorageError

COMMANDS = (
    "instrument.commands.odmr",
    "instrument.commands.analyse",
    "instrument.commands.spad",
    "instrument.commands.pulsed",
    "instrument.commands.reconstruct",
    "instrument.commands.lockin",
    "instrument.commands.coil_scan",
    "instrument.commands.schedule",
    "instrument.commands.gui",
)
DEFAULT_COMMAND = "odmr"
MAX_IMAGE_SIDE = 4096  # as instrument.station.MAX_IMAGE_SIDE (not imported: it loads yaml and numpy)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names the problem and where to look, instead of argparse's usage dump.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _shape(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS such as 64x64, got {text!r}") from None
    if rows < 8 or cols < 8:
        raise argparse.ArgumentTypeError(f"image shape must be at least 8x8, got {text!r}")
    if rows > MAX_IMAGE_SIDE or cols > MAX_IMAGE_SIDE:  # refused here, not by a MemoryError later
        raise argparse.ArgumentTypeError(f"image shape must be at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}, "
                                         f"got {text!r}")
    return rows, cols


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="acquire",
        description="Run widefield NV (QDM) measurements on a real or simulated station. With no "
        f"command, runs '{DEFAULT_COMMAND}': a CW-ODMR field map of the station's sample.",
    )
    p.add_argument("--sim", action="store_true",
                   help="back every instrument with the simulated microscope (no hardware needed)")
    p.add_argument("--station", metavar="FILE",
                   help="station YAML file (default: the bundled seed-000 lock-in QDM station)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help=f"where runs are stored (default: {default_out_dir()})")
    p.add_argument("--realtime", action="store_true",
                   help="pace the simulation to the wall clock (default: virtual time, faster)")
    p.add_argument("--seed", type=int, help="random seed of the simulation (default: the station file's)")
    p.add_argument("--image-shape", type=_shape, metavar="ROWSxCOLS",
                   help="simulated image shape over the same field of view (default: the 300x300 sensor)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``acquire`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, DEFAULT_COMMAND])
    # Exit status: 0 done, 1 failed, 2 usage, 75 paused (resumable), 130 Ctrl-C, 143 SIGTERM.
    try:
        with sigterm_raises():
            return int(args.handler(args))
    except UsageError as exc:
        print(f"acquire: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StorageError as exc:
        print(f"acquire: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        print(stopped_message("interrupted (Ctrl-C)", exc), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as exc:
        print(stopped_message("terminated by SIGTERM", exc), file=sys.stderr)
        return exc.exit_code
    finally:
        folder_lock.release_all()


if __name__ == "__main__":
    sys.exit(main())
