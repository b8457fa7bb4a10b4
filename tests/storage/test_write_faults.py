"""Write failures (a full disk, an I/O error) stop the run with what was kept; a step is stored in all
its places or none; runs a crash left 'running' are marked interrupted; a damaged database is named."""

import errno
import sqlite3
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from qcodes.dataset.data_set import DataSet

from instrument.storage import recovery
from instrument.storage.errors import CorruptDatabase, StorageWriteFailed, is_disk_full
from instrument.storage.runs import RunWriter, Step, load_run


def open_writer(tmp_path, n=6):
    w = RunWriter(tmp_path, "test_kind", "sample", {"i": "", "v": "V"}, ("i",))
    run_id = w.open({"simulated": True}, {"img": (3, 2)}, n)
    return w, run_id


def step(i):
    return Step(i, {"i": i, "v": 2.0 * i}, {"img": np.full((3, 2), float(i))})


def fail_rows_from(monkeypatch, n_ok, exc):
    """QCoDeS's row insert fails from the (n_ok+1)-th call on; QCoDeS's flush only logs it."""
    real = DataSet.add_results
    calls = {"n": 0}

    def add_results(self, results):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise exc
        return real(self, results)

    monkeypatch.setattr(DataSet, "add_results", add_results)


def test_full_database_disk_stops_the_run_with_what_was_kept(tmp_path, monkeypatch):
    w, run_id = open_writer(tmp_path)
    fail_rows_from(monkeypatch, 3, sqlite3.OperationalError("database or disk is full"))
    for i in range(3):
        w.write(step(i))
    with pytest.raises(StorageWriteFailed, match=rf"disk full at {tmp_path}: 3 steps kept") as err:
        w.write(step(3))
    assert err.value.steps_kept == 3 and err.value.disk_full
    with pytest.raises(StorageWriteFailed):  # nothing after a failure is written
        w.write(step(4))
    monkeypatch.undo()
    w.close("failed", str(err.value))
    run = load_run(tmp_path, run_id)
    assert run.metadata["status"] == "failed" and "disk full" in run.metadata["end_reason"]
    assert run.scalars["i"].tolist() == [0, 1, 2]  # no buffered row written at exit, no duplicate
    assert run.steps_done == 3 == int(run.metadata["steps_done"])
    images = run.images("img")
    assert images[:3, 0, 0].tolist() == [0, 1, 2] and np.isnan(images[3:]).all()  # the failed frame undone


def test_full_disk_on_the_image_file_stores_no_row_for_the_step(tmp_path, monkeypatch):
    w, run_id = open_writer(tmp_path)
    w.write(step(0))
    real_flush = h5py.File.flush

    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.File, "flush", flush)
    with pytest.raises(StorageWriteFailed, match="disk full at .*: 1 steps kept"):
        w.write(step(1))
    monkeypatch.setattr(h5py.File, "flush", real_flush)
    w.close("failed", "disk full")
    run = load_run(tmp_path, run_id)
    assert run.scalars["i"].tolist() == [0] and run.steps_done == 1


def test_a_step_whose_count_cannot_be_flushed_loses_its_row_too(tmp_path, monkeypatch):
    w, run_id = open_writer(tmp_path)
    w.write(step(0))
    real_flush = h5py.File.flush
    calls = {"n": 0}

    def flush(self):
        calls["n"] += 1
        if calls["n"] == 2:  # the frames flushed, the row added, then the step count fails
            raise OSError(errno.EIO, "Input/output error")
        return real_flush(self)

    monkeypatch.setattr(h5py.File, "flush", flush)
    with pytest.raises(StorageWriteFailed, match=r"could not store step 2 .*Input/output error.*1 steps"):
        w.write(step(1))
    monkeypatch.setattr(h5py.File, "flush", real_flush)
    w.close("failed", "io")
    run = load_run(tmp_path, run_id)
    assert run.scalars["i"].tolist() == [0] and run.steps_done == 1


def test_disk_full_is_recognised_through_wrapping():
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(OSError(errno.ENOSPC, "x"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("h5py: can't write") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))


CRASH = """
import os, signal, numpy as np
from instrument.storage.runs import RunWriter, Step
w = RunWriter({out!r}, "crash", "s", {{"i": ""}}, ("i",))
w.open({{}}, {{"img": (4, 4)}}, 10)
for i in range(3):
    w.write(Step(i, {{"i": i}}, {{"img": np.full((4, 4), i)}}))
os.kill(os.getpid(), signal.SIGKILL)
"""

GHOST = """
import os, signal
from qcodes.dataset import Measurement, load_or_create_experiment
from instrument.storage.runs import connect_runs_db
conn = connect_runs_db({out!r}, create=True)
meas = Measurement(exp=load_or_create_experiment("ghost", sample_name="s", conn=conn), name="ghost")
meas.register_custom_parameter("i")
meas.run().__enter__()  # the run exists, none of its metadata does
os.kill(os.getpid(), signal.SIGKILL)
"""


def crash(script, tmp_path):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script.format(out=str(tmp_path)))],
                          capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()


def test_a_run_left_running_by_a_crash_is_marked_interrupted_with_what_was_stored(tmp_path):
    crash(CRASH, tmp_path)
    crash(GHOST, tmp_path)
    assert load_run(tmp_path, 1).metadata["status"] == "running"
    w, run_id = open_writer(tmp_path)  # the next run opening the store settles both
    assert run_id == 3
    first, ghost = load_run(tmp_path, 1), load_run(tmp_path, 2)
    assert first.metadata["status"] == "interrupted"
    assert "3 steps stored" in first.metadata["end_reason"] and first.metadata["steps_done"] == 3
    assert ghost.metadata["status"] == "interrupted" and "nothing stored" in ghost.metadata["end_reason"]
    assert load_run(tmp_path, 3).metadata["status"] == "running"  # the live one is left alone
    assert recovery.interrupted_note(first).startswith("run 1 is interrupted")
    w.close("completed")
    assert recovery.recover_interrupted_runs(tmp_path) == []


def test_a_run_another_process_is_writing_is_not_marked(tmp_path):
    crash(CRASH, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from instrument.storage.folder_lock import lock_folder; "
         f"lock_folder({str(tmp_path)!r}, 'acquire odmr'); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert recovery.recover_interrupted_runs(tmp_path) == []
        assert load_run(tmp_path, 1).metadata["status"] == "running"
    finally:
        holder.kill()
        holder.wait()
    assert [r for r, _ in recovery.recover_interrupted_runs(tmp_path)] == [1]  # kill -9 freed the lock


def test_a_damaged_database_is_named_with_how_to_recover(tmp_path):
    w, run_id = open_writer(tmp_path, n=2)
    w.write(step(0))
    w.write(step(1))
    w.close("completed")
    (tmp_path / "runs.db").write_bytes(b"\x00garbage" * 512)
    with pytest.raises(CorruptDatabase) as err:
        load_run(tmp_path, run_id)
    text = str(err.value)
    assert str(tmp_path / "runs.db") in text and "damaged" in text
    assert "images.h5" in text and "mv " in text and "instrument.storage.recovery" in text
    with pytest.raises(CorruptDatabase):  # a new run does not write into it either
        open_writer(tmp_path)
    (tmp_path / "runs.db").rename(tmp_path / "runs.db.damaged")
    assert recovery.main([str(tmp_path)]) == 0
    again = load_run(tmp_path, run_id)
    assert again.metadata["status"] == "re-registered" and again.metadata["simulated"] is True
    assert again.images("img")[:2, 0, 0].tolist() == [0, 1]  # the frames were never touched


def test_analyse_says_a_run_was_interrupted(tmp_path, capsys):
    from instrument.cli import main

    crash(CRASH, tmp_path)
    assert main(["--out", str(tmp_path), "analyse", "1"]) == 2  # not a CW-ODMR run: refused, after the note
    err = capsys.readouterr().err
    assert "run 1 is interrupted, not completed" in err and "3 steps stored" in err
