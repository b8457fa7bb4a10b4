import numpy as np
import pytest

from instrument.reconstruction.metrics import SetScores, active_set_scores, pearson_r, rrmse, ssim


@pytest.fixture
def field():
    y, x = np.mgrid[0:40, 0:40] / 40
    return np.sin(5 * x) * np.cos(3 * y) * 1e-5


def test_ssim_is_one_for_identical_maps_and_drops_with_noise(field):
    assert ssim(field, field) == pytest.approx(1.0)
    noisy = field + np.random.default_rng(0).normal(0, 2e-6, field.shape)
    assert ssim(field, noisy) < 0.9


def test_ssim_data_range_is_explicit_and_matters(field):
    noisy = field + np.random.default_rng(1).normal(0, 2e-6, field.shape)
    default = ssim(field, noisy)
    assert default == pytest.approx(ssim(field, noisy, data_range=np.ptp(field)))
    # A larger range makes the stabilising constants larger, so the score rises.
    assert ssim(field, noisy, data_range=10 * np.ptp(field)) > default


def test_ssim_scale_invariance_in_physical_units(field):
    # Microtesla maps in tesla must score the same as in microtesla: the range follows the data.
    noisy = field + np.random.default_rng(2).normal(0, 2e-6, field.shape)
    assert ssim(field, noisy) == pytest.approx(ssim(field * 1e6, noisy * 1e6))


def test_rrmse_values(field):
    assert rrmse(field, field) == 0.0
    assert rrmse(field, 1.1 * field) == pytest.approx(0.1)
    assert rrmse(field, np.zeros_like(field)) == pytest.approx(1.0)


def test_pearson_values(field):
    assert pearson_r(field, 2 * field + 3e-6) == pytest.approx(1.0)
    assert pearson_r(field, -field) == pytest.approx(-1.0)
    assert np.isnan(pearson_r(field, np.ones_like(field)))


def test_set_scores_counts_and_edge_cases():
    t = np.array([[True, False, True], [False, False, True]])
    e = np.array([[True, True, False], [False, False, True]])
    s = active_set_scores(t, e)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 1, 1)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert SetScores(0, 0, 0).f1 == 1.0  # nothing to find, nothing claimed
    assert SetScores(0, 0, 3).f1 == 0.0  # everything missed
    assert SetScores(0, 2, 0).precision == 0.0


@pytest.mark.parametrize("call, error, match", [
    (lambda f: ssim(f, f[:-1]), ValueError, "shape"),
    (lambda f: ssim(f[:5, :5], f[:5, :5]), ValueError, "7x7"),
    (lambda f: ssim(np.ones((10, 10)), np.ones((10, 10))), ValueError, "flat"),
    (lambda f: ssim(f, f, data_range=0), ValueError, "data_range"),
    (lambda f: rrmse(np.zeros_like(f), f), ValueError, "all zero"),
    (lambda f: pearson_r(f, np.where(f > 0, np.nan, f)), ValueError, "NaN"),
    (lambda f: active_set_scores(np.ones(3, bool), np.ones(4, bool)), ValueError, "shape"),
    (lambda f: active_set_scores(np.ones(3), np.ones(3)), TypeError, "boolean"),
])
def test_bad_input_raises(field, call, error, match):
    with pytest.raises(error, match=match):
        call(field)
