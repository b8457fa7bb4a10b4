"""``acquire --sim --station basler pulsed KIND``: widefield maps on the Basler emulator, checked
against the simulated sample's truth maps, and refusals before anything moves."""

import re

import numpy as np
import pytest

import instrument.cli as cli
from instrument.analysis.pulsed_maps import compare_with_truth
from tests.widefield_station import basler_test_station


@pytest.fixture
def acquire(tmp_path):
    path = basler_test_station(tmp_path)

    def run(*args):
        return cli.main(["--sim", "--station", str(path), "--out", str(tmp_path / "runs"), "pulsed", *args])

    return run


def test_rabi_map_on_the_basler_emulator_matches_the_truth_within_its_errors(acquire, capsys, tmp_path):
    assert acquire("rabi", "--points", "25", "--bin", "6") == 0
    out = capsys.readouterr().out
    assert "widefield rabi, 25 points x 2 frames of 4000 shots, camera camera" in out
    m = re.search(r"(\d+)% of bins within 2 sigma, (\d+)% within 3, median \|error\|/sigma ([\d.]+)", out)
    assert m, out
    within2, within3, median_z = int(m[1]), int(m[2]), float(m[3])
    assert within3 >= 90 and within2 >= 80 and 0.4 < median_z < 1.0, out
    maps = np.load(tmp_path / "runs" / "run-0001" / "maps.npz")
    assert maps["rabi_hz"].shape == (10, 10) and maps["rabi_hz_truth"].shape == (10, 10)
    fit = compare_with_truth(maps["rabi_hz"], maps["rabi_hz_err"], maps["rabi_hz_truth"])
    flat = np.full_like(maps["rabi_hz"], np.nanmedian(maps["rabi_hz"]))
    baseline = compare_with_truth(flat, maps["rabi_hz_err"], maps["rabi_hz_truth"])
    assert fit["mean_z2"] < 5 and baseline["mean_z2"] > 50, (fit, baseline)
    assert baseline["within_3_sigma"] < 0.3
    # the map resolves the antenna's fall-off: top rows (near the wire) drive faster than the bottom
    assert np.nanmean(maps["rabi_hz"][:2]) > 1.4 * np.nanmean(maps["rabi_hz"][-2:])
    assert (tmp_path / "runs" / "run-0001" / "map.png").exists()


def test_xy8_is_refused_naming_the_mw_phase_hardware(acquire, capsys):
    assert acquire("xy8", "--pi-ns", "54", "--no-figure") == 2
    err = capsys.readouterr().err
    assert "IQ-modulated MW source" in err and "AWG" in err and "run cpmg" in err


def test_phase_cycled_cpmg_is_refused_but_plain_cp_is_planned(acquire, capsys):
    assert acquire("cpmg", "--pi-ns", "54", "--phase-cycled", "--no-figure") == 2
    assert "PulseBlaster only switches the MW on and off" in capsys.readouterr().err


def test_pulsed_odmr_on_a_camera_points_to_acquire_odmr(acquire, capsys):
    assert acquire("odmr", "--no-figure") == 2
    assert "acquire odmr" in capsys.readouterr().err


def test_too_many_shots_for_the_exposure_are_refused_before_anything_moves(acquire, capsys, tmp_path):
    assert acquire("t1", "--repetitions", "5000", "--no-figure") == 2
    assert "outside the camera's" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "run-0001").exists()


def test_t1_map_matches_the_truth_and_beats_the_pixel_mean_baseline(acquire, capsys, tmp_path):
    assert acquire("t1", "--bin", "6", "--pairs", "2", "--no-figure") == 0
    out = capsys.readouterr().out
    assert "T1" in out and "vs simulated truth" in out
    maps = np.load(tmp_path / "runs" / "run-0001" / "maps.npz")
    fit = compare_with_truth(maps["t1_s"], maps["t1_s_err"], maps["t1_s_truth"])
    assert fit["within_3_sigma"] >= 0.9 and fit["median_abs_z"] < 1.1, fit
    # the T1 map sees the short-T1 patch that the mean value put everywhere misses (most bins lie
    # outside the patch, so only the mean squared normalised error tells them apart)
    flat = np.full_like(maps["t1_s"], np.nanmedian(maps["t1_s"]))
    baseline = compare_with_truth(flat, maps["t1_s_err"], maps["t1_s_truth"])
    # seeds 0-3: map 1.5-2.1, baseline 3.4-6.2
    assert fit["mean_z2"] < 0.75 * baseline["mean_z2"], (fit, baseline)


@pytest.mark.parametrize(("block", "message"), [(7, "must divide the simulated image 60 x 60"),
                                                 ("six", "spin_block must be a whole number")])
def test_a_bad_spin_block_is_a_station_file_error(tmp_path, capsys, block, message):
    path = basler_test_station(tmp_path, block=block)
    assert cli.main(["--sim", "--station", str(path), "--out", str(tmp_path / "runs"), "pulsed", "rabi"]) == 2
    assert message in capsys.readouterr().err
