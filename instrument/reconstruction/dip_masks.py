"""Masks and reference magnetizations for deep-image-prior reconstruction (seed 002).

A mask has one channel per in-plane magnetization component (x, y) with values in [-1, 1]: zero
outside the magnetic material, and inside it the allowed direction of each domain. Rotating a mask by
an angle and comparing how well each orientation converges is the paper's diagnostic for the domain
structure. Images are row-major (row = y, col = x), pixel centres at integer coordinates.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def _centred_coords(shape: tuple[int, int], center_px: tuple[float, float] | None) -> tuple[np.ndarray, ...]:
    rows, cols = shape
    cy, cx = ((rows - 1) / 2, (cols - 1) / 2) if center_px is None else center_px
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    return x - cx, y - cy


def _rotate(x: np.ndarray, y: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u, v) in a frame rotated by ``angle_deg`` counter-clockwise."""
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    return c * x + s * y, -s * x + c * y


def _check_axes(semi_axes_px: tuple[float, float]) -> tuple[float, float]:
    a, b = (float(v) for v in semi_axes_px)
    if a <= 0 or b <= 0:
        raise ValueError(f"semi_axes_px must be positive, got {semi_axes_px}")
    return a, b


def ellipse_support(
    shape: tuple[int, int],
    semi_axes_px: tuple[float, float],
    angle_deg: float = 0.0,
    center_px: tuple[float, float] | None = None,
) -> np.ndarray:
    """Boolean mask of an ellipse with semi-axes (along x, along y) in pixels, rotated by ``angle_deg``."""
    a, b = _check_axes(semi_axes_px)
    x, y = _centred_coords(shape, center_px)
    u, v = _rotate(x, y, angle_deg)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def uniform_mask(support: np.ndarray, angle_deg: float) -> np.ndarray:
    """Single-domain mask: magnetization along ``angle_deg`` (from +x, counter-clockwise) on ``support``.

    The network's tanh output can flip the sign, so 0 and 180 degrees are the same mask.
    """
    support = np.asarray(support, dtype=float)
    if support.ndim != 2:
        raise ValueError(f"support must be a 2-D image, got shape {support.shape}")
    t = np.deg2rad(angle_deg)
    return np.stack([np.cos(t) * support, np.sin(t) * support])


def landau_mask(
    shape: tuple[int, int],
    semi_axes_px: tuple[float, float],
    angle_deg: float = 0.0,
    center_px: tuple[float, float] | None = None,
    chirality: int = 1,
) -> np.ndarray:
    """Four-domain flux-closure (Landau) mask on an axis-aligned ellipse.

    The support stays fixed; the domain pattern (45-degree walls from the ends of a central wall of
    length 2(a - b) along the long axis) is rotated by ``angle_deg``. Each domain points along the
    boundary it touches, circulating counter-clockwise for ``chirality=+1``.
    """
    if chirality not in (-1, 1):
        raise ValueError(f"chirality must be +1 or -1, got {chirality}")
    a, b = _check_axes(semi_axes_px)
    long_axis, short_axis = max(a, b), min(a, b)
    support = ellipse_support(shape, (a, b), 0.0, center_px)
    x, y = _centred_coords(shape, center_px)
    # Domain frame: u along the pattern's long axis (x for a >= b), then rotated by angle_deg.
    base = 0.0 if a >= b else 90.0
    u, v = _rotate(x, y, base + angle_deg)
    side = np.abs(u) - np.abs(v) > long_axis - short_axis  # end domains (closure domains)
    mu = np.where(side, 0.0, -np.sign(v))  # long domains run along the long edges
    mv = np.where(side, np.sign(u), 0.0)
    mu, mv = chirality * mu, chirality * mv
    c, s = np.cos(np.deg2rad(base + angle_deg)), np.sin(np.deg2rad(base + angle_deg))
    mx, my = c * mu - s * mv, s * mu + c * mv
    return np.stack([mx * support, my * support])


def smooth_magnetization(mask: np.ndarray, saturation_a_per_m: float, wall_width_px: float) -> np.ndarray:
    """Reference magnetization from a mask: domain walls of finite width, |M| = Ms inside the support.

    The direction field is Gaussian-smoothed (walls ~ ``wall_width_px`` wide) and renormalised, which
    gives the continuous rotation across walls that micromagnetic Landau states show.
    """
    mask = np.asarray(mask, dtype=float)
    support = np.linalg.norm(mask, axis=0) > 0
    smooth = np.stack([gaussian_filter(c, wall_width_px / 2.0) for c in mask])
    norm = np.linalg.norm(smooth, axis=0)
    direction = np.divide(smooth, norm, out=np.zeros_like(smooth), where=norm > 1e-9)
    return saturation_a_per_m * direction * support


def vortex_magnetization(
    shape: tuple[int, int],
    radius_px: float,
    core_radius_px: float,
    saturation_a_per_m: float,
    chirality: int = 1,
    polarity: int = 1,
    center_px: tuple[float, float] | None = None,
) -> np.ndarray:
    """Vortex on a disc (3, rows, cols): in-plane curl plus an out-of-plane core, |M| = Ms.

    Mz = polarity Ms exp(-(r / core)^2) (a Gaussian core profile); the in-plane part circulates
    counter-clockwise for ``chirality=+1`` with magnitude sqrt(Ms^2 - Mz^2). With ``core_radius_px=0``
    the core is absent (Mz = 0), the pure in-plane curl.
    """
    if chirality not in (-1, 1) or polarity not in (-1, 1):
        raise ValueError(f"chirality and polarity must be +1 or -1, got {chirality}, {polarity}")
    if radius_px <= 0 or core_radius_px < 0:
        raise ValueError(f"need radius_px > 0 and core_radius_px >= 0, got {radius_px}, {core_radius_px}")
    x, y = _centred_coords(shape, center_px)
    r = np.hypot(x, y)
    disc = r <= radius_px
    mz = polarity * np.exp(-((r / core_radius_px) ** 2)) if core_radius_px > 0 else np.zeros(shape)
    inplane = np.sqrt(np.clip(1.0 - mz**2, 0.0, 1.0))
    phi = np.arctan2(y, x)
    m = np.stack([-chirality * np.sin(phi) * inplane, chirality * np.cos(phi) * inplane, mz])
    return saturation_a_per_m * m * disc


def vortex_mask(support: np.ndarray, chirality: int = 1, center_px: tuple[float, float] | None = None
                ) -> np.ndarray:
    """DIP mask (2, rows, cols) of a vortex: unit tangent directions of chirality +-1 on ``support``."""
    support = np.asarray(support, dtype=float)
    if support.ndim != 2:
        raise ValueError(f"support must be a 2-D image, got shape {support.shape}")
    if chirality not in (-1, 1):
        raise ValueError(f"chirality must be +1 or -1, got {chirality}")
    x, y = _centred_coords(support.shape, center_px)
    phi = np.arctan2(y, x)
    return chirality * np.stack([-np.sin(phi) * support, np.cos(phi) * support])
