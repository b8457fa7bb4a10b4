"""``acquire gui``: the operator application (station, scans, live views, stored runs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from instrument.commands.common import EXIT_FAILED, UsageError, open_station, prepare_out


def add_parser(sub: Any) -> None:
    g = sub.add_parser("gui", help="open the operator application",
                       description="Open the operator application on the station: run scans and "
                       "watch them live, browse, re-fit and export stored runs. With --sim the "
                       "simulated microscope stands in for every instrument.")
    g.add_argument("--queue", type=Path, metavar="DIR",
                   help="scheduled-scan queue to show (default: the one 'acquire schedule' uses)")
    g.set_defaults(handler=run)


def check_display() -> None:
    """Fail with a clear message instead of Qt's abort when there is no screen to open a window on."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise UsageError("no display to open the GUI on (DISPLAY is not set); run it on a desktop, "
                         "over 'ssh -X', or under 'xvfb-run acquire --sim gui'")


def run(args: argparse.Namespace) -> int:
    check_display()
    try:
        from instrument.gui.app import launch
    except ImportError as exc:
        print(f"acquire: error: the GUI needs PyQt6 and pyqtgraph ({exc}); install them", file=sys.stderr)
        return EXIT_FAILED
    from instrument.commands.schedule import default_queue_dir

    out = prepare_out(args)
    with open_station(args) as station:
        return launch(station, out, args.queue or default_queue_dir())
