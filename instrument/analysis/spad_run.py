"""From a stored SPAD-array CW-ODMR run to per-pixel line parameters and expected sensitivity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instrument.analysis.odmr import OdmrFit, fit_odmr
from instrument.analysis.sensitivity import sensitivity_t_per_sqrt_hz
from instrument.storage.runs import StoredRun


@dataclass
class SpadOdmrResult:
    """Per-pixel fit of a 16x16 SPAD sweep; rates in counts/s, sensitivity in T/sqrt(Hz)."""

    frequencies_hz: np.ndarray
    counts: np.ndarray  # (rows, cols, F) summed counts per point
    fit: OdmrFit
    count_rate_hz: np.ndarray
    sensitivity_t_per_sqrt_hz: np.ndarray  # NaN where the fit failed

    @property
    def median_sensitivity_t_per_sqrt_hz(self) -> float:
        good = self.sensitivity_t_per_sqrt_hz[np.isfinite(self.sensitivity_t_per_sqrt_hz)]
        return float(np.median(good)) if good.size else float("nan")


def analyse_spad_run(run: StoredRun, frame_period_s: float, isotope: str | None = "15N") -> SpadOdmrResult:
    """Fit each SPAD pixel's dip and turn contrast, width and count rate into sensitivity (seed 003)."""
    params = run.metadata["sequence"]
    freqs = np.asarray(params["frequencies_hz"], dtype=float)
    counts = np.moveaxis(run.images("counts"), 0, -1)
    if np.isnan(counts).any():
        raise ValueError(f"run {run.run_id} is incomplete ({run.steps_done} of {len(freqs)} points stored)")
    fit = fit_odmr(freqs, counts, hyperfine=isotope)
    rate = fit.baseline / (params["frames_per_point"] * frame_period_s)
    ok = fit.converged & (fit.contrast > 0) & (fit.contrast < 1) & (rate > 0)
    sens = np.full(rate.shape, np.nan)
    sens[ok] = sensitivity_t_per_sqrt_hz(fit.contrast[ok], fit.fwhm[ok], rate[ok])
    return SpadOdmrResult(freqs, counts, fit, rate, sens)
