"""From a stored CW-ODMR run to fitted resonance maps and the B_NV map of the coils (figures:
``instrument.services.report``).

A run of several sweeps (``sequences.sweep_order``) stores each step's sweep, configuration and
frequency index; the spectra are the average of the complete sweeps per configuration and
frequency. A sweep with any step missing (an abort, a crash) is excluded and named in
``CwFieldMap.sweeps``: in a random or interleaved order a partial sweep covers an uneven subset of
frequencies at uneven times, so averaging it in would weight frequencies unequally and bring back the
drift the order is meant to cancel. Runs stored before repeats existed are one sweep, I-off then
I-on, and analyse exactly as before."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from instrument.analysis.fieldmap import b_nv_from_centers
from instrument.analysis.lineshapes import multiplet, multiplet_offsets_hz
from instrument.analysis.odmr import OdmrFit
from instrument.analysis.runs import analyse_maps
from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.storage.runs import StoredRun

ANALYSIS_NAME = "analysis.h5"
BACKGROUNDS = ("mean", "gaussian", "polynomial", "masked-polynomial", "interpolate")
"""Background methods of the B_NV map (``background.subtract_background``; "masked-polynomial" is a
polynomial fitted outside ``background_mask``'s sample region)."""

log = logging.getLogger(__name__)


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
    drift: dict | None = None
    """Shift of each pass's PL image against the first (``DriftResult.as_metadata``), whether the
    cubes were shifted back (``corrected``) and the drift ``warnings``; None when not registered."""
    corrections: dict = field(default_factory=dict)
    """What was done besides the fit: binning, outlier refits, background method."""
    outlier_masks: dict | None = None
    """With the outlier refit: ``{off,on}_{flagged,replaced}`` (rows, cols) boolean maps."""
    sweeps: dict | None = None
    """Runs of several sweeps: ``complete`` sweep numbers, ``excluded`` partial sweeps (number: steps
    stored), ``not_run`` (planned sweeps with no step stored), the order, and
    ``per_sweep``/``spread``: the centres and B_NV fitted to each complete sweep's pixel-averaged
    spectra and their standard deviation over sweeps (a trend over sweeps is drift). None for a run
    of one sweep."""

    @property
    def warnings(self) -> list[str]:
        """Drift warnings an operator must see (a shift above a pixel, an unregistrable image)."""
        return list((self.drift or {}).get("warnings", []))

    @property
    def field_range_t(self) -> tuple[float, float]:
        good = self.b_nv_t[np.isfinite(self.b_nv_t)]
        if good.size == 0:
            return (float("nan"), float("nan"))
        return float(np.percentile(good, 0.5)), float(np.percentile(good, 99.5))

    @property
    def converged_fraction(self) -> float:
        return float(np.mean(self.converged))


def register_passes(spectra: np.ndarray, *, warn_px: float = 1.0, correct_above_px: float = 0.5,
                    reference_pl: np.ndarray | None = None,
                    pl_images: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Register the PL image (mean over frequency) of every pass (passes, rows, cols, F) to the first's,
    or to ``reference_pl`` (another run's PL image: a coil scan's first configuration) when given.
    ``pl_images`` (passes, rows, cols): the passes' PL images where the run measured them apart
    from the spectra (an intensity camera's MW-off frames), registered instead of the spectra's mean.

    The cubes are shifted back when some pass moved by more than ``correct_above_px`` (below it the
    interpolation would smooth the data more than the drift blurs it). Drift warnings (a shift above
    ``warn_px``, images without texture to register) are logged and returned in ``warnings``.
    """
    from instrument.analysis.drift import DriftWarning, correct_drift, register_sweeps

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DriftWarning)
        images = spectra.mean(axis=-1) if pl_images is None else np.asarray(pl_images, dtype=float)
        if reference_pl is not None:
            images = np.concatenate([np.asarray(reference_pl, dtype=images.dtype)[None], images])
        drift = register_sweeps(images, warn_px=warn_px)
    # drift.py's own shift warning says what to do; here it is done, so the message says so instead.
    messages = [str(w.message) for w in caught
                if issubclass(w.category, DriftWarning) and not str(w.message).startswith("sample drifted")]
    shifts = drift.shifts_px[1:] if reference_pl is not None else drift.shifts_px  # one row a pass
    distance = np.hypot(shifts[:, 0], shifts[:, 1])
    moved = float(distance.max())
    corrected = moved > correct_above_px
    if corrected:
        spectra = correct_drift(spectra, shifts)
    if drift.exceeded:
        worst = int(np.argmax(distance))
        messages.append(
            f"sample drifted {moved:.2f} px by pass {worst} (tolerance {warn_px} px); "
            + ("the passes were shifted back before the fit (pixels the shift uncovers are blank)"
               if corrected else "not corrected")
        )
    for message in messages:
        log.warning("%s", message)
    return spectra, {**drift.as_metadata(), "corrected": corrected, "exceeded": drift.exceeded,
                     "warn_px": warn_px, "warnings": messages,
                     "reference": "external PL image" if reference_pl is not None else "first pass"}


def analyse_cw_run(run: StoredRun, isotope: str | None = "15N", model: str = "lorentzian",
                   background_order: int | None = None, scheduler: object = None, *,
                   estimator: str = "least_squares", bin_factor: int = 1, outliers: bool = False,
                   background: str | None = None, background_mask: np.ndarray | None = None,
                   sigma_px: float = 10.0, drift: bool = True, drift_warn_px: float = 1.0,
                   correct_drift_above_px: float = 0.5, reference_pl: np.ndarray | None = None) -> CwFieldMap:
    """Fit every pixel of both sweeps of ``run`` and form B_NV = field(I-on) - field(I-off).

    Order: drift registration and correction, binning, fit, outlier refit, B_NV, background.

    Args:
        run: a stored CW-ODMR run.
        isotope: hyperfine multiplet of the NV nitrogen ("15N", "14N" or None for one line).
        model: line shape, "lorentzian" or "gaussian".
        background_order: order of the polynomial background (alone: a polynomial over the whole
            B_NV map, 1 a plane; with ``background`` "polynomial"/"masked-polynomial": its order).
        scheduler: dask scheduler for the fits (None: local threads; or a cluster address).
        estimator: "least_squares" or "poisson" (maximum likelihood for photon counts).
        bin_factor: sum ``bin_factor`` x ``bin_factor`` pixels before the fit (1: no binning).
        outliers: refit outlier pixels (``outliers.refit_outliers``) from their neighbours.
        background: one of ``BACKGROUNDS`` (None: only ``background_order``'s polynomial, if given).
        background_mask: (rows, cols) of the fitted (binned) map, True where the map is background;
            needed by "masked-polynomial" and "interpolate".
        sigma_px: the "gaussian" background's filter width in (binned) pixels.
        drift: register the passes' PL images and correct the drift (``register_passes``).
        reference_pl: register both passes to this PL image instead of the I-off pass (a coil scan
            aligns every configuration to its first, so the dictionary's maps line up).

    Raises:
        ValueError: the run holds no complete pair of sweeps, or an option is out of range.
    """
    params = run.metadata["sequence"]
    freqs = np.asarray(params["frequencies_hz"], dtype=float)
    if background is not None and background not in BACKGROUNDS:
        raise ValueError(f"unknown background method {background!r}; choose one of {', '.join(BACKGROUNDS)}")
    if background in ("masked-polynomial", "interpolate") and background_mask is None:
        raise ValueError(f"background {background!r} needs a mask of the sample region")
    if int(bin_factor) != bin_factor or bin_factor < 1:
        raise ValueError(f"binning factor must be a whole number >= 1, got {bin_factor}")
    images = run.images("signal")  # (steps, rows, cols)
    n = len(freqs)
    index, sweeps = sweep_index(run, images, n)
    spectra = np.stack([np.moveaxis(images[index[s]], 1, -1) for s in sweeps["complete"]])
    spectra = spectra.reshape(-1, *spectra.shape[2:])  # (sweeps x 2 passes, rows, cols, F)
    drift_info = None
    if drift:
        pl = None
        if params.get("camera") == "intensity":  # CameraCwSweep: its MW-off frames are the PL image
            ref = run.images("reference")  # the passes in the spectra's order: complete sweeps' I-off, I-on
            pl = np.concatenate([ref[index[s]].mean(axis=1) for s in sweeps["complete"]])
        spectra, drift_info = register_passes(spectra, warn_px=drift_warn_px,
                                              correct_above_px=correct_drift_above_px,
                                              reference_pl=reference_pl, pl_images=pl)
    n_complete = len(sweeps["complete"])
    passes = spectra.reshape(n_complete, 2, *spectra.shape[1:])
    spectra = passes.mean(axis=0) if n_complete > 1 else passes[0]
    sweep_info = None
    if sweeps["planned"] > 1:
        sweep_info = {**sweeps, **per_sweep_centres(freqs, passes, isotope, model)}
    if bin_factor > 1:
        from instrument.analysis.preprocess import bin_pixels

        spectra = np.stack([bin_pixels(s, int(bin_factor)) for s in spectra])
    fits = analyse_maps(freqs, spectra[1:], reference=spectra[0], hyperfine=isotope, model=model,
                        estimator=estimator, scheduler=scheduler)
    fit_on, fit_off = fits.fits[0], fits.reference
    corrections: dict = {"bin_factor": int(bin_factor), "estimator": estimator}
    if outliers:
        from instrument.analysis.outliers import refit_outliers

        refits = [refit_outliers(freqs, s, f) for s, f in ((spectra[0], fit_off), (spectra[1], fit_on))]
        fit_off, fit_on = refits[0].fit, refits[1].fit
        corrections["outliers"] = {label: {"flagged": int(r.flagged.sum()), "replaced": int(r.replaced.sum())}
                                   for label, r in zip(("off", "on"), refits, strict=True)}
        masks = {f"{label}_{kind}": getattr(r, kind) for label, r in zip(("off", "on"), refits, strict=True)
                 for kind in ("flagged", "replaced")}
    else:
        masks = None
    converged = np.asarray(fit_off.converged) & np.asarray(fit_on.converged)
    b_nv = np.where(converged, b_nv_from_centers(_first_line(fit_on), _first_line(fit_off)), np.nan)
    method = background or ("polynomial" if background_order is not None else None)
    if method is not None:
        from instrument.analysis.background import subtract_background

        b_nv = subtract_background(b_nv, "polynomial" if method == "masked-polynomial" else method,
                                   mask=None if method == "polynomial" else background_mask,
                                   order=1 if background_order is None else background_order,
                                   sigma_px=sigma_px)[0]
        corrections["background"] = method
    center_err = np.hypot(_first_line(fit_on, "center_err"), _first_line(fit_off, "center_err"))
    b_nv_err = np.where(converged, center_err / GAMMA_E_HZ_PER_T, np.nan)
    return CwFieldMap(freqs, spectra, np.asarray(fit_off.center), np.asarray(fit_on.center),
                      b_nv, b_nv_err, converged, fit_off, fit_on, drift_info, corrections, masks, sweep_info)


def sweep_index(run: StoredRun, images: np.ndarray, n_frequencies: int) -> tuple[np.ndarray, dict]:
    """Where each sweep's steps are: an (sweeps, 2, F) table of image indices (-1: not stored) and
    which sweeps are complete.

    The steps' ``sweep``/``config``/``frequency_index`` scalars say it (the steps are stored in run
    order, row k is image k); a run without them is one sweep, I-off then I-on.

    Raises:
        ValueError: no sweep of the run is complete, or the stored layout is not a CW run's.
    """
    params = run.metadata["sequence"]
    planned = int(params.get("repeats", 1))
    expected = planned * 2 * n_frequencies
    if images.shape[0] != expected:
        raise ValueError(f"run {run.run_id}: expected {expected} sweep steps, found {images.shape[0]}")
    stored = ~np.isnan(images.reshape(images.shape[0], -1)).any(axis=1)
    if "sweep" in run.scalars and "frequency_index" in run.scalars:
        columns = ("sweep", "config", "frequency_index")
        visits = np.stack([np.asarray(run.scalars[k], dtype=float) for k in columns], axis=1).astype(int)
    else:  # stored before repeats existed: one sweep, I-off then I-on, in frequency order
        visits = np.array([(0, c, i) for c in range(2) for i in range(n_frequencies)])
    visits = visits[:expected]
    index = np.full((planned, 2, n_frequencies), -1)
    for k, (sweep, config, i) in enumerate(visits):
        if stored[k]:
            index[sweep, config, i] = k
    whole = (index >= 0).all(axis=(1, 2))
    complete = [int(s) for s in np.flatnonzero(whole)]
    counts = (index >= 0).sum(axis=(1, 2))
    excluded = {int(s): int(counts[s]) for s in np.flatnonzero(~whole & (counts > 0))}
    not_run = int(np.count_nonzero(counts == 0))  # a runtime limit or an early stop: nothing stored
    if not complete:
        raise ValueError(
            f"run {run.run_id} is incomplete ({int(stored.sum())} of {expected} steps stored, no complete "
            "sweep); re-run the measurement to get both sweeps"
        )
    if excluded:
        log.warning("run %s: sweeps %s are incomplete and left out of the average", run.run_id,
                    ", ".join(f"{s + 1} ({k} of {2 * n_frequencies} steps)" for s, k in excluded.items()))
    info = {"planned": planned, "complete": complete, "excluded": {str(s): k for s, k in excluded.items()},
            "not_run": not_run,
            "order": params.get("order", "sequential"), "order_seed": params.get("order_seed")}
    return index, info


def per_sweep_centres(freqs: np.ndarray, passes: np.ndarray, isotope: str | None, model: str) -> dict:
    """Centres of each complete sweep's pixel-averaged I-off and I-on spectra, the B_NV they give, and
    their spread (standard deviation over sweeps, NaN below two sweeps).

    ``passes`` is (sweeps, 2, rows, cols, F). The field map varies over the image, so the averaged
    I-on line is broadened: these numbers follow drift from sweep to sweep, they are not the map.
    """
    mean = np.nanmean(passes, axis=(2, 3))  # (sweeps, 2, F)
    fits = analyse_maps(freqs, [mean[:, 1]], reference=mean[:, 0], hyperfine=isotope, model=model,
                        scheduler="synchronous")
    off, on = _first_line(fits.reference), _first_line(fits.fits[0])
    b = b_nv_from_centers(on, off)
    values = {"center_off_hz": off, "center_on_hz": on, "b_nv_t": b}
    per_sweep = {k: [float(x) for x in v] for k, v in values.items()}
    spread = {k: float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else float("nan")
              for k, v in values.items()}
    return {"per_sweep": per_sweep, "spread": spread}


def _first_line(fit: OdmrFit, name: str = "center") -> np.ndarray:
    """The first fitted line group's ``name`` map (B_NV follows the first line)."""
    value = np.asarray(getattr(fit, name))
    return value[..., 0] if fit.n_peaks > 1 else value


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
        f.attrs["corrections"] = json.dumps(result.corrections, default=str)
        for key, mask in (result.outlier_masks or {}).items():
            f[f"outliers/{key}"] = mask
        if result.sweeps is not None:
            f.attrs["sweeps"] = json.dumps(result.sweeps, default=str)
        if result.drift is not None:
            f["drift_shifts_px"] = np.asarray(result.drift["shifts_px"])
            f.attrs["drift"] = json.dumps(result.drift, default=str)
    return path


def fitted_curve(fit: OdmrFit, frequency_hz: np.ndarray, pixel: tuple[int, ...]) -> np.ndarray:
    """The fitted single-multiplet model of one pixel evaluated at ``frequency_hz``."""
    offsets = multiplet_offsets_hz(fit.hyperfine)
    shape = multiplet(fit.model, frequency_hz, fit.center[pixel], fit.fwhm[pixel], offsets)
    return fit.baseline[pixel] + fit.amplitude[pixel] * shape
