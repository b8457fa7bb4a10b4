"""PyTorch backend of the batched Levenberg-Marquardt (``fit_odmr(..., backend="torch")``).

The same problem as ``_batched_lm.levenberg_marquardt`` with the ``MultipletModel`` lines: every
pixel is its own least-squares problem, all advanced by one tensor operation. Differences, chosen
for an accelerator: float64 throughout, the full (N, F, P) Jacobian in memory, every pixel evaluated
in every iteration (finished pixels are masked, not compacted: on a GPU compaction costs more than
it saves), batched ``torch.linalg.solve_ex`` for the damped normal equations. Convergence rules and
the damping schedule are the numpy version's, so both stop within ~0.01 standard errors of the same
optimum. torch is imported here only, inside the function.
"""

from __future__ import annotations

import math

import numpy as np

from instrument.analysis._batched_lm import LmResult

_FOUR_LN2 = 4.0 * math.log(2.0)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _model_and_jacobian(torch, shape, x, offsets, k, theta):
    """theta (N, P) -> model (N, F), Jacobian (N, F, P)."""
    n = theta.shape[0]
    f = x.shape[0]
    base = theta[:, 0:1]
    jac = torch.empty((n, f, 1 + 3 * k), dtype=theta.dtype, device=theta.device)
    jac[:, :, 0] = 1.0
    model = base.expand(n, f).clone()
    m = len(offsets)
    for p in range(k):
        c = theta[:, 1 + p : 2 + p]
        w = theta[:, 1 + k + p : 2 + k + p]
        a = theta[:, 1 + 2 * k + p : 2 + 2 * k + p]
        g = torch.zeros((n, f), dtype=theta.dtype, device=theta.device)
        dc = torch.zeros_like(g)
        dw = torch.zeros_like(g)
        for off in offsets:
            d = x[None, :] - c - off
            if shape == "lorentzian":
                h2 = 0.25 * w * w
                line = h2 / (d * d + h2)
                g += line
                dc += (8.0 / (w * w)) * d * line * line
                dw += (2.0 / w) * (line - line * line)
            else:
                line = torch.exp(-_FOUR_LN2 * d * d / (w * w))
                g += line
                dc += (2.0 * _FOUR_LN2 / (w * w)) * d * line
                dw += (2.0 * _FOUR_LN2 / (w * w * w)) * d * d * line
        g, dc, dw = g / m, dc / m, dw / m
        model += a * g
        jac[:, :, 1 + p] = a * dc
        jac[:, :, 1 + k + p] = a * dw
        jac[:, :, 1 + 2 * k + p] = g
    return model, jac


def levenberg_marquardt_torch(*args, device: str | None = None, **kwargs) -> LmResult:
    """Batched projected Levenberg-Marquardt in torch; arguments and result as the numpy version's
    (theta0, lower, upper: (P, N); y: (N, F)). On the CPU torch runs on one thread for the call:
    its small batched kernels gain nothing from threads on a shared machine and lost 10x to
    contention in a measurement on two cores (the process-wide setting is restored after)."""
    import torch

    dev = device or default_device()
    if dev != "cpu":
        return _lm(*args, device=dev, **kwargs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _lm(*args, device=dev, **kwargs)
    finally:
        torch.set_num_threads(threads)


def _lm(
    shape: str,
    x: np.ndarray,
    offsets: np.ndarray,
    k: int,
    y: np.ndarray,
    theta0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    max_iter: int = 50,
    chi2_tol: float = 1e-4,
    device: str = "cpu",
) -> LmResult:
    import torch

    dev = torch.device(device)
    dt = torch.float64
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64), device=dev)
    lo = torch.as_tensor(np.broadcast_to(lower, theta0.shape).T.copy(), dtype=dt, device=dev)
    hi = torch.as_tensor(np.broadcast_to(upper, theta0.shape).T.copy(), dtype=dt, device=dev)
    theta = torch.clamp(torch.as_tensor(theta0.T.copy(), dtype=dt, device=dev), lo, hi)
    offs = [float(o) for o in offsets]
    n, p = theta.shape
    dof = max(yt.shape[1] - p, 1)

    def evaluate(th):
        model, jac = _model_and_jacobian(torch, shape, xt, offs, k, th)
        r = yt - model
        return r, jac, (r * r).sum(dim=1)

    resid, jac, cost = evaluate(theta)
    jtj = torch.einsum("nfp,nfq->npq", jac, jac)
    jtr = torch.einsum("nfp,nf->np", jac, resid)
    lam = torch.full((n,), 1e-3, dtype=dt, device=dev)
    nu = torch.full((n,), 2.0, dtype=dt, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    conv = torch.zeros(n, dtype=torch.bool, device=dev)
    eye = torch.eye(p, dtype=dt, device=dev)
    for _ in range(max_iter):
        if bool(done.all()):
            break
        diag = torch.diagonal(jtj, dim1=1, dim2=2)
        floor = 1e-12 * diag.max(dim=1, keepdim=True).values
        damped = jtj + (lam[:, None] * torch.maximum(diag, floor))[:, :, None] * eye
        step, info = torch.linalg.solve_ex(damped, jtr)
        ok = (info == 0) & torch.isfinite(step).all(dim=1) & ~done
        step = torch.where(ok[:, None], step, torch.zeros_like(step))
        predicted = 2.0 * (step * jtr).sum(1) - torch.einsum("np,npq,nq->n", step, jtj, step)
        settled = ok & (predicted <= chi2_tol * cost / dof)
        step = torch.clamp(theta + step, lo, hi) - theta
        theta = torch.where(settled[:, None], theta + step, theta)
        done |= settled
        conv |= settled
        ok &= ~settled
        trial = theta + step
        resid_t, jac_t, cost_t = evaluate(trial)
        better = ok & (cost_t < cost)
        small = (torch.abs(trial - theta) <= 1e-9 * (torch.abs(theta) + 1e-9)).all(dim=1)
        finished = (better & (cost - cost_t <= chi2_tol * cost_t / dof)) | (small & ok) | (ok & (cost_t == 0))
        gain = (step * jtr).sum(1)
        promised = 2.0 * gain - torch.einsum("np,npq,nq->n", step, jtj, step)
        rho = torch.where(promised > 0, (cost - cost_t) / promised, torch.zeros_like(cost))
        shrink = torch.clamp(1.0 - (2.0 * torch.clamp(rho, 0.0, 1.0) - 1.0) ** 3, min=1.0 / 3.0)
        active = ~done
        lam = torch.where(active & better, lam * shrink, torch.where(active, lam * nu, lam))
        nu = torch.where(active & better, torch.full_like(nu, 2.0), torch.where(active, nu * 2.0, nu))
        theta = torch.where(better[:, None], trial, theta)
        cost = torch.where(better, cost_t, cost)
        resid = torch.where(better[:, None], resid_t, resid)
        jac = torch.where(better[:, None, None], jac_t, jac)
        jtj = torch.einsum("nfp,nfq->npq", jac, jac)
        jtr = torch.einsum("nfp,nf->np", jac, resid)
        finished |= active & (lam > 1e12)
        finished &= active
        done |= finished
        conv |= finished
    # Covariance (J^T J)^-1 s^2, NaN where singular.
    chol, info = torch.linalg.cholesky_ex(jtj)
    inv = torch.cholesky_inverse(chol)
    cov = inv * (cost / dof)[:, None, None]
    cov[info != 0] = float("nan")
    return LmResult(
        theta.T.cpu().numpy(),
        np.moveaxis(cov.cpu().numpy(), 0, -1),
        cost.cpu().numpy(),
        conv.cpu().numpy(),
        max_iter,
    )
