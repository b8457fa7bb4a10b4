"""``acquire schedule``: queue scans for a start time or a nightly window, run the queue, read its log.

    acquire schedule add --window 22:00-08:00 --name "256 configs" -- --sim --out DIR coil-scan --coils 8
    acquire schedule run          # the scheduler; stop it and start it again at will
    acquire schedule list | remove ID | log
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from instrument.commands.common import EXIT_OK, UsageError, default_out_dir


def default_queue_dir() -> Path:
    return default_out_dir().parent / "schedule"


def add_parser(sub: Any) -> None:
    s = sub.add_parser("schedule", help="queue scans for a start time or a nightly window and run the queue",
                       description="A persistent queue of acquire commands, run one at a time in queue "
                       "order at their start time or inside their daily window (e.g. 22:00-08:00). The "
                       "queue survives restarts of the scheduler; everything is logged for the morning.")
    s.add_argument("--queue", type=Path, metavar="DIR",
                   help=f"queue directory (default: {default_queue_dir()})")
    actions = s.add_subparsers(dest="action", metavar="ACTION", required=True,
                               parser_class=type(s))
    a = actions.add_parser("add", help="queue an acquire command (give it after --)")
    a.add_argument("--at", metavar="TIME", help="start time, 'YYYY-MM-DD HH:MM' or 'HH:MM' (default: now)")
    a.add_argument("--window", metavar="HH:MM-HH:MM",
                   help="run only inside this daily window, e.g. 22:00-08:00; paused at its end, resumed "
                   "at its next start")
    a.add_argument("--name", default="", help="a name for the log")
    a.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- ACQUIRE-ARGS",
                   help="the acquire command line to run, after --")
    actions.add_parser("list", help="show the queue in order")
    r = actions.add_parser("remove", help="take an entry out of the queue")
    r.add_argument("entry", help="entry id, e.g. scan-0003")
    run = actions.add_parser("run", help="run the scheduler (Ctrl-C stops it; the queue stays)")
    run.add_argument("--exit-when-empty", action="store_true", help="stop when the queue is empty")
    actions.add_parser("log", help="print the scheduler's log")
    s.set_defaults(handler=run_command)


def _queue(args: argparse.Namespace) -> Any:
    from instrument.scheduler import ScanQueue, ScheduleError

    try:
        return ScanQueue(args.queue or default_queue_dir())
    except ScheduleError as exc:
        raise UsageError(str(exc)) from exc


def _check_acquire_args(argv: list[str]) -> None:
    """Refuse a queued command that would not even parse, now rather than at 3 a.m."""
    import contextlib
    import io

    from instrument.cli import build_parser

    if not argv:
        raise UsageError("give the acquire command to queue after --, e.g. -- --sim --out DIR coil-scan "
                         "--coils 8")
    if argv[0] == "schedule":
        raise UsageError("a queued command cannot itself be 'schedule'")
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0:
            raise UsageError("the queued command only asks for help; queue a command that measures") from None
        why = said.getvalue().strip().splitlines()
        raise UsageError(f"the queued command 'acquire {' '.join(argv)}' does not parse"
                         + (f": {why[-1]}" if why else "")) from None


def run_command(args: argparse.Namespace) -> int:
    from instrument.scheduler import ScheduleError, Window, acquire_command, parse_start

    queue = _queue(args)
    try:
        if args.action == "add":
            argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            _check_acquire_args(argv)
            start = parse_start(args.at) if args.at else None
            window = Window.parse(args.window) if args.window else None
            for other in queue.same_command(acquire_command(argv)):
                print(f"acquire: warning: {other.id} '{other.name}' already queues this command; both "
                      "would measure into the same place", file=sys.stderr)
            entry = queue.add(acquire_command(argv), args.name, start, window)
            print(f"queued {entry.describe()}; first wake-up {entry.next_wake:%Y-%m-%d %H:%M}")
            print(f"start the scheduler with: acquire schedule{_queue_flag(args)} run")
        elif args.action == "list":
            entries = queue.entries()
            if not entries:
                print("the queue is empty")
            for e in entries:
                wake = f"{e.next_wake:%Y-%m-%d %H:%M}" if e.next_wake else "-"
                print(f"{e.id}  {e.name!r:30}  {'window ' + str(e.window) if e.window else 'no window':18}  "
                      f"next wake {wake}  {e.display}")
        elif args.action == "remove":
            queue.remove(args.entry)
            print(f"removed {args.entry}")
        elif args.action == "run":
            print(f"scheduler running the queue in {queue.dir}; Ctrl-C stops it, the queue stays", flush=True)
            queue.run(exit_when_empty=args.exit_when_empty)
        elif args.action == "log":
            print(queue.read_log() or "the log is empty", end="")
    except ScheduleError as exc:
        raise UsageError(str(exc)) from exc
    return EXIT_OK


def _queue_flag(args: argparse.Namespace) -> str:
    return f" --queue {args.queue}" if args.queue else ""
