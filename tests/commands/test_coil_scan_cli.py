"""``acquire --sim coil-scan`` end to end: the real CW-ODMR path on the simulated microscope."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from instrument.cli import main
from instrument.storage.scan_ledger import read_ledger

ROOT = Path(__file__).resolve().parents[2]
STATION = str(ROOT / "instrument" / "stations" / "sim_coil_board.yaml")
FAST = ["--sim", "--image-shape", "16x16", "--station", STATION]
SCAN = ["coil-scan", "--points", "15", "--frames-per-point", "2"]


def acquire(out, *extra):
    return main([*FAST, *SCAN, "--out", str(out), *extra])  # --out after the command, as operators type it


def test_scan_with_open_coil_writes_each_configuration_once(tmp_path, capsys):
    assert acquire(tmp_path, "--coils", "L1C1,L1C4") == 0
    text = capsys.readouterr().out
    assert "[4/4]" in text and "ETA" in text and "1 measured" not in text
    rows = read_ledger(tmp_path)
    assert [r.status for r in rows] == ["done", "done", "open_coil", "open_coil"]
    with h5py.File(tmp_path / "coil_scan_results.h5", "r") as f:
        assert f["b_nv_t"].shape == (4, 16, 16)
        assert np.isfinite(f["b_nv_t"][1]).mean() > 0.9 and np.isnan(f["b_nv_t"][2]).all()
        assert list(f["dictionary"]) == ["L1C1"]
        assert f["b_nv_range_t"][1][1] > 1e-6
    assert "coil L1C4 flagged open" in (tmp_path / "coil_scan.log").read_text()
    # Every measured configuration is registered to the first (the simulated sample stays put).
    done = [r for r in rows if r.status == "done"]
    assert all(r.summary["scan_drift"]["reference_run"] == done[0].run_id for r in done)
    assert all(r.summary["scan_drift"]["max_shift_px"] < 0.1 for r in done)
    assert all(r.summary["drift"]["max_shift_px"] < 0.1 for r in done)
    # the same command again finds nothing left to do and measures nothing twice
    assert acquire(tmp_path, "--coils", "L1C1,L1C4") == 0
    assert [r.run_id for r in read_ledger(tmp_path)] == [r.run_id for r in rows]


def test_usage_errors_are_one_line(tmp_path, capsys):
    assert acquire(tmp_path, "--coils", "L9C9") == 2
    assert "unknown coil(s) L9C9" in capsys.readouterr().err
    assert acquire(tmp_path, "--coils", "2", "--configs", "L1C1+L1C3") == 2
    assert "unknown coil 'L1C3'" in capsys.readouterr().err
    assert acquire(tmp_path, "--coils", "2", "--current-a", "9e-4") == 2
    assert "L1C1 current = 0.0009 A exceeds the lab safety limit of 0.0008 A" in capsys.readouterr().err
    assert not (tmp_path / "coil_scan.sqlite").exists()  # refused before anything was recorded or moved
    assert acquire(tmp_path, "--coils", "2", "--max-contrast-drift", "-1") == 2
    assert "--max-contrast-drift must be a positive number, got -1" in capsys.readouterr().err
    assert acquire(tmp_path, "--coils", "2", "--max-rate-drift", "nan") == 2
    assert "--max-rate-drift must be a positive number, got nan" in capsys.readouterr().err
    assert acquire(tmp_path, "--coils", "2", "--points", "3") == 2
    assert "--points must be at least 5" in capsys.readouterr().err


def test_kill_9_mid_scan_then_the_same_command_resumes(tmp_path):
    command = [sys.executable, "-m", "instrument.cli", *FAST, "--out", str(tmp_path), *SCAN, "--coils", "2"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        rows = read_ledger(tmp_path) if (tmp_path / "coil_scan.sqlite").exists() else []
        if sum(r.status == "done" for r in rows) >= 1 and any(r.status == "running" for r in rows):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {r.position: r.run_id for r in read_ledger(tmp_path) if r.status == "done"}
    assert done_before
    final = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert "resuming" in final.stdout
    rows = read_ledger(tmp_path)
    assert [r.status for r in rows] == ["done"] * 4
    assert all(rows[p].run_id == run_id for p, run_id in done_before.items())


def test_ctrl_c_pauses_and_prints_how_to_resume(tmp_path):
    command = [sys.executable, "-m", "instrument.cli", *FAST, "--out", str(tmp_path), *SCAN, "--coils", "2"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            r.status == "running" for r in (read_ledger(tmp_path) if (tmp_path / "coil_scan.sqlite").exists()
                                            else [])):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "paused at configuration" in out and "resume with: acquire --sim" in out
    resume = out.split("resume with: ")[1].splitlines()[0]
    assert "--coils 2" in resume and f"--out {tmp_path}" in resume
    with h5py.File(tmp_path / "coil_scan_results.h5", "r") as f:  # what was finished is already readable
        assert len(f["mask"]) == 4 and f["status"][0].decode() in ("done", "pending", "running")


def test_mw_stepping_runs_every_configuration_that_way_and_a_resume_may_change_it(tmp_path, capsys):
    from instrument.storage.runs import load_run

    assert acquire(tmp_path, "--coils", "L1C1", "--mw-stepping", "software") == 0
    rows = read_ledger(tmp_path)
    assert [r.status for r in rows] == ["done", "done"]
    for row in rows:
        plan = load_run(tmp_path, row.run_id).metadata["sequence"]["plan"]
        assert plan["mw_stepping_mode"] == "software"
        assert plan["mw_stepping_reason"] == "software stepping requested"
    capsys.readouterr()
    # the stepping does not change what is measured: the same scan resumes in another mode
    assert acquire(tmp_path, "--coils", "L1C1", "--mw-stepping", "list") == 0
    assert "differs in" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        acquire(tmp_path / "bad", "--coils", "L1C1", "--mw-stepping", "hardware")
    assert info.value.code == 2
    assert "invalid choice: 'hardware'" in capsys.readouterr().err


def test_the_resume_command_keeps_the_stepping_mode():
    from argparse import Namespace

    from instrument.commands.coil_scan import resume_command

    args = Namespace(sim=True, station=None, out="o", seed=None, image_shape=None, coils="2", configs=None,
                     current_a=None, center_hz=None, span_hz=12e6, points=15, power_dbm=0.0,
                     frames_per_point=2, mw_stepping="software", health_action="warn",
                     max_contrast_drift=0.2, max_rate_drift=0.2, max_bias_drift_ut=2.0)
    assert "--mw-stepping software" in resume_command(args)
