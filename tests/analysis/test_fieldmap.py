"""Field maps from fitted centres."""

import numpy as np

from instrument.analysis.fieldmap import b_nv_from_centers
from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.physics.nv import resonance_hz


def test_positive_field_lowers_the_lower_line_and_gives_positive_b_nv():
    bias_t = 1e-3
    b_sample = np.array([[2e-6, -1e-6], [0.0, np.nan]])
    off = resonance_hz(np.full((2, 2), bias_t))
    on = resonance_hz(bias_t + b_sample)
    assert np.all(on[0, :1] < off[0, :1])
    b = b_nv_from_centers(on, off)
    np.testing.assert_allclose(b[:, :1], b_sample[:, :1], atol=1e-12)
    assert b[0, 1] < 0 and np.isnan(b[1, 1])


def test_upper_branch_sign():
    off = resonance_hz(1e-3, branch=+1)
    on = off + GAMMA_E_HZ_PER_T * 3e-6
    assert np.isclose(b_nv_from_centers(on, off, branch=+1), 3e-6)


def test_pair_gives_projection_independent_of_d_shift():
    from instrument.analysis.fieldmap import b_nv_from_pair

    b, shift = b_nv_from_pair(2.870e9 + 0.2e6 - 28.025e6, 2.870e9 + 0.2e6 + 28.025e6)
    assert np.isclose(b, 1e-3) and np.isclose(shift, 0.2e6)


def test_vector_field_recovers_a_random_field_and_flags_inconsistent_projections():
    from instrument.analysis.fieldmap import vector_field
    from instrument.physics.nv import NV_AXES

    rng = np.random.default_rng(0)
    field = rng.normal(0, 1e-6, (5, 6, 3))
    proj = field @ NV_AXES.T
    got, resid = vector_field(proj)
    np.testing.assert_allclose(got, field, atol=1e-15)
    assert np.all(resid < 1e-18)
    proj[0, 0, 2] += 1e-6  # one axis wrong: cannot be one vector
    _, resid = vector_field(proj)
    # The error's component outside the 3-D span of the axes: 1 uT * 1/2 spread over 4 axes (RMS).
    assert np.isclose(resid[0, 0], 0.25e-6) and np.all(resid.ravel()[1:] < 1e-18)


def test_vector_field_from_fitted_eight_lines_end_to_end():
    from instrument.analysis.fieldmap import vector_field_from_lines
    from instrument.analysis.odmr import fit_odmr
    from instrument.physics.nv import NV_AXES, lorentzian

    bias = 4e-3 * np.array([np.sin(0.6) * np.cos(0.3), np.sin(0.6) * np.sin(0.3), np.cos(0.6)])
    rng = np.random.default_rng(1)
    sample = rng.normal(0, 30e-6, (3, 4, 3))
    proj = (bias + sample) @ NV_AXES.T
    lines = np.concatenate([2.870e9 - 28.025e9 * proj, 2.870e9 + 28.025e9 * proj], axis=-1)
    freqs = np.linspace(2.75e9, 2.99e9, 241)
    spectra = 1e5 * (1 - sum(0.03 * lorentzian(freqs, lines[..., i : i + 1], 6e6) for i in range(8)))
    spectra = rng.poisson(spectra).astype(float)
    fit = fit_odmr(freqs, spectra, n_peaks=8)
    assert fit.converged.all()
    field, resid = vector_field_from_lines(fit.center, bias)
    # Each component is a combination of the projections with weights sqrt(3)/4 * (+-1), so its
    # standard error is ~0.87 of a projection's, sqrt(err_low^2 + err_up^2) / (2 gamma).
    sigma_proj = np.sqrt(2.0) * fit.center_err.max() / (2 * 28.025e9)
    assert np.max(np.abs(field - (bias + sample))) < 5 * 0.87 * sigma_proj
    assert sigma_proj < 10e-6  # and that is a useful precision against the 30 uT sample field
    assert np.all(resid < 5 * sigma_proj)


def test_plane_removal_recovers_the_signal_and_respects_mask_and_nan():
    from instrument.analysis.fieldmap import remove_polynomial_background

    rows, cols = np.indices((30, 40))
    plane = 1e-6 + 2e-8 * rows - 3e-8 * cols
    signal = np.zeros((30, 40))
    signal[10:20, 10:20] = 5e-6
    image = plane + signal
    image[0, 0] = np.nan
    corrected, background = remove_polynomial_background(image, order=1, mask=signal == 0)
    np.testing.assert_allclose(corrected[1:, 1:], signal[1:, 1:], atol=1e-15)
    assert np.isnan(corrected[0, 0]) and np.isfinite(background[0, 0])
    quad = image + 1e-9 * (rows - 15.0) ** 2
    corrected2, _ = remove_polynomial_background(quad, order=2, mask=signal == 0)
    np.testing.assert_allclose(corrected2[1:, 1:], signal[1:, 1:], atol=1e-14)


def test_field_map_bad_arguments():
    import pytest

    from instrument.analysis.fieldmap import remove_polynomial_background, vector_field

    with pytest.raises(ValueError, match="2-D"):
        remove_polynomial_background(np.zeros(5))
    with pytest.raises(ValueError, match="order"):
        remove_polynomial_background(np.zeros((4, 4)), order=7)
    with pytest.raises(ValueError, match="usable pixels"):
        remove_polynomial_background(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="projections"):
        vector_field(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="span"):
        vector_field(np.zeros((2, 2)), axes=np.array([[1.0, 0, 0], [2.0, 0, 0]]))
