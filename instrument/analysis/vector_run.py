"""Vector analysis of a stored CW-ODMR run whose sweep holds all eight NV lines.

Each stored sweep (one, or I-off and I-on) is fitted with the exact-Hamiltonian
``hamiltonian.fit_vector_field``; with two sweeps the coils' vector field is B(I-on) - B(I-off), in
which the bias and any remanent field cancel. Results go to an HDF5 file beside the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from instrument.analysis.hamiltonian import VectorFit, fit_vector_field
from instrument.storage.runs import StoredRun


@dataclass
class VectorRunResult:
    """Per-sweep vector fits of a run, and the coils' field when the run has I-off and I-on sweeps."""

    frequencies_hz: np.ndarray
    fits: list[VectorFit]
    """One per stored sweep, in order (I-off first)."""
    delta_b_t: np.ndarray | None
    """(rows, cols, 3) B(I-on) - B(I-off) in T; NaN where either fit failed; None for one sweep."""
    drift: dict | None = None
    """Per-sweep shift of the PL image against the first sweep (``drift.DriftResult.as_metadata``)
    and whether the cubes were shifted back; None for one sweep."""

    @property
    def converged_fraction(self) -> float:
        ok = np.logical_and.reduce([f.converged for f in self.fits])
        return float(np.mean(ok))


def run_spectra(run: StoredRun) -> tuple[np.ndarray, np.ndarray]:
    """(F,) sweep and (sweeps, rows, cols, F) spectra of a stored CW-ODMR run."""
    freqs = np.asarray(run.metadata["sequence"]["frequencies_hz"], dtype=float)
    images = run.images("signal")
    n = freqs.size
    if images.shape[0] % n or images.shape[0] == 0:
        raise ValueError(f"run {run.run_id}: {images.shape[0]} steps are not whole sweeps of {n} points")
    if np.isnan(images).any():
        raise ValueError(f"run {run.run_id} is incomplete; the vector fit needs every sweep complete")
    sweeps = images.shape[0] // n
    return freqs, np.moveaxis(images.reshape(sweeps, n, *images.shape[1:]), 1, -1)


def analyse_vector_run(
    run: StoredRun,
    *,
    bias_t: np.ndarray | None = None,
    hyperfine: str | None = None,
    correct_drift_above_px: float = 0.5,
    **options,
) -> VectorRunResult:
    """Fit B, D, E per pixel for every sweep of ``run`` (see ``fit_vector_field`` for options).

    With several sweeps, each sweep's PL image is registered to the first's; when some sweep moved
    by more than ``correct_drift_above_px`` pixels, the cubes are shifted back before the fits
    (pixels the shift uncovers are NaN and come back LINES_FAILED). A drift above a pixel warns.

    Raises:
        ValueError: incomplete run, or a sweep that cannot hold eight lines.
    """
    freqs, spectra = run_spectra(run)
    drift_info = None
    if spectra.shape[0] > 1:
        from instrument.analysis.drift import correct_drift, register_sweeps

        drift = register_sweeps(spectra.mean(axis=-1))
        moved = float(np.max(np.hypot(drift.shifts_px[:, 0], drift.shifts_px[:, 1])))
        corrected = moved > correct_drift_above_px
        if corrected:
            spectra = correct_drift(spectra, drift.shifts_px)
        drift_info = {**drift.as_metadata(), "corrected": corrected}
    fits = [fit_vector_field(freqs, s, bias_t=bias_t, hyperfine=hyperfine, **options) for s in spectra]
    delta = None
    if len(fits) == 2:
        if bias_t is None:
            # Both sweeps must report the same symmetry-equivalent field: take I-off's as the bias.
            ref = np.nanmedian(fits[0].b_t.reshape(-1, 3), axis=0)
            fits[1] = fit_vector_field(freqs, spectra[1], bias_t=ref, hyperfine=hyperfine, **options)
            fits[1].ambiguity = fits[0].ambiguity
        delta = fits[1].b_t - fits[0].b_t
    return VectorRunResult(freqs, fits, delta, drift_info)


def save_vector_analysis(result: VectorRunResult, path: Path, options: dict | None = None) -> Path:
    """Write every map (T, Hz), its errors, reasons and the provenance of the fit to ``path``."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs["description"] = (
            "exact NV Hamiltonian vector fit per sweep: b_t (rows, cols, 3) in the NV_AXES frame, "
            "d_hz, e_hz, errors, reason (hamiltonian.VectorReason)"
        )
        f.attrs["options"] = json.dumps(options or {}, default=str)
        f["frequencies_hz"] = result.frequencies_hz
        for i, fit in enumerate(result.fits):
            g = f.create_group(f"sweep_{i}")
            for name in ("b_t", "b_err_t", "d_hz", "d_err_hz", "e_hz", "e_err_hz", "chi2", "reason"):
                g[name] = getattr(fit, name)
            g.attrs["ambiguity"] = fit.ambiguity or "none: chosen by the given bias"
            g.attrs["fit_options"] = json.dumps(fit.options, default=str)
        if result.delta_b_t is not None:
            f["delta_b_t"] = result.delta_b_t
        if result.drift is not None:
            f["drift_shifts_px"] = np.asarray(result.drift["shifts_px"])
            f.attrs["drift"] = json.dumps(result.drift)
    return path
