"""The scheduler after its own death, with commands an operator can paste, duplicates and SIGTERM."""

import json
import sys

from instrument.scheduler import STATE_NAME, ScanQueue
from tests.test_scheduler import run_until


def test_a_scheduler_that_died_is_recorded_when_the_next_one_starts(tmp_path):
    queue = ScanQueue(tmp_path)
    (tmp_path / STATE_NAME).write_text(json.dumps({"pid": 99999, "started": "2026-11-30 22:00:00",
                                                   "running": "scan-0001"}))
    queue.run(exit_when_empty=True)
    log = queue.read_log()
    assert "RESTART  the previous scheduler (pid 99999, started 2026-11-30 22:00:00) died" in log
    assert "while running scan-0001" in log
    assert not (tmp_path / STATE_NAME).exists()  # a clean stop leaves no trace to report
    queue.run(exit_when_empty=True)
    assert queue.read_log().count("RESTART") == 1


def test_queued_commands_are_logged_shell_quoted_and_a_duplicate_warns(tmp_path):
    queue = ScanQueue(tmp_path)
    command = [sys.executable, "-m", "instrument.cli", "--out", "my runs; rm -rf ~",
               "coil-scan", "--coils", "8"]
    first = queue.add(command, "night")
    assert first.display == "acquire --out 'my runs; rm -rf ~' coil-scan --coils 8"
    assert "acquire --out 'my runs; rm -rf ~' coil-scan" in queue.read_log()
    assert "WARNING" not in queue.read_log()
    assert [e.id for e in queue.same_command(command)] == [first.id]
    second = queue.add(command, "again")
    assert f"WARNING  {second.id} runs the same command as {first.id} 'night'" in queue.read_log()


def test_a_command_stopped_by_sigterm_stays_queued(tmp_path):
    queue = ScanQueue(tmp_path)
    entry = queue.add([sys.executable, "-c", "import sys; sys.exit(143)"], "terminated")
    run_until(queue, lambda: "PAUSED" in queue.read_log())
    assert "(exit 143); it stays queued" in queue.read_log()
    assert [e.id for e in queue.entries()] == [entry.id]
