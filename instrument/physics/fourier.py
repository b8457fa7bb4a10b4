"""Fourier-space magnetostatics of planar sources seen from an NV layer above them.

Conventions (checked against ``instrument.physics.biot_savart`` in ``tests/physics/test_fourier.py``):

- Images are row-major: axis -1 is x (columns), axis -2 is y (rows); ``pixel_size_m`` is the same
  along both.
- The sources lie in a plane a distance ``standoff_m`` *below* the NV layer (the sensor is at +z).
- Transforms follow numpy's ``fft2`` (forward kernel ``exp(-i k.r)``); ``kx``, ``ky`` are angular
  wavenumbers in rad/m and ``k = sqrt(kx^2 + ky^2)``.
- Magnetization ``m`` is areal (magnetic moment per area, A: bulk M times film thickness); current
  density ``j`` is a sheet density (A/m: bulk J times layer thickness).

With these conventions the forward model of seed 002 eq. 1 reads

    B~ = (mu0 / 2) exp(-k z) T(k) m~,   T = [[-kx^2/k, -kx ky/k, -i kx],
                                             [-kx ky/k, -ky^2/k, -i ky],
                                             [-i kx,    -i ky,    k    ]]

which is eq. 1 with the opposite overall sign and sign of ``i``: the paper uses the opposite z axis
and transform sign. Likewise the deprojection of eq. 4-6 becomes ``B~_c = D_c B~_NV`` with
``D = (-i kx, -i ky, k) / (k n_z - i kx n_x - i ky n_y)``.
"""

from __future__ import annotations

import numpy as np

from instrument.physics.constants import MU0
from instrument.physics.nv import NV_AXES

PAD_MODES = ("constant", "reflect", "edge")


def padded_shape(shape: tuple[int, int], pad_factor: float = 2.0) -> tuple[int, int]:
    """Shape of the FFT grid for an image of ``shape`` padded by ``pad_factor`` (>= 1) per axis.

    Padding pushes the periodic images that the FFT implies away from the field of view, so fields
    that have not decayed at the edge do not wrap around.
    """
    if pad_factor < 1:
        raise ValueError(f"pad_factor must be >= 1, got {pad_factor}")
    return tuple(int(np.ceil(n * pad_factor)) for n in shape)


def pad(images: np.ndarray, pad_factor: float = 2.0, mode: str = "constant"
        ) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Pad the last two axes of ``images`` to ``padded_shape``, centred.

    Args:
        images: (..., rows, cols) array.
        pad_factor: size of the padded grid relative to the image.
        mode: ``"constant"`` (zeros: right for fields that decay inside the field of view),
            ``"reflect"`` or ``"edge"`` (for maps that are still large at the edge).

    Returns:
        The padded array and the index that crops it back (``padded[crop]``).
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad mode must be one of {PAD_MODES}, got {mode!r}")
    rows, cols = images.shape[-2:]
    prow, pcol = padded_shape((rows, cols), pad_factor)
    top, left = (prow - rows) // 2, (pcol - cols) // 2
    widths = [(0, 0)] * (images.ndim - 2) + [(top, prow - rows - top), (left, pcol - cols - left)]
    crop = (Ellipsis, slice(top, top + rows), slice(left, left + cols))
    return np.pad(images, widths, mode=mode), crop


def wavevectors(shape: tuple[int, int], pixel_size_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angular wavenumbers (kx, ky, k) in rad/m on the FFT grid of ``shape``, each (rows, cols)."""
    if pixel_size_m <= 0:
        raise ValueError(f"pixel_size_m must be positive, got {pixel_size_m}")
    rows, cols = shape
    kx_1d = 2 * np.pi * np.fft.fftfreq(cols, d=pixel_size_m)
    ky_1d = 2 * np.pi * np.fft.fftfreq(rows, d=pixel_size_m)
    kx, ky = np.meshgrid(kx_1d, ky_1d)
    return kx, ky, np.hypot(kx, ky)


def upward_continuation(k: np.ndarray, distance_m: float) -> np.ndarray:
    """Factor exp(-k d) that carries a field a distance ``distance_m`` further from its sources."""
    return np.exp(-k * distance_m)


def layer_thickness_factor(k: np.ndarray, thickness_m: float) -> np.ndarray:
    """Average of exp(-k z) over a layer of ``thickness_m`` starting at its near face.

    Equals (1 - exp(-k t)) / (k t), tending to 1 at k = 0 or t = 0. Multiply the upward-continuation
    factor of the near face by it to model an NV layer (or a source layer) of finite thickness.
    """
    if thickness_m < 0:
        raise ValueError(f"thickness_m must be >= 0, got {thickness_m}")
    x = k * thickness_m
    # -expm1(-x)/x is accurate near 0; the where avoids 0/0 at the DC term.
    return np.where(x > 1e-12, -np.expm1(-x) / np.where(x > 1e-12, x, 1.0), 1.0)


def propagator(k: np.ndarray, standoff_m: float, nv_thickness_m: float = 0.0) -> np.ndarray:
    """(mu0/2) exp(-k z) times the NV-layer thickness factor: the common factor of all kernels."""
    if standoff_m < 0:
        raise ValueError(f"standoff_m must be >= 0, got {standoff_m}")
    return MU0 / 2 * upward_continuation(k, standoff_m) * layer_thickness_factor(k, nv_thickness_m)


def _safe_k(k: np.ndarray) -> np.ndarray:
    return np.where(k > 0, k, 1.0)


def magnetization_kernel(kx: np.ndarray, ky: np.ndarray, k: np.ndarray) -> np.ndarray:
    """T(k) of seed 002 eq. 1 (this module's convention): shape (3, 3, rows, cols), complex.

    ``B~[a] = propagator * sum_b T[a, b] m~[b]``; the in-plane rows vanish at k = 0.
    """
    ks = _safe_k(k)
    t = np.empty((3, 3) + k.shape, dtype=complex)
    t[0, 0] = -kx * kx / ks
    t[0, 1] = t[1, 0] = -kx * ky / ks
    t[1, 1] = -ky * ky / ks
    t[0, 2] = t[2, 0] = -1j * kx
    t[1, 2] = t[2, 1] = -1j * ky
    t[2, 2] = k
    return t


def sheet_current_kernel(kx: np.ndarray, ky: np.ndarray, k: np.ndarray) -> np.ndarray:
    """S(k), shape (3, 2, rows, cols): ``B~[a] = propagator * sum_b S[a, b] j~[b]`` for j = (jx, jy).

    Bx = +(mu0/2) jy and By = -(mu0/2) jx just above a uniform sheet; Bz follows from div B = 0.
    """
    ks = _safe_k(k)
    s = np.zeros((3, 2) + k.shape, dtype=complex)
    s[0, 1] = 1.0
    s[1, 0] = -1.0
    s[2, 0] = -1j * ky / ks
    s[2, 1] = 1j * kx / ks
    return s


def nv_unit_vector(nv_axis: int | np.ndarray) -> np.ndarray:
    """Unit vector of an NV axis: an index into ``NV_AXES`` or any 3-vector (normalised here)."""
    if isinstance(nv_axis, (int, np.integer)):
        return NV_AXES[int(nv_axis)]
    n = np.asarray(nv_axis, dtype=float)
    if n.shape != (3,) or not np.all(np.isfinite(n)) or np.linalg.norm(n) == 0:
        raise ValueError(f"nv_axis must be an index 0-3 or a non-zero 3-vector, got {nv_axis!r}")
    return n / np.linalg.norm(n)


def project_on_nv(b_t: np.ndarray, nv_axis: int | np.ndarray) -> np.ndarray:
    """Seed 002 eq. 2: B_NV = B . n for ``b_t`` of shape (3, ...)."""
    return np.tensordot(nv_unit_vector(nv_axis), b_t, axes=(0, 0))


def deprojection_kernel(kx: np.ndarray, ky: np.ndarray, k: np.ndarray, nv_axis: int | np.ndarray
                        ) -> np.ndarray:
    """Seed 002 eq. 4-6: D(k), shape (3, rows, cols), with ``B~[c] = D[c] B~_NV`` above the sources.

    Valid where the field has no sources between the sample and the sensor (B is a potential field
    there). The k = 0 term (uniform field) cannot be separated into components and is set to zero;
    wherever the denominator is smaller than 1e-9 of the largest wavenumber it is zeroed too (an
    in-plane NV axis makes it vanish along a line through k = 0).
    """
    n = nv_unit_vector(nv_axis)
    den = k * n[2] - 1j * (kx * n[0] + ky * n[1])
    small = np.abs(den) <= 1e-9 * max(float(k.max()), 1e-30)
    inv = np.where(small, 0.0, 1.0 / np.where(small, 1.0, den))
    return np.stack([-1j * kx * inv, -1j * ky * inv, k * inv])


def _forward(sources: np.ndarray, kernel_fn, pixel_size_m: float, standoff_m: float,
             nv_thickness_m: float, pad_factor: float) -> np.ndarray:
    padded, crop = pad(sources, pad_factor)
    kx, ky, k = wavevectors(padded.shape[-2:], pixel_size_m)
    src_k = np.fft.fft2(padded)
    kernel = kernel_fn(kx, ky, k) * propagator(k, standoff_m, nv_thickness_m)
    b_k = np.einsum("ab...,b...->a...", kernel, src_k)
    return np.fft.ifft2(b_k).real[crop]


def b_from_magnetization(m_a: np.ndarray, pixel_size_m: float, standoff_m: float,
                         nv_thickness_m: float = 0.0, pad_factor: float = 2.0) -> np.ndarray:
    """Stray field (3, rows, cols) in T of an areal magnetization ``m_a`` (3, rows, cols) in A."""
    m_a = np.asarray(m_a, dtype=float)
    if m_a.ndim != 3 or m_a.shape[0] != 3:
        raise ValueError(f"m_a must have shape (3, rows, cols), got {m_a.shape}")
    return _forward(m_a, magnetization_kernel, pixel_size_m, standoff_m, nv_thickness_m, pad_factor)


def b_from_sheet_current(j_a_per_m: np.ndarray, pixel_size_m: float, standoff_m: float,
                         nv_thickness_m: float = 0.0, pad_factor: float = 2.0) -> np.ndarray:
    """Field (3, rows, cols) in T of an in-plane sheet current density (2, rows, cols) in A/m."""
    j_a_per_m = np.asarray(j_a_per_m, dtype=float)
    if j_a_per_m.ndim != 3 or j_a_per_m.shape[0] != 2:
        raise ValueError(f"j_a_per_m must have shape (2, rows, cols), got {j_a_per_m.shape}")
    return _forward(j_a_per_m, sheet_current_kernel, pixel_size_m, standoff_m, nv_thickness_m,
                    pad_factor)
