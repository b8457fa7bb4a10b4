import numpy as np
import pytest

from instrument.reconstruction import seed000
from sim.field_maps import NoisyMicroscope

from .simulated import unscaled_world


@pytest.fixture(scope="module")
def microscope():
    return NoisyMicroscope(unscaled_world((48, 48)), seed=11)


@pytest.fixture(scope="module")
def basis(microscope):
    return seed000.measure_basis(microscope.measure, microscope.n_sources, averages=4)


@pytest.fixture(scope="module")
def report(microscope, basis):
    return seed000.run_all(basis, microscope.measure, microscope.measure_movie, n_frames=300)


def test_run_all_scores_every_case(report):
    names = [c.name for c in report.cases]
    assert names == ["static 2 coils", "static 4 coils", "static 7 coils",
                     "temporal high sparsity", "temporal low sparsity"]
    for case in report.cases[:3]:
        assert case.f1_lasso == 1.0  # static maps are clean enough to find every coil
        assert case.r[0] > 0.9 and case.rrmse[1] < 0.5 and 0 < case.ssim[0] <= 1
        assert case.frames_scored == 1
    for case in report.cases[3:]:
        assert case.frames_scored == 4
        assert case.f1_lasso > 0.8
        assert case.ssim[0] <= case.ssim[1]


def test_table_lists_cases_and_paper_ranges(report):
    text = str(report)
    for name in ("static 2 coils", "temporal low sparsity", "paper static", "paper temporal", "F1 pinv"):
        assert name in text
    assert "0.573-0.820" in text  # Table 1 SSIM range


def test_static_cases_need_an_in_range_combination(microscope, basis):
    with pytest.raises(ValueError, match="outside 0..7"):
        seed000.static_experiment(basis, microscope.measure, combinations={"bad": (0, 8)})


def test_measure_with_wrong_shape_is_rejected(basis):
    with pytest.raises(ValueError, match="expected \\(48, 48\\)"):
        seed000.static_experiment(basis, lambda drive: np.zeros((10, 10)))


def test_movie_with_wrong_shape_is_rejected(basis):
    with pytest.raises(ValueError, match="measure_movie returned shape"):
        seed000.temporal_experiment(basis, lambda drives: np.zeros((3, 48, 48)), "high")


def test_ap_waveform_shape():
    t = np.linspace(-0.1, 0.4, 5001)
    w = seed000.ap_waveform(t, duration_s=0.3)
    assert w.max() == pytest.approx(1.0, abs=1e-6)
    assert t[np.argmax(w)] == pytest.approx(0.045, abs=1e-3)  # peak at 15 % of the duration
    assert w.min() == pytest.approx(-0.2, abs=1e-6)  # hyperpolarising undershoot
    assert np.all(w[(t < 0) | (t >= 0.3)] == 0)
    assert np.max(np.abs(np.diff(w))) < 0.01  # continuous


@pytest.mark.parametrize("sparsity, events", [("high", 1), ("low", 3)])
def test_temporal_drives_respect_events_and_refractory_period(sparsity, events):
    rate = 208.0
    d = seed000.temporal_drives(8, 400, rate, sparsity, np.random.default_rng(0))
    assert d.shape == (400, 8)
    for column in d.T:
        starts = np.flatnonzero((column[1:] != 0) & (column[:-1] == 0)) + 1
        if column[0] != 0:
            starts = np.r_[0, starts]
        assert len(starts) == events
        assert np.all(np.diff(starts) / rate >= 0.3 + 0.1 - 2 / rate)


def test_low_sparsity_overlaps_more_than_high():
    rng = np.random.default_rng(1)
    high = seed000.temporal_drives(8, 400, 208.0, "high", rng)
    low = seed000.temporal_drives(8, 400, 208.0, "low", rng)
    assert np.mean(np.abs(low) > 0.1) > 2 * np.mean(np.abs(high) > 0.1)


def test_temporal_drives_reject_impossible_requests():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="do not fit"):
        seed000.temporal_drives(8, 100, 208.0, "low", rng)
    with pytest.raises(ValueError, match="sparsity"):
        seed000.temporal_drives(8, 400, 208.0, "medium", rng)


def test_representative_frames_are_busy_and_spread():
    d = seed000.temporal_drives(8, 400, 208.0, "low", np.random.default_rng(2))
    frames = seed000.representative_frames(d)
    activity = np.abs(d).sum(axis=1)
    assert len(frames) == 4 and np.all(np.diff(frames) > 0)
    assert np.all(activity[frames] >= 0.5 * activity.max())


def test_measure_basis_averages(microscope):
    calls = []

    def measure(drive):
        calls.append(drive.copy())
        return np.full((4, 4), float(np.argmax(drive)))

    b = seed000.measure_basis(measure, 3, averages=2)
    assert b.shape == (3, 4, 4) and len(calls) == 6
    assert b[2] == pytest.approx(np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="averages"):
        seed000.measure_basis(measure, 3, averages=0)


def test_random_configurations_are_distinct_and_in_range():
    configs = seed000.random_configurations(8, 50, np.random.default_rng(0))
    assert len(configs) == len(set(configs)) == 50
    assert all(2 <= len(c) <= 7 and set(c) <= set(range(8)) for c in configs)
    with pytest.raises(ValueError, match="active_range"):
        seed000.random_configurations(4, 3, np.random.default_rng(0), active_range=(2, 7))


def test_trivial_baselines():
    assert seed000.all_on_f1(np.array([1.0, 0, 0, 1.0])) == pytest.approx(2 * 0.5 / 1.5)
    basis = np.random.default_rng(1).normal(size=(3, 20, 20))
    rec = seed000.DictionaryReconstructor(basis)
    truth = basis[0] + basis[2]
    assert seed000.identity_scores(rec, truth, truth)["rrmse_truth"] == pytest.approx(0.0, abs=1e-12)
    scores = seed000.score_map(rec, truth, truth, np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0]))
    assert scores["f1"] == 1.0 and scores["coef_rms"] == 0.0 and scores["r_truth"] == pytest.approx(1.0)
