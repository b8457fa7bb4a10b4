import numpy as np
import pytest
from scipy.integrate import quad, trapezoid

from instrument.physics import fourier as pf
from instrument.physics.biot_savart import polyline_field
from instrument.physics.nv import NV_AXES, project_on_axis

PIXEL = 1e-6
N = 96


def grid_points(z_m: float = 0.0) -> np.ndarray:
    x = (np.arange(N) - (N - 1) / 2) * PIXEL
    xx, yy = np.meshgrid(x, x)
    return np.stack([xx, yy, np.full_like(xx, z_m)], axis=-1)


def square_loop(side_m: float, depth_m: float) -> np.ndarray:
    h = side_m / 2
    corners = np.array([[-h, -h], [h, -h], [h, h], [-h, h], [-h, -h]])
    return np.column_stack([corners, np.full(5, -depth_m)])


def loop_field(side_m=20e-6, depth_m=5e-6, current_a=1e-3, z_m=0.0) -> np.ndarray:
    return np.moveaxis(polyline_field(square_loop(side_m, depth_m), grid_points(z_m), current_a), -1, 0)


def loop_magnetization(side_m=20e-6, current_a=1e-3) -> np.ndarray:
    """A current loop is a uniform sheet of out-of-plane moment m = I inside it (Ampere's equivalence)."""
    p = grid_points()
    inside = (np.abs(p[..., 0]) < side_m / 2) & (np.abs(p[..., 1]) < side_m / 2)
    m = np.zeros((3, N, N))
    m[2] = current_a * inside
    return m


def rel_err(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_magnetization_forward_model_matches_biot_savart_of_equivalent_loop():
    b_fourier = pf.b_from_magnetization(loop_magnetization(), PIXEL, 5e-6, pad_factor=3)
    b_bs = loop_field()
    for c in range(3):
        assert rel_err(b_fourier[c], b_bs[c]) < 0.02


def test_sheet_current_forward_model_agrees_with_magnetization_model():
    # j = curl(m_z z) = (d m/dy, -d m/dx), taken spectrally on a smooth magnetization.
    p = grid_points()
    m = np.zeros((3, N, N))
    m[2] = 1e-3 * np.exp(-(p[..., 0] ** 2 + p[..., 1] ** 2) / (2 * (8e-6) ** 2))
    kx, ky, _ = pf.wavevectors((N, N), PIXEL)
    mk = np.fft.fft2(m[2])
    j = np.stack([np.fft.ifft2(1j * ky * mk).real, np.fft.ifft2(-1j * kx * mk).real])
    b_j = pf.b_from_sheet_current(j, PIXEL, 4e-6)
    b_m = pf.b_from_magnetization(m, PIXEL, 4e-6)
    for c in range(3):
        assert rel_err(b_j[c], b_m[c]) < 1e-3


def test_uniform_sheet_current_gives_half_mu0_k():
    j = np.zeros((2, 32, 32))
    j[0] = 2.0  # A/m along x
    b = pf.b_from_sheet_current(j, PIXEL, 3e-6, pad_factor=1)  # no padding: an infinite periodic sheet
    assert b[1].mean() == pytest.approx(-pf.MU0 / 2 * 2.0)
    assert np.abs(b[0]).max() < 1e-15


def test_upward_continuation_matches_biot_savart_further_away():
    near, far = loop_field(z_m=0.0), loop_field(z_m=3e-6)
    padded, crop = pf.pad(near[2])
    _, _, k = pf.wavevectors(padded.shape, PIXEL)
    continued = np.fft.ifft2(np.fft.fft2(padded) * pf.upward_continuation(k, 3e-6)).real[crop]
    assert rel_err(continued, far[2]) < 0.02


def test_nv_layer_thickness_averages_the_field_over_the_layer():
    thickness = 4e-6
    depths = np.linspace(0, thickness, 41)
    averaged = trapezoid([loop_field(z_m=z)[2] for z in depths], depths, axis=0) / thickness
    b = pf.b_from_magnetization(loop_magnetization(), PIXEL, 5e-6, nv_thickness_m=thickness, pad_factor=3)
    assert rel_err(b[2], averaged) < 0.02


def test_layer_thickness_factor_is_the_mean_of_the_decay():
    k = np.array([0.0, 1e5, 7e5, 3e6])
    t = 2e-6
    expected = [quad(lambda z, kk=kk: np.exp(-kk * z), 0, t)[0] / t for kk in k]
    assert pf.layer_thickness_factor(k, t) == pytest.approx(expected, rel=1e-9)
    assert np.all(pf.layer_thickness_factor(k, 0.0) == 1.0)


def test_projection_matches_nv_module_and_accepts_vectors():
    b = np.random.default_rng(0).normal(size=(3, 4, 5))
    for axis in range(4):
        assert pf.project_on_nv(b, axis) == pytest.approx(project_on_axis(b, axis))
    assert pf.project_on_nv(b, 2 * NV_AXES[1]) == pytest.approx(project_on_axis(b, 1))


def test_deprojection_kernel_recovers_components_of_a_potential_field():
    b = loop_field()
    b_nv = pf.project_on_nv(b, 0)
    padded, crop = pf.pad(b_nv)
    kx, ky, k = pf.wavevectors(padded.shape, PIXEL)
    comps = np.fft.ifft2(pf.deprojection_kernel(kx, ky, k, 0) * np.fft.fft2(padded)).real
    comps = comps[(slice(None),) + crop[1:]]
    for c in range(3):
        assert rel_err(comps[c], b[c]) < 0.02


def test_deprojection_kernel_stays_finite_for_in_plane_axis():
    kx, ky, k = pf.wavevectors((16, 16), PIXEL)
    d = pf.deprojection_kernel(kx, ky, k, np.array([1.0, 0.0, 0.0]))
    assert np.all(np.isfinite(d))
    assert np.all(d[:, 0, 0] == 0)


def test_wavevectors_follow_numpy_fft_layout():
    kx, ky, k = pf.wavevectors((4, 6), 2e-6)
    assert kx[0, 1] == pytest.approx(2 * np.pi / (6 * 2e-6))
    assert ky[1, 0] == pytest.approx(2 * np.pi / (4 * 2e-6))
    assert k == pytest.approx(np.hypot(kx, ky))


def test_pad_centres_and_crops_back():
    image = np.arange(12.0).reshape(3, 4)
    padded, crop = pf.pad(image, 2.0)
    assert padded.shape == (6, 8)
    assert np.array_equal(padded[crop], image)
    assert padded.sum() == image.sum()


@pytest.mark.parametrize("call, match", [
    (lambda: pf.padded_shape((4, 4), 0.5), "pad_factor"),
    (lambda: pf.pad(np.zeros((4, 4)), mode="wrap"), "pad mode"),
    (lambda: pf.wavevectors((4, 4), 0.0), "pixel_size_m"),
    (lambda: pf.layer_thickness_factor(np.ones(2), -1e-6), "thickness_m"),
    (lambda: pf.propagator(np.ones(2), -1e-6), "standoff_m"),
    (lambda: pf.nv_unit_vector(np.zeros(3)), "nv_axis"),
    (lambda: pf.nv_unit_vector([1.0, np.nan, 0.0]), "nv_axis"),
    (lambda: pf.b_from_magnetization(np.zeros((2, 4, 4)), PIXEL, 1e-6), r"\(3, rows, cols\)"),
    (lambda: pf.b_from_sheet_current(np.zeros((3, 4, 4)), PIXEL, 1e-6), r"\(2, rows, cols\)"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
