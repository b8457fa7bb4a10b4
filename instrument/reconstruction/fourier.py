"""Fourier inversions of NV field maps: B_NV -> (Bx, By, Bz), B -> sheet current J, B -> magnetization M.

All inversions pad the map (``instrument.physics.fourier.pad``), divide by the forward kernels of
``instrument.physics.fourier`` and crop back. Undoing the exp(-k z) decay multiplies noise at high
wavenumbers by exp(+k z), so every inversion that does so applies the high-k filter below.
Before padding, the median of the map's border is subtracted (far from the sources the field should
vanish) and the padding repeats the edge values (``pad_mode="edge"``), which leaves no step at the
edge of the field of view for the transform to ring on.

High-k filter: a Hann window ``w(k) = (1 + cos(pi k / k_c)) / 2`` for ``k < k_c`` and 0 above. The
default cutoff ``k_c = pi / standoff`` (a cutoff wavelength of twice the standoff) keeps the
largest noise gain ``max_k w(k) exp(k z)`` near 2.4, so the inverse never amplifies white noise by
more than a few times; it is capped at the Nyquist wavenumber ``pi / pixel``.
Features smaller than about the standoff are smoothed away: that is the physics, not the filter.
"""

from __future__ import annotations

import numpy as np

from instrument.physics import fourier as phys


def hann_filter(k: np.ndarray, cutoff_k: float) -> np.ndarray:
    """Hann low-pass window in wavenumber: 1 at k = 0, 0 for k >= ``cutoff_k`` (rad/m)."""
    if not cutoff_k > 0:
        raise ValueError(f"cutoff_k must be positive, got {cutoff_k}")
    return np.where(k < cutoff_k, 0.5 * (1 + np.cos(np.pi * np.minimum(k, cutoff_k) / cutoff_k)), 0.0)


def default_cutoff_k(standoff_m: float, pixel_size_m: float) -> float:
    """Cutoff of the high-k filter: pi / standoff, at most the Nyquist wavenumber pi / pixel."""
    if standoff_m <= 0:
        return np.pi / pixel_size_m
    return min(np.pi / standoff_m, np.pi / pixel_size_m)


def _check_map(name: str, image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=float)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"{name} must be a 2-D map (rows, cols), got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{name} contains NaN or inf pixels; fill them (e.g. with the local median) first")
    return image


def _spectrum(image: np.ndarray, pixel_size_m: float, pad_factor: float, pad_mode: str):
    # Remove the offset seen at the border (bias residue, baseline): far from the sources the field
    # should vanish, and a step at the padding edge would ring through the whole map.
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    padded, crop = phys.pad(image - np.median(border), pad_factor, pad_mode)
    kx, ky, k = phys.wavevectors(padded.shape, pixel_size_m)
    return np.fft.fft2(padded), kx, ky, k, crop


def b_vector_from_b_nv(b_nv_t: np.ndarray, nv_axis: int | np.ndarray, pixel_size_m: float,
                       cutoff_k: float | None = None, pad_factor: float = 2.0,
                       pad_mode: str = "edge") -> np.ndarray:
    """Deproject one NV-axis field map into (Bx, By, Bz), seed 002 eq. 4-6.

    Deprojection does not undo any decay, so no filter is applied unless ``cutoff_k`` is given.
    The uniform part (k = 0) of the map cannot be split into components and is dropped.

    Args:
        b_nv_t: (rows, cols) field projection in T.
        nv_axis: index into ``NV_AXES`` or a 3-vector.
        pixel_size_m: pixel pitch.
        cutoff_k: optional Hann cutoff in rad/m.
        pad_factor, pad_mode: see ``instrument.physics.fourier.pad``.

    Returns:
        (3, rows, cols) field in T.
    """
    b_nv_t = _check_map("b_nv_t", b_nv_t)
    spec, kx, ky, k, crop = _spectrum(b_nv_t, pixel_size_m, pad_factor, pad_mode)
    b_k = phys.deprojection_kernel(kx, ky, k, nv_axis) * spec
    if cutoff_k is not None:
        b_k = b_k * hann_filter(k, cutoff_k)
    return np.fft.ifft2(b_k).real[crop]


def current_density_from_b(b_t: np.ndarray, pixel_size_m: float, standoff_m: float,
                           component: str = "bz", nv_thickness_m: float = 0.0,
                           cutoff_k: float | None = None, pad_factor: float = 2.0,
                           pad_mode: str = "edge") -> np.ndarray:
    """In-plane sheet current density (jx, jy) in A/m from the field of a thin current layer.

    Kernels of Roth, Sepulveda and Wikswo (1989) in this module's convention: from Bz,
    ``j~x = (2/mu0) exp(kz) (i ky / k) B~z`` and ``j~y = -(2/mu0) exp(kz) (i kx / k) B~z`` (the
    current must be divergence-free in the plane); from the in-plane components,
    ``j~x = -(2/mu0) exp(kz) B~y`` and ``j~y = (2/mu0) exp(kz) B~x``.

    Args:
        b_t: (3, rows, cols) field in T, e.g. from ``b_vector_from_b_nv``.
        pixel_size_m: pixel pitch.
        standoff_m: distance from the current layer to the (near face of the) NV layer.
        component: ``"bz"`` (default; insensitive to in-plane offsets) or ``"bxy"``.
        nv_thickness_m: NV layer thickness (averaging of the decay over the layer).
        cutoff_k: Hann cutoff in rad/m; default ``default_cutoff_k``.
        pad_factor, pad_mode: see ``instrument.physics.fourier.pad``.

    Returns:
        (2, rows, cols) sheet current density in A/m.
    """
    b_t = np.asarray(b_t, dtype=float)
    if b_t.ndim != 3 or b_t.shape[0] != 3:
        raise ValueError(f"b_t must have shape (3, rows, cols), got {b_t.shape}")
    if component not in ("bz", "bxy"):
        raise ValueError(f"component must be 'bz' or 'bxy', got {component!r}")
    cutoff_k = default_cutoff_k(standoff_m, pixel_size_m) if cutoff_k is None else cutoff_k
    if component == "bz":
        spec, kx, ky, k, crop = _spectrum(_check_map("b_t[2]", b_t[2]), pixel_size_m, pad_factor, pad_mode)
        ks = np.where(k > 0, k, 1.0)
        j_k = np.stack([1j * ky / ks * spec, -1j * kx / ks * spec])
    else:
        spec_x, kx, ky, k, crop = _spectrum(_check_map("b_t[0]", b_t[0]), pixel_size_m, pad_factor, pad_mode)
        spec_y = _spectrum(_check_map("b_t[1]", b_t[1]), pixel_size_m, pad_factor, pad_mode)[0]
        j_k = np.stack([-spec_y, spec_x])
    gain = hann_filter(k, cutoff_k) / phys.propagator(k, standoff_m, nv_thickness_m)
    return np.fft.ifft2(j_k * gain).real[crop]


def magnetization_from_b_nv(b_nv_t: np.ndarray, nv_axis: int | np.ndarray, pixel_size_m: float,
                            standoff_m: float, direction: tuple[float, float, float] = (0.0, 0.0, 1.0),
                            nv_thickness_m: float = 0.0, cutoff_k: float | None = None,
                            pad_factor: float = 2.0, pad_mode: str = "edge") -> np.ndarray:
    """Areal magnetization (A) along a known ``direction`` from one NV-axis map (seed 002 eq. 1-2).

    ``B~_NV = propagator * (n . T d) m~``; dividing by the scalar kernel ``n . T d`` is only safe
    where it is not small: an in-plane ``direction`` makes it vanish along the line k . d = 0, and
    those wavenumbers (below 1e-3 of the kernel's largest value) are set to zero. The uniform part
    (k = 0) of the magnetization is invisible to a field map and is returned as zero, so the map is
    known up to an offset.

    Returns:
        (rows, cols) areal magnetization in A (bulk M times film thickness).
    """
    b_nv_t = _check_map("b_nv_t", b_nv_t)
    d = np.asarray(direction, dtype=float)
    if d.shape != (3,) or not np.linalg.norm(d) > 0:
        raise ValueError(f"direction must be a non-zero 3-vector, got {direction!r}")
    d = d / np.linalg.norm(d)
    n = phys.nv_unit_vector(nv_axis)
    cutoff_k = default_cutoff_k(standoff_m, pixel_size_m) if cutoff_k is None else cutoff_k
    spec, kx, ky, k, crop = _spectrum(b_nv_t, pixel_size_m, pad_factor, pad_mode)
    scalar = np.einsum("a,ab...,b->...", n, phys.magnetization_kernel(kx, ky, k), d)
    # Judge smallness in units of mu0/2 * k: the kernel grows linearly with k.
    small = np.abs(scalar) <= 1e-3 * np.maximum(k, 1e-30) + (k == 0)
    inv = np.where(small, 0.0, 1.0 / np.where(small, 1.0, scalar))
    gain = hann_filter(k, cutoff_k) * inv / phys.propagator(k, standoff_m, nv_thickness_m)
    return np.fft.ifft2(spec * gain).real[crop]
