"""Faults seen from the command line: a full disk, SIGTERM and Ctrl-C, a busy folder, a damaged
database, a path SQLite cannot open. Each ends with the one exit-status convention and a line that
says what happened and what was kept."""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from qcodes.dataset.data_set import DataSet

from instrument.cli import main
from instrument.storage.runs import load_run
from sequences.cw_odmr import CwOdmrSweep

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sim", "--image-shape", "8x8"]
ODMR = ["odmr", "--points", "5", "--frames-per-point", "1", "--no-figure"]


def odmr(out, *extra):
    return main([*FAST, "--out", str(out), *ODMR, *extra])


def signal_at_step(monkeypatch, at, signum):
    real = CwOdmrSweep.run

    def run(self, instruments, *plan):  # the engine hands a planned sequence its plan
        for i, step in enumerate(real(self, instruments, *plan)):
            if i == at:
                os.kill(os.getpid(), signum)
            yield step

    monkeypatch.setattr(CwOdmrSweep, "run", run)


def test_full_disk_during_odmr_stops_it_and_says_what_was_kept(tmp_path, monkeypatch, capsys):
    real, calls = DataSet.add_results, {"n": 0}

    def add_results(self, results):
        calls["n"] += 1
        if calls["n"] > 4:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, results)

    monkeypatch.setattr(DataSet, "add_results", add_results)
    assert odmr(tmp_path) == 1
    err = capsys.readouterr().err
    assert f"disk full at {tmp_path}: 4 steps kept" in err
    assert "4 of 10 steps are stored" in err
    monkeypatch.undo()
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "failed" and "disk full" in run.metadata["end_reason"]
    assert len(run.scalars["frequency_hz"]) == 4 == run.steps_done


@pytest.mark.parametrize("signum, code, said", [(signal.SIGTERM, 143, "terminated by SIGTERM"),
                                                (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_sigterm_exits_143_and_ctrl_c_130_with_the_run_closed(tmp_path, monkeypatch, capsys, signum, code,
                                                              said):
    signal_at_step(monkeypatch, 3, signum)
    assert odmr(tmp_path) == code
    err = capsys.readouterr().err
    assert said in err and "made safe" in err and "steps of the run are stored" in err
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "aborted"
    assert len(run.scalars["frequency_hz"]) == run.steps_done == int(run.metadata["steps_done"])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_during_the_fit_after_the_measurement_says_so(tmp_path, monkeypatch, capsys):
    import instrument.analysis.cw_run as cw_run

    def fit(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cw_run, "analyse_cw_run", fit)
    assert odmr(tmp_path) == 143
    err = capsys.readouterr().err
    assert "terminated by SIGTERM" in err and "stored" in err
    assert load_run(tmp_path, 1).metadata["status"] == "completed"  # the measurement itself is whole


def test_a_second_process_on_the_same_folder_is_refused_naming_the_first(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from instrument.storage.folder_lock import lock_folder; "
         f"lock_folder({str(tmp_path)!r}, 'acquire --sim coil-scan --coils 8'); print('locked', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert odmr(tmp_path) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid} (acquire --sim coil-scan --coils 8) since" in err
        assert "another --out" in err
        assert not (tmp_path / "runs.db").exists()  # refused before anything was written
    finally:
        holder.kill()  # kill -9: the kernel drops its flock, the stale lock file must not block
        holder.wait()
    assert odmr(tmp_path) == 0


def test_the_same_process_may_run_twice_into_one_folder(tmp_path):
    assert odmr(tmp_path) == 0
    assert odmr(tmp_path) == 0  # the lock was released at the end of the first command


def test_coil_scan_on_a_damaged_database_fails_once_instead_of_pausing(tmp_path, capsys):
    (tmp_path / "runs.db").write_bytes(b"this is not sqlite" * 100)
    station = str(ROOT / "instrument" / "stations" / "sim_coil_board.yaml")
    code = main([*FAST, "--station", station, "coil-scan", "--points", "5", "--frames-per-point", "1",
                 "--coils", "L1C1", "--out", str(tmp_path)])
    assert code == 1  # not 75: the scheduler must not retry it every night
    err = capsys.readouterr().err
    assert str(tmp_path / "runs.db") in err and "damaged" in err and "instrument.storage.recovery" in err


def test_an_out_path_too_long_for_sqlite_is_refused_up_front(tmp_path, capsys):
    deep = tmp_path / "/".join(["d" * 60] * 8)
    assert odmr(deep) == 2
    err = capsys.readouterr().err
    assert "too deep" in err and "SQLite opens at most 500" in err
