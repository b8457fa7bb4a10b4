"""Sample drift between sweeps: register each sweep's PL image to the first, correct the cubes.

The PL image of a sweep (its mean over frequency) carries the sample's texture (NV density,
illumination, dust), which does not depend on the microwave; ``skimage.registration.
phase_cross_correlation`` finds its sub-pixel shift against the first sweep. Cubes are shifted back
with ``scipy.ndimage.shift`` (spline order 1, edges NaN so that nothing is invented) before the sweeps
are averaged or fitted. A shift above ``warn_px`` (default one pixel) is warned about: maps made
from such sweeps without correction are blurred.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


class DriftWarning(UserWarning):
    """The sample moved by more than the tolerated shift between sweeps."""


@dataclass
class DriftResult:
    shifts_px: np.ndarray
    """(sweeps, 2) (row, col) shift of each sweep against the first; apply its negative to align."""
    errors: np.ndarray
    """(sweeps,) registration error reported by phase_cross_correlation (0 = perfect match)."""
    exceeded: bool
    """True when some sweep moved by more than ``warn_px``."""
    reliable: np.ndarray | None = None
    """(sweeps,) False where the PL images had too little texture to register (error above
    ``max_error``): that sweep's shift is set to 0, not guessed."""

    def as_metadata(self) -> dict:
        moved = np.hypot(self.shifts_px[:, 0], self.shifts_px[:, 1])
        reliable = np.ones(len(moved), bool) if self.reliable is None else self.reliable
        return {"shifts_px": self.shifts_px.tolist(), "max_shift_px": float(moved.max()),
                "registration_error": self.errors.tolist(), "reliable": reliable.tolist()}


def register_sweeps(
    pl_images: np.ndarray, *, upsample: int = 20, warn_px: float = 1.0, max_error: float = 0.5,
    refine: int = 1,
) -> DriftResult:
    """Shift of each PL image (sweeps, rows, cols) against the first, to 1/``upsample`` pixel.

    ``max_error``: a registration whose error (phase_cross_correlation's, 0 = identical images,
    ~1 = nothing in common) is above it is unreliable: images of shot noise without texture score
    ~0.6-1.0, a textured PL image at 1e4 counts ~0.3. Unreliable sweeps keep a zero shift and warn.
    ``refine``: registrations repeated after shifting the image back by the estimate (see below).
    """
    from skimage.registration import phase_cross_correlation

    images = np.asarray(pl_images, dtype=np.float64)
    if images.ndim != 3 or images.shape[0] < 1:
        raise ValueError(f"pl_images must be (sweeps, rows, cols), got shape {images.shape}")
    if not np.all(np.isfinite(images)):
        raise ValueError("pl_images hold NaN or infinity; register complete sweeps only")
    from skimage.filters import window

    # A Hann window hides the image edges, which do not move with the sample (the FFT would see them
    # as a fixed feature). PL texture is smooth, so the plain cross-correlation (normalization=None)
    # is used: the whitened "phase" correlation amplifies the noisy high frequencies and, in tests
    # with a smooth texture, missed sub-pixel and pixel shifts alike.
    win = window("hann", images.shape[1:])
    ref = (images[0] - images[0].mean()) * win
    shifts = np.zeros((images.shape[0], 2))
    errors = np.zeros(images.shape[0])
    from scipy.ndimage import shift as nd_shift

    for i in range(1, images.shape[0]):
        for step in range(1 + refine):
            # The window is fixed while the texture moves under it, which biases a single estimate
            # towards zero (by ~5-8 % on 24-32 px images); registering again after shifting the image
            # back by the estimate leaves a small residual, where that bias is negligible.
            image = images[i] if step == 0 else nd_shift(images[i], -shifts[i], order=3, mode="nearest")
            moving = (image - image.mean()) * win
            # The returned shift registers the moving image onto the reference: the drift's negative.
            shift, error, _ = phase_cross_correlation(ref, moving, upsample_factor=upsample,
                                                      normalization=None)
            shifts[i] -= shift
            if step == 0:
                errors[i] = error  # the texture test (``max_error``) is calibrated on the first pass
    reliable = errors <= max_error
    shifts[~reliable] = 0.0
    if not reliable.all():
        warnings.warn(
            f"the PL images of sweeps {np.flatnonzero(~reliable).tolist()} have too little texture to "
            f"register (error > {max_error}); their drift is not corrected",
            DriftWarning,
            stacklevel=2,
        )
    moved = np.hypot(shifts[:, 0], shifts[:, 1])
    exceeded = bool(np.any(moved > warn_px))
    if exceeded:
        worst = int(np.argmax(moved))
        warnings.warn(
            f"sample drifted {moved[worst]:.2f} px by sweep {worst} (tolerance {warn_px} px); "
            "correct the cubes with correct_drift before fitting",
            DriftWarning,
            stacklevel=2,
        )
    return DriftResult(shifts, errors, exceeded, reliable)


def correct_drift(cubes: np.ndarray, shifts_px: np.ndarray) -> np.ndarray:
    """Shift every sweep's cube (sweeps, rows, cols, F) back by its drift; uncovered edges are NaN."""
    from scipy.ndimage import shift as nd_shift

    cubes = np.asarray(cubes, dtype=np.float64)
    shifts_px = np.asarray(shifts_px, dtype=np.float64)
    if cubes.ndim != 4 or shifts_px.shape != (cubes.shape[0], 2):
        raise ValueError(
            "need cubes (sweeps, rows, cols, F) and shifts (sweeps, 2), "
            f"got {cubes.shape} and {shifts_px.shape}"
        )
    out = np.empty_like(cubes)
    for i, (cube, s) in enumerate(zip(cubes, shifts_px, strict=True)):
        out[i] = nd_shift(cube, (-s[0], -s[1], 0.0), order=1, mode="constant", cval=np.nan)
    return out


def align_sweeps(cubes: np.ndarray, *, warn_px: float = 1.0) -> tuple[np.ndarray, DriftResult]:
    """Register the sweeps (sweeps, rows, cols, F) by their PL images, correct and average them.

    Returns the mean aligned cube (rows, cols, F; NaN where a sweep had no data after shifting) and
    the per-sweep drift, whose ``as_metadata()`` belongs in the run's metadata.
    """
    cubes = np.asarray(cubes, dtype=np.float64)
    drift = register_sweeps(cubes.mean(axis=-1), warn_px=warn_px)
    aligned = correct_drift(cubes, drift.shifts_px)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN edge pixels stay NaN
        return np.nanmean(aligned, axis=0), drift
