"""Spectral-cube preprocessing before the fit: spatial binning and global fluorescence correction."""

from __future__ import annotations

import numpy as np


def bin_pixels(cube: np.ndarray, factor: int) -> np.ndarray:
    """Sum ``factor`` x ``factor`` blocks of pixels of a (rows, cols, F) cube (photon counts add).

    Rows and columns that do not fill a whole block are dropped (said in the error when nothing
    is left). Summing, not averaging, keeps Poisson statistics for the maximum-likelihood fit.
    """
    cube = np.asarray(cube)
    if cube.ndim != 3:
        raise ValueError(f"cube must be (rows, cols, F), got shape {cube.shape}")
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"binning factor must be >= 1, got {factor}")
    rows, cols = cube.shape[0] // factor, cube.shape[1] // factor
    if rows == 0 or cols == 0:
        raise ValueError(f"a {cube.shape[0]}x{cube.shape[1]} image has no whole {factor}x{factor} block")
    trimmed = cube[: rows * factor, : cols * factor]
    acc = np.float64 if np.issubdtype(cube.dtype, np.floating) else np.int64
    return trimmed.reshape(rows, factor, cols, factor, cube.shape[2]).sum(axis=(1, 3), dtype=acc)


def global_fluorescence_correction(cube: np.ndarray, fraction: float) -> np.ndarray:
    """Remove ``fraction`` of the image-mean spectrum, scaled to each pixel's brightness.

    Light scattered across the field of view adds the mean spectrum (its ODMR lines included) to every
    pixel, pulling each pixel's lines towards the mean ones. As in QDMlab's global-fluorescence
    correction, each spectrum becomes s - fraction * m * (sum s / sum m), with m the mean spectrum;
    ``fraction`` in [0, 1) is the scattered share (0 leaves the cube unchanged).
    """
    cube = np.asarray(cube, dtype=np.float64)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if cube.ndim < 2:
        raise ValueError(f"cube must be (..., F), got shape {cube.shape}")
    flat = cube.reshape(-1, cube.shape[-1])
    mean = np.nanmean(flat, axis=0)
    weight = flat.sum(axis=1, keepdims=True) / mean.sum()
    return (flat - fraction * weight * mean[None, :]).reshape(cube.shape) / (1.0 - fraction)
