"""``acquire --sim --station instrument/stations/basler.yaml odmr``: CW ODMR through Basler's emulator."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("pypylon") is None:
    if os.environ.get("CI"):
        raise RuntimeError("pypylon is missing in CI; it is part of the test extra (pip install -e .[test])")
    pytest.skip("pypylon not installed: pip install -e .[basler]", allow_module_level=True)

from instrument.cli import main  # noqa: E402
from instrument.storage.runs import load_run  # noqa: E402
from sim.basler_images import enable_emulator  # noqa: E402

enable_emulator(1)  # before pylon's transport-layer factory starts in this process
ROOT = Path(__file__).resolve().parents[1]
BASLER = str(ROOT / "instrument" / "stations" / "basler.yaml")


def test_odmr_on_the_basler_station_runs_end_to_end_and_stores_the_camera(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["--sim", "--station", BASLER, "--out", str(out), "--image-shape", "12x12", "odmr",
                 "--points", "7", "--frames-per-point", "2", "--span-hz", "14e6", "--power-dbm", "5",
                 "--no-figure"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "run 1 completed (simulated)" in printed and "image 12x12" in printed
    assert "MW steps   software" in printed and "B_NV range" in printed
    run = load_run(out, 1)
    camera = run.metadata["station_snapshot"]["instruments"]["camera"]
    assert camera["model"] == "Emulation" and camera["serial"] == "0815-0000"
    assert run.metadata["sequence"]["camera"] == "intensity"
    assert (run.run_dir / "analysis.h5").exists()


def test_a_frame_period_the_camera_cannot_follow_is_a_usage_error_naming_the_flag(tmp_path, capsys):
    code = main(["--sim", "--station", BASLER, "--out", str(tmp_path / "runs"), "--image-shape", "8x8",
                 "odmr", "--exposure-s", "50e-6", "--frame-period-s", "100e-6"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--frame-period-s 0.0001 s asks for 1e+04 frames/s but the camera manages 5000" in err
    assert not (tmp_path / "runs" / "run-0001").exists()


def test_camera_flags_on_the_lockin_station_are_refused(tmp_path, capsys):
    code = main(["--sim", "--out", str(tmp_path / "runs"), "--image-shape", "8x8", "odmr",
                 "--exposure-s", "0.01"])
    err = capsys.readouterr().err
    assert code == 2 and "--exposure-s set the frames of an intensity camera" in err


def test_the_coil_scan_runs_on_the_basler_station(tmp_path, capsys):
    out = tmp_path / "scan"
    code = main(["--sim", "--station", BASLER, "--image-shape", "8x8", "coil-scan", "--out", str(out),
                 "--coils", "1", "--points", "5", "--frames-per-point", "1", "--span-hz", "14e6"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "coil scan completed: 2 measured" in printed
    run = load_run(out, 2)
    assert run.metadata["sequence"]["camera"] == "intensity"
    assert run.metadata["sequence"]["coil_currents_a"][0] > 0


def test_repeated_random_sweeps_run_and_analyse_on_the_basler_station(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["--sim", "--station", BASLER, "--out", str(out), "--image-shape", "8x8", "odmr",
                 "--points", "5", "--frames-per-point", "1", "--span-hz", "14e6", "--power-dbm", "5",
                 "--repeats", "2", "--order", "random", "--order-seed", "11", "--no-figure"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "x 2 sweeps" in printed and "2 of 2 sweeps ran (random order)" in printed
    run = load_run(out, 1)
    sequence = run.metadata["sequence"]
    assert (sequence["camera"], sequence["order"], sequence["order_seed"], sequence["repeats"]) == (
        "intensity", "random", 11, 2)
    assert run.steps_done == 20 and run.images("reference").shape == (20, 8, 8)
    visits = sorted(zip(run.scalars["sweep"], run.scalars["config"], run.scalars["frequency_index"],
                        strict=True))
    assert visits == [(s, c, i) for s in range(2) for c in range(2) for i in range(5)]  # each point once
    assert run.metadata["sweeps"]["complete"] == [0, 1]
    # the drift registration used every pass's MW-off frames: 2 sweeps x (I-off, I-on)
    assert len(run.metadata["drift"]["shifts_px"]) == 4
