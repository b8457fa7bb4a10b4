"""Exact NV Hamiltonian vector fit: against an independent forward model, at a 4 mT off-axis bias."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from instrument.analysis import hamiltonian as H
from instrument.analysis.fieldmap import vector_field_from_lines
from instrument.physics.nv import NV_AXES, lorentzian

GAMMA = 28.025e9
B0 = 4e-3 * np.array([np.sin(0.6) * np.cos(0.3), np.sin(0.6) * np.sin(0.3), np.cos(0.6)])  # off-axis


def reference_lines(b_t, d_hz, e_hz):
    """Independent forward model: Cartesian spin-1 matrices (S_k)_ij = -i eps_kij, one scipy
    eigvalsh per NV axis and pixel. Returns (N, 8) sorted frequencies."""
    eps = np.zeros((3, 3, 3))
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[i, j, k], eps[i, k, j] = 1.0, -1.0
    s = [-1j * eps[k] for k in range(3)]
    out = []
    for b, d, e in zip(np.atleast_2d(b_t), np.atleast_1d(d_hz), np.atleast_1d(e_hz), strict=True):
        lines = []
        for n in NV_AXES:
            x = np.array([0.0, 0.0, 1.0]) - n[2] * n
            x /= np.linalg.norm(x)
            y = np.cross(n, x)
            bl = GAMMA * np.array([b @ x, b @ y, b @ n])
            h = d * s[2] @ s[2] + e * (s[0] @ s[0] - s[1] @ s[1]) + sum(bl[k] * s[k] for k in range(3))
            w = scipy.linalg.eigvalsh(h)
            lines += [w[1] - w[0], w[2] - w[0]]
        out.append(np.sort(lines))
    return np.array(out)


def test_exact_lines_match_an_independent_diagonalisation_and_differ_from_first_order():
    rng = np.random.default_rng(0)
    b = B0 + rng.normal(0, 0.5e-3, (20, 3))
    d = 2.870e9 + rng.normal(0, 1e5, 20)
    e = rng.uniform(0, 2e6, 20)
    ours = np.sort(H.transition_frequencies_hz(b, d, e).reshape(20, 8), axis=1)
    np.testing.assert_allclose(ours, reference_lines(b, d, e), atol=1.0)  # 1 Hz
    first = np.sort(H.first_order_frequencies_hz(B0).ravel())
    exact = np.sort(H.transition_frequencies_hz(B0).ravel())
    assert np.max(np.abs(exact - first)) > 3e6  # "several MHz off" at 4 mT off-axis


def test_exact_fit_recovers_b_to_the_noise_floor_where_first_order_cannot():
    rng = np.random.default_rng(1)
    n = 600
    b = B0 + rng.normal(0, 30e-6, (n, 3))
    d = 2.870e9 + rng.normal(0, 30e3, n)
    lines = reference_lines(b, d, np.zeros(n))
    sigma = 15e3
    meas = lines + rng.normal(0, sigma, lines.shape)
    fit = H.solve_field_from_lines(meas, np.full_like(meas, sigma), bias_t=B0)
    assert fit.converged.all() and fit.ambiguity is None
    err = fit.b_t - b
    pulls = err / fit.b_err_t
    assert np.all(np.abs(np.mean(pulls, axis=0)) < 0.1)
    assert np.all((np.std(pulls, axis=0) > 0.85) & (np.std(pulls, axis=0) < 1.15))
    noise_floor = np.median(fit.b_err_t)
    assert noise_floor < 1e-6  # 15 kHz line noise: well below a microtesla
    first, _ = vector_field_from_lines(meas, B0)
    assert np.median(np.linalg.norm(first - b, axis=1)) > 10 * noise_floor  # ~8 uT vs ~0.5 uT
    np.testing.assert_allclose(np.std((fit.d_hz - d) / fit.d_err_hz), 1.0, atol=0.15)
    assert 2.0 < np.mean(fit.chi2) < 4.0  # 3 degrees of freedom (E fitted)


def test_without_a_bias_the_field_is_one_of_the_48_equivalents_and_the_fit_says_so():
    rng = np.random.default_rng(2)
    b = B0 + rng.normal(0, 20e-6, (50, 3))
    lines = reference_lines(b, np.full(50, 2.870e9), np.zeros(50))
    fit = H.solve_field_from_lines(lines, np.full_like(lines, 10e3))
    assert fit.converged.all() and "48 signed permutations" in fit.ambiguity
    med = np.median(fit.b_t, axis=0)
    assert med[0] >= med[1] >= med[2] >= 0
    # The same field up to a signed permutation of its components, pixel by pixel.
    np.testing.assert_allclose(np.sort(np.abs(fit.b_t), axis=1), np.sort(np.abs(b), axis=1), atol=2e-6)
    # A bias picks the orientation: the true one, or its reverse for a reversed bias.
    np.testing.assert_allclose(H.solve_field_from_lines(lines, np.full_like(lines, 10e3), bias_t=B0).b_t,
                               b, atol=2e-6)
    np.testing.assert_allclose(H.solve_field_from_lines(lines, np.full_like(lines, 10e3), bias_t=-B0).b_t,
                               -b, atol=2e-6)


def cube_with_eight_lines(
    size, rng, *, fwhm=4e6, contrast=0.02, counts=2e5, d_map=None, isotope=None, points=261
):
    n = size * size
    b = B0 + rng.normal(0, 40e-6, (n, 3))
    d = np.full(n, 2.870e9) if d_map is None else d_map.ravel()
    lines = reference_lines(b, d, np.zeros(n))
    freqs = np.linspace(2.74e9, 3.0e9, points)
    offsets = {None: [0.0], "15N": [-1.515e6, 1.515e6]}[isotope]
    dip = sum(
        contrast / len(offsets) * lorentzian(freqs, lines[:, i : i + 1] + off, fwhm)
        for i in range(8)
        for off in offsets
    )
    spectra = rng.poisson(counts * (1 - dip)).astype(np.float64).reshape(size, size, -1)
    return freqs, spectra, b.reshape(size, size, 3)


def test_vector_fit_from_spectra_gives_b_and_a_temperature_map_from_d():
    rng = np.random.default_rng(3)
    size = 10
    warm = np.zeros((size, size))
    warm[:, size // 2 :] = 2.0  # kelvin
    d_map = 2.870e9 + H.TEMPERATURE_COEFF_HZ_PER_K * warm
    freqs, spectra, b = cube_with_eight_lines(size, rng, d_map=d_map)
    fit = H.fit_vector_field(freqs, spectra, bias_t=B0)
    ok = fit.converged
    assert ok.mean() > 0.95 and fit.b_t.shape == (size, size, 3)
    pulls = (fit.b_t - b)[ok] / fit.b_err_t[ok]
    assert np.all(np.std(pulls, axis=0) < 1.3) and np.all(np.abs(np.mean(pulls, axis=0)) < 0.4)
    dt = fit.temperature_shift_k()
    step = np.nanmedian(dt[:, size // 2 :]) - np.nanmedian(dt[:, : size // 2])
    assert abs(step - 2.0) < 5 * np.nanmedian(fit.d_err_hz) / 74.2e3 + 0.2
    assert fit.options["lines"]["n_peaks"] == 8


def test_vector_fit_with_15n_hyperfine_doublets():
    rng = np.random.default_rng(4)
    freqs, spectra, b = cube_with_eight_lines(5, rng, fwhm=1.0e6, contrast=0.03, isotope="15N", points=1301)
    fit = H.fit_vector_field(freqs, spectra, bias_t=B0, hyperfine="15N")
    ok = fit.converged
    assert fit.line_fit.hyperfine == "15N", fit.line_fit.reason_counts()
    assert ok.mean() > 0.9
    assert np.all(np.abs(fit.b_t - b)[ok] < 5 * fit.b_err_t[ok] + 1e-7)


def test_bad_lines_and_bad_input_are_flagged_or_refused():
    rng = np.random.default_rng(5)
    b = B0 + rng.normal(0, 20e-6, (4, 3))
    lines = reference_lines(b, np.full(4, 2.870e9), np.zeros(4))
    errs = np.full_like(lines, 10e3)
    lines[1, 3] = np.nan  # a rejected line fit
    lines[2, 2] += 5e6  # a line that belongs to no field
    fit = H.solve_field_from_lines(lines, errs, bias_t=B0)
    assert fit.reason[0] == H.VectorReason.OK
    assert fit.reason[1] == H.VectorReason.LINES_FAILED and np.all(np.isnan(fit.b_t[1]))
    assert fit.reason[2] == H.VectorReason.POOR_FIT
    with pytest.raises(ValueError, match="shape"):
        H.solve_field_from_lines(lines[:, :6], errs[:, :6])
    with pytest.raises(ValueError, match="bias_t"):
        H.solve_field_from_lines(lines, errs, bias_t=np.zeros(3))


def test_bias_reversal_separates_remanent_and_induced_fields():
    rng = np.random.default_rng(6)
    remanent = rng.normal(0, 1e-6, (8, 8, 3))
    induced = rng.normal(0, 1e-6, (8, 8, 3))
    br, bi = H.separate_remanent_induced(remanent + induced, remanent - induced)
    np.testing.assert_allclose(br, remanent, atol=1e-15)
    np.testing.assert_allclose(bi, induced, atol=1e-15)
    with pytest.raises(ValueError, match="shape"):
        H.separate_remanent_induced(remanent, induced[:4])
