"""``acquire --sim spad odmr``: the SPAD path from the bundled SPAD station to per-pixel sensitivity."""

import re

import numpy as np

from instrument.cli import main
from instrument.storage.runs import load_run


def test_spad_odmr_fits_pixels_and_reports_sensitivity(tmp_path, capsys):
    code = main(["--sim", "--image-shape", "60x60", "--out", str(tmp_path), "spad", "odmr",
                 "--points", "21", "--frames-per-point", "60"])
    out = capsys.readouterr().out
    assert code == 0, out
    fitted = int(re.search(r"(\d+) of 256 pixels fitted", out).group(1))
    assert fitted > 64  # 60 frames per point is a short exposure; 200 (the default) fits every pixel
    sens = float(re.search(r"sensitivity\s+(\d+) nT", out).group(1))
    assert 100 < sens < 50_000
    run = load_run(tmp_path, 1)
    assert run.metadata["sequence"]["name"] == "spad_odmr"
    assert run.metadata["spad_frame_period_s"] == 5e-3
    counts = run.images("counts")
    assert counts.shape == (21, 16, 16) and np.all(counts > 0)
    assert (run.run_dir / "figure.png").exists()
    # The dip of the summed array sits at the bias resonance (the coils are off): 15N doublet centre.
    from instrument.analysis.odmr import fit_odmr
    from sim.world import World

    freqs = np.asarray(run.metadata["sequence"]["frequencies_hz"])
    fit = fit_odmr(freqs, counts.sum(axis=(1, 2)), hyperfine="15N")
    assert abs(fit.center - World(shape=(60, 60)).resonance_estimate_hz()) < 0.1e6


def test_spad_unsafe_power_is_refused(tmp_path, capsys):
    assert main(["--sim", "--out", str(tmp_path), "spad", "odmr", "--power-dbm", "30"]) == 2
    assert "exceeds the lab safety limit" in capsys.readouterr().err
