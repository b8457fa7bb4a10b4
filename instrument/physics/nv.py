"""NV-centre ensemble physics for a {100} diamond: axes, resonances and ODMR line shapes.

Resonances are first order in the field projection, f = D -/+ gamma_e * (B . n). The second-order
transverse shift (about 3 (gamma_e B_perp)^2 / (2 D)) is neglected: with the bias along one NV
axis and microtesla sample fields it stays below a kilohertz on the measured axis. Off-axis
biases (all eight lines) need the exact Hamiltonian: ``instrument.analysis.hamiltonian``.
"""

from __future__ import annotations

import numpy as np

from instrument.physics.constants import (
    D_HZ,
    GAMMA_E_HZ_PER_T,
    HYPERFINE_14N_HZ,
    HYPERFINE_15N_HZ,
)

NV_AXES = np.array(
    [[1.0, 1.0, 1.0], [-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]]
) / np.sqrt(3.0)
"""The four NV axes of a {100}-cut diamond, surface normal along +z, lab frame = crystal frame."""

HYPERFINE_OFFSETS_HZ = {
    None: np.array([0.0]),
    "15N": np.array([-0.5, 0.5]) * HYPERFINE_15N_HZ,
    "14N": np.array([-1.0, 0.0, 1.0]) * HYPERFINE_14N_HZ,
}
"""Line offsets from the multiplet centre for each nitrogen isotope."""


def project_on_axis(b_t: np.ndarray, axis: int) -> np.ndarray:
    """Field component along NV axis ``axis``; ``b_t`` has its vector components on axis 0."""
    n = NV_AXES[axis]
    return np.tensordot(n, b_t, axes=(0, 0))


def resonance_hz(b_parallel_t: np.ndarray | float, branch: int = -1) -> np.ndarray:
    """ms=0 -> ms=+/-1 transition frequency for a field projection (branch -1 or +1)."""
    if branch not in (-1, 1):
        raise ValueError(f"branch must be -1 or +1, got {branch}")
    return D_HZ + branch * GAMMA_E_HZ_PER_T * np.asarray(b_parallel_t)


def b_parallel_from_resonance(frequency_hz: np.ndarray, branch: int = -1) -> np.ndarray:
    """Invert ``resonance_hz``: field projection in T from a fitted line centre."""
    return branch * (np.asarray(frequency_hz) - D_HZ) / GAMMA_E_HZ_PER_T


def lorentzian(frequency_hz: np.ndarray, center_hz: np.ndarray, fwhm_hz: float) -> np.ndarray:
    """Peak-normalised Lorentzian line."""
    half = 0.5 * fwhm_hz
    return half**2 / ((frequency_hz - center_hz) ** 2 + half**2)


def odmr_dip(
    frequency_hz: float,
    center_hz: np.ndarray,
    contrast: float,
    fwhm_hz: float,
    isotope: str | None = "15N",
) -> np.ndarray:
    """Fractional PL loss at ``frequency_hz`` for multiplets centred at ``center_hz``.

    The contrast is shared equally between the hyperfine lines, so a multiplet's summed depth
    equals ``contrast`` when its lines are unresolved.
    """
    offsets = HYPERFINE_OFFSETS_HZ[isotope]
    dip = np.zeros(np.shape(center_hz))
    for off in offsets:
        dip += lorentzian(frequency_hz, np.asarray(center_hz) + off, fwhm_hz)
    return contrast / len(offsets) * dip
