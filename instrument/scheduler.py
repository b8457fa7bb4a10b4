"""Scheduled scans: a persistent queue of ``acquire`` commands run in order, at a start time or in
a nightly window, by APScheduler 3.x with an SQLAlchemy SQLite job store.

Each queue entry is one APScheduler job whose trigger only wakes the runner (every ``POLL_S``
seconds from the entry's start). When woken, the runner takes the earliest-queued entry that may run
now (start time passed, window open) and runs its command as a child process, so entries run one at
a time in queue order. An entry whose window closes while it runs is interrupted like Ctrl-C (a coil
scan pauses cleanly) and resumes at the next window; a finished entry leaves the queue. Because the
jobs live in SQLite and a re-run ``acquire`` scan resumes from its own ledger, stopping or killing
the scheduler loses nothing: start it again and it carries on. The child is told to stop (SIGTERM)
if the scheduler dies, so no orphan keeps measuring.

Everything that happens is appended to ``schedule.log`` in plain sentences, for the morning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# how acquire reports a scan paused by Ctrl-C, and one that paused itself (health check, instrument error)
from instrument.services.status import EXIT_INTERRUPTED, EXIT_PAUSED, EXIT_TERMINATED, short_duration

QUEUE_DB = "schedule.sqlite"
LOG_NAME = "schedule.log"
STATE_NAME = "runner.state"  # a running scheduler's pid, start and entry; removed by a clean stop
OUTPUT_DIR = "output"
POLL_S = 60
STOP_GRACE_S = 300.0
RETRY_AFTER = dt.timedelta(minutes=30)  # a self-paused entry without a window is retried this much later
MAX_PAUSES = 3  # self-pauses in a row after which an entry is removed: the rig needs a person
_CLOCK = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")

_active: dict[str, Any] = {}  # queue dir -> the running scheduler (the job function needs it)


class ScheduleError(ValueError):
    """Bad schedule input or state; the message says what to do."""


# ---- time windows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A daily time window such as 22:00-08:00 (it may run past midnight)."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> Window:
        try:
            a, b = (t.strip() for t in text.split("-"))
            if not (_CLOCK.match(a) and _CLOCK.match(b)):
                raise ValueError(text)
            start, end = dt.time.fromisoformat(a), dt.time.fromisoformat(b)
        except ValueError:
            raise ScheduleError(f"window {text!r} is not HH:MM-HH:MM (for example 22:00-08:00)") from None
        if start.tzinfo or end.tzinfo:
            raise ScheduleError(f"window {text!r}: give local times without a time zone")
        if start == end:
            raise ScheduleError(f"window {text!r} is empty: start and end are the same time")
        return cls(start, end)

    def __str__(self) -> str:
        spec = "minutes" if self.start.second == 0 == self.end.second else "seconds"
        return f"{self.start.isoformat(spec)}-{self.end.isoformat(spec)}"

    def contains(self, now: dt.datetime) -> bool:
        t = now.time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def end_after(self, now: dt.datetime) -> dt.datetime:
        """The end of the window that is open at ``now``."""
        end = dt.datetime.combine(now.date(), self.end, now.tzinfo)
        return end if end > now else end + dt.timedelta(days=1)

    def next_start(self, now: dt.datetime) -> dt.datetime:
        """``now`` if the window is open, else the next time it opens."""
        if self.contains(now):
            return now
        start = dt.datetime.combine(now.date(), self.start, now.tzinfo)
        return start if start > now else start + dt.timedelta(days=1)


def parse_start(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``YYYY-MM-DD HH:MM`` or ``HH:MM`` (the next such time) -> a local datetime."""
    now = now or dt.datetime.now()
    try:
        if len(text.strip()) <= 5:
            t = dt.time.fromisoformat(text.strip())
            start = dt.datetime.combine(now.date(), t)
            return start if start >= now else start + dt.timedelta(days=1)
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(f"start time {text!r} is not 'YYYY-MM-DD HH:MM' or 'HH:MM'") from None


# ---- the queue --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One queued command."""

    id: str
    seq: int
    name: str
    command: list[str]
    start: dt.datetime
    window: Window | None
    next_wake: dt.datetime | None
    cwd: str | None = None  # where the command was queued from: relative paths in it mean that place
    pauses: int = 0  # self-pauses in a row

    def runnable(self, now: dt.datetime) -> bool:
        return now >= self.start and (self.window is None or self.window.contains(now))

    @property
    def display(self) -> str:
        """The command as an operator would type it, shell-quoted: a line pasted from the log is safe."""
        if self.command[1:3] == ["-m", "instrument.cli"]:
            return shlex.join(["acquire", *self.command[3:]])
        return shlex.join(self.command)

    def describe(self) -> str:
        when = f"window {self.window}" if self.window else f"from {self.start:%Y-%m-%d %H:%M}"
        return f"{self.id} '{self.name}' ({when})"


def acquire_command(argv: list[str]) -> list[str]:
    """The child process that runs ``acquire ARGV`` with this interpreter."""
    return [sys.executable, "-m", "instrument.cli", *argv]


# Runs in the child before the queued command replaces it (exec keeps the setting): SIGTERM when the
# scheduler dies (Linux PR_SET_PDEATHSIG), so no scan is orphaned. A launcher instead of Popen's
# preexec_fn, which may deadlock in a process with threads (the scheduler has several).
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass  # not Linux: the scheduler still stops its child on a clean shutdown
if os.getppid() != int(sys.argv[1]):
    sys.exit("the scheduler died before the scan started")
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _launch(command: list[str]) -> list[str]:
    """``command`` wrapped so it dies with this process."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


class ScanQueue:
    """The persistent queue in ``queue_dir`` (``schedule.sqlite``, ``schedule.log``, ``output/``)."""

    def __init__(self, queue_dir: Path) -> None:
        self.dir = Path(queue_dir).expanduser()
        try:
            (self.dir / OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ScheduleError(f"cannot use queue directory {self.dir}: {exc.strerror}; choose one with "
                                "--queue DIR") from exc
        self.url = f"sqlite:///{self.dir / QUEUE_DB}"

    # ---- scheduler plumbing -----------------------------------------------------------------------

    def _scheduler(self, blocking: bool) -> Any:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.blocking import BlockingScheduler

        cls = BlockingScheduler if blocking else BackgroundScheduler
        return cls(
            jobstores={"default": SQLAlchemyJobStore(url=self.url), "runner": MemoryJobStore()},
            # one worker: entries run one at a time, in the order the runner picks them
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    @contextlib.contextmanager
    def _store(self) -> Any:
        """The job store, for reading and editing the queue without running anything.

        Inside the running scheduler its own store is used; elsewhere the store is opened on its
        own (a started-but-paused scheduler could still fire jobs while it shuts down).
        """
        active = _active.get(str(self.dir))
        if active is not None:
            yield active._lookup_jobstore("default")
            return
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        store = SQLAlchemyJobStore(url=self.url)
        store.start(self._scheduler(blocking=False), "default")
        try:
            yield store
        finally:
            store.shutdown()

    # ---- editing ----------------------------------------------------------------------------------

    def add(self, command: list[str], name: str = "", start: dt.datetime | None = None,
            window: Window | None = None) -> Entry:
        """Queue ``command`` to run from ``start`` (default now), inside ``window`` if given."""
        from apscheduler.job import Job
        from apscheduler.triggers.interval import IntervalTrigger

        now = dt.datetime.now()
        start = start or now
        first = window.next_start(max(start, now)) if window else max(start, now)
        with self._store() as store:
            seq = 1 + max((j.kwargs["seq"] for j in store.get_all_jobs()), default=0)
            entry_id = f"scan-{seq:04d}"
            kwargs = {"queue_dir": str(self.dir), "entry_id": entry_id, "seq": seq, "name": name or entry_id,
                      "command": list(command), "start": start.isoformat(),
                      "window": str(window) if window else None, "cwd": os.getcwd(), "pauses": 0}
            trigger = IntervalTrigger(seconds=POLL_S, start_date=first)
            store.add_job(Job(store._scheduler, id=entry_id, func=run_queue, trigger=trigger,
                              executor="default", args=(), kwargs=kwargs, name=name or entry_id,
                              misfire_grace_time=None, coalesce=True, max_instances=1,
                              next_run_time=trigger.get_next_fire_time(None, first.astimezone())))
        entry = self._entry_from(kwargs, first)
        self.log(f"QUEUED   {entry.describe()}: {entry.display}")
        for other in self.same_command(entry.command, entry.cwd, but=entry.id):
            self.log(f"WARNING  {entry.id} runs the same command as {other.id} '{other.name}', queued before "
                     f"it: both measure into the same place; remove one with 'acquire schedule remove ID'")
        return entry

    def same_command(self, command: list[str], cwd: str | None = None, but: str = "") -> list[Entry]:
        """Queued entries that run ``command`` from ``cwd`` (the current directory if None)."""
        cwd = cwd if cwd is not None else os.getcwd()
        return [e for e in self.entries() if e.command == list(command) and e.cwd == cwd and e.id != but]

    def remove(self, entry_id: str, reason: str = "removed by the operator") -> None:
        from apscheduler.jobstores.base import JobLookupError

        with self._store() as store:
            try:
                store.remove_job(entry_id)
            except JobLookupError:
                raise ScheduleError(f"no queued entry {entry_id!r}; see 'acquire schedule list'") from None
        self.log(f"REMOVED  {entry_id}: {reason}")

    def entries(self) -> list[Entry]:
        """Queued entries in queue order."""
        with self._store() as store:
            found = [self._entry_from(j.kwargs, j.next_run_time) for j in store.get_all_jobs()]
        return sorted(found, key=lambda e: e.seq)

    @staticmethod
    def _entry_from(kwargs: dict[str, Any], next_wake: Any) -> Entry:
        window = Window.parse(kwargs["window"]) if kwargs.get("window") else None
        wake = next_wake.replace(tzinfo=None) if next_wake is not None and next_wake.tzinfo else next_wake
        return Entry(kwargs["entry_id"], int(kwargs["seq"]), kwargs["name"], list(kwargs["command"]),
                     dt.datetime.fromisoformat(kwargs["start"]), window, wake, kwargs.get("cwd"),
                     int(kwargs.get("pauses", 0)))

    def postpone(self, entry_id: str, until: dt.datetime | None, pauses: int) -> None:
        """Keep an entry queued but not runnable before ``until``; ``pauses`` counts self-pauses in a row."""
        with self._store() as store:
            job = store.lookup_job(entry_id)
            if job is None:
                return
            kwargs = {**job.kwargs, "pauses": pauses}
            changes: dict[str, Any] = {"kwargs": kwargs}
            if until is not None:
                kwargs["start"] = until.isoformat()
                changes["next_run_time"] = until.astimezone()
            job._modify(**changes)
            store.update_job(job)

    def _wake_runnable_now(self) -> None:
        """After a restart, entries that may run now run at once instead of at their next poll."""
        now = dt.datetime.now()
        with self._store() as store:
            for job in store.get_all_jobs():
                if self._entry_from(job.kwargs, job.next_run_time).runnable(now):
                    job._modify(next_run_time=now.astimezone())
                    store.update_job(job)

    # ---- log --------------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        line = f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}  {message}\n"
        with open(self.dir / LOG_NAME, "a", encoding="utf-8") as f:
            f.write(line)

    def read_log(self) -> str:
        path = self.dir / LOG_NAME
        return path.read_text(encoding="utf-8") if path.exists() else ""

    # ---- running ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, exit_when_empty: bool = False) -> None:
        """Run the queue until ``stop`` is set (or Ctrl-C), or until it is empty if asked."""
        lock = open(self.dir / "runner.lock", "w")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ScheduleError(f"another scheduler is already running the queue in {self.dir}") from None
        stop = stop or threading.Event()
        self._note_previous_death()
        with contextlib.suppress(OSError):
            (self.dir / STATE_NAME).unlink()
        self._write_state(running=None)
        self._wake_runnable_now()
        scheduler = self._scheduler(blocking=False)
        _active[str(self.dir)] = scheduler
        # a heartbeat wakes the scheduler so entries queued by other processes are seen within seconds
        scheduler.add_job(lambda: None, "interval", seconds=5, jobstore="runner", id="heartbeat")
        scheduler.start()
        self.log(f"STARTED  scheduler (pid {os.getpid()}), {len(self.entries())} entries queued")
        try:
            while not stop.wait(0.5):
                if exit_when_empty and not self.entries() and not _running.get(str(self.dir)):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            _stopping[str(self.dir)] = True
            scheduler.shutdown(wait=True)
            _active.pop(str(self.dir), None)
            _stopping.pop(str(self.dir), None)
            self.log("STOPPED  scheduler; queued entries stay queued and run when it starts again")
            with contextlib.suppress(OSError):
                (self.dir / STATE_NAME).unlink()
            lock.close()

    # ---- crash record -----------------------------------------------------------------------------

    def _write_state(self, running: str | None) -> None:
        """Record this scheduler (and the entry it runs): a state file left behind means it died."""
        path = self.dir / STATE_NAME
        started = f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}"
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("pid") == os.getpid():
                started = old.get("started", started)  # the same scheduler, between entries
        state = {"pid": os.getpid(), "started": started, "running": running}
        with contextlib.suppress(OSError):
            (self.dir / STATE_NAME).write_text(json.dumps(state), encoding="utf-8")

    def _note_previous_death(self) -> None:
        """Log that the previous scheduler died (killed, crashed, power cut) if it left its state file."""
        path = self.dir / STATE_NAME
        if not path.exists():
            return
        try:
            state = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            state = {}
        running = state.get("running")
        self.log(f"RESTART  the previous scheduler (pid {state.get('pid', '?')}, started "
                 f"{state.get('started', '?')}) died without stopping"
                 + (f" while running {running}; that entry is still queued and resumes"
                    if running else "") + "; carrying on with the queue")


_running: dict[str, str] = {}  # queue dir -> id of the entry running now
_stopping: dict[str, bool] = {}


def run_queue(queue_dir: str, entry_id: str, **_: Any) -> None:
    """APScheduler job: run the earliest-queued entry that may run now (called on a wake-up)."""
    queue = ScanQueue(Path(queue_dir))
    now = dt.datetime.now()
    runnable = [e for e in queue.entries() if e.runnable(now)]
    if runnable and not _stopping.get(queue_dir):
        _execute(queue, runnable[0])


def _execute(queue: ScanQueue, entry: Entry) -> None:
    scheduler = _active.get(str(queue.dir))
    output = queue.dir / OUTPUT_DIR / f"{entry.id}.log"
    deadline = entry.window.end_after(dt.datetime.now()) if entry.window else None
    queue.log(f"START    {entry.describe()}: {entry.display}"
              + (f" (until {deadline:%H:%M})" if deadline else "") + f"; output in {output}")
    t0 = time.monotonic()
    _running[str(queue.dir)] = entry.id
    queue._write_state(running=entry.id)
    try:
        with open(output, "a", encoding="utf-8") as out:
            out.write(f"\n==== {dt.datetime.now():%Y-%m-%d %H:%M:%S} {shlex.join(entry.command)}\n")
            out.flush()
            # own session: a Ctrl-C at the scheduler's terminal stops the scheduler, which then
            # pauses the child deliberately, instead of reaching the child behind its back
            child = subprocess.Popen(_launch(entry.command), stdout=out, stderr=subprocess.STDOUT,
                                     cwd=entry.cwd, start_new_session=True)
            why = _wait(child, deadline, queue)
    except OSError as exc:
        queue.log(f"FAILED   {entry.id}: could not start the command: {exc}; entry removed")
        _remove(scheduler, entry.id)
        return
    finally:
        _running.pop(str(queue.dir), None)
        queue._write_state(running=None)
    took = short_duration(time.monotonic() - t0)
    rc = child.returncode
    if rc == 0:
        queue.log(f"DONE     {entry.id} '{entry.name}' in {took} (exit 0)")
        _remove(scheduler, entry.id)
    elif rc == EXIT_PAUSED and not why:
        _paused_itself(queue, scheduler, entry, took, _last_line(output))
    elif why or rc in (EXIT_INTERRUPTED, -signal.SIGINT, EXIT_TERMINATED, -signal.SIGTERM):
        why = why or "interrupted"
        later = dt.datetime.now() + dt.timedelta(minutes=1)
        resume = entry.window.next_start(later) if entry.window else None
        queue.log(f"PAUSED   {entry.id} '{entry.name}' after {took}: {why} (exit {rc}); it stays queued"
                  + (f" and resumes at {resume:%Y-%m-%d %H:%M}" if resume else ""))
    else:
        queue.log(f"FAILED   {entry.id} '{entry.name}' after {took} (exit {rc}): {_last_line(output)}; "
                  "entry removed, see its output; re-queue the same command to resume it")
        _remove(scheduler, entry.id)


def _paused_itself(queue: ScanQueue, scheduler: Any, entry: Entry, took: str, last_line: str) -> None:
    """The scan paused on its own (health check, instrument error): retry later, a few times at most."""
    pauses = entry.pauses + 1
    if pauses >= MAX_PAUSES:
        queue.log(f"FAILED   {entry.id} '{entry.name}' paused itself {pauses} times in a row, last after "
                  f"{took}: {last_line}; entry removed: check the microscope, then re-queue the same command "
                  "to resume it")
        _remove(scheduler, entry.id)
        return
    now = dt.datetime.now()
    if entry.window:  # not again in this window: the next time it opens
        retry = entry.window.next_start(entry.window.end_after(now) + dt.timedelta(minutes=1))
    else:
        retry = now + RETRY_AFTER
    queue.postpone(entry.id, retry, pauses)
    queue.log(f"PAUSED   {entry.id} '{entry.name}' paused itself after {took}: {last_line}; it stays queued "
              f"and retries at {retry:%Y-%m-%d %H:%M} (pause {pauses} of {MAX_PAUSES})")


def _wait(child: subprocess.Popen, deadline: dt.datetime | None, queue: ScanQueue) -> str:
    """Wait for the child; interrupt it at the window's end or when the scheduler stops."""
    why = ""
    while child.poll() is None:
        if not why and deadline is not None and dt.datetime.now() >= deadline:
            why = f"window closed at {deadline:%H:%M}"
        elif not why and _stopping.get(str(queue.dir)):
            why = "scheduler stopped"
        if why:
            child.send_signal(signal.SIGINT)  # like Ctrl-C: a coil scan pauses cleanly
            try:
                child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            break
        time.sleep(0.2)
    return why


def _remove(scheduler: Any, entry_id: str) -> None:
    if scheduler is not None:
        with contextlib.suppress(Exception):
            scheduler.remove_job(entry_id, jobstore="default")


def _last_line(path: Path) -> str:
    try:
        lines = [s for s in path.read_text(encoding="utf-8", errors="replace").splitlines() if s.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"
