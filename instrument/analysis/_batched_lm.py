"""Levenberg-Marquardt over many small independent least-squares problems at once.

Every pixel is its own problem with the same number of parameters, so one numpy operation advances all
of them; the normal equations are solved with a Cholesky factorisation written over the batch axis,
which beats a per-matrix LAPACK call for the 4 to 25 parameters of an ODMR model.

Layout: parameters ``theta`` are (P, N), Jacobian columns (P, N, F), so every slice is contiguous.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ModelFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""theta (P, N) -> (model (N, F), jacobian (P, N, F))."""


@dataclass
class LmResult:
    """Solution of a batch of least-squares problems."""

    theta: np.ndarray
    """Best parameters, (P, N)."""
    covariance: np.ndarray
    """Parameter covariance scaled by the residual variance, (P, P, N); NaN where singular."""
    cost: np.ndarray
    """Sum of squared residuals, (N,)."""
    converged: np.ndarray
    """False where the iteration limit was reached first, (N,)."""


def cholesky_solve(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve a x = b for a batch of symmetric positive-definite matrices.

    Args:
        a: (P, P, N) matrices.
        b: (P, N) right-hand sides, or (P, Q, N) for several at once.

    Returns:
        x shaped like b, and a (N,) mask that is False where a is not positive definite.
    """
    p = a.shape[0]
    low = np.zeros_like(a)
    ok = np.ones(a.shape[-1], dtype=bool)
    for j in range(p):
        diag = a[j, j] - np.einsum("kn,kn->n", low[j, :j], low[j, :j])
        ok &= diag > 0
        root = np.sqrt(np.where(diag > 0, diag, 1.0))
        low[j, j] = root
        for i in range(j + 1, p):
            low[i, j] = (a[i, j] - np.einsum("kn,kn->n", low[i, :j], low[j, :j])) / root
    multi = b.ndim == 3
    y = np.empty_like(b)
    for i in range(p):
        acc = np.einsum("kn,k...n->...n", low[i, :i], y[:i]) if i else 0.0
        y[i] = (b[i] - acc) / (low[i, i][None] if multi else low[i, i])
    x = np.empty_like(b)
    for i in reversed(range(p)):
        acc = np.einsum("kn,k...n->...n", low[i + 1 :, i], x[i + 1 :]) if i < p - 1 else 0.0
        x[i] = (y[i] - acc) / (low[i, i][None] if multi else low[i, i])
    return x, ok


def _normal_equations(jac: np.ndarray, resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """J^T J as (P, P, N) and J^T r as (P, N), fused multiply-sums without temporaries."""
    p = jac.shape[0]
    jtj = np.empty((p, p, jac.shape[1]), dtype=jac.dtype)
    for i in range(p):
        for j in range(i, p):
            jtj[i, j] = jtj[j, i] = np.einsum("nf,nf->n", jac[i], jac[j])
    jtr = np.einsum("pnf,nf->pn", jac, resid)
    return jtj, jtr


def levenberg_marquardt(
    model: ModelFn,
    y: np.ndarray,
    theta0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    max_iter: int = 50,
    ftol: float = 1e-7,
    xtol: float = 1e-7,
) -> LmResult:
    """Minimise sum((y - model(theta))**2) for every row of y, with box bounds.

    Steps that leave the box are clipped onto it (projected Levenberg-Marquardt); pixels drop out of
    the working set as soon as they converge, so late iterations cost only what is still moving.

    Args:
        model: theta (P, M) -> (model (M, F), jacobian (P, M, F)) for any number M of pixels.
        y: (N, F) data.
        theta0: (P, N) start, inside the bounds.
        lower, upper: (P, N) or (P, 1) bounds.
        max_iter: iteration limit per pixel.
        ftol: relative decrease of the cost below which an accepted step ends the fit.
        xtol: step size, relative to the parameter, below which an accepted step ends the fit.
    """
    p, n = theta0.shape
    lower = np.broadcast_to(lower, (p, n))
    upper = np.broadcast_to(upper, (p, n))
    theta = np.clip(theta0, lower, upper)
    out_theta = theta.copy()
    out_cov = np.full((p, p, n), np.nan)
    out_cost = np.full(n, np.nan)
    out_conv = np.zeros(n, dtype=bool)

    active = np.arange(n)
    ya, lo, hi = y, lower, upper
    m, jac = model(theta)
    resid = ya - m
    cost = np.einsum("nf,nf->n", resid, resid)
    lam = np.full(n, 1e-3)
    jtj, jtr = _normal_equations(jac, resid)
    eye = np.arange(p)
    done = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        damped = jtj.copy()
        diag = jtj[eye, eye]
        damped[eye, eye] = diag + lam * np.maximum(diag, 1e-12 * diag.max(axis=0))
        step, ok = cholesky_solve(damped, jtr)
        trial = np.clip(theta + np.where(ok, step, 0.0), lo, hi)
        m_t, jac_t = model(trial)
        resid_t = ya - m_t
        cost_t = np.einsum("nf,nf->n", resid_t, resid_t)
        better = ok & (cost_t < cost)
        moved = np.abs(trial - theta)
        small_step = np.all(moved <= xtol * (np.abs(theta) + xtol), axis=0)
        small_gain = better & (cost - cost_t <= ftol * cost)
        done = small_gain | (small_step & ok) | (cost_t == 0)

        theta = np.where(better, trial, theta)
        resid = np.where(better[:, None], resid_t, resid)
        cost = np.where(better, cost_t, cost)
        lam = np.where(better, lam * 0.3, lam * 5.0)
        done |= lam > 1e12  # no downhill step left: a (local) minimum within the bounds
        jtj_t, jtr_t = _normal_equations(jac_t, resid_t)
        jtj = np.where(better, jtj_t, jtj)
        jtr = np.where(better, jtr_t, jtr)
        if np.any(done):
            idx = active[done]
            out_theta[:, idx] = theta[:, done]
            out_cost[idx] = cost[done]
            out_conv[idx] = True
            out_cov[:, :, idx] = _covariance(jtj[:, :, done], cost[done], y.shape[1] - p)
            keep = ~done
            active, theta, resid, cost, lam = active[keep], theta[:, keep], resid[keep], cost[keep], lam[keep]
            jtj, jtr, lo, hi, ya = jtj[:, :, keep], jtr[:, keep], lo[:, keep], hi[:, keep], ya[keep]
        if active.size == 0:
            break
    if active.size:
        out_theta[:, active] = theta
        out_cost[active] = cost
        out_cov[:, :, active] = _covariance(jtj, cost, y.shape[1] - p)
    return LmResult(out_theta, out_cov, out_cost, out_conv)


def _covariance(jtj: np.ndarray, cost: np.ndarray, dof: int) -> np.ndarray:
    """(J^T J)^-1 * s^2 with s^2 = cost / dof; NaN where J^T J is singular."""
    p, _, n = jtj.shape
    ident = np.broadcast_to(np.eye(p)[:, :, None], (p, p, n)).copy()
    inv, ok = cholesky_solve(jtj, ident)
    cov = inv * (cost / max(dof, 1))
    cov[:, :, ~ok] = np.nan
    return cov
