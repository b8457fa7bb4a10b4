"""Seed-003 CW-ODMR sensitivity model (eq. 1-8)."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.analysis.sensitivity import (
    NVDiamond,
    contrast,
    count_rate_hz,
    linewidth_hz,
    model_sensitivity_t_per_sqrt_hz,
    optimum,
    sensitivity_t_per_sqrt_hz,
)


def test_paper_optimum_about_90_nt_per_sqrt_hz_at_0_15_mhz():
    best = optimum()
    assert 80e-9 < best.sensitivity_t_per_sqrt_hz < 100e-9  # paper: about 90 nT/sqrt(Hz)
    assert 0.12e6 < best.linewidth_hz < 0.17e6  # paper: 0.15 MHz
    # the optimum lies below the 1 Mcps point at s = 7e-3 (paper, section VIII)
    assert 1e-3 < best.saturation < 7e-3 and best.count_rate_hz < 1e6
    assert 0 < best.rabi_rad_s / (2 * np.pi) < 1e6


def test_operating_point_of_the_paper():
    assert count_rate_hz(7e-3) == pytest.approx(1e6)
    # unbroadened line: 1 / (pi T2*)
    assert linewidth_hz(0.0, 1e-9) == pytest.approx(1 / (np.pi * 10e-6), rel=1e-3)


def test_eq1_from_measured_line_parameters():
    # 4 / (3 sqrt 3) / 28.025 GHz/T * 1 MHz / (0.01 * 1000) = 2.7457e-6 T/sqrt(Hz)
    eta = sensitivity_t_per_sqrt_hz(contrast=0.01, linewidth_hz=1e6, count_rate_hz=1e6)
    assert eta == pytest.approx(4 / (3 * np.sqrt(3)) / 28.025e9 * 1e6 / (0.01 * 1e3))
    # scaling: linear in width, inverse in contrast, inverse square root in rate
    assert sensitivity_t_per_sqrt_hz(0.02, 1e6, 4e6) == pytest.approx(eta / 4)
    np.testing.assert_allclose(sensitivity_t_per_sqrt_hz(np.array([0.01, 0.02]), 1e6, 1e6), [eta, eta / 2])


def test_contrast_saturates_with_rabi_and_broadening_grows():
    s = 5e-3
    c = contrast(2 * np.pi * np.array([1e3, 1e4, 1e5, 1e6]), s)
    assert np.all(np.diff(c) > 0)
    nv = NVDiamond()
    gamma_p = nv.gamma_p_inf * s / (1 + s)
    limit = 0.5 * (nv.alpha - nv.beta) * gamma_p / ((nv.alpha + nv.beta) * nv.gamma1 + nv.alpha * gamma_p)
    assert c[-1] == pytest.approx(limit, rel=1e-3)
    w = linewidth_hz(2 * np.pi * np.array([1e3, 1e5, 1e6]), s)
    assert np.all(np.diff(w) > 0)


def test_too_much_power_hurts():
    best = optimum()
    eta = best.sensitivity_t_per_sqrt_hz
    assert model_sensitivity_t_per_sqrt_hz(best.rabi_rad_s * 10, best.saturation) > eta
    assert model_sensitivity_t_per_sqrt_hz(best.rabi_rad_s, best.saturation * 100) > eta


@pytest.mark.parametrize("kwargs,name", [
    ({"contrast": 0.0, "linewidth_hz": 1e6, "count_rate_hz": 1e6}, "contrast"),
    ({"contrast": 1.5, "linewidth_hz": 1e6, "count_rate_hz": 1e6}, "contrast"),
    ({"contrast": 0.01, "linewidth_hz": -1.0, "count_rate_hz": 1e6}, "linewidth_hz"),
    ({"contrast": 0.01, "linewidth_hz": 1e6, "count_rate_hz": float("nan")}, "count_rate_hz"),
])
def test_bad_measurements_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sensitivity_t_per_sqrt_hz(**kwargs)


def test_bad_saturation_is_named():
    with pytest.raises(ValueError, match="saturation"):
        count_rate_hz(-1.0)


def test_both_readings_of_gamma2_star_and_the_orientation_fraction():
    from instrument.analysis.sensitivity import NVDiamond, optimum

    assert optimum(NVDiamond()).sensitivity_t_per_sqrt_hz * 1e9 == pytest.approx(84.7, abs=0.5)
    one_over = optimum(NVDiamond(dephasing="1/T2*")).sensitivity_t_per_sqrt_hz
    assert one_over * 1e9 == pytest.approx(64.8, abs=0.5)
    quarter = optimum(NVDiamond(orientation_fraction=0.25)).sensitivity_t_per_sqrt_hz
    assert quarter / optimum(NVDiamond()).sensitivity_t_per_sqrt_hz == pytest.approx(4.0, rel=0.01)
    with pytest.raises(ValueError, match="dephasing"):
        NVDiamond(dephasing="T2*")
    with pytest.raises(ValueError, match="orientation_fraction"):
        NVDiamond(orientation_fraction=0.0)
