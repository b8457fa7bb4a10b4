"""Magnetic field maps from fitted ODMR line centres."""

from __future__ import annotations

import numpy as np

from instrument.physics.nv import b_parallel_from_resonance


def b_nv_from_centers(center_on_hz: np.ndarray, center_off_hz: np.ndarray, branch: int = -1) -> np.ndarray:
    """Field projection on the NV axis (T) from line centres with and without the sample field.

    The bias field cancels in the difference, so only the field switched on between the two maps
    (a coil current, say) remains. On the lower (ms=-1, ``branch=-1``) line a positive B_NV lowers the
    resonance. NaN centres (rejected fits) give NaN.

    Args:
        center_on_hz: line centres with the field on (Hz).
        center_off_hz: line centres with the field off, same shape or broadcastable (Hz).
        branch: -1 for the ms=0 -> ms=-1 line (below D), +1 for the upper line.
    """
    on = np.asarray(center_on_hz, dtype=np.float64)
    off = np.asarray(center_off_hz, dtype=np.float64)
    return b_parallel_from_resonance(on, branch) - b_parallel_from_resonance(off, branch)
