"""fit_odmr against synthetic spectra with known truth and shot noise, and against bad input."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.analysis.odmr import FitReason, fit_odmr
from instrument.physics.constants import HYPERFINE_15N_HZ
from instrument.physics.nv import odmr_dip

FREQS = np.linspace(2.864e9, 2.876e9, 101)


def pl_cube(centers, *, contrast=0.02, fwhm=1e6, isotope="15N", counts=1e6, seed=0, freqs=FREQS):
    """Photon counts with shot noise for multiplets centred at ``centers`` (any pixel shape)."""
    centers = np.asarray(centers, dtype=float)
    dip = odmr_dip(freqs, centers[..., None] + 0 * freqs, contrast, fwhm, isotope)
    return np.random.default_rng(seed).poisson(counts * (1 - dip)).astype(np.float64)


def expected_center_sigma(counts, contrast, fwhm, n_points, span):
    """Rough Cramer-Rao scale for a Lorentzian centre: fwhm / (contrast * sqrt(counts * points/span*fwhm))."""
    return fwhm / (contrast * np.sqrt(counts) * np.sqrt(n_points * fwhm / span))


def test_15n_doublet_pl_dips_recover_truth_within_reported_errors():
    rng = np.random.default_rng(1)
    truth = 2.870e9 + rng.uniform(-1.5e6, 1.5e6, size=(20, 25))
    fit = fit_odmr(FREQS, pl_cube(truth).astype(np.float32), hyperfine="15N")
    assert fit.center.shape == truth.shape and fit.center.dtype == np.float64
    assert fit.converged.all()
    pulls = (fit.center - truth) / fit.center_err
    # Standard errors are honest: the pulls have unit spread (500 pixels, loose bounds).
    assert 0.8 < np.std(pulls) < 1.25
    assert abs(np.mean(pulls)) < 0.2
    assert np.median(np.abs(fit.fwhm - 1e6)) < 0.05e6
    assert np.median(np.abs(fit.contrast - 0.02)) < 0.001
    assert np.median(np.abs(fit.baseline - 1e6)) < 1e3


def test_lock_in_peaks_with_zero_baseline():
    rng = np.random.default_rng(2)
    truth = 2.870e9 + rng.uniform(-1e6, 1e6, size=(6, 7))
    signal = 50.0 * odmr_dip(FREQS, truth[..., None] + 0 * FREQS, 1.0, 1e6, "15N")
    spectra = signal + rng.normal(0, 0.5, signal.shape)
    fit = fit_odmr(FREQS, spectra, hyperfine="15N")
    assert fit.converged.all()
    assert np.all(fit.amplitude > 0)
    assert np.median(np.abs(fit.amplitude - 50.0)) < 2.0
    assert np.max(np.abs(fit.center - truth)) < 5 * np.max(fit.center_err)
    # Contrast relative to a ~0 baseline means nothing and must not look like a number.
    assert np.all(np.isnan(fit.contrast))


def test_single_lorentzian_and_gaussian_models():
    truth = np.array([2.8685e9, 2.870e9, 2.8712e9])
    fit = fit_odmr(FREQS, pl_cube(truth, isotope=None))
    assert fit.converged.all()
    assert np.all(np.abs(fit.center - truth) < 5 * fit.center_err)
    f = FREQS
    gauss = 1e3 * (1 - 0.03 * np.exp(-4 * np.log(2) * (f - truth[:, None]) ** 2 / 0.8e6**2))
    gauss += np.random.default_rng(3).normal(0, 0.3, gauss.shape)
    g = fit_odmr(f, gauss, model="gaussian")
    assert g.converged.all()
    assert np.all(np.abs(g.center - truth) < 5 * g.center_err)
    assert np.all(np.abs(g.fwhm - 0.8e6) < 5 * g.fwhm_err)
    # The Lorentzian misfits a Gaussian line: its residual variance shows in larger errors.
    lz = fit_odmr(f, gauss)
    assert np.median(lz.center_err) > np.median(g.center_err)


def test_14n_triplet():
    freqs = np.linspace(2.862e9, 2.878e9, 121)
    truth = np.full((4,), 2.8703e9)
    fit = fit_odmr(freqs, pl_cube(truth, isotope="14N", fwhm=0.6e6, freqs=freqs), hyperfine="14N")
    assert fit.converged.all()
    assert np.all(np.abs(fit.center - truth) < 5 * fit.center_err)


def test_two_separated_lines_come_back_with_a_peak_axis():
    truth = np.array([[2.8665e9, 2.8738e9], [2.867e9, 2.873e9]])
    spectra = np.stack([pl_cube(t, isotope=None, seed=i).sum(axis=0) / 2 for i, t in enumerate(truth)])
    fit = fit_odmr(FREQS, spectra, n_peaks=2)
    assert fit.center.shape == (2, 2) and fit.fwhm.shape == (2, 2) and fit.baseline.shape == (2,)
    assert fit.converged.all()
    got = np.sort(fit.center, axis=-1)
    assert np.all(
        np.abs(got - truth) < 5 * np.take_along_axis(fit.center_err, np.argsort(fit.center, -1), -1)
    )


def test_doublet_center_is_between_the_lines_not_on_one_of_them():
    truth = np.array([2.8700e9])
    fit = fit_odmr(FREQS, pl_cube(truth), hyperfine="15N")
    assert abs(fit.center[0] - truth[0]) < 0.1 * HYPERFINE_15N_HZ


# --- bad input -------------------------------------------------------------------------------------


def test_nan_saturated_flat_and_missing_resonance_are_flagged_not_guessed():
    good = pl_cube(np.full(7, 2.870e9))
    cube = good.copy()
    cube[0, 10] = np.nan
    cube[1, 50] = np.inf
    cube[2] = 1e6  # flat
    cube[3] = np.random.default_rng(5).poisson(1e6, FREQS.size)  # noise, no dip
    cube[4] = pl_cube(np.array([2.8768e9]), isotope=None)[0]  # just beyond the sweep edge: a tail
    cube[5] = pl_cube(np.array([2.8800e9]), isotope=None)[0]  # far beyond: hardly a trace
    fit = fit_odmr(FREQS, cube, hyperfine="15N", saturation_level=None, min_delta_chi2=25)
    assert list(fit.reason[:4]) == [
        FitReason.NON_FINITE,
        FitReason.NON_FINITE,
        FitReason.FLAT,
        FitReason.NO_RESONANCE,
    ]
    # Only a tail of the line is in the sweep: either no significant line or one beyond the edge.
    edge = (FitReason.NO_RESONANCE, FitReason.OUTSIDE_SWEEP, FitReason.WIDTH_OUT_OF_RANGE)
    assert fit.reason[4] in edge
    assert fit.reason[5] in edge
    assert not fit.converged[:6].any() and fit.converged[6]
    for name in ("center", "fwhm", "amplitude", "baseline", "center_err"):
        assert np.all(np.isnan(getattr(fit, name)[:6])), name
        assert np.isfinite(getattr(fit, name)[6]), name


def test_saturated_pixels_from_integer_camera_data():
    counts = pl_cube(np.full(3, 2.870e9), contrast=0.1, counts=3e4).astype(np.uint16)
    counts[1, 40:45] = np.iinfo(np.uint16).max
    fit = fit_odmr(FREQS, counts, hyperfine="15N")
    assert fit.reason[1] == FitReason.SATURATED
    assert fit.converged[0] and fit.converged[2]
    explicit = fit_odmr(FREQS, counts.astype(float), hyperfine="15N", saturation_level=3.0e4)
    assert not explicit.converged.any()


def test_resonance_half_off_the_sweep_edge_is_rejected():
    freqs = np.linspace(2.8665e9, 2.8785e9, 101)  # lower line of the doublet sits at the edge
    fit = fit_odmr(freqs, pl_cube(np.array([2.8680e9]), freqs=freqs), hyperfine="15N")
    assert fit.reason[0] == FitReason.OUTSIDE_SWEEP and np.isnan(fit.center[0])


def test_pure_noise_is_almost_never_reported_as_a_resonance_with_the_detection_cut():
    noise = np.random.default_rng(7).normal(1e3, 1.0, size=(400, FREQS.size))
    fit = fit_odmr(FREQS, noise, hyperfine="15N", min_delta_chi2=25)
    assert fit.converged.mean() < 0.01
    # At the defaults (no detection cut) the statistic is there to cut on later: noise stays low.
    default = fit_odmr(FREQS, noise, hyperfine="15N")
    fitted = np.isfinite(default.delta_chi2)
    assert fitted.mean() > 0.9 and np.median(default.delta_chi2[fitted]) < 15


def realistic_cube(n_pix, seed=3):
    """Ordinary widefield data: 1.2-1.8 % contrast, 4e4-1.2e5 counts, 1.0-1.3 MHz lines, 20 MHz sweep."""
    from instrument.physics.nv import lorentzian

    rng = np.random.default_rng(seed)
    freqs = np.linspace(2.860e9, 2.880e9, 101)
    center = 2.870e9 + rng.uniform(-4e6, 4e6, n_pix)
    fwhm = rng.uniform(1.0e6, 1.3e6, n_pix)
    contrast = rng.uniform(0.012, 0.018, n_pix)
    counts = rng.uniform(4e4, 1.2e5, n_pix)
    mean = counts[:, None] * (1 - contrast[:, None] * lorentzian(freqs, center[:, None], fwhm[:, None]))
    return freqs, rng.poisson(mean).astype(np.float64), center, counts, contrast


def test_defaults_keep_realistic_snr_pixels_with_honest_errors():
    freqs, cube, truth, _, _ = realistic_cube(2000)
    fit = fit_odmr(freqs, cube)
    within = np.abs(fit.center - truth) < 400e3
    assert within.mean() > 0.98  # a 5-sigma amplitude rule kept only ~83 %
    strict = fit_odmr(freqs, cube, min_snr=5.0)
    assert strict.converged.mean() < fit.converged.mean() - 0.05
    ok = fit.converged
    pulls = (fit.center - truth)[ok] / fit.center_err[ok]
    assert 0.85 < np.std(pulls[np.abs(pulls) < 6]) < 1.2
    assert fit.options["min_snr"] == 0.0 and fit.options["max_center_err_fwhm"] == 0.5
    assert np.all(fit.delta_chi2[ok] > 0) and np.all(fit.residual_rms[ok] > 0)


def test_center_error_bound_and_width_range_are_stated_and_applied():
    freqs, cube, truth, _, _ = realistic_cube(300)
    tight = fit_odmr(freqs, cube, max_center_err_hz=60e3)
    assert np.all(tight.center_err[tight.converged] <= 60e3)
    assert np.any(tight.reason == FitReason.UNCERTAIN)
    narrow = fit_odmr(freqs, cube, fwhm_range_hz=(0.2e6, 0.6e6))  # the lines are 1.0-1.3 MHz wide
    assert np.mean(narrow.reason == FitReason.WIDTH_OUT_OF_RANGE) > 0.9
    assert np.all(narrow.fwhm[narrow.converged] <= 0.6e6)
    with pytest.raises(ValueError, match="fwhm_range_hz"):
        fit_odmr(freqs, cube, fwhm_range_hz=(1e6, 0.5e6))
    with pytest.raises(ValueError, match="unknown fit option"):
        from instrument.analysis.odmr import fit_options

        fit_options(min_snrr=3)


def test_poisson_maximum_likelihood_beside_least_squares():
    # Low counts, where photon statistics matter: 1000 counts per point, 10 % contrast.
    from instrument.physics.nv import lorentzian

    rng = np.random.default_rng(4)
    freqs = np.linspace(2.860e9, 2.880e9, 101)
    truth = 2.870e9 + rng.uniform(-3e6, 3e6, 400)
    mean = 1000.0 * (1 - 0.1 * lorentzian(freqs, truth[:, None], 1.2e6))
    counts = rng.poisson(mean).astype(np.float64)
    ls = fit_odmr(freqs, counts, precision="double")
    ml = fit_odmr(freqs, counts, estimator="poisson", precision="double")
    both = ls.converged & ml.converged
    assert both.mean() > 0.95
    pulls = (ml.center - truth)[both] / ml.center_err[both]
    core = np.abs(pulls) < 6  # a few fits (<1 %) land in a wrong local minimum, as least squares' do
    assert core.mean() > 0.98
    assert 0.8 < np.std(pulls[core]) < 1.25 and abs(np.mean(pulls[core])) < 0.2
    # Different estimators on the same data: close (within a standard error), not identical.
    diff = np.abs(ml.center - ls.center)[both] / ml.center_err[both]
    assert np.median(diff) < 0.5 and np.max(diff) > 1e-4
    assert abs(np.median(ml.baseline[both]) - 1000.0) < 2.0
    with pytest.raises(ValueError, match="photon counts"):
        fit_odmr(freqs, counts - 1100.0, estimator="poisson")
    with pytest.raises(ValueError, match="estimator"):
        fit_odmr(freqs, counts, estimator="huber")


@pytest.mark.parametrize(
    ("freqs", "shape", "kwargs", "match"),
    [
        (FREQS, (3, 100), {}, "last axis"),
        (FREQS[::-1].copy()[[0, 2, 1, *range(3, 101)]], (3, 101), {}, "strictly"),
        (np.array([1.0, 2.0]), (3, 2), {}, "at least 3"),
        (FREQS, (3, 101), {"model": "voigt"}, "unknown model"),
        (FREQS, (3, 101), {"n_peaks": 9}, "n_peaks"),
        (FREQS, (3, 101), {"hyperfine": "13C"}, "hyperfine"),
        (FREQS[:20], (3, 20), {"n_peaks": 8}, "cannot determine"),
    ],
)
def test_bad_arguments_raise_clear_errors(freqs, shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_odmr(freqs, np.ones(shape), **kwargs)


def test_descending_sweep_and_float32_agree_with_ascending_float64():
    truth = np.array([2.8695e9, 2.8704e9])
    spectra = pl_cube(truth)
    up = fit_odmr(FREQS, spectra, hyperfine="15N")
    down = fit_odmr(FREQS[::-1], spectra[:, ::-1].astype(np.float32), hyperfine="15N")
    np.testing.assert_allclose(down.center, up.center, atol=0.05 * up.center_err.max())


def test_double_precision_agrees_with_single():
    rng = np.random.default_rng(11)
    truth = 2.870e9 + rng.uniform(-1e6, 1e6, size=(30,))
    spectra = pl_cube(truth)
    single = fit_odmr(FREQS, spectra, hyperfine="15N")
    double = fit_odmr(FREQS, spectra, hyperfine="15N", precision="double")
    assert double.converged.all() and single.converged.all()
    np.testing.assert_allclose(single.center, double.center, atol=0.01 * double.center_err.min())
    np.testing.assert_allclose(single.center_err, double.center_err, rtol=1e-3)
    with pytest.raises(ValueError, match="precision"):
        fit_odmr(FREQS, spectra, precision="half")
