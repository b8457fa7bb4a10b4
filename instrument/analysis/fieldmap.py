"""Magnetic field maps from fitted ODMR line centres.

- ``b_nv_from_centers``: field projection on one NV axis from one line, with the field on and off
  (I-on minus I-off: the bias cancels).
- ``b_nv_from_pair``: projection magnitude from the two lines (ms=-1, ms=+1) of one axis; the mean
  of the pair gives the shift of D (temperature, strain), which the difference does not see.
- ``vector_field``: (Bx, By, Bz) from the projections on the four NV axes of a {100} diamond.
- ``vector_field_from_lines``: the same from the eight fitted lines, using the bias field to tell
  which pair belongs to which axis and the sign of each projection.
- ``remove_polynomial_background``: subtract a fitted plane (order 1) or 2-D polynomial from a map.
"""

from __future__ import annotations

import numpy as np

from instrument.physics.constants import D_HZ, GAMMA_E_HZ_PER_T
from instrument.physics.nv import NV_AXES, b_parallel_from_resonance


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


def b_nv_from_pair(lower_hz: np.ndarray, upper_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|B . n| (T) and the shift of the zero-field splitting (Hz) from one axis' two lines.

    f_upper - f_lower = 2 gamma_e |B . n| whatever D is, so temperature and strain drop out.
    """
    lower = np.asarray(lower_hz, dtype=np.float64)
    upper = np.asarray(upper_hz, dtype=np.float64)
    return (upper - lower) / (2.0 * GAMMA_E_HZ_PER_T), 0.5 * (upper + lower) - D_HZ


def vector_field(b_nv_t: np.ndarray, axes: np.ndarray = NV_AXES) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (Bx, By, Bz) from signed projections on the NV axes.

    Four axes over-determine three components; the residual (RMS over the axes, T) measures how
    far the four projections are from one vector and flags bad pixels.

    Args:
        b_nv_t: (..., n_axes) signed projections B . n_i in T, in the order of ``axes``.
        axes: (n_axes, 3) unit vectors, default the four NV axes of a {100} diamond.

    Returns:
        B (..., 3) in the lab frame and the residual (...).
    """
    b_nv_t = np.asarray(b_nv_t, dtype=np.float64)
    axes = np.asarray(axes, dtype=np.float64)
    if b_nv_t.shape[-1] != axes.shape[0]:
        raise ValueError(
            f"b_nv_t has {b_nv_t.shape[-1]} projections on its last axis, expected {axes.shape[0]}"
        )
    if np.linalg.matrix_rank(axes) < 3:
        raise ValueError("the axes do not span three dimensions; the vector field is undetermined")
    field = b_nv_t @ np.linalg.pinv(axes).T
    residual = np.sqrt(np.mean((field @ axes.T - b_nv_t) ** 2, axis=-1))
    return field, residual


def vector_field_from_lines(
    centers_hz: np.ndarray, bias_t: np.ndarray, axes: np.ndarray = NV_AXES
) -> tuple[np.ndarray, np.ndarray]:
    """(Bx, By, Bz) from the eight lines of the four NV axes, assigned with the help of the bias field.

    The sorted lines pair up outside-in (lowest with highest, ...), the widest pair belonging to the
    axis with the largest |B0 . n|; the projection takes the sign of B0 . n. This holds as long as
    the sample field does not reorder the axes' projections (it is small against the bias).

    Args:
        centers_hz: (..., 8) fitted line centres, any order.
        bias_t: (3,) bias field in the lab frame (T).
        axes: (4, 3) NV axes.

    Returns:
        B (..., 3) and the residual (...), both in T.
    """
    centers = np.sort(np.asarray(centers_hz, dtype=np.float64), axis=-1)
    if centers.shape[-1] != 2 * len(axes):
        raise ValueError(f"expected {2 * len(axes)} line centres on the last axis, got {centers.shape[-1]}")
    proj0 = np.asarray(axes, dtype=np.float64) @ np.asarray(bias_t, dtype=np.float64)
    order = np.argsort(-np.abs(proj0))  # widest pair first
    n_axes = len(axes)
    b_nv = np.empty(centers.shape[:-1] + (n_axes,))
    for rank, axis in enumerate(order):
        magnitude, _ = b_nv_from_pair(centers[..., rank], centers[..., -1 - rank])
        b_nv[..., axis] = np.sign(proj0[axis]) * magnitude if proj0[axis] != 0 else magnitude
    return vector_field(b_nv, axes)


def remove_polynomial_background(
    image: np.ndarray, order: int = 1, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the least-squares 2-D polynomial of ``order`` (1: a plane) from a map.

    Only finite pixels (and, if given, those where ``mask`` is True: the field-free background)
    enter the fit; the polynomial is subtracted everywhere, NaN stays NaN.

    Args:
        image: (rows, cols) map.
        order: total polynomial degree, 0 (offset) to 5.
        mask: (rows, cols) bool, True where the map is background.

    Returns:
        The corrected map and the fitted background.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (rows, cols), got shape {image.shape}")
    if not 0 <= order <= 5:
        raise ValueError(f"order must be 0..5, got {order}")
    rows, cols = np.indices(image.shape)
    # Coordinates scaled to [-1, 1] keep the normal equations well conditioned.
    u = 2.0 * cols / max(image.shape[1] - 1, 1) - 1.0
    v = 2.0 * rows / max(image.shape[0] - 1, 1) - 1.0
    terms = np.stack([u**i * v**j for i in range(order + 1) for j in range(order + 1 - i)], axis=-1)
    use = np.isfinite(image)
    if mask is not None:
        use &= np.asarray(mask, dtype=bool)
    if use.sum() < terms.shape[-1]:
        raise ValueError(
            f"{int(use.sum())} usable pixels cannot fit a polynomial of order {order} "
            f"({terms.shape[-1]} terms); lower the order or widen the mask"
        )
    coef, *_ = np.linalg.lstsq(terms[use], image[use], rcond=None)
    background = terms @ coef
    return image - background, background
