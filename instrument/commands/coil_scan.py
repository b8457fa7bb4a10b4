"""``acquire coil-scan``: all 2^N on/off configurations of N coils, crash-safe and resumable.

Run the same command again after a crash, a kill or Ctrl-C and the scan resumes at the first
unfinished configuration. Progress lines (with ETA) go to the terminal and to ``OUT/coil_scan.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from instrument.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PAUSED,
    UsageError,
    add_stepping_option,
    add_sweep_options,
    check_disk,
    check_points,
    open_station,
    prepare_out,
    run_metadata,
    short_duration,
    sweep_frequencies,
)
from instrument.services.coil_scan import (  # noqa: F401 - importable here as before
    build_coil_scan,
    coil_names,
    select_channels,
)

LOG_NAME = "coil_scan.log"


def add_parser(sub: Any) -> None:
    c = sub.add_parser(
        "coil-scan", help="all on/off configurations of N coils, each a CW-ODMR I-off/I-on field map",
        description="Combinatorial coil scan: every on/off configuration of the chosen coils (or a given "
        "subset and order), each with its own I-off reference, fitted into a B_NV map. Crash-safe: run "
        "the same command again to resume at the first unfinished configuration.")
    # --out is also accepted after the command (acquire --sim coil-scan --coils 8 --out DIR)
    c.add_argument("--out", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                   help="where the scan is stored; the same DIR resumes it (same as the global --out)")
    c.add_argument("--coils", required=True, metavar="N|NAMES",
                   help="the first N coils of the station, or comma-separated names such as L1C1,L1C2")
    c.add_argument("--configs", metavar="LIST",
                   help="only these configurations, in this order: L1C1+L1C2,L1C3,off or masks 3,4,0 "
                   "(default: all 2^N in binary order)")
    c.add_argument("--current-a", type=float, default=None,
                   help="drive current of every coil that is on, in A (default: the sample's, 600 uA)")
    add_sweep_options(c, points=31)
    c.add_argument("--frames-per-point", type=int, default=4,
                   help="lock-in frames averaged per frequency (default: 4)")
    add_stepping_option(c)
    c.add_argument("--health-action", choices=("warn", "re-reference", "pause"), default="warn",
                   help="what a health-check failure between configurations does (default: warn)")
    c.add_argument("--max-contrast-drift", type=float, default=0.2,
                   help="allowed relative ODMR-contrast drift from the start (default: 0.2)")
    c.add_argument("--max-rate-drift", type=float, default=0.2,
                   help="allowed relative count-rate drift from the start (default: 0.2)")
    c.add_argument("--max-bias-drift-ut", type=float, default=2.0,
                   help="allowed bias-field drift of the I-off reference in uT (default: 2)")
    c.set_defaults(handler=run)


def resume_command(args: argparse.Namespace) -> str:
    """The command line that resumes this scan (the same options, spelled out)."""
    words = ["acquire"]
    if args.sim:
        words.append("--sim")
    for flag, value in (("--station", args.station), ("--out", args.out), ("--seed", args.seed)):
        if value is not None:
            words += [flag, str(value)]
    if args.image_shape:
        words += ["--image-shape", "x".join(map(str, args.image_shape))]
    words += ["coil-scan", "--coils", args.coils]
    for flag in ("configs", "current_a", "center_hz", "span_hz", "points", "power_dbm", "frames_per_point",
                 "mw_stepping", "health_action", "max_contrast_drift", "max_rate_drift", "max_bias_drift_ut"):
        value = getattr(args, flag)
        if value is not None:
            words += ["--" + flag.replace("_", "-"), str(value)]
    return shlex.join(words)


@contextlib.contextmanager
def _logging_to(out: Path) -> Iterator[logging.Logger]:
    """The scan's log file (and open-coil and health warnings on stderr) for the length of a run."""
    logger = logging.getLogger("acquire.coil_scan")
    logger.setLevel(logging.INFO)
    scan_log = logging.getLogger("sequences.coil_scan")  # open coils and health warnings
    to_file = logging.FileHandler(out / LOG_NAME)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("acquire: warning: %(message)s"))
    added = [(logger, to_file), (scan_log, to_file), (scan_log, console)]
    for target, handler in added:
        target.addHandler(handler)
    try:
        yield logger
    finally:
        for target, handler in added:
            target.removeHandler(handler)
        to_file.close()


def run(args: argparse.Namespace) -> int:
    from sequences.scan_health import HealthLimits

    check_points(args.points)
    try:
        HealthLimits(args.max_contrast_drift, args.max_rate_drift, args.max_bias_drift_ut * 1e-6,
                     args.health_action)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    out = prepare_out(args)
    with _logging_to(out) as log:
        return _scan(args, out, log)


def _scan(args: argparse.Namespace, out: Path, log: logging.Logger) -> int:
    from instrument.protocols import SafetyLimitError
    from instrument.storage.scan_ledger import LedgerMismatch
    from sequences.coil_scan import ScanInterrupted, export_results
    from sequences.scan_health import HealthLimits

    resume = resume_command(args)
    health = HealthLimits(args.max_contrast_drift, args.max_rate_drift, args.max_bias_drift_ut * 1e-6,
                          args.health_action)

    def say(line: str) -> None:
        print(line, flush=True)
        log.info(line)

    with open_station(args) as station:

        def progress(p: Any) -> None:
            detail = p.status
            if p.status == "done":
                lo, hi = p.summary.get("b_nv_range_t", [float("nan")] * 2)
                detail = (f"B_NV {lo * 1e6:+.2f}..{hi * 1e6:+.2f} uT, "
                          f"fit {p.summary.get('converged_fraction', float('nan')):.1%}")
            say(f"[{p.finished:>{len(str(p.total))}}/{p.total}] #{p.position} {p.label}: {detail}  "
                f"ETA {short_duration(p.eta_s)}")
            for message in p.messages:
                say(f"    ! {message}")

        metadata = run_metadata(station, resume)
        scan = build_coil_scan(station, out, args.coils, args.configs, args.current_a,
                               sweep_frequencies(args, station), args.power_dbm, args.frames_per_point,
                               health, metadata, on_config=progress, stepping=args.mw_stepping)
        names, scanned = scan.names, scan.scanned_names
        try:
            scan.check()
            ledger = scan.open_ledger()
        except (SafetyLimitError, ValueError, LedgerMismatch) as exc:
            raise UsageError(str(exc)) from exc
        for channel in ledger.get_meta("open_coils", []):
            say(f"coil {names[channel]} is flagged open: its configurations are marked, not measured")
        counts = ledger.counts()
        finished = counts["done"] + counts["open_coil"]
        try:  # I-off and I-on sweeps of every configuration still to measure
            left = 2 * args.points * (len(scan.masks) - finished)
            check_disk(out, left, {"signal": tuple(station["camera"].shape)})
        except UsageError:
            ledger.close()
            raise
        verb = "resuming" if finished or counts["running"] or counts["failed"] else "starting"
        say(f"coil scan in {out}: {verb}, {len(scan.masks)} configurations of {', '.join(scanned)} "
            f"({finished} already finished)")
        t0 = time.monotonic()
        try:
            outcome = scan.run(ledger)
        except ScanInterrupted as exc:
            say(f"paused at configuration #{exc.position} ({exc.label}) by Ctrl-C; the microscope is safe "
                "and every finished configuration is stored")
            say(f"  results so far  {export_results(out, scanned)}")
            say(f"resume with: {resume}")
            return EXIT_INTERRUPTED
        finally:
            ledger.close()
    results = export_results(out, scanned)
    c = outcome.counts
    say(f"coil scan {outcome.status}: {c['done']} measured, {c['open_coil']} marked open-coil, "
        f"{c['pending'] + c['failed'] + c['running']} left, in {short_duration(time.monotonic() - t0)}")
    say(f"  results  {results}")
    say(f"  log      {out / LOG_NAME} (ledger {out / 'coil_scan.sqlite'})")
    if outcome.status != "completed":
        say(f"  paused: {outcome.reason}")
        say(f"  resume with: {resume}")
        return EXIT_PAUSED
    return EXIT_OK
