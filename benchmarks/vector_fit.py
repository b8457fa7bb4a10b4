"""Exact-Hamiltonian vector fit: batched fit_vector_field against per-pixel scipy least squares.

Synthetic cube: the eight lines of a {100} diamond at a 4 mT off-axis bias plus a random sample field
(40 uT per component), lines from an independent forward model (one scipy eigvalsh per NV axis and
pixel, Cartesian spin matrices), Lorentzian dips with Poisson noise. Printed side by side:

1. end to end, spectrum -> (B, D, E): ``fit_vector_field`` (batched eight-line fit, then a batched
   Levenberg-Marquardt on the exact eigenvalues) against a per-pixel ``scipy.optimize.least_squares``
   of the same exact model fitted directly to each spectrum (baseline, B, D, E, one width, eight
   amplitudes), started at the bias field (the same prior knowledge the batched fit gets);
2. the Hamiltonian stage alone, lines -> (B, D, E): batched against per-pixel least_squares;
3. accuracy: RMS field error of each, and of the first-order picture.

The per-pixel loops are timed on a random subset and extrapolated (linear in pixels).

Usage: python benchmarks/vector_fit.py [--size 40] [--per-pixel 40] [--points 261]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.linalg
from scipy.optimize import least_squares

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from instrument.analysis import hamiltonian as H  # noqa: E402
from instrument.analysis.fieldmap import vector_field_from_lines  # noqa: E402
from instrument.physics.constants import GAMMA_E_HZ_PER_T  # noqa: E402
from instrument.physics.nv import NV_AXES  # noqa: E402

B0 = 4e-3 * np.array([np.sin(0.6) * np.cos(0.3), np.sin(0.6) * np.sin(0.3), np.cos(0.6)])
FWHM, CONTRAST, COUNTS = 4e6, 0.02, 1e6
_EPS = np.zeros((3, 3, 3))
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _EPS[_i, _j, _k], _EPS[_i, _k, _j] = 1.0, -1.0
S_CART = [-1j * _EPS[k] for k in range(3)]
FRAMES = [
    (x / np.linalg.norm(x), np.cross(n, x / np.linalg.norm(x)), n)
    for n in NV_AXES
    for x in [np.array([0.0, 0.0, 1.0]) - n[2] * n]
]


def exact_lines_mhz(b_mt, d_mhz, e_mhz):
    """Independent forward model for one pixel: sorted eight lines (MHz) for B in mT."""
    s = S_CART
    out = []
    for x, y, n in FRAMES:
        bl = GAMMA_E_HZ_PER_T / 1e9 * np.array([b_mt @ x, b_mt @ y, b_mt @ n])
        h = d_mhz * s[2] @ s[2] + e_mhz * (s[0] @ s[0] - s[1] @ s[1]) + sum(bl[k] * s[k] for k in range(3))
        w = scipy.linalg.eigvalsh(h)
        out += [w[1] - w[0], w[2] - w[0]]
    return np.sort(out)


def make_cube(size, points, rng):
    n = size * size
    b = B0 + rng.normal(0, 40e-6, (n, 3))
    d = 2870.0 + rng.normal(0, 0.05, n)
    lines = np.array([exact_lines_mhz(1e3 * bi, di, 0.0) for bi, di in zip(b, d, strict=True)]) * 1e6
    freqs = np.linspace(2.74e9, 3.0e9, points)
    h2 = (0.5 * FWHM) ** 2
    dip = sum(CONTRAST * h2 / ((freqs - lines[:, i : i + 1]) ** 2 + h2) for i in range(8))
    spectra = rng.poisson(COUNTS * (1 - dip)).astype(np.float64)
    return freqs, spectra.reshape(size, size, points), b, lines


def spectrum_model(p, x_mhz):
    """baseline, Bx, By, Bz (mT), D, E (MHz), FWHM (MHz), eight amplitudes -> spectrum."""
    lines = exact_lines_mhz(p[1:4], p[4], p[5])
    h2 = (0.5 * p[6]) ** 2
    return p[0] + (p[7:, None] * h2 / ((x_mhz[None, :] - lines[:, None]) ** 2 + h2)).sum(axis=0)


def per_pixel_spectrum_fit(freqs, spectra):
    x = freqs / 1e6
    out = np.full((spectra.shape[0], 3), np.nan)
    for i, y in enumerate(spectra):
        base = np.median(y)
        p0 = np.r_[base, 1e3 * B0, 2870.0, 0.0, 5.0, np.full(8, -CONTRAST * base)]
        res = least_squares(lambda p, y=y: spectrum_model(p, x) - y, p0, x_scale="jac")
        if res.success:
            out[i] = res.x[1:4] / 1e3
    return out


def per_pixel_line_solve(lines_hz, errs_hz):
    out = np.full((lines_hz.shape[0], 3), np.nan)
    for i, (c, s) in enumerate(zip(lines_hz / 1e6, errs_hz / 1e6, strict=True)):
        order = np.argsort(c)  # the model's lines are sorted: match them in order
        c, s = c[order], s[order]
        p0 = np.r_[1e3 * B0, c.mean(), 0.0]
        res = least_squares(lambda p, c=c, s=s: (exact_lines_mhz(p[:3], p[3], p[4]) - c) / s, p0)
        out[i] = res.x[:3] / 1e3
    return out


def rms_ut(err):
    return 1e6 * float(np.sqrt(np.nanmean(np.sum(err**2, axis=-1))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=40)
    ap.add_argument("--points", type=int, default=261)
    ap.add_argument("--per-pixel", type=int, default=40, help="pixels for the per-pixel scipy loops")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    freqs, cube, b_true, _ = make_cube(args.size, args.points, rng)
    n = args.size * args.size
    print(f"cube {args.size}x{args.size}x{args.points}, 8 lines, 4 mT off-axis bias, "
          f"CPU cores: {os.cpu_count()}")

    t, c = time.perf_counter(), time.process_time()
    from instrument.analysis.odmr import fit_odmr

    lines = fit_odmr(freqs, cube, n_peaks=8)
    t_lines, c_lines = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    fit = H.solve_field_from_lines(lines.center, lines.center_err, bias_t=B0)
    t_solve, c_solve = time.perf_counter() - t, time.process_time() - c
    t_ours, c_ours = t_lines + t_solve, c_lines + c_solve
    ok = fit.converged.reshape(n)
    b_ours = fit.b_t.reshape(n, 3)

    pick = rng.choice(n, size=min(args.per_pixel, n), replace=False)
    t, c = time.perf_counter(), time.process_time()
    b_pp = per_pixel_spectrum_fit(freqs, cube.reshape(n, -1)[pick])
    t_pp, c_pp = time.perf_counter() - t, time.process_time() - c
    good_lines = np.flatnonzero(ok)
    n2 = min(4 * args.per_pixel, good_lines.size)
    pick2 = good_lines[rng.choice(good_lines.size, size=n2, replace=False)]
    t, c = time.perf_counter(), time.process_time()
    b_ls = per_pixel_line_solve(lines.center.reshape(n, 8)[pick2], lines.center_err.reshape(n, 8)[pick2])
    c_ls = time.process_time() - c

    print("\n1. end to end, spectrum -> B, D, E")
    print(f"  fit_vector_field (batched): {t_ours:7.2f} s wall, {c_ours:7.2f} s CPU for {n} pixels "
          f"= {n / c_ours:8.1f} pixels per CPU second (lines {c_lines:.2f} s, Hamiltonian {c_solve:.2f} s)")
    print(f"  per-pixel least_squares   : {t_pp:7.2f} s wall, {c_pp:7.2f} s CPU for {pick.size} pixels "
          f"= {pick.size / c_pp:8.1f} pixels per CPU second "
          f"(whole cube extrapolated: {n * c_pp / pick.size:.0f} s)")
    print(f"  SPEED RATIO (CPU time): {(n / c_ours) / (pick.size / c_pp):.1f}x; "
          f"wall clock {(n / t_ours) / (pick.size / t_pp):.1f}x")
    print("\n2. Hamiltonian stage alone, eight lines -> B, D, E")
    print(f"  batched LM on exact eigenvalues: {n / c_solve:10.0f} pixels per CPU second")
    print(f"  per-pixel least_squares        : {pick2.size / c_ls:10.0f} pixels per CPU second")
    print(f"  SPEED RATIO (CPU time): {(n / c_solve) / (pick2.size / c_ls):.1f}x")
    print("\n3. accuracy (RMS |B - truth|)")
    first, _ = vector_field_from_lines(lines.center.reshape(n, 8), B0)
    print(f"  batched exact fit, all pixels      : {rms_ut(b_ours - b_true):8.3f} uT "
          f"(median reported sigma per component {1e6 * np.nanmedian(fit.b_err_t):.3f} uT; "
          f"{ok.mean():.1%} of pixels OK)")
    print(f"  batched exact fit, subset          : {rms_ut(b_ours[pick] - b_true[pick]):8.3f} uT")
    print(f"  per-pixel spectrum fit, subset     : {rms_ut(b_pp - b_true[pick]):8.3f} uT "
          f"({int(np.isnan(b_pp[:, 0]).sum())} of {pick.size} failed)")
    print(f"  per-pixel line solve vs batched    : max |difference| "
          f"{1e6 * np.nanmax(np.abs(b_ls - b_ours[pick2])):.2e} uT (same optimum)")
    print(f"  first-order picture, all pixels    : {rms_ut(first - b_true):8.3f} uT")
    pulls = (b_ours - b_true)[ok] / fit.b_err_t.reshape(n, 3)[ok]
    print(f"  pulls (error / reported sigma) of the batched fit: std per component "
          f"{np.std(pulls, axis=0).round(2)}")


if __name__ == "__main__":
    main()
