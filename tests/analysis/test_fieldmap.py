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
