"""The walking skeleton: ``acquire --sim`` from the drivers to a fitted B_NV map, checked against truth."""

import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from instrument.cli import main
from instrument.storage.runs import load_run
from sim.world import World

SHAPE = (40, 40)


@pytest.fixture(scope="module")
def cw_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(["--sim", "--image-shape", f"{SHAPE[0]}x{SHAPE[1]}", "--out", str(out),
                 "odmr", "--coils", "L1C1,L2C2", "--points", "41", "--frames-per-point", "4"])
    assert code == 0
    return out, load_run(out, 1)


def test_fitted_field_map_matches_the_worlds_field(cw_run):
    out, run = cw_run
    with h5py.File(run.run_dir / "analysis.h5") as f:
        b_fit = f["b_nv_t"][...]
        converged = f["converged"][...]
    currents = np.asarray(run.metadata["sequence"]["coil_currents_a"])
    assert np.count_nonzero(currents) == 2
    truth = World(shape=SHAPE).true_b_nv_t(currents_a=currents)
    assert converged.mean() > 0.98
    ok = converged & np.isfinite(b_fit)
    r = np.corrcoef(b_fit[ok], truth[ok])[0, 1]
    with h5py.File(run.run_dir / "analysis.h5") as f:
        sigma_t = f["b_nv_err_t"][...]
    # The correlation an unbiased map with the fits' own noise reaches: the seed-000 fields (below
    # 10 uT) against a few uT of fit noise per pixel of a short sweep make it well below 1.
    expected = np.std(truth[ok]) / np.sqrt(np.var(truth[ok]) + np.mean(sigma_t[ok] ** 2))
    assert r > expected - 0.1, f"correlation {r:.3f}, expected about {expected:.3f} from the fit noise"
    # The error must sit within the noise the fits themselves report.
    z = (b_fit - truth)[ok] / sigma_t[ok]
    assert np.median(np.abs(z)) < 2.0
    assert abs(np.mean(b_fit[ok] - truth[ok])) < 3 * np.median(sigma_t[ok])


def test_run_records_metadata_and_figure(cw_run):
    out, run = cw_run
    md = run.metadata
    assert md["status"] == "completed" and md["simulated"] is True
    assert set(md["station_snapshot"]["instruments"]) >= {"mw", "pulser", "camera", "coils"}
    assert md["sequence"]["name"] == "cw_odmr"
    assert md["converged_fraction"] > 0.98
    assert (run.run_dir / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.steps_done == 82


def test_simulated_run_registers_its_passes_and_finds_no_drift(cw_run):
    # The simulated sample does not move: the I-on pass's PL image sits on the I-off one's.
    _, run = cw_run
    drift = run.metadata["drift"]
    assert drift["max_shift_px"] < 0.1 and drift["corrected"] is False and drift["warnings"] == []
    assert drift["reliable"] == [True, True]  # the simulated PL image has texture to register
    with h5py.File(run.run_dir / "analysis.h5") as f:
        assert f["drift_shifts_px"].shape == (2, 2)


def test_ctrl_c_stops_safely_and_keeps_the_steps(tmp_path):
    cmd = [sys.executable, "-m", "instrument.cli", "--sim", "--realtime", "--image-shape", "16x16",
           "--out", str(tmp_path), "odmr", "--points", "200", "--frames-per-point", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "run-0001" / "images.h5").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "made safe" in err
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "aborted"
    assert 0 < run.steps_done < 400
    assert int(np.isfinite(run.images("signal")[:, 0, 0]).sum()) == run.steps_done




def test_analyse_refits_a_stored_run_beside_it(cw_run, capsys):
    out, run = cw_run
    assert main(["--out", str(out), "analyse", "1", "--background-order", "0", "--tag", "offset"]) == 0
    with h5py.File(run.run_dir / "analysis-offset.h5") as f, h5py.File(run.run_dir / "analysis.h5") as g:
        refit, first = f["b_nv_t"][...], g["b_nv_t"][...]
        assert f.attrs["option_background_order"] == 0
        assert "fit_on/center" in f and "fit_off/reason" in f
    ok = np.isfinite(refit) & np.isfinite(first)
    # Same fit, minus a constant offset: the maps differ by their mean only.
    assert np.allclose(refit[ok] - first[ok], np.mean(refit[ok] - first[ok]), atol=1e-9)
    assert (run.run_dir / "figure-offset.png").exists()
    assert load_run(out, 1).metadata["analysis_offset"]["background_order"] == 0


def test_analyse_bad_input(cw_run, capsys, tmp_path):
    out, _ = cw_run
    assert main(["--out", str(out), "analyse", "42"]) == 2
    assert "run 42 is not in" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "analyse", "1"]) == 2
    assert "no runs database" in capsys.readouterr().err
    assert main(["--out", str(out), "analyse", "1", "--background-order", "9"]) == 2
