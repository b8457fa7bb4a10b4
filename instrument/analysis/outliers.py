"""Outlier pixels of a fitted map, and their refit from the neighbours' parameters.

A pixel is an outlier when its fit is unlike the rest of the map: a reduced chi-square (residual
RMS squared over the baseline, which for photon counts is the Poisson variance) above a percentile,
or a width or contrast outside a percentile band, or a fit that was rejected although the spectrum
was usable (not converged, uncertain, outside the sweep, width out of range). Such pixels are
refitted starting from the mean parameters of their good neighbours; a refit is kept when it
converges with a width and contrast inside the bands (the chi-square may stay high: the spectrum's
defect is still there, and the pixel's ``residual_rms`` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instrument.analysis.odmr import FitReason, OdmrFit, refit_from

REFITTABLE = (
    FitReason.NOT_CONVERGED,
    FitReason.UNCERTAIN,
    FitReason.OUTSIDE_SWEEP,
    FitReason.WIDTH_OUT_OF_RANGE,
    FitReason.NO_RESONANCE,
    FitReason.SINGULAR,
)


@dataclass(frozen=True)
class OutlierRules:
    chi2_percentile: float = 99.5
    width_percentiles: tuple[float, float] = (0.5, 99.5)
    contrast_percentiles: tuple[float, float] = (0.5, 99.5)


def _peak_mean(a: np.ndarray, n_peaks: int) -> np.ndarray:
    return a if n_peaks == 1 else np.nanmean(a, axis=-1)


def thresholds(fit: OdmrFit, rules: OutlierRules = OutlierRules()) -> dict[str, tuple[float, float]]:
    """Percentile bands of the converged pixels (reduced chi-square, FWHM, contrast)."""
    ok = np.asarray(fit.converged)
    chi2 = (fit.residual_rms**2 / np.abs(fit.baseline))[ok]
    width = _peak_mean(fit.fwhm, fit.n_peaks)[ok]
    contrast = _peak_mean(np.abs(fit.amplitude), fit.n_peaks)[ok]
    if chi2.size < 10:
        raise ValueError(f"only {chi2.size} converged pixels: too few for percentile thresholds")
    return {
        "chi2": (-np.inf, float(np.nanpercentile(chi2, rules.chi2_percentile))),
        "fwhm": tuple(float(v) for v in np.nanpercentile(width, rules.width_percentiles)),
        "amplitude": tuple(float(v) for v in np.nanpercentile(contrast, rules.contrast_percentiles)),
    }


def outlier_mask(fit: OdmrFit, limits: dict[str, tuple[float, float]]) -> np.ndarray:
    """True where a converged pixel is outside the bands, or a usable spectrum's fit was rejected."""
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {
            "chi2": fit.residual_rms**2 / np.abs(fit.baseline),
            "fwhm": _peak_mean(fit.fwhm, fit.n_peaks),
            "amplitude": _peak_mean(np.abs(fit.amplitude), fit.n_peaks),
        }
        odd = np.zeros(fit.reason.shape, dtype=bool)
        for name, (lo, hi) in limits.items():
            odd |= fit.converged & ((values[name] < lo) | (values[name] > hi))
    return odd | np.isin(fit.reason, [int(r) for r in REFITTABLE])


def neighbour_start(fit: OdmrFit, bad: np.ndarray, size: int = 3) -> dict[str, np.ndarray]:
    """Mean parameters of the good pixels in a ``size`` x ``size`` window around each pixel."""
    from scipy.ndimage import uniform_filter

    good = np.asarray(fit.converged) & ~bad
    weight = uniform_filter(good.astype(float), size, mode="nearest")
    start = {}
    for name in ("baseline", "center", "fwhm", "amplitude"):
        a = np.asarray(getattr(fit, name), dtype=float)
        peak_axes = a.shape[2:] if a.ndim > 2 else ()
        w = weight.reshape(weight.shape + (1,) * len(peak_axes))
        g = good.reshape(good.shape + (1,) * len(peak_axes))
        filled = np.where(g, a, 0.0)
        sizes = (size, size) + (1,) * len(peak_axes)
        with np.errstate(invalid="ignore", divide="ignore"):
            start[name] = uniform_filter(filled, sizes, mode="nearest") / w
    return start


@dataclass
class OutlierRefit:
    fit: OdmrFit
    """The map with the accepted refits merged in."""
    flagged: np.ndarray
    """Pixels found to be outliers."""
    replaced: np.ndarray
    """Flagged pixels whose refit was accepted."""
    limits: dict


def refit_outliers(
    freqs: np.ndarray, spectra: np.ndarray, fit: OdmrFit, *, rules: OutlierRules = OutlierRules(),
    size: int = 3, **options
) -> OutlierRefit:
    """Find outliers of a 2-D fit of ``spectra`` (rows, cols, F) and refit them from their neighbours.

    ``options`` are the fit options (default: those ``fit`` was made with).
    """
    spectra = np.asarray(spectra)
    if spectra.ndim != 3 or spectra.shape[:2] != fit.reason.shape:
        raise ValueError(f"need (rows, cols, F) spectra matching the fit's {fit.reason.shape} pixels")
    limits = thresholds(fit, rules)
    bad = outlier_mask(fit, limits)
    opts = {**(fit.options or {}), **options}
    merged = OdmrFit(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(fit).items()})
    replaced = np.zeros_like(bad)
    start = neighbour_start(fit, bad, size)
    rows, cols = np.nonzero(bad & np.isfinite(start["baseline"]))
    if rows.size:
        pick = {k: v[rows, cols] for k, v in start.items()}
        new = refit_from(freqs, spectra[rows, cols], pick, **opts)
        # The spectrum's defect (a glitch, a hot sample) stays after the refit, so its chi-square
        # may stay high: a refit is kept when it converges with a width and depth like the map's.
        shape_only = {k: v for k, v in limits.items() if k != "chi2"}
        accept = new.converged & ~outlier_mask(new, shape_only)
        for name, value in new.arrays().items():
            target = getattr(merged, name)
            target[rows[accept], cols[accept]] = value[accept]
        replaced[rows[accept], cols[accept]] = True
    return OutlierRefit(merged, bad, replaced, limits)
