"""The in-place fit kernel against the reference line shapes and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.analysis._batched_lm import cholesky_solve, levenberg_marquardt
from instrument.analysis._multiplet_model import MultipletModel
from instrument.analysis.lineshapes import line_with_derivatives, multiplet
from instrument.physics.nv import HYPERFINE_OFFSETS_HZ

X = np.linspace(-1.0, 1.0, 41)


def random_theta(k, n, rng):
    centers = rng.uniform(-0.5, 0.5, (k, n))
    widths = rng.uniform(0.1, 0.4, (k, n))
    amps = rng.uniform(-3, -0.5, (k, n))
    return np.vstack([rng.normal(0, 1, (1, n)), centers, widths, amps])


@pytest.mark.parametrize("shape", ["lorentzian", "gaussian"])
@pytest.mark.parametrize(("k", "isotope"), [(1, None), (1, "15N"), (3, "14N"), (2, None)])
def test_model_matches_reference_and_jacobian_matches_finite_differences(shape, k, isotope):
    rng = np.random.default_rng(0)
    offsets = HYPERFINE_OFFSETS_HZ[isotope] / 6e6
    n = 5
    theta = random_theta(k, n, rng)
    model = MultipletModel(shape, X, offsets, k, capacity=n)
    out = np.empty((n, X.size))
    jac = np.empty((3 * k, n, X.size))
    scales = model.evaluate(theta, out, jac)
    ref = theta[0][:, None] + sum(
        theta[1 + 2 * k + p][:, None]
        * multiplet(shape, X[None], theta[1 + p][:, None], theta[1 + k + p][:, None], offsets)
        for p in range(k)
    )
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    full_jac = scales[1:, :, None] * jac
    for i in range(1, theta.shape[0]):
        h = 1e-6
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        out_up, out_down = np.empty_like(out), np.empty_like(out)
        model.evaluate(up, out_up, np.empty_like(jac))
        model.evaluate(down, out_down, np.empty_like(jac))
        np.testing.assert_allclose(full_jac[i - 1], (out_up - out_down) / (2 * h), rtol=1e-5, atol=1e-6)


def test_line_derivatives_match_finite_differences():
    for shape in ("lorentzian", "gaussian"):
        c, w, h = 0.1, 0.3, 1e-7
        _, dc, dw = line_with_derivatives(shape, X, c, w)
        g_c = (
            line_with_derivatives(shape, X, c + h, w)[0] - line_with_derivatives(shape, X, c - h, w)[0]
        ) / (2 * h)
        g_w = (
            line_with_derivatives(shape, X, c, w + h)[0] - line_with_derivatives(shape, X, c, w - h)[0]
        ) / (2 * h)
        np.testing.assert_allclose(dc, g_c, atol=1e-6)
        np.testing.assert_allclose(dw, g_w, atol=1e-6)


def test_batched_cholesky_solves_and_reports_indefinite_matrices():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 6, 50))
    a = np.einsum("ikn,jkn->ijn", m, m) + 0.1 * np.eye(6)[:, :, None]
    a[:, :, 7] = -np.eye(6)  # not positive definite
    b = rng.normal(size=(6, 50))
    x, ok = cholesky_solve(a, b)
    assert not ok[7] and ok[np.arange(50) != 7].all()
    good = ok
    np.testing.assert_allclose(np.einsum("ijn,jn->in", a, x)[:, good], b[:, good], atol=1e-9)


def test_lm_recovers_exact_parameters_without_noise_and_respects_bounds():
    k = 1
    rng = np.random.default_rng(2)
    truth = random_theta(k, 20, rng)
    model = MultipletModel("lorentzian", X, np.array([0.0]), k, capacity=20)
    y = np.empty((20, X.size))
    model.evaluate(truth, y, np.empty((3, 20, X.size)))
    start = truth * np.array([[1.0], [1.0], [1.3], [0.8]]) + np.array([[0.1], [0.03], [0], [0]])
    lower = np.array([[-np.inf], [-2.0], [0.01], [-np.inf]])
    upper = np.array([[np.inf], [2.0], [4.0], [0.0]])
    res = levenberg_marquardt(model, y, start, lower, upper)
    assert res.converged.all()
    np.testing.assert_allclose(res.theta, truth, atol=1e-6)
    capped = levenberg_marquardt(model, y, start, lower, np.array([[np.inf], [2.0], [0.05], [0.0]]))
    assert np.all(capped.theta[2] <= 0.05)
