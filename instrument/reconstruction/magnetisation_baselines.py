"""Trivial baselines and scores for in-plane magnetisation from B_NV maps (seed 002, issue 18).

A sceptic's yardsticks for the deep image prior (``dip.py``), on the same forward model (the thin-film
transfer tensor of ``dip.field_transfer`` projected on the NV axis, 2x zero padded):

- ``uniform_fit``: the best single in-plane direction on the support (two-parameter least squares).
- ``support_least_squares``: the regularised minimum-norm M on the support (LSQR on the FFT
  operator), i.e. what the data say with no prior beyond the support and |M| ~ Ms.
- ``core_fit``: position, out-of-plane moment and standoff of a point-like Mz source (a vortex core),
  the part of a vortex that does make a field.
- ``mean_cosine``: the score, mean cosine between recovered and true in-plane directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, lsqr

from instrument.reconstruction import dip


def _check_map_and_support(b_nv_t: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(b_nv_t, dtype=float)
    s = np.asarray(support, dtype=bool)
    if b.ndim != 2 or min(b.shape) < 2:
        raise ValueError(f"b_nv_t must be a 2-D field map, got shape {b.shape}")
    if s.shape != b.shape:
        raise ValueError(f"support must have the map's shape {b.shape}, got {s.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("b_nv_t contains NaN or inf; fill or crop bad pixels first")
    if not s.any():
        raise ValueError("support is empty; give the pixels where the magnetic material is")
    return b, s


def projected_kernel(shape: tuple[int, int], pixel_m: float, standoff_m: float, thickness_m: float,
                     nv_axis: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """K_c(k) (3, 2 rows, 2 cols) with B~_NV = sum_c K_c M~_c on the 2x padded grid, and that grid."""
    padded = (2 * shape[0], 2 * shape[1])
    axis = dip.nv_unit_vector() if nv_axis is None else np.asarray(nv_axis, dtype=float)
    transfer = dip.field_transfer(padded, pixel_m, standoff_m, thickness_m)
    return np.tensordot(axis, transfer, axes=(0, 0)), padded


def mean_cosine(m: np.ndarray, truth: np.ndarray, inside: np.ndarray) -> float:
    """Mean over ``inside`` of cos(angle) between the in-plane parts of ``m`` and ``truth``.

    Pixels where the reconstruction is zero count as 0 (no direction claimed). A random direction
    scores 0 on average; the right one 1.
    """
    inside = np.asarray(inside, dtype=bool)
    if not inside.any():
        raise ValueError("inside is empty; nothing to score")
    a, b = np.asarray(m, dtype=float)[:2], np.asarray(truth, dtype=float)[:2]
    dot = np.sum(a * b, axis=0)[inside]
    norm = (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))[inside]
    return float(np.mean(np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)))


def uniform_fit(b_nv_t: np.ndarray, support: np.ndarray, *, pixel_m: float, standoff_m: float,
                thickness_m: float, nv_axis: np.ndarray | None = None) -> np.ndarray:
    """Least-squares uniform in-plane M (2, rows, cols) on ``support``: B = Mx f_x + My f_y."""
    b, s = _check_map_and_support(b_nv_t, support)
    kernel, padded = projected_kernel(b.shape, pixel_m, standoff_m, thickness_m, nv_axis)
    sk = np.fft.fft2(s.astype(float), s=padded)
    rows, cols = b.shape
    columns = [np.fft.ifft2(kernel[c] * sk).real[:rows, :cols].ravel() for c in range(2)]
    coef, *_ = np.linalg.lstsq(np.stack(columns, axis=1), b.ravel(), rcond=None)
    return coef[:, None, None] * s


def support_least_squares(b_nv_t: np.ndarray, support: np.ndarray, *, pixel_m: float, standoff_m: float,
                          thickness_m: float, noise_rms_t: float, saturation_a_per_m: float,
                          nv_axis: np.ndarray | None = None, iterations: int = 200) -> np.ndarray:
    """Minimum-norm in-plane M (2, rows, cols) on ``support``: min |K M - b|^2/sigma^2 + |M/Ms|^2.

    The MAP estimate for white noise ``noise_rms_t`` and a Gaussian prior of width Ms per component;
    solved by LSQR on the FFT operator (no matrix is formed).
    """
    b, s = _check_map_and_support(b_nv_t, support)
    if noise_rms_t <= 0 or saturation_a_per_m <= 0:
        raise ValueError(f"noise_rms_t and saturation_a_per_m must be positive, got {noise_rms_t}, "
                         f"{saturation_a_per_m}")
    kernel, padded = projected_kernel(b.shape, pixel_m, standoff_m, thickness_m, nv_axis)
    kernel = kernel[:2] * (saturation_a_per_m / noise_rms_t)  # unknowns in Ms, data in sigma
    rows, cols = b.shape
    idx = np.flatnonzero(s)
    n = idx.size

    def forward(x: np.ndarray) -> np.ndarray:
        m = np.zeros((2, rows * cols))
        m[:, idx] = x.reshape(2, n)
        mk = np.fft.fft2(m.reshape(2, rows, cols), s=padded)
        return np.fft.ifft2((kernel * mk).sum(0)).real[:rows, :cols].ravel()

    def adjoint(y: np.ndarray) -> np.ndarray:
        yk = np.fft.fft2(y.reshape(rows, cols), s=padded)
        back = np.fft.ifft2(np.conj(kernel) * yk).real[:, :rows, :cols].reshape(2, -1)
        return back[:, idx].ravel()

    op = LinearOperator((rows * cols, 2 * n), matvec=forward, rmatvec=adjoint, dtype=float)
    x = lsqr(op, b.ravel() / noise_rms_t, damp=1.0, iter_lim=iterations)[0]
    m = np.zeros((2, rows * cols))
    m[:, idx] = x.reshape(2, n) * saturation_a_per_m
    return m.reshape(2, rows, cols)


@dataclass(frozen=True)
class CoreFit:
    """Point-like Mz source fitted to a B_NV map (pixel coordinates: col = x, row = y)."""

    x_px: float
    y_px: float
    moment_a_m2: float
    standoff_m: float
    residual_rms_t: float


def core_fit(b_nv_t: np.ndarray, *, pixel_m: float, thickness_m: float, standoffs_m: np.ndarray,
             nv_axis: np.ndarray | None = None) -> CoreFit:
    """Fit one Mz pixel (position, moment) at each trial standoff; keep the best (least residual).

    At each standoff the matched filter (FFT cross-correlation with the field of a unit Mz pixel)
    gives the best position and amplitude in one pass; a parabola through the neighbours refines
    the position below a pixel. The moment is the amplitude times pixel area and film thickness.
    """
    b = np.asarray(b_nv_t, dtype=float)
    if b.ndim != 2 or min(b.shape) < 3:
        raise ValueError(f"b_nv_t must be a 2-D field map of at least 3x3, got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("b_nv_t contains NaN or inf; fill or crop bad pixels first")
    standoffs = np.atleast_1d(np.asarray(standoffs_m, dtype=float))
    if standoffs.size == 0 or np.any(standoffs < 0):
        raise ValueError(f"standoffs_m must be a non-empty list of standoffs >= 0, got {standoffs_m}")
    rows, cols = b.shape
    bk = None
    best: CoreFit | None = None
    for z in standoffs:
        kernel, padded = projected_kernel(b.shape, pixel_m, float(z), thickness_m, nv_axis)
        if bk is None:
            bk = np.fft.fft2(b, s=padded)
        g = np.fft.ifft2(kernel[2]).real  # field of a unit Mz pixel at (0, 0), periodic
        corr = np.fft.ifft2(bk * np.conj(np.fft.fft2(g))).real[:rows, :cols]
        g2 = float(np.sum(g**2))
        r, c = np.unravel_index(int(np.argmax(np.abs(corr))), corr.shape)
        amp = corr[r, c] / g2
        residual = np.sqrt(max(float(np.sum(b**2)) - corr[r, c] ** 2 / g2, 0.0) / b.size)
        if best is None or residual < best.residual_rms_t:
            dy = _parabola(corr, r, c, axis=0)
            dx = _parabola(corr, r, c, axis=1)
            best = CoreFit(c + dx, r + dy, amp * pixel_m**2 * thickness_m, float(z), float(residual))
    assert best is not None
    return best


def _parabola(values: np.ndarray, r: int, c: int, axis: int) -> float:
    """Sub-pixel offset of the extremum of |values| at (r, c) along ``axis`` (0 at the border)."""
    n = values.shape[axis]
    i = r if axis == 0 else c
    if i == 0 or i == n - 1:
        return 0.0
    pick = (lambda j: values[j, c]) if axis == 0 else (lambda j: values[r, j])
    sign = np.sign(values[r, c])
    lo, mid, hi = sign * pick(i - 1), sign * pick(i), sign * pick(i + 1)
    curv = lo - 2 * mid + hi
    return float(0.5 * (lo - hi) / curv) if curv < 0 else 0.0
