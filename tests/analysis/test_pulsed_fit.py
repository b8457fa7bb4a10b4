"""Fits of pulsed measurements on synthetic data with known parameters and noise."""

import numpy as np
import pytest

from instrument.analysis.pulsed import (
    PulsedFitError,
    fit_echo,
    fit_pulsed_odmr,
    fit_rabi,
    fit_ramsey,
    fit_t1,
    rabi_pi_time_s,
)

A = 3.03e6
rng = np.random.default_rng(7)


def noisy(y, sigma):
    return y + rng.normal(0, sigma, y.shape), np.full(y.shape, sigma)


def within(fit, name, truth, n=4):
    """Within n standard errors of the truth, and the error itself is finite and meaningful."""
    err = fit.errors[name]
    assert np.isfinite(err) and 0 < err < 0.5 * abs(truth), (name, err, truth)  # inf would pass anything
    assert abs(fit.params[name] - truth) < n * err, (name, fit.params[name], truth)


def test_rabi_recovers_drive_and_detuning():
    t = np.arange(10e-9, 800e-9, 5e-9)
    rabi, det = 7e6, 0.4e6
    y = np.zeros_like(t)
    for off in (0, A):
        r = np.hypot(rabi, det + off)
        y += (rabi / r) ** 2 * (1 - np.cos(2 * np.pi * r * t) * np.exp(-t / 2e-6)) / 2
    y, s = noisy(1 - 0.05 * y / 2, 5e-4)
    fit = fit_rabi(t, y, s, detuning_hz=None)
    within(fit, "rabi_hz", rabi)
    within(fit, "detuning_hz", det)
    assert 0.5 < fit.reduced_chi2 < 1.6
    assert rabi_pi_time_s(fit) == pytest.approx(0.5 / np.hypot(fit["rabi_hz"], fit["detuning_hz"]))
    assert abs(fit["detuning_hz"]) < abs(fit["detuning_hz"] + A)  # the nearer line


def test_rabi_on_a_line_with_detuning_held_at_zero():
    t = np.arange(10e-9, 600e-9, 6e-9)
    rabi = 9.5e6
    y = sum((rabi / np.hypot(rabi, off)) ** 2 * (1 - np.cos(2 * np.pi * np.hypot(rabi, off) * t)) / 2
            for off in (0, A))
    y, s = noisy(1 - 0.04 * y / 2, 1e-3)
    fit = fit_rabi(t, y, s)
    within(fit, "rabi_hz", rabi)
    assert fit["detuning_hz"] == 0.0 and "detuning_hz" in fit.errors


def test_rabi_without_hyperfine():
    t = np.arange(10e-9, 600e-9, 4e-9)
    y, s = noisy(1 - 0.03 * (1 - np.cos(2 * np.pi * 5e6 * t)) / 2, 3e-4)
    fit = fit_rabi(t, y, s, hyperfine_hz=0.0)
    within(fit, "rabi_hz", 5e6)


def test_ramsey_recovers_t2_star_and_detuning():
    t = np.arange(0, 2e-6, 10e-9)
    d = 2.5e6  # from the multiplet centre
    f1 = -(d + A / 2)
    env = np.exp(-((t / 0.7e-6) ** 2))
    y = 0.97 + env * (0.01 * np.cos(2 * np.pi * f1 * t + 0.3) + 0.008 * np.cos(2 * np.pi * (f1 + A) * t - 1))
    y, s = noisy(y, 4e-4)
    fit = fit_ramsey(t, y, s)
    within(fit, "t2_star_s", 0.7e-6)
    within(fit, "detuning_hz", d)


def test_echo_and_t1():
    t = np.linspace(1e-6, 25e-6, 50)
    y, s = noisy(0.96 + 0.02 * np.exp(-((t / 9e-6) ** 2.5)), 3e-4)
    fit = fit_echo(t, y, s)
    within(fit, "t2_s", 9e-6)
    within(fit, "stretch", 2.5)
    tt = np.linspace(0, 6e-3, 40)
    y, s = noisy(0.89 + 0.1 * np.exp(-tt / 1.5e-3), 1e-3)
    within(fit_t1(tt, y, s), "t1_s", 1.5e-3)


def test_pulsed_odmr_finds_lower_line():
    f = 2.80e9 + np.linspace(-5e6, 8e6, 131)
    c, w = 2.8012e9, 0.5e6
    y = 1 - sum(0.02 * (w / 2) ** 2 / ((f - c - off) ** 2 + (w / 2) ** 2) for off in (0, A))
    y, s = noisy(y, 5e-4)
    fit = fit_pulsed_odmr(f, y, s)
    within(fit, "center_hz", c)
    within(fit, "fwhm_hz", w)


def test_missing_sigma_is_estimated_from_scatter():
    tt = np.linspace(0, 6e-3, 40)
    y, _ = noisy(0.89 + 0.1 * np.exp(-tt / 1.5e-3), 1e-3)
    fit = fit_t1(tt, y)
    assert fit.reduced_chi2 == pytest.approx(1.0)
    assert fit.sigma[0] == pytest.approx(1e-3, rel=0.3)
    within(fit, "t1_s", 1.5e-3)


@pytest.mark.parametrize(
    ("x", "y", "sigma", "match"),
    [
        ([1, 2, 3], [1, 2, 3], None, "too few"),
        (np.arange(10.0), np.r_[np.ones(9), np.nan], None, "finite"),
        (np.arange(10.0), np.ones(9), None, "equal length"),
        (np.arange(10.0), np.ones(10), np.ones(3), "shape of y"),
    ],
)
def test_bad_input(x, y, sigma, match):
    with pytest.raises(PulsedFitError, match=match):
        fit_t1(x, y, sigma)


def test_pure_noise_does_not_invent_a_t1_with_small_error():
    tt = np.linspace(0, 6e-3, 40)
    y, s = noisy(np.ones_like(tt), 1e-3)
    try:
        fit = fit_t1(tt, y, s)
    except PulsedFitError:
        return
    assert abs(fit.params["amplitude"]) < 5 * fit.errors["amplitude"] + 1e-2
