"""``acquire station check``: commission a station before trusting a scan on it."""

from __future__ import annotations

import argparse
from typing import Any

from instrument.commands.common import EXIT_FAILED, EXIT_OK, open_station, prepare_out


def add_parser(sub: Any) -> None:
    station = sub.add_parser("station", help="commission the station (station check)",
                             description="Station commissioning commands.")
    station_sub = station.add_subparsers(dest="station_command", metavar="SUBCOMMAND", required=True)
    check = station_sub.add_parser(
        "check", help="connect, identify and safely exercise every instrument",
        description="For each instrument of the station file: connect, identify it, read back key "
        "settings and exercise the behaviours that depend on cabling or are unconfirmed (RF off: a "
        "3-point list stepped by the pulse generator; a camera volume started by camera_start; the "
        "PulseBlaster's safe-state program; coils at zero). Prints a table, stores the report next "
        "to the runs store and in the station snapshot, and exits 1 if a check failed.")
    check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instrument.commissioning import failed, format_table, report, run_checks, save_report

    out = prepare_out(args)
    station = open_station(args)
    with station:
        results = run_checks(station.instruments, station.limits)
        data = report(results, {})
        station.station_check = {k: data[k] for k in ("time", "passed", "results")}
        data["station"] = station.snapshot()
        path = save_report(out, data)
    print(format_table(results))
    bad = failed(results)
    print(f"\n{len(results)} checks, {len(bad)} failed; report stored in {path}")
    return EXIT_FAILED if bad else EXIT_OK
