"""Drift between the passes of a CW-ODMR run (and between coil-scan configurations): registered by
the PL images, stored, corrected, warned about above a pixel."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from instrument.analysis.cw_run import analyse_cw_run, save_analysis
from instrument.cli import main
from instrument.services.coil_scan_runner import ScanDriftTracker
from instrument.storage.runs import load_run
from tests.analysis.cw_synthetic import true_b_nv_t, write_run

DRIFT = (1.4, -0.6)  # rows, cols: 1.52 px, above the one-pixel tolerance


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("drift")
    still = write_run(out, seed=1)
    moved = write_run(out, drift_px=DRIFT, seed=2)
    return out, still, moved


def _interior(a: np.ndarray, edge: int = 3) -> np.ndarray:
    return a[edge:-edge, edge:-edge]


def test_drift_between_passes_is_measured_corrected_and_warned(runs, caplog):
    out, _, moved = runs
    run = load_run(out, moved)
    with caplog.at_level(logging.WARNING, logger="instrument.analysis.cw_run"):
        result = analyse_cw_run(run, isotope=None)
    shift = np.asarray(result.drift["shifts_px"])
    assert np.allclose(shift[0], 0.0) and np.allclose(shift[1], DRIFT, atol=0.05), shift
    assert result.drift["corrected"] is True and result.drift["exceeded"] is True
    assert len(result.warnings) == 1 and "shifted back" in result.warnings[0]
    assert abs(float(result.warnings[0].split("drifted ")[1].split(" px")[0]) - np.hypot(*DRIFT)) < 0.05
    assert any("drifted" in r.getMessage() for r in caplog.records)
    # Corrected: the map matches the truth within the fits' noise. Not corrected: the strain
    # gradient of the I-off line, seen 1.4 px away, reads as a false field of ~15 uT.
    raw = analyse_cw_run(run, isotope=None, drift=False)
    truth = _interior(true_b_nv_t())
    err = np.abs(_interior(result.b_nv_t) - truth)
    raw_err = np.abs(_interior(raw.b_nv_t) - truth)
    sigma = np.nanmedian(_interior(result.b_nv_err_t))
    assert np.nanmedian(err) < 3 * sigma, (np.nanmedian(err), sigma)
    assert np.nanmedian(raw_err) > 10 * np.nanmedian(err)
    assert raw.drift is None
    path = save_analysis(result, run.run_dir, "analysis-drift.h5")
    with h5py.File(path) as f:
        assert np.allclose(f["drift_shifts_px"][1], shift[1])
        assert "drifted" in f.attrs["drift"]


def test_a_run_without_drift_reports_no_shift_and_no_warning(runs):
    out, still, _ = runs
    result = analyse_cw_run(load_run(out, still), isotope=None)
    assert result.drift["max_shift_px"] < 0.05
    assert result.drift["corrected"] is False and result.warnings == []
    assert all(result.drift["reliable"])


def test_acquire_analyse_prints_and_stores_the_drift(runs, capsys):
    out, still, moved = runs
    assert main(["--out", str(out), "analyse", str(moved), "--hyperfine", "none", "--tag", "d"]) == 0
    captured = capsys.readouterr()
    assert f"acquire: warning: run {moved}: sample drifted 1." in captured.err
    assert "(corrected)" in captured.out
    drift = load_run(out, moved).metadata["analysis_d"]["drift"]
    assert np.allclose(drift["shifts_px"][1], DRIFT, atol=0.1)
    assert main(["--out", str(out), "analyse", str(still), "--hyperfine", "none", "--tag", "d"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "drift      0.0" in captured.out


def test_coil_scan_registers_every_configuration_to_the_first(tmp_path, caplog):
    first = write_run(tmp_path, shape=(24, 24), seed=3)
    # The whole second configuration (both passes) sits 2 px lower: the scan's drift, not the run's.
    second = write_run(tmp_path, shape=(24, 24), seed=4, offset_px=(2.0, 0.0))
    tracker = ScanDriftTracker(lambda out, run_id, reference_pl=None: ({"converged_fraction": 1.0}, None))
    summary, _ = tracker(tmp_path, first)
    assert summary["scan_drift"]["reference_run"] == first and summary["scan_drift"]["max_shift_px"] == 0
    with caplog.at_level(logging.WARNING, logger="sequences.coil_scan"):
        summary, _ = tracker(tmp_path, second)
    drift = summary["scan_drift"]
    assert drift["reference_run"] == first and np.allclose(drift["shift_px"], (2.0, 0.0), atol=0.05)
    assert drift["exceeded"] is True and summary["converged_fraction"] == 1.0
    assert any(f"against run {first}" in r.getMessage() for r in caplog.records)


def test_acquire_odmr_prints_a_drift_above_a_pixel(tmp_path, monkeypatch, capsys):
    # The simulated sample does not move, so the registration is made to report a 1.3 px drift.
    import instrument.analysis.drift as drift_module
    from instrument.analysis.drift import DriftResult

    def moved(pl_images, **kwargs):
        return DriftResult(np.array([[0.0, 0.0], [1.3, 0.0]]), np.zeros(2), True, np.ones(2, bool))

    monkeypatch.setattr(drift_module, "register_sweeps", moved)
    assert main(["--sim", "--image-shape", "16x16", "--out", str(tmp_path), "odmr", "--points", "15",
                 "--frames-per-point", "2", "--no-figure"]) == 0
    captured = capsys.readouterr()
    assert "acquire: warning: run 1: sample drifted 1.30 px by pass 1" in captured.err
    assert "drift      1.30 px between I-off and I-on (corrected)" in captured.out
    stored = load_run(tmp_path, 1).metadata["drift"]
    assert stored["shifts_px"][1] == [1.3, 0.0] and stored["warnings"]


def test_coil_scan_maps_are_shifted_onto_the_first_configurations_grid(tmp_path):
    from instrument.analysis.cw_run import analyse_cw_run
    from instrument.services.coil_scan_runner import analyse_cw_config

    first = write_run(tmp_path, shape=(32, 32), seed=3, counts=1e8)
    # Both passes of the second configuration sit 2 px lower: its map must come back on the first's grid.
    second = write_run(tmp_path, shape=(32, 32), seed=4, offset_px=(2.0, 0.0), counts=1e8)
    tracker = ScanDriftTracker(analyse_cw_config)
    tracker(tmp_path, first)
    summary, _ = tracker(tmp_path, second)
    assert np.allclose(summary["scan_drift"]["shift_px"], (2.0, 0.0), atol=0.05)
    aligned = analyse_cw_run(load_run(tmp_path, second), reference_pl=tracker.reference)
    unaligned = analyse_cw_run(load_run(tmp_path, second))
    truth = _interior(true_b_nv_t((32, 32)))
    err = np.nanmedian(np.abs(_interior(aligned.b_nv_t) - truth))
    raw_err = np.nanmedian(np.abs(_interior(unaligned.b_nv_t) - truth))
    # on the first's grid the map matches the truth; left where it was, it is the truth 2 px away
    assert err < raw_err / 3, (err, raw_err)
    assert aligned.drift["reference"] == "external PL image" and aligned.drift["corrected"]
    stored = load_run(tmp_path, second).metadata.get("drift") or {}
    assert stored.get("reference", "external PL image") == "external PL image"
