import numpy as np
import pytest

from instrument.physics import fourier as pf
from instrument.physics.biot_savart import polyline_field
from instrument.reconstruction import fourier as rf

PIXEL = 1e-6
N = 120
STANDOFF = 5e-6
CURRENT = 1e-3
SIDE = 30e-6


@pytest.fixture(scope="module")
def loop():
    """Biot-Savart field (3, N, N) of a square current loop below the NV layer, and the pixel grid."""
    x = (np.arange(N) - (N - 1) / 2) * PIXEL
    xx, yy = np.meshgrid(x, x)
    h = SIDE / 2
    verts = np.array([[-h, -h], [h, -h], [h, h], [-h, h], [-h, -h]])
    verts = np.column_stack([verts, np.full(5, -STANDOFF)])
    points = np.stack([xx, yy, np.zeros_like(xx)], axis=-1)
    return np.moveaxis(polyline_field(verts, points, CURRENT), -1, 0), xx, yy


def test_deprojection_recovers_biot_savart_components(loop):
    b, _, _ = loop
    for axis in range(4):
        comps = rf.b_vector_from_b_nv(pf.project_on_nv(b, axis), axis, PIXEL)
        for c in range(3):
            assert np.abs(comps[c] - b[c]).max() < 0.01 * np.abs(b[c]).max()


@pytest.mark.parametrize("component", ["bz", "bxy"])
def test_current_density_carries_the_loop_current(loop, component):
    b, xx, _ = loop
    j = rf.current_density_from_b(b, PIXEL, STANDOFF, component=component)
    row = N // 2
    # Counter-clockwise seen from above: +y on the right side, -y on the left.
    right = j[1][row, xx[row] > 0].sum() * PIXEL
    left = j[1][row, xx[row] < 0].sum() * PIXEL
    assert right == pytest.approx(CURRENT, rel=0.05)
    assert left == pytest.approx(-CURRENT, rel=0.05)
    # Along the middle column the loop current flows in x: -x along the top side, +x along the bottom.
    column = j[0][:, N // 2] * PIXEL
    assert column[: N // 2].sum() == pytest.approx(CURRENT, rel=0.05)  # rows with y < 0: bottom side
    assert column[N // 2:].sum() == pytest.approx(-CURRENT, rel=0.05)


def test_current_density_peaks_on_the_tracks(loop):
    b, xx, yy = loop
    j = rf.current_density_from_b(b, PIXEL, STANDOFF)
    magnitude = np.hypot(*j)
    on_track = np.abs(np.maximum(np.abs(xx), np.abs(yy)) - SIDE / 2) < 2e-6
    centre = np.maximum(np.abs(xx), np.abs(yy)) < SIDE / 2 - 8e-6
    assert magnitude[on_track].mean() > 4 * magnitude[centre].mean()


def test_out_of_plane_magnetization_of_a_loop_is_its_current(loop):
    b, xx, yy = loop
    m = rf.magnetization_from_b_nv(pf.project_on_nv(b, 0), 0, PIXEL, STANDOFF)
    edge = np.maximum(np.abs(xx), np.abs(yy))
    inside, outside = m[edge < SIDE / 2 - 5e-6], m[edge > SIDE / 2 + 12e-6]
    assert np.median(inside) - np.median(outside) == pytest.approx(CURRENT, rel=0.1)


def test_in_plane_magnetization_round_trip():
    x = (np.arange(N) - (N - 1) / 2) * PIXEL
    xx, yy = np.meshgrid(x, x)
    m = np.zeros((3, N, N))
    m[0] = 2e-3 * np.exp(-(xx**2 + yy**2) / (2 * (10e-6) ** 2))
    b_nv = pf.project_on_nv(pf.b_from_magnetization(m, PIXEL, 2e-6), 1)
    recovered = rf.magnetization_from_b_nv(b_nv, 1, PIXEL, 2e-6, direction=(1.0, 0.0, 0.0))
    truth = m[0] - m[0].mean()  # the uniform part is invisible to a field map
    assert np.abs(recovered - truth).max() < 0.1 * truth.max()


def test_default_filter_bounds_the_noise_gain():
    for standoff in (1e-6, 7e-6, 15e-6):
        k = np.linspace(0, 10 / standoff, 20001)
        cutoff = rf.default_cutoff_k(standoff, 0.1e-6)
        gain = rf.hann_filter(k, cutoff) * np.exp(k * standoff)
        assert gain.max() < 2.5
    assert rf.default_cutoff_k(1e-6, 2e-6) == pytest.approx(np.pi / 2e-6)  # capped at Nyquist


def test_hann_filter_shape():
    k = np.array([0.0, 0.5, 1.0, 2.0])
    assert rf.hann_filter(k, 1.0) == pytest.approx([1.0, 0.5, 0.0, 0.0])


@pytest.mark.parametrize("call, match", [
    (lambda: rf.b_vector_from_b_nv(np.zeros(5), 0, PIXEL), "2-D map"),
    (lambda: rf.b_vector_from_b_nv(np.full((4, 4), np.nan), 0, PIXEL), "NaN"),
    (lambda: rf.current_density_from_b(np.zeros((2, 4, 4)), PIXEL, 1e-6), r"\(3, rows, cols\)"),
    (lambda: rf.current_density_from_b(np.zeros((3, 4, 4)), PIXEL, 1e-6, component="by"), "component"),
    (lambda: rf.magnetization_from_b_nv(np.zeros((4, 4)), 0, PIXEL, 1e-6, direction=(0, 0, 0)), "direction"),
    (lambda: rf.hann_filter(np.ones(3), 0.0), "cutoff_k"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
