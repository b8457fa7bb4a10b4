"""Biot-Savart fields of straight current segments and planar square spiral coils."""

from __future__ import annotations

import numpy as np

from instrument.physics.constants import MU0


def segment_field(start_m: np.ndarray, end_m: np.ndarray, points_m: np.ndarray) -> np.ndarray:
    """Field in T of a unit current (1 A) flowing from ``start_m`` to ``end_m``.

    Closed-form field of a finite straight filament, B = mu0 I / (4 pi) (r1 x r2) (|r1| + |r2|) /
    (|r1| |r2| (|r1| |r2| + r1 . r2)) with r1, r2 from the segment ends to the point.
    ``start_m``/``end_m`` have shape (S, 3), ``points_m`` shape (..., 3); the result has shape
    (..., 3), summed over the S segments.
    """
    starts = np.atleast_2d(start_m)
    ends = np.atleast_2d(end_m)
    px, py, pz = points_m[..., 0], points_m[..., 1], points_m[..., 2]
    bx, by, bz = np.zeros(px.shape), np.zeros(px.shape), np.zeros(px.shape)
    # One segment at a time, vectorised over points: no (points x segments x 3) temporaries, which
    # makes a 300x300 map of a 40-segment coil about 15x faster than broadcasting over segments.
    for (ax, ay, az), (ex, ey, ez) in zip(starts, ends, strict=True):
        r1x, r1y, r1z = px - ax, py - ay, pz - az
        r2x, r2y, r2z = px - ex, py - ey, pz - ez
        n1 = np.sqrt(r1x * r1x + r1y * r1y + r1z * r1z)
        n2 = np.sqrt(r2x * r2x + r2y * r2y + r2z * r2z)
        denom = n1 * n2 * (n1 * n2 + r1x * r2x + r1y * r2y + r1z * r2z)
        # On the filament itself the field diverges; points there get zero instead of inf/nan.
        scale = np.divide(n1 + n2, denom, out=np.zeros_like(denom), where=denom > 1e-30)
        bx += (r1y * r2z - r1z * r2y) * scale
        by += (r1z * r2x - r1x * r2z) * scale
        bz += (r1x * r2y - r1y * r2x) * scale
    return MU0 / (4 * np.pi) * np.stack([bx, by, bz], axis=-1)


def square_spiral(
    center_m: tuple[float, float, float],
    size_m: float,
    track_m: float,
    spacing_m: float,
) -> np.ndarray:
    """Vertices (V, 3) of the centre line of a square spiral, outer corner first.

    ``size_m`` is the outer edge length of the coil, ``track_m`` the track width and ``spacing_m``
    the gap between neighbouring tracks, so turns step inwards by ``track_m + spacing_m``. The return
    path from the centre (bridge or via) is not modelled.
    """
    pitch = track_m + spacing_m
    side = size_m - track_m  # centre line of the outermost turn
    x, y = -side / 2, -side / 2
    vertices = [(x, y)]
    directions = [(1, 0), (0, 1), (-1, 0), (0, -1)]
    # Segment lengths L, L, L, L-p, L-p, L-2p, L-2p, ...: each pair of sides steps in by a pitch.
    k = 0
    while (length := side - pitch * max(0, (k - 1) // 2)) > pitch / 2:
        dx, dy = directions[k % 4]
        x, y = x + dx * length, y + dy * length
        vertices.append((x, y))
        k += 1
    v = np.array(vertices)
    cx, cy, cz = center_m
    return np.column_stack([v[:, 0] + cx, v[:, 1] + cy, np.full(len(v), cz)])


def polyline_field(vertices_m: np.ndarray, points_m: np.ndarray, current_a: float = 1.0,
                   track_m: float = 0.0, filaments: int = 1) -> np.ndarray:
    """Field in T of a current along a polyline, optionally spread over parallel filaments.

    A track of finite width is modelled as ``filaments`` parallel filaments across the width in
    the plane of the coil, each carrying an equal share of the current.
    """
    starts, ends = vertices_m[:-1], vertices_m[1:]
    if filaments <= 1 or track_m <= 0:
        return current_a * segment_field(starts, ends, points_m)
    direction = ends - starts
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    normal = np.column_stack([-direction[:, 1], direction[:, 0], np.zeros(len(direction))])
    total = np.zeros(points_m.shape)
    for offset in np.linspace(-track_m / 2, track_m / 2, filaments):
        total += segment_field(starts + offset * normal, ends + offset * normal, points_m)
    return current_a / filaments * total
