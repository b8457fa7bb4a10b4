import numpy as np
import pytest
from sklearn.linear_model import Lasso

from instrument.reconstruction.dictionary import (
    DictionaryReconstructor,
    lasso_gram,
    robust_noise_sigma,
)
from instrument.reconstruction.metrics import active_set_scores
from sim.field_maps import NoisyMicroscope

from .simulated import unscaled_world

SHAPE = (48, 48)


@pytest.fixture(scope="module")
def microscope():
    return NoisyMicroscope(unscaled_world(SHAPE), seed=3)


@pytest.fixture(scope="module")
def basis(microscope):
    """Noise-free single-coil maps of the 8 live coils of the seed-000 sample."""
    return np.stack([microscope.truth(np.eye(8)[i]) for i in range(8)])


def drive(*active, value=1.0):
    x = np.zeros(8)
    x[list(active)] = value
    return x


@pytest.mark.parametrize("method", ["lasso", "pinv"])
def test_noise_free_combination_is_recovered_exactly(basis, method):
    rec = DictionaryReconstructor(basis)
    truth = drive(0, 3, 6, value=0.8) + drive(5, value=-0.4)
    got = rec.fit(rec.reconstruct(truth), method=method)
    assert got == pytest.approx(truth, abs=1e-6)
    assert rec.reconstruct(got) == pytest.approx(rec.reconstruct(truth), abs=1e-12)


def test_lasso_matches_scikit_learn_on_the_standardised_problem(basis):
    rng = np.random.default_rng(0)
    y = np.tensordot(drive(1, 4, value=0.7), basis, 1) + rng.normal(0, 2e-6, SHAPE)
    rec = DictionaryReconstructor(basis, drift_order=0, hot_pixel_sigma=0, debias=False)
    alpha = 0.05
    ours = rec.fit(y, alpha=alpha)
    # Seed 000 step 3: centre and scale basis and map to unit variance, then LASSO.
    a = basis.reshape(8, -1).T
    a = (a - a.mean(0)) / a.std(0)
    yc = (y.ravel() - y.mean()) / y.std()
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100000).fit(a, yc).coef_
    assert ours * basis.reshape(8, -1).std(1) / y.std() == pytest.approx(ref, abs=1e-7)
    assert rec.alpha_ == pytest.approx(alpha)


def test_lasso_gram_satisfies_optimality_conditions():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(8, 8))
    gram = q @ q.T / 8 + 0.05 * np.eye(8)
    b = rng.normal(size=(50, 8))
    alpha = rng.uniform(0.05, 1.0, 50)
    z = lasso_gram(gram, b, alpha)
    grad = b - z @ gram
    active = z != 0
    assert np.allclose(grad[active], (alpha[:, None] * np.sign(z))[active], atol=1e-9)
    assert np.all(np.abs(grad[~active]) <= np.broadcast_to(alpha[:, None], z.shape)[~active] + 1e-9)


def test_automatic_alpha_keeps_noise_only_frames_empty(basis):
    rng = np.random.default_rng(2)
    rec = DictionaryReconstructor(basis)  # false_alarm = 1 % per frame
    noise = rng.normal(0, 1e-6, (400, *SHAPE))
    coefficients = rec.fit(noise)
    frames_with_any = np.mean(np.any(coefficients != 0, axis=1))
    assert frames_with_any < 0.03
    # The same frames through the pseudo-inverse are never exactly zero.
    assert np.all(rec.fit(noise, method="pinv") != 0)


def test_automatic_alpha_follows_the_noise(basis):
    rng = np.random.default_rng(3)
    rec = DictionaryReconstructor(basis)
    clean = np.tensordot(drive(2, 7), basis, 1)
    alphas = []
    for sigma in (0.5e-6, 2e-6, 8e-6):
        rec.fit(clean + rng.normal(0, sigma, SHAPE))
        assert rec.noise_sigma_ == pytest.approx(sigma, rel=0.15)
        alphas.append(rec.alpha_)
    assert alphas[0] < alphas[1] < alphas[2]


def test_robust_noise_sigma_ignores_smooth_signal_and_hot_pixels():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:200, 0:200] / 200
    frame = 50 * np.sin(6 * x) * np.cos(4 * y) + rng.normal(0, 1.0, (200, 200))
    frame[rng.integers(0, 200, 30), rng.integers(0, 200, 30)] += 1e4
    assert robust_noise_sigma(frame, max_samples=20000) == pytest.approx(1.0, rel=0.05)


def test_background_drift_does_not_move_the_coefficients(basis):
    rec = DictionaryReconstructor(basis)
    truth = drive(0, 4, value=0.9)
    clean = rec.reconstruct(truth)
    y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]] / SHAPE[0]
    drifted = clean + 5e-6 + 20e-6 * x - 15e-6 * y
    assert rec.fit(drifted) == pytest.approx(truth, abs=1e-6)
    # Mean-centring alone (order 0) cannot remove a tilt.
    offset_only = DictionaryReconstructor(basis, drift_order=0)
    assert np.abs(offset_only.fit(drifted, method="pinv") - truth).max() > 0.05


def test_hot_pixels_and_nan_pixels_are_ignored(basis):
    rng = np.random.default_rng(5)
    truth = drive(1, 3, 6, value=0.6)
    clean = np.tensordot(truth, basis, 1) + rng.normal(0, 0.5e-6, SHAPE)
    damaged = clean.copy()
    where = rng.integers(0, SHAPE[0], 6), rng.integers(0, SHAPE[1], 6)
    damaged[where] += 300e-6
    damaged[10, 10] = np.nan
    robust = DictionaryReconstructor(basis)
    naive = DictionaryReconstructor(basis, hot_pixel_sigma=0)
    reference = robust.fit(clean, method="pinv")
    assert robust.fit(damaged, method="pinv") == pytest.approx(reference, abs=0.01)
    assert robust.hot_pixels_ >= 7
    assert np.abs(naive.fit(np.nan_to_num(damaged), method="pinv") - reference).max() > 0.05
    assert robust.active(robust.fit(damaged)).tolist() == (truth > 0).tolist()


def test_movie_matches_frame_by_frame_and_chunking(basis):
    rng = np.random.default_rng(6)
    drives = (rng.random((23, 8)) < 0.4) * rng.uniform(0.2, 1.0, (23, 8))
    movie = np.tensordot(drives, basis, 1) + rng.normal(0, 1e-6, (23, *SHAPE))
    rec = DictionaryReconstructor(basis, chunk_frames=9, threads=3)
    rec._block = 2  # small maps fit one cache block; force several blocks onto the thread pool
    together = rec.fit(movie)
    assert together.shape == (23, 8) and rec.alpha_.shape == (23,)
    one_by_one = np.array([rec.fit(frame) for frame in movie])
    assert together == pytest.approx(one_by_one, abs=1e-9)
    single_precision = rec.fit(movie.astype(np.float32))
    assert single_precision == pytest.approx(together, abs=1e-3)


def test_lasso_beats_pinv_on_active_sets_in_noisy_frames(basis):
    rng = np.random.default_rng(7)
    rec = DictionaryReconstructor(basis)
    drives = np.zeros((150, 8))
    for row in drives:
        row[rng.choice(8, 2, replace=False)] = 1.0
    noise = 25e-6  # per pixel: puts the pseudo-inverse noise near the 0.1 active threshold
    movie = np.tensordot(drives, basis, 1) + rng.normal(0, noise, (150, *SHAPE))
    truth = rec.active(drives)
    f1_lasso = active_set_scores(truth, rec.active(rec.fit(movie))).f1
    f1_pinv = active_set_scores(truth, rec.active(rec.fit(movie, method="pinv"))).f1
    assert f1_lasso > f1_pinv + 0.05
    assert f1_lasso > 0.9


def test_active_uses_the_threshold(basis):
    rec = DictionaryReconstructor(basis, active_threshold=0.25)
    c = np.array([0.0, 0.2, -0.3, 0.25, 1.0, -0.01, 0.0, 0.5])
    assert rec.active(c).tolist() == [False, False, True, True, True, False, False, True]
    assert rec.active(c, threshold=0.0).tolist() == [False, True, True, True, True, True, False, True]


def test_seed000_microscope_recovers_static_combination(microscope):
    from instrument.reconstruction.seed000 import measure_basis

    basis = measure_basis(microscope.measure, 8, averages=4)
    rec = DictionaryReconstructor(basis)
    truth = drive(0, 2, 3, 7)
    coefficients = rec.fit(microscope.measure(truth))
    assert rec.active(coefficients).tolist() == (truth > 0).tolist()
    assert coefficients[truth > 0] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("kwargs, match", [
    ({"basis": np.zeros((4, 4))}, "shape"),
    ({"basis": np.full((2, 16, 16), np.nan)}, "NaN"),
    ({"basis": np.ones((2, 16, 16))}, "flat"),
    ({"basis": np.ones((30, 4, 4))}, "too few"),
    ({"false_alarm": 1.5}, "false_alarm"),
    ({"active_threshold": -1}, "active_threshold"),
])
def test_bad_construction_raises(basis, kwargs, match):
    args = {"basis": basis, **kwargs}
    with pytest.raises(ValueError, match=match):
        DictionaryReconstructor(**args)


def test_duplicate_sources_are_named(basis):
    doubled = np.concatenate([basis[:3], basis[1:2] * 2])
    with pytest.raises(ValueError, match="linearly dependent"):
        DictionaryReconstructor(doubled)


@pytest.mark.parametrize("call, error, match", [
    (lambda r: r.fit(np.zeros((10, 10))), ValueError, "shape"),
    (lambda r: r.fit(np.zeros(SHAPE), method="omp"), ValueError, "method"),
    (lambda r: r.fit(np.zeros(SHAPE), alpha=-0.1), ValueError, "alpha"),
    (lambda r: r.fit(np.zeros((3, *SHAPE)), alpha=[0.1, 0.2]), ValueError, "one value per frame"),
    (lambda r: r.fit(np.full(SHAPE, np.nan)), ValueError, "no finite pixel"),
    (lambda r: r.fit(np.zeros(SHAPE, dtype=complex)), TypeError, "real"),
    (lambda r: r.reconstruct(np.zeros(5)), ValueError, "coefficients"),
])
def test_bad_fit_input_raises(basis, call, error, match):
    with pytest.raises(error, match=match):
        call(DictionaryReconstructor(basis))


def test_all_zero_frame_gives_zero_coefficients(basis):
    rec = DictionaryReconstructor(basis)
    assert np.all(rec.fit(np.zeros(SHAPE)) == 0)
    assert np.all(rec.fit(np.zeros(SHAPE), method="pinv") == 0)


def test_movie_with_hot_and_nan_pixels_in_some_frames(basis):
    rng = np.random.default_rng(8)
    drives = (rng.random((12, 8)) < 0.4) * 0.8
    clean = np.tensordot(drives, basis, 1) + rng.normal(0, 0.5e-6, (12, *SHAPE))
    damaged = clean.copy()
    damaged[3, 5, 7] = np.nan
    damaged[3, 20, 20] = np.inf
    damaged[7, rng.integers(0, SHAPE[0], 4), rng.integers(0, SHAPE[1], 4)] += 300e-6
    rec = DictionaryReconstructor(basis, threads=2)
    rec._block = 3  # several blocks, so the threaded pass handles the damaged frames
    reference = rec.fit(clean)
    assert rec.fit(damaged) == pytest.approx(reference, abs=0.01)
    assert rec.hot_pixels_[3] >= 2 and rec.hot_pixels_[7] >= 4
    assert rec.hot_pixels_[0] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reported_alpha_is_the_automatic_rule_in_standardised_units(basis, dtype):
    rng = np.random.default_rng(9)
    y = (np.tensordot(drive(2, 5), basis, 1) + rng.normal(0, 1e-6, SHAPE)).astype(dtype)
    rec = DictionaryReconstructor(basis)
    rec.fit(y)
    data_sigma = rec.detrend(y).std()  # standardisation of seed 000, after the background fit
    assert rec.alpha_ == pytest.approx(rec.alpha_for_noise(rec.noise_sigma_, data_sigma), rel=1e-4)
