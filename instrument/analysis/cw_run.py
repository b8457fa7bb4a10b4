"""From a stored CW-ODMR run to fitted resonance maps and the B_NV map of the coils (figures:
``instrument.services.report``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from instrument.analysis.lineshapes import multiplet, multiplet_offsets_hz
from instrument.analysis.odmr import OdmrFit
from instrument.analysis.runs import analyse_maps
from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.storage.runs import StoredRun

ANALYSIS_NAME = "analysis.h5"


@dataclass
class CwFieldMap:
    """Result of a CW-ODMR I-off / I-on analysis. Maps are (rows, cols); fields in T."""

    frequencies_hz: np.ndarray
    spectra: np.ndarray  # (2, rows, cols, F): I-off, I-on
    center_off_hz: np.ndarray
    center_on_hz: np.ndarray
    b_nv_t: np.ndarray  # NaN where either fit failed
    b_nv_err_t: np.ndarray  # one-sigma error from the fits' centre errors
    converged: np.ndarray
    fit_off: OdmrFit
    fit_on: OdmrFit

    @property
    def field_range_t(self) -> tuple[float, float]:
        good = self.b_nv_t[np.isfinite(self.b_nv_t)]
        if good.size == 0:
            return (float("nan"), float("nan"))
        return float(np.percentile(good, 0.5)), float(np.percentile(good, 99.5))

    @property
    def converged_fraction(self) -> float:
        return float(np.mean(self.converged))


def analyse_cw_run(run: StoredRun, isotope: str | None = "15N", model: str = "lorentzian",
                   background_order: int | None = None, scheduler: object = None) -> CwFieldMap:
    """Fit every pixel of both sweeps of ``run`` and form B_NV = field(I-on) - field(I-off).

    Args:
        run: a stored CW-ODMR run.
        isotope: hyperfine multiplet of the NV nitrogen ("15N", "14N" or None for one line).
        model: line shape, "lorentzian" or "gaussian".
        background_order: subtract a 2-D polynomial of this order from the B_NV map (1: plane).
        scheduler: dask scheduler for the fits (None: local threads; or a cluster address).

    Raises:
        ValueError: the run holds no complete pair of sweeps to fit.
    """
    params = run.metadata["sequence"]
    freqs = np.asarray(params["frequencies_hz"], dtype=float)
    images = run.images("signal")  # (2 F, rows, cols)
    n = len(freqs)
    if images.shape[0] != 2 * n:
        raise ValueError(f"run {run.run_id}: expected {2 * n} sweep steps, found {images.shape[0]}")
    if np.isnan(images).any():
        raise ValueError(
            f"run {run.run_id} is incomplete ({run.steps_done} of {2 * n} steps stored); "
            "re-run the measurement to get both sweeps"
        )
    spectra = np.moveaxis(images.reshape(2, n, *images.shape[1:]), 1, -1)
    fits = analyse_maps(freqs, spectra[1:], reference=spectra[0], hyperfine=isotope, model=model,
                        background_order=background_order, scheduler=scheduler)
    fit_on, fit_off = fits.fits[0], fits.reference
    converged = np.asarray(fit_off.converged) & np.asarray(fit_on.converged)
    b_nv = np.where(converged, fits.b_nv_t[0], np.nan)
    center_err = np.hypot(np.asarray(fit_on.center_err), np.asarray(fit_off.center_err))
    b_nv_err = np.where(converged, center_err / GAMMA_E_HZ_PER_T, np.nan)
    return CwFieldMap(freqs, spectra, np.asarray(fit_off.center), np.asarray(fit_on.center),
                      b_nv, b_nv_err, converged, fit_off, fit_on)


def save_analysis(result: CwFieldMap, run_dir: Path, name: str = ANALYSIS_NAME,
                  options: dict | None = None) -> Path:
    """Write the fitted maps (and the fit options used) beside the run's images."""
    path = Path(run_dir) / name
    with h5py.File(path, "w") as f:
        for key, value in (options or {}).items():
            f.attrs[f"option_{key}"] = "none" if value is None else value
        for label, fit in (("fit_off", result.fit_off), ("fit_on", result.fit_on)):
            for key, value in fit.arrays().items():
                f[f"{label}/{key}"] = value
        f["frequencies_hz"] = result.frequencies_hz
        f["center_off_hz"] = result.center_off_hz
        f["center_on_hz"] = result.center_on_hz
        f["b_nv_t"] = result.b_nv_t
        f["b_nv_err_t"] = result.b_nv_err_t
        f["converged"] = result.converged
        f.attrs["description"] = "CW-ODMR fit: B_NV = (f_off - f_on) / gamma_e on the lower branch"
        f.attrs["fit_options"] = json.dumps(result.fit_off.options)  # the defaults the fit used
    return path


def fitted_curve(fit: OdmrFit, frequency_hz: np.ndarray, pixel: tuple[int, ...]) -> np.ndarray:
    """The fitted single-multiplet model of one pixel evaluated at ``frequency_hz``."""
    offsets = multiplet_offsets_hz(fit.hyperfine)
    shape = multiplet(fit.model, frequency_hz, fit.center[pixel], fit.fwhm[pixel], offsets)
    return fit.baseline[pixel] + fit.amplitude[pixel] * shape
