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
    cli_words,
    default_out_dir,
    stopped_message,
)
from instrument.services.errors import RequestError
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
    "instrument.commands.station_check",
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
    _add_global_options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
    for command in _sub_parsers(p):
        _add_global_options(command, after_command=True)
    return p


def _add_global_options(p: argparse.ArgumentParser, after_command: bool = False) -> None:
    """The options every command takes, before the command or after it.

    After the command they default to ``SUPPRESS``, so a value given before the command stays; an
    option string a command defines itself (``reconstruct --seed``: the network's seed) keeps the
    command's meaning there.
    """
    options: list[tuple[tuple[str, ...], dict]] = [
        (("--sim",), dict(action="store_true",
                          help="back every instrument with the simulated microscope (no hardware needed)")),
        (("--station",), dict(metavar="FILE",
                              help="station YAML file (default: the bundled seed-000 lock-in QDM station)")),
        (("--out",), dict(metavar="DIR", type=Path,
                          help=f"where runs are stored (default: {default_out_dir()})")),
        (("--realtime",), dict(action="store_true",
                               help="pace the simulation to the wall clock (default: virtual time, faster)")),
        (("--seed",), dict(type=int, help="random seed of the simulation (default: the station file's)")),
        (("--image-shape",), dict(type=_shape, metavar="ROWSxCOLS",
                                  help="simulated image shape over the same field of view "
                                  "(default: the 300x300 sensor)")),
    ]
    for flags, kwargs in options:
        if any(flag in p._option_string_actions for flag in flags):
            continue
        if after_command:
            kwargs = {**kwargs, "default": argparse.SUPPRESS}
        p.add_argument(*flags, **kwargs)


def _sub_parsers(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every command and sub-command parser below ``p``."""
    found: list[argparse.ArgumentParser] = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_sub_parsers(child)]
    return found


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
    except RequestError as exc:  # UsageError, and requests the services refused
        print(f"acquire: error: {cli_words(str(exc))}", file=sys.stderr)
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
