"""The scan queue: windows, persistence, order, window close, and surviving a killed scheduler."""

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from instrument.cli import main
from instrument.scheduler import ScanQueue, ScheduleError, Window, parse_start

ROOT = Path(__file__).resolve().parents[1]

# A stand-in for a long scan: appends to a file, and exits 130 on Ctrl-C like a paused coil scan.
WORKER = """
import os, sys, time
out, name, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
open(out + '.pid', 'w').write(str(os.getpid()))
try:
    for i in range(steps):
        with open(out, 'a') as f:
            f.write(f'{name} {i}\\n')
        time.sleep(0.05)
except KeyboardInterrupt:
    with open(out, 'a') as f:
        f.write(f'{name} paused\\n')
    sys.exit(130)
"""


def worker(out, name, steps):
    return [sys.executable, "-c", WORKER, str(out), name, str(steps)]


def run_until(queue, condition, timeout=20.0):
    stop = threading.Event()
    thread = threading.Thread(target=queue.run, kwargs={"stop": stop})
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert condition(), queue.read_log()


def test_windows_cross_midnight_and_garbage_is_refused():
    night = Window.parse("22:00-08:00")
    at = dt.datetime(2026, 11, 23, 23, 30)
    assert night.contains(at) and night.contains(at.replace(hour=3) + dt.timedelta(days=1))
    assert not night.contains(at.replace(hour=12))
    assert night.end_after(at) == dt.datetime(2026, 11, 24, 8, 0)
    assert night.next_start(at.replace(hour=12)) == dt.datetime(2026, 11, 23, 22, 0)
    assert night.next_start(at) == at
    assert str(night) == "22:00-08:00"
    day = Window.parse("09:00-17:00")
    assert day.contains(at.replace(hour=9)) and not day.contains(at.replace(hour=17))
    for text in ("22-08", "22:00", "25:00-08:00", "08:00-08:00", "nonsense"):
        with pytest.raises(ScheduleError):
            Window.parse(text)
    now = dt.datetime(2026, 11, 23, 23, 0)
    assert parse_start("22:00", now) == dt.datetime(2026, 11, 24, 22, 0)
    assert parse_start("2026-12-01 22:00", now) == dt.datetime(2026, 12, 1, 22, 0)
    with pytest.raises(ScheduleError, match="is not 'YYYY-MM-DD HH:MM'"):
        parse_start("tonight", now)


def test_queue_persists_in_order_and_entries_can_be_removed(tmp_path):
    queue = ScanQueue(tmp_path)
    a = queue.add(["true"], "first", window=Window.parse("22:00-08:00"))
    b = queue.add(["true"], "second", start=dt.datetime.now() + dt.timedelta(days=1))
    again = ScanQueue(tmp_path)  # a new process would see the same queue
    assert [e.name for e in again.entries()] == ["first", "second"]
    assert again.entries()[0].window == Window.parse("22:00-08:00")
    again.remove(a.id)
    assert [e.id for e in ScanQueue(tmp_path).entries()] == [b.id]
    with pytest.raises(ScheduleError, match="no queued entry"):
        again.remove("scan-9999")
    log = queue.read_log()
    assert "QUEUED   scan-0001 'first' (window 22:00-08:00)" in log and "REMOVED  scan-0001" in log


def test_entries_run_one_at_a_time_in_queue_order_and_leave_the_queue(tmp_path):
    out = tmp_path / "trace.txt"
    queue = ScanQueue(tmp_path / "q")
    queue.add(worker(out, "A", 4), "A")
    queue.add(worker(out, "B", 3), "B")
    queue.add(worker(out, "C", 2), "C", start=dt.datetime.now() + dt.timedelta(days=1))  # not yet due
    run_until(queue, lambda: "DONE     scan-0002" in queue.read_log())
    names = [line.split()[0] for line in out.read_text().splitlines()]
    assert names == ["A"] * 4 + ["B"] * 3
    assert [e.name for e in queue.entries()] == ["C"]
    log = queue.read_log()
    assert log.index("DONE     scan-0001 'A'") < log.index("START    scan-0002")
    assert "STARTED  scheduler" in log and "STOPPED  scheduler" in log


def test_window_end_pauses_the_entry_and_keeps_it_queued(tmp_path):
    out = tmp_path / "trace.txt"
    now = dt.datetime.now()
    window = Window((now - dt.timedelta(seconds=30)).time().replace(microsecond=0),
                    (now + dt.timedelta(seconds=2)).time().replace(microsecond=0))
    queue = ScanQueue(tmp_path / "q")
    queue.add(worker(out, "night", 10_000), "night", window=window)
    run_until(queue, lambda: "PAUSED" in queue.read_log())
    assert out.read_text().splitlines()[-1] == "night paused"
    assert "window closed at" in queue.read_log() and "resumes at" in queue.read_log()
    assert [e.name for e in queue.entries()] == ["night"]


def test_failed_entry_is_logged_with_its_last_line_and_removed(tmp_path):
    queue = ScanQueue(tmp_path)
    queue.add([sys.executable, "-c", "print('camera cable unplugged'); raise SystemExit(1)"], "broken")
    run_until(queue, lambda: "FAILED" in queue.read_log())
    assert "(exit 1): camera cable unplugged" in queue.read_log()
    assert queue.entries() == []


def test_only_one_scheduler_runs_a_queue(tmp_path):
    queue = ScanQueue(tmp_path)
    stop = threading.Event()
    thread = threading.Thread(target=queue.run, kwargs={"stop": stop})
    thread.start()
    time.sleep(0.5)
    try:
        with pytest.raises(ScheduleError, match="another scheduler is already running"):
            ScanQueue(tmp_path).run(stop=threading.Event())
    finally:
        stop.set()
        thread.join(10)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_killed_scheduler_restarts_and_finishes_the_queue(tmp_path):
    out = tmp_path / "trace.txt"
    queue = ScanQueue(tmp_path / "q")
    queue.add(worker(out, "scan", 60), "scan")
    command = [sys.executable, "-m", "instrument.cli", "schedule", "--queue", str(tmp_path / "q"), "run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runner = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text().count("scan") >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    child = int(Path(str(out) + ".pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the scan kept running after its scheduler died"
    assert [e.name for e in queue.entries()] == ["scan"]  # still queued after the crash
    done = subprocess.run([*command, "--exit-when-empty"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "DONE     scan-0001 'scan'" in queue.read_log()
    assert queue.entries() == []


def test_cli_add_list_remove_and_log(tmp_path, capsys):
    q = ["schedule", "--queue", str(tmp_path)]
    assert main([*q, "add", "--window", "22:00-08:00", "--name", "night", "--", "--sim", "--out",
                 str(tmp_path / "runs"), "coil-scan", "--coils", "8"]) == 0
    assert "queued scan-0001 'night' (window 22:00-08:00)" in capsys.readouterr().out
    assert main([*q, "list"]) == 0
    assert "acquire --sim --out" in capsys.readouterr().out
    assert main([*q, "add", "--", "--sim", "coil-scan", "--bogus"]) == 2
    assert "does not parse" in capsys.readouterr().err
    assert main([*q, "add", "--", "--help"]) == 2
    assert main([*q, "add", "--window", "22-8", "--", "--sim", "odmr"]) == 2
    assert "is not HH:MM-HH:MM" in capsys.readouterr().err
    assert main([*q, "add"]) == 2
    assert main([*q, "remove", "scan-0001"]) == 0
    assert main([*q, "remove", "scan-0001"]) == 2
    assert main([*q, "log"]) == 0
    assert "REMOVED  scan-0001" in capsys.readouterr().out


def test_a_scan_that_paused_itself_stays_queued_retries_later_and_gives_up_after_a_few(tmp_path, monkeypatch):
    import instrument.scheduler as sched

    monkeypatch.setattr(sched, "RETRY_AFTER", dt.timedelta(seconds=0))  # retry at once, to see the cap
    queue = ScanQueue(tmp_path / "q")
    queue.add([sys.executable, "-c", "print('health check failed: contrast drift'); raise SystemExit(75)"],
              "night")
    run_until(queue, lambda: "FAILED" in queue.read_log(), timeout=60)
    log = queue.read_log()
    assert log.count("PAUSED   scan-0001 'night' paused itself") == sched.MAX_PAUSES - 1
    assert "contrast drift; it stays queued and retries at" in log
    assert f"paused itself {sched.MAX_PAUSES} times in a row" in log and queue.entries() == []


def test_a_queued_command_runs_where_it_was_queued_from(tmp_path, monkeypatch):
    here = tmp_path / "lab"
    here.mkdir()
    monkeypatch.chdir(here)
    queue = ScanQueue(tmp_path / "q")
    queue.add([sys.executable, "-c", "open('relative.txt', 'w').write('ok')"], "relative paths")
    monkeypatch.chdir(tmp_path)  # the scheduler runs from elsewhere (a service starts in /)
    run_until(queue, lambda: "DONE" in queue.read_log())
    assert (here / "relative.txt").read_text() == "ok"
