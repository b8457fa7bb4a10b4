"""Seed-002 baselines and scores (issue 18): uniform fit, support least squares, core fit, mean cosine.

Data are made on a grid 4x finer than the reconstruction's and sampled at its pixel centres, so the
baselines are not tested on their own forward model.
"""

from __future__ import annotations

import numpy as np
import pytest

from instrument.reconstruction import dip
from instrument.reconstruction import dip_masks as dm
from instrument.reconstruction import magnetisation_baselines as mb

SHAPE, PIXEL_M, FINE, THICKNESS_M, STANDOFF_M, MS = (32, 32), 30e-9, 4, 20e-9, 60e-9, 8e5
GEOMETRY = {"pixel_m": PIXEL_M, "standoff_m": STANDOFF_M, "thickness_m": THICKNESS_M}


def _fine_field(m_fine: np.ndarray, standoff_m: float = STANDOFF_M) -> np.ndarray:
    b = dip.project_nv(dip.stray_field(m_fine, PIXEL_M / FINE, standoff_m, THICKNESS_M), dip.nv_unit_vector())
    # Coarse pixel i is centred between fine pixels FINE*i + 1 and + 2: average the central 2x2.
    lo = FINE // 2 - 1
    return 0.25 * sum(b[lo + dy::FINE, lo + dx::FINE] for dy in (0, 1) for dx in (0, 1))


def _uniform_disc(angle_deg: float, radius_m: float = 150e-9) -> tuple[np.ndarray, np.ndarray]:
    shape_f = (SHAPE[0] * FINE, SHAPE[1] * FINE)
    support_f = dm.ellipse_support(shape_f, (radius_m / (PIXEL_M / FINE),) * 2)
    m_fine = np.concatenate([MS * dm.uniform_mask(support_f, angle_deg), np.zeros((1, *shape_f))])
    return m_fine, dm.ellipse_support(SHAPE, (radius_m / PIXEL_M,) * 2)


def test_mean_cosine_is_one_for_the_truth_minus_one_for_its_opposite_and_zero_for_random():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(2, 40, 40))
    inside = np.ones((40, 40), bool)
    assert mb.mean_cosine(truth, truth, inside) == pytest.approx(1.0)
    assert mb.mean_cosine(-truth, truth, inside) == pytest.approx(-1.0)
    assert abs(mb.mean_cosine(rng.normal(size=(2, 40, 40)), truth, inside)) < 0.05
    # A reconstruction that claims no direction (M = 0) scores 0, not NaN.
    assert mb.mean_cosine(np.zeros((2, 40, 40)), truth, inside) == 0.0
    with pytest.raises(ValueError, match="inside is empty"):
        mb.mean_cosine(truth, truth, np.zeros((40, 40), bool))


@pytest.mark.parametrize("angle_deg", [30.0, 200.0])
def test_uniform_fit_finds_the_direction_of_a_uniform_disc(angle_deg):
    m_fine, support = _uniform_disc(angle_deg)
    b = _fine_field(m_fine) + np.random.default_rng(1).normal(0, 0.3e-3, SHAPE)
    m = mb.uniform_fit(b, support, **GEOMETRY)
    angle = np.rad2deg(np.arctan2(m[1][support].mean(), m[0][support].mean()))
    assert (angle - angle_deg + 180) % 360 - 180 == pytest.approx(0, abs=2.0)
    assert np.all(m[:, ~support] == 0)
    assert np.linalg.norm(m[:, support], axis=0).mean() == pytest.approx(MS, rel=0.25)


def test_support_least_squares_fits_the_data_and_points_the_right_way_on_a_uniform_disc():
    m_fine, support = _uniform_disc(30.0)
    noise = 0.3e-3
    b = _fine_field(m_fine) + np.random.default_rng(2).normal(0, noise, SHAPE)
    m = mb.support_least_squares(b, support, noise_rms_t=noise, saturation_a_per_m=MS, **GEOMETRY)
    assert np.all(m[:, ~support] == 0)
    model = dip.project_nv(dip.stray_field(m, PIXEL_M, STANDOFF_M, THICKNESS_M), dip.nv_unit_vector())
    assert np.sqrt(np.mean((model - b) ** 2)) < 1.5 * noise  # fits to about the noise
    truth = MS * dm.uniform_mask(support, 30.0)
    assert mb.mean_cosine(m, truth, support) > 0.8


def test_vortex_in_plane_part_is_invisible_to_every_baseline():
    # Null space: a disc vortex's in-plane curl makes (nearly) no field, so the data carry no
    # chirality and the least-squares and uniform baselines score about 0 on it.
    shape_f = (SHAPE[0] * FINE, SHAPE[1] * FINE)
    px_f = PIXEL_M / FINE
    m_fine = dm.vortex_magnetization(shape_f, 400e-9 / px_f, 0.0, MS)
    uniform_fine, _ = _uniform_disc(0.0, 400e-9)
    b = _fine_field(m_fine)
    assert np.sqrt(np.mean(b**2)) < 0.01 * np.sqrt(np.mean(_fine_field(uniform_fine) ** 2))
    noise = 0.3e-3
    b = b + np.random.default_rng(3).normal(0, noise, SHAPE)
    support = dm.ellipse_support(SHAPE, (400e-9 / PIXEL_M,) * 2)
    truth = MS * dm.vortex_mask(support, 1)
    for m in (mb.uniform_fit(b, support, **GEOMETRY),
              mb.support_least_squares(b, support, noise_rms_t=noise, saturation_a_per_m=MS, **GEOMETRY)):
        assert abs(mb.mean_cosine(m, truth, support)) < 0.1


def test_core_fit_finds_position_moment_and_standoff_of_a_vortex_core():
    shape_f = (SHAPE[0] * FINE, SHAPE[1] * FINE)
    px_f = PIXEL_M / FINE
    centre_f = ((shape_f[0] - 1) / 2 + 3.0, (shape_f[1] - 1) / 2 - 5.0)  # off the coarse grid points
    m_fine = dm.vortex_magnetization(shape_f, 400e-9 / px_f, 10e-9 / px_f, MS, center_px=centre_f)
    true_standoff = 66e-9
    b = _fine_field(m_fine, true_standoff) + np.random.default_rng(4).normal(0, 0.3e-3, SHAPE)
    fit = mb.core_fit(b, pixel_m=PIXEL_M, thickness_m=THICKNESS_M, standoffs_m=np.arange(40e-9, 81e-9, 2e-9))
    # Fine pixel j sits at coarse coordinate (j - 1.5) / FINE.
    assert fit.y_px == pytest.approx((centre_f[0] - 1.5) / FINE, abs=0.3)
    assert fit.x_px == pytest.approx((centre_f[1] - 1.5) / FINE, abs=0.3)
    true_moment = m_fine[2].sum() * px_f**2 * THICKNESS_M
    assert fit.moment_a_m2 == pytest.approx(true_moment, rel=0.3)
    assert fit.standoff_m == pytest.approx(true_standoff, abs=6e-9)


def test_vortex_texture_has_saturated_moments_and_opposite_chiralities_make_the_same_core_field():
    shape = (65, 65)  # odd, so a pixel sits on the core's centre
    ccw = dm.vortex_magnetization(shape, 25, 2.0, MS, chirality=1)
    cw = dm.vortex_magnetization(shape, 25, 2.0, MS, chirality=-1)
    disc = dm.ellipse_support(shape, (25, 25))
    assert np.allclose(np.linalg.norm(ccw, axis=0)[disc], MS)
    assert np.all(ccw[:, ~disc] == 0)
    assert np.allclose(ccw[:2], -cw[:2]) and np.allclose(ccw[2], cw[2])
    assert ccw[2].max() == pytest.approx(MS, rel=0.05)  # the core points up (polarity +1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mb.uniform_fit(np.zeros((8, 8)), np.zeros((8, 8), bool), **GEOMETRY), "support is empty"),
        (lambda: mb.uniform_fit(np.zeros((8, 8)), np.ones((8, 9), bool), **GEOMETRY), "support must have"),
        (lambda: mb.uniform_fit(np.full((8, 8), np.nan), np.ones((8, 8), bool), **GEOMETRY), "NaN"),
        (lambda: mb.uniform_fit(np.zeros(8), np.ones(8, bool), **GEOMETRY), "2-D field map"),
        (lambda: mb.support_least_squares(np.zeros((8, 8)), np.ones((8, 8), bool), noise_rms_t=0,
                                          saturation_a_per_m=MS, **GEOMETRY), "must be positive"),
        (lambda: mb.core_fit(np.zeros((8, 8)), pixel_m=PIXEL_M, thickness_m=THICKNESS_M, standoffs_m=[]),
         "standoffs_m"),
        (lambda: mb.core_fit(np.zeros((2, 2)), pixel_m=PIXEL_M, thickness_m=THICKNESS_M,
                             standoffs_m=[5e-8]), "at least 3x3"),
        (lambda: dm.vortex_magnetization((8, 8), 3, 1, MS, chirality=0), "chirality"),
        (lambda: dm.vortex_magnetization((8, 8), -3, 1, MS), "radius_px"),
        (lambda: dm.vortex_mask(np.ones((8, 8)), chirality=2), "chirality"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()
