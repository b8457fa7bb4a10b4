"""Per-pixel ODMR fitting: vectorised fit_odmr against a per-pixel scipy curve_fit loop.

Runs both in the same process on the same synthetic cube (single Lorentzian dips with shot noise,
known truth) and prints throughput ratio, median centre errors, failure counts and peak memory
against the input size; then the same for an 8-line fit (four NV axes, both branches).

The single-line cube is ordinary widefield data (1.2-1.8 % contrast, 4e4-1.2e5 counts per point,
101 points over 20 MHz, 1.0-1.3 MHz lines); fit_odmr runs at its defaults (``fit_options()``).
curve_fit is timed on a random subset of pixels and its rate extrapolated to the whole cube
(it is a plain per-pixel loop, so its time is linear in the pixel count). It gets a well-scaled
problem (MHz around the sweep centre) and the usual heuristic start; a curve_fit pixel counts when it
returned finite errors, a dip and a centre inside the sweep. Accuracy: the share of the subset's
pixels whose centre is within 400 kHz of the truth (rejected pixels count as misses).

Usage: python benchmarks/odmr_fit.py [--size 200] [--points 101] [--curve-fit-pixels 1500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from timing import time_calls

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from instrument.analysis.odmr import fit_odmr  # noqa: E402
from instrument.physics.constants import D_HZ, GAMMA_E_HZ_PER_T  # noqa: E402
from instrument.physics.nv import NV_AXES, lorentzian  # noqa: E402

WITHIN_HZ = 400e3


def single_dip_cube(size: int, points: int, rng: np.random.Generator):
    """(size, size, points) photon counts of ordinary widefield data: one Lorentzian dip per pixel
    with 1.2-1.8 % contrast, 1.0-1.3 MHz FWHM, 4e4-1.2e5 counts per point, Poisson noise, a 20 MHz
    sweep."""
    freqs = np.linspace(2.860e9, 2.880e9, points)
    center = 2.870e9 + rng.uniform(-4e6, 4e6, (size, size))
    fwhm = rng.uniform(1.0e6, 1.3e6, (size, size))
    contrast = rng.uniform(0.012, 0.018, (size, size))
    counts = rng.uniform(4e4, 1.2e5, (size, size))
    dip = contrast[..., None] * lorentzian(freqs, center[..., None], fwhm[..., None])
    mean = counts[..., None] * (1 - dip)
    return freqs, rng.poisson(mean).astype(np.float64), center


def eight_line_cube(size: int, rng: np.random.Generator):
    """(size, size, 241) spectra with the 8 lines of a {100} diamond in a ~4 mT bias field."""
    freqs = np.linspace(2.75e9, 2.99e9, 241)
    bias = np.array(
        [4.0e-3 * np.sin(0.6) * np.cos(0.3), 4.0e-3 * np.sin(0.6) * np.sin(0.3), 4.0e-3 * np.cos(0.6)]
    )
    b = bias[None, None, :] + rng.normal(0, 20e-6, (size, size, 3))
    proj = np.abs(b @ NV_AXES.T)  # (size, size, 4)
    centers = np.concatenate([D_HZ - GAMMA_E_HZ_PER_T * proj, D_HZ + GAMMA_E_HZ_PER_T * proj], axis=-1)
    centers = np.sort(centers, axis=-1)
    fwhm = 6e6
    dip = sum(0.03 * lorentzian(freqs, centers[..., i : i + 1], fwhm) for i in range(8))
    spectra = rng.poisson(1e5 * (1 - dip)).astype(np.float64)
    return freqs, spectra, centers


def lorentz_model(x, *p):
    """Baseline plus n Lorentzians for curve_fit: p = [b, c1, w1, a1, c2, w2, a2, ...] (MHz)."""
    out = np.full_like(x, p[0])
    for i in range(1, len(p), 3):
        c, w, a = p[i : i + 3]
        out += a * (0.5 * w) ** 2 / ((x - c) ** 2 + (0.5 * w) ** 2)
    return out


def curve_fit_loop(freqs, spectra, p0_fn, n_peaks):
    """Plain per-pixel loop; returns centres (Hz, NaN where failed), wall and CPU seconds, exceptions.

    ``p0_fn(x, y, i)`` gives the start for spectrum ``i``. Run once with default BLAS threads and
    once with one thread; the faster run is the baseline (the conservative choice).
    """
    from threadpoolctl import threadpool_limits

    f0 = 0.5 * (freqs[0] + freqs[-1])
    x = (freqs - f0) / 1e6
    best = None
    for limit in (None, 1):
        centers = np.full((spectra.shape[0], n_peaks), np.nan)
        exceptions = 0
        with threadpool_limits(limits=limit, user_api="blas"):
            t, cpu = time.perf_counter(), time.process_time()
            for i, y in enumerate(spectra):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", OptimizeWarning)
                        p, cov = curve_fit(lorentz_model, x, y, p0=p0_fn(x, y, i))
                except (RuntimeError, ValueError):
                    exceptions += 1
                    continue
                err = np.sqrt(np.diag(cov))
                c, a = p[1::3], p[3::3]
                # What a per-pixel user keeps: a fit that returned finite errors and a centre in the sweep.
                ok = np.all(np.isfinite(err)) and np.all((c > x[0]) & (c < x[-1])) and np.all(a < 0)
                if ok:
                    centers[i] = np.sort(f0 + 1e6 * c)
            seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        if best is None or seconds < best[1]:
            best = (centers, seconds, cpu, exceptions)
    return best


def exact_optimum(freqs, spectra, start_hz):
    """Least-squares centres converged far past both fitters (float64, tolerances 1e-14), started
    from curve_fit's own solution: the reference for how close each fitter gets to its optimum."""
    f0 = 0.5 * (freqs[0] + freqs[-1])
    x = (freqs - f0) / 1e6
    out = np.full(spectra.shape[0], np.nan)
    for i, y in enumerate(spectra):
        if not np.isfinite(start_hz[i]):
            continue
        p0 = single_p0(x, y, i)
        p0[1] = (start_hz[i] - f0) / 1e6
        p, _ = curve_fit(lorentz_model, x, y, p0=p0, ftol=1e-14, xtol=1e-14, gtol=1e-14, maxfev=10000)
        out[i] = f0 + 1e6 * p[1]
    return out


def single_p0(x, y, i):
    base = np.median(y)
    return [base, x[np.argmin(y)], (x[-1] - x[0]) / 10, y.min() - base]


def timed(fn, repeats=2):
    """Result, best wall-clock seconds and best CPU seconds (all threads of this process)."""
    out, walls, cpus = time_calls(fn, repeats)
    return out, min(walls), min(cpus)


def peak_memory(fn) -> int:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--points", type=int, default=101)
    ap.add_argument("--curve-fit-pixels", type=int, default=1500)
    ap.add_argument("--eight-size", type=int, default=40)
    ap.add_argument("--eight-curve-fit-pixels", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    freqs, cube, truth = single_dip_cube(args.size, args.points, rng)
    n = truth.size
    shape = "x".join(map(str, cube.shape))
    print(f"cube {shape} float64 ({cube.nbytes / 1e6:.1f} MB), CPU cores: {os.cpu_count()}")
    fit, t_ours, cpu_ours = timed(lambda: fit_odmr(freqs, cube))
    ours_rate = n / t_ours
    cube32 = cube.astype(np.float32)
    _, t_ours32, cpu_ours32 = timed(lambda: fit_odmr(freqs, cube32))

    pick = rng.choice(n, size=min(args.curve_fit_pixels, n), replace=False)
    cf_centers, t_cf, cpu_cf, exceptions = curve_fit_loop(freqs, cube.reshape(n, -1)[pick], single_p0, 1)
    cf_rate = pick.size / t_cf
    cf_err = cf_centers[:, 0] - truth.ravel()[pick]
    ours_err = (fit.center - truth).ravel()
    sub_err = ours_err[pick]
    same = np.isfinite(cf_err) & np.isfinite(sub_err)
    gap = np.abs(fit.center.ravel()[pick] - cf_centers[:, 0])[same] / fit.center_err.ravel()[pick][same]

    print(f"\nsingle Lorentzian dip, {shape} with shot noise")
    print(f"  fit_odmr       : {t_ours:7.3f} s for {n} pixels = {ours_rate:9.0f} fits/s (float64 input)")
    print(f"  fit_odmr       : {t_ours32:7.3f} s for {n} pixels = {n / t_ours32:9.0f} fits/s (float32 input)")
    print(
        f"  curve_fit loop : {t_cf:7.3f} s for {pick.size} pixels = {cf_rate:9.0f} fits/s "
        f"(whole cube extrapolated: {n / cf_rate:.1f} s)"
    )
    print(
        f"  THROUGHPUT RATIO (wall clock): {ours_rate / cf_rate:.1f}x (float64 input), "
        f"{n / t_ours32 / cf_rate:.1f}x (float32)"
    )
    cf_cpu_rate = pick.size / cpu_cf
    print(
        f"  throughput ratio (CPU time, steadier on a shared machine): {n / cpu_ours / cf_cpu_rate:.1f}x "
        f"(float64 input), {n / cpu_ours32 / cf_cpu_rate:.1f}x (float32)"
    )
    print(f"    fit_odmr {n / cpu_ours:.0f} fits per CPU second, curve_fit {cf_cpu_rate:.0f}")
    share_ours = np.mean(np.abs(sub_err) < WITHIN_HZ)
    share_cf = np.mean(np.abs(cf_err) < WITHIN_HZ)
    print(
        f"  WITHIN 400 kHz of the truth on the same {pick.size} pixels: fit_odmr (defaults) "
        f"{share_ours:.2%}, curve_fit {share_cf:.2%}; fit_odmr on all pixels "
        f"{np.mean(np.abs(ours_err) < WITHIN_HZ):.2%}"
    )
    print(f"  fit_odmr defaults: {fit.options}")
    print(f"  centre error (kHz)            median |err|      RMS   ({pick.size} pixels for both, then all)")
    print(f"    fit_odmr                   {kilo(np.nanmedian(np.abs(sub_err)))}  {kilo(rms(sub_err))}")
    print(f"    curve_fit                  {kilo(np.nanmedian(np.abs(cf_err)))}  {kilo(rms(cf_err))}")
    print(f"    fit_odmr, all pixels       {kilo(np.nanmedian(np.abs(ours_err)))}  {kilo(rms(ours_err))}")
    print(
        f"  |fit_odmr - curve_fit| / centre_err: median {np.median(gap):.4f}, max {np.max(gap):.4f}"
        " (the same least-squares optimum)"
    )
    exact = exact_optimum(freqs, cube.reshape(n, -1)[pick], cf_centers[:, 0])
    sig = fit.center_err.ravel()[pick]
    ours_off = np.abs(fit.center.ravel()[pick] - exact) / sig
    cf_off = np.abs(cf_centers[:, 0] - exact) / sig
    print(
        f"  distance to the exact optimum / centre_err: fit_odmr median {np.nanmedian(ours_off):.1e}, "
        f"max {np.nanmax(ours_off):.1e}; curve_fit median {np.nanmedian(cf_off):.1e}, "
        f"max {np.nanmax(cf_off):.1e}"
    )
    print(
        f"  failed pixels on the subset: fit_odmr {int(np.sum(~fit.converged.ravel()[pick]))},"
        f" curve_fit {int(np.sum(np.isnan(cf_centers[:, 0])))} ({exceptions} exceptions);"
        f" fit_odmr on all pixels: {int(np.sum(~fit.converged))} {fit.reason_counts()}"
    )
    mem = peak_memory(lambda: fit_odmr(freqs, cube))
    mem32 = peak_memory(lambda: fit_odmr(freqs, cube32))
    print(
        f"  peak memory of fit_odmr: {mem / 1e6:.1f} MB = {mem / cube.nbytes:.2f}x the float64 input;"
        f" {mem32 / 1e6:.1f} MB = {mem32 / cube32.nbytes:.2f}x the float32 input"
    )

    # Eight lines: four NV axes, both branches.
    freqs8, cube8, truth8 = eight_line_cube(args.eight_size, rng)
    n8 = truth8.shape[0] * truth8.shape[1]
    fit8, t8, _ = timed(lambda: fit_odmr(freqs8, cube8, n_peaks=8), repeats=1)
    pick8 = rng.choice(n8, size=min(args.eight_curve_fit_pixels, n8), replace=False)
    truth8_flat = truth8.reshape(n8, 8)
    mid8 = 0.5 * (freqs8[0] + freqs8[-1])

    def p0_8(x, y, i):
        # A generous start for curve_fit: the true centres (a user would take them from the bias field).
        base = np.median(y)
        c = (truth8_flat[pick8[i]] - mid8) / 1e6
        return [base, *np.ravel([[ci, 5.0, (y.min() - base) / 2] for ci in c])]

    cf8, t_cf8, _, exc8 = curve_fit_loop(freqs8, cube8.reshape(n8, -1)[pick8], p0_8, 8)
    ours8 = np.sort(fit8.center.reshape(n8, 8), axis=-1)
    print(f"\neight lines (four NV axes), {truth8.shape[0]}x{truth8.shape[1]}x{freqs8.size}, 25 parameters")
    print(
        f"  fit_odmr       : {n8 / t8:9.0f} fits/s; curve_fit loop (started at the true centres): "
        f"{pick8.size / t_cf8:9.0f} fits/s; ratio {n8 / t8 / (pick8.size / t_cf8):.1f}x"
    )
    print(
        f"  median |centre error| on the same {pick8.size} pixels: fit_odmr "
        f"{kilo(np.nanmedian(np.abs(ours8[pick8] - truth8_flat[pick8])))} kHz, curve_fit "
        f"{kilo(np.nanmedian(np.abs(cf8 - truth8_flat[pick8])))} kHz; fit_odmr on all pixels "
        f"{kilo(np.nanmedian(np.abs(ours8 - truth8_flat)))} kHz"
    )
    print(
        f"  failed: fit_odmr {int(np.sum(~fit8.converged))} of {n8} {fit8.reason_counts()},"
        f" curve_fit {int(np.sum(np.isnan(cf8[:, 0])))} of {pick8.size} ({exc8} exceptions)"
    )


def kilo(value_hz: float) -> str:
    return f"{value_hz / 1e3:9.2f}"


def rms(err: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean(err**2)))


if __name__ == "__main__":
    main()
