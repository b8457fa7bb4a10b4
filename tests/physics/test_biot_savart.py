import numpy as np
import pytest

from instrument.physics.biot_savart import polyline_field, segment_field, square_spiral
from instrument.physics.constants import MU0


def test_long_wire_matches_ampere():
    h = 1e-3
    b = segment_field(np.array([[-10.0, 0, 0]]), np.array([[10.0, 0, 0]]), np.array([0, 0, h]))
    assert b == pytest.approx([0, -MU0 / (2 * np.pi * h), 0], rel=1e-4)


def test_square_spiral_steps_inwards_by_one_pitch():
    v = square_spiral((0, 0, 0), 40e-6, 2e-6, 4e-6)
    sides = np.linalg.norm(np.diff(v, axis=0), axis=1)
    assert sides[:3] == pytest.approx([38e-6] * 3)
    assert sides[3:5] == pytest.approx([32e-6] * 2)
    assert np.all(np.abs(v[:, :2]) <= 19e-6 + 1e-12)


def test_spiral_field_reverses_with_current_and_spreads_over_filaments():
    v = square_spiral((0, 0, -7e-6), 40e-6, 2e-6, 4e-6)
    p = np.array([[0.0, 0.0, 0.0], [5e-6, -3e-6, 0.0]])
    one = polyline_field(v, p, 1e-3)
    three = polyline_field(v, p, 1e-3, track_m=2e-6, filaments=3)
    assert polyline_field(v, p, -1e-3) == pytest.approx(-one)
    assert three == pytest.approx(one, rel=0.05)
    assert one[0, 2] > 0  # counter-clockwise current seen from above: field points up


def test_field_on_filament_is_finite():
    b = segment_field(np.array([[0.0, 0, 0]]), np.array([[1.0, 0, 0]]), np.array([0.5, 0, 0]))
    assert np.all(np.isfinite(b))
