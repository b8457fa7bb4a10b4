"""Outlier refit from neighbours, refit_from, and the torch backend's parity with numpy (on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.analysis.odmr import FitReason, fit_odmr, refit_from
from instrument.analysis.outliers import outlier_mask, refit_outliers, thresholds
from instrument.physics.nv import lorentzian

FREQS = np.linspace(2.860e9, 2.880e9, 101)


def glitched_cube(seed=0, size=20, n_bad=12):
    rng = np.random.default_rng(seed)
    center = 2.870e9 + 1e6 * np.sin(np.arange(size) / 5)[:, None] + np.zeros((size, size))
    cube = rng.poisson(1e5 * (1 - 0.015 * lorentzian(FREQS, center[..., None], 1.2e6))).astype(float)
    bad = rng.choice(size * size, n_bad, replace=False)
    r, c = np.unravel_index(bad, (size, size))
    cube[r, c, 10:12] *= 0.96  # a two-sample dropout (a camera glitch) 8 MHz from the line
    return cube, center, r, c


def test_glitched_pixels_are_flagged_and_refitted_from_their_neighbours():
    cube, center, r, c = glitched_cube()
    fit = fit_odmr(FREQS, cube)
    assert np.mean(np.isnan(fit.center[r, c])) > 0.5  # the glitch pulls the plain fit off the line
    result = refit_outliers(FREQS, cube, fit)
    assert result.flagged[r, c].all()
    assert result.replaced[r, c].mean() > 0.8
    err = np.abs(result.fit.center - center)[r, c][result.replaced[r, c]]
    sigma = result.fit.center_err[r, c][result.replaced[r, c]]
    assert np.all(err < 5 * sigma)
    # Good pixels are left exactly as they were.
    untouched = ~result.replaced
    np.testing.assert_array_equal(result.fit.center[untouched], fit.center[untouched])
    assert set(result.limits) == {"chi2", "fwhm", "amplitude"}


def test_outlier_rules_need_enough_pixels_and_matching_spectra():
    cube, _, _, _ = glitched_cube(n_bad=0)
    fit = fit_odmr(FREQS, cube)
    assert outlier_mask(fit, thresholds(fit)).mean() < 0.05  # percentile bands: a few percent at most
    with pytest.raises(ValueError, match="too few"):
        thresholds(fit_odmr(FREQS, cube[:2, :2]))
    with pytest.raises(ValueError, match="matching"):
        refit_outliers(FREQS, cube[:5], fit)


def test_refit_from_a_start_reaches_the_same_optimum_as_the_guess():
    cube, center, _, _ = glitched_cube(n_bad=0, size=6)
    flat = cube.reshape(-1, FREQS.size)
    fit = fit_odmr(FREQS, flat, precision="double")
    start = {"baseline": fit.baseline * 1.01, "center": center.ravel() + 2e5,
             "fwhm": np.full(36, 1.5e6), "amplitude": fit.amplitude * 0.7}
    again = refit_from(FREQS, flat, start, precision="double")
    np.testing.assert_allclose(again.center, fit.center, atol=0.05 * np.nanmax(fit.center_err))
    with pytest.raises(ValueError, match="N, F"):
        refit_from(FREQS, cube, start)


def test_torch_backend_matches_numpy_within_a_small_fraction_of_the_uncertainty():
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    n = 150
    center = 2.870e9 + rng.uniform(-4e6, 4e6, n)
    mean = rng.uniform(4e4, 1.2e5, n)[:, None] * (
        1 - rng.uniform(0.012, 0.018, n)[:, None] * lorentzian(FREQS, center[:, None], 1.2e6)
    )
    spectra = rng.poisson(mean).astype(np.float64)
    ref = fit_odmr(FREQS, spectra, precision="double")
    got = fit_odmr(FREQS, spectra, backend="torch")
    assert got.options["backend"] == "torch"
    both = ref.converged & got.converged
    assert both.mean() > 0.97 and np.mean(ref.converged == got.converged) > 0.99
    gap = np.abs(got.center - ref.center)[both] / ref.center_err[both]
    assert np.percentile(gap, 99) < 0.05
    np.testing.assert_allclose(got.center_err[both], ref.center_err[both], rtol=0.02)
    assert np.all(got.reason[~got.converged] != FitReason.OK)
    with pytest.raises(ValueError, match="backend"):
        fit_odmr(FREQS, spectra, backend="jax")
