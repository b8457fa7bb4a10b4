"""ODMR line shapes with their derivatives, for fitting.

Widths are full widths at half maximum; lines are peak-normalised. A multiplet (hyperfine doublet or
triplet) is the mean of its lines, so its summed depth is the fitted amplitude when the lines are
unresolved, as in ``instrument.physics.nv.odmr_dip``.
"""

from __future__ import annotations

import math

import numpy as np

from instrument.physics.nv import HYPERFINE_OFFSETS_HZ, lorentzian

LINE_SHAPES = ("lorentzian", "gaussian")
_FOUR_LN2 = 4.0 * math.log(2.0)


def gaussian(frequency_hz: np.ndarray, center_hz: np.ndarray, fwhm_hz: np.ndarray) -> np.ndarray:
    """Peak-normalised Gaussian line."""
    d = frequency_hz - center_hz
    return np.exp(-_FOUR_LN2 * d * d / (fwhm_hz * fwhm_hz))


def line(shape: str, frequency_hz: np.ndarray, center_hz: np.ndarray, fwhm_hz: np.ndarray) -> np.ndarray:
    """One peak-normalised line of the named shape."""
    if shape == "lorentzian":
        return lorentzian(frequency_hz, center_hz, fwhm_hz)
    if shape == "gaussian":
        return gaussian(frequency_hz, center_hz, fwhm_hz)
    raise ValueError(f"unknown line shape {shape!r}; choose one of {LINE_SHAPES}")


def line_with_derivatives(
    shape: str, frequency: np.ndarray, center: np.ndarray, fwhm: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line value and its derivatives with respect to centre and FWHM (broadcast shapes)."""
    g = line(shape, frequency, center, fwhm)
    d = frequency - center
    if shape == "lorentzian":
        # L = h^2 / (d^2 + h^2), h = fwhm / 2
        g2 = g * g
        return g, (8.0 / (fwhm * fwhm)) * d * g2, (2.0 / fwhm) * (g - g2)
    dg_dc = (2.0 * _FOUR_LN2 / (fwhm * fwhm)) * d * g
    return g, dg_dc, dg_dc * (d / fwhm)


def multiplet_offsets_hz(hyperfine: str | None) -> np.ndarray:
    """Line offsets from the multiplet centre: None (single line), '15N' (doublet) or '14N' (triplet)."""
    if hyperfine not in HYPERFINE_OFFSETS_HZ:
        raise ValueError(f"unknown hyperfine {hyperfine!r}; choose None, '15N' or '14N'")
    return HYPERFINE_OFFSETS_HZ[hyperfine]


def multiplet(
    shape: str, frequency_hz: np.ndarray, center_hz: np.ndarray, fwhm_hz: np.ndarray, offsets_hz: np.ndarray
) -> np.ndarray:
    """Mean of the multiplet's lines (value only)."""
    return sum(line(shape, frequency_hz, center_hz + off, fwhm_hz) for off in offsets_hz) / len(offsets_hz)
