"""The simulated lock-in ODMR chain that scores seed 000: noise, fit, heating, movies, geometry."""

import numpy as np
import pytest

from sim.lockin_chain import DICTIONARY_DAY, TEST_DAY, ChainConfig, LockInQDM, Session, TwoDayProtocol


def quiet_config(**changes) -> ChainConfig:
    base = dict(roi_pixels=41, drift_t=0.0, hot_pixels=0, heating_k=0.0)
    return ChainConfig(**(base | changes))


@pytest.fixture(scope="module")
def chain():
    return LockInQDM(config=quiet_config(), seed=4)


def test_frame_noise_is_the_papers_sensitivity_at_208_frames_per_second(chain):
    assert chain.frame_noise_b_t == pytest.approx(400e-9 * np.sqrt(208), rel=1e-9)
    assert chain.pixel_m == pytest.approx(39.6e-6 / 34, rel=1e-3)  # 34x onto the 39.6 um pitch


def test_peak_fields_are_below_ten_microtesla_like_the_paper():
    full = LockInQDM(seed=0)  # the paper's 150 um field of view holds every coil
    assert full.shape == (129, 129)
    peaks = np.abs(full.true_unit).max(axis=(1, 2))
    assert peaks.max() < 10e-6 and peaks.min() > 2e-6


def test_doublet_fit_recovers_the_resonance_shift(chain):
    centres = chain._centres(np.full(chain.shape, 3e-6), 0.0, Session())
    fitted = chain.fit_centres(chain._sweep(centres, sweeps=10**6))
    assert np.nanmax(np.abs(fitted - centres)) < 2e3  # Hz, a few hundredths of a uT


def test_averaged_map_follows_the_truth_and_single_shot_is_noisier(chain):
    drive = np.zeros(chain.n_sources)
    drive[[0, 4]] = 1.0
    truth = chain.truth(drive)
    err_long = chain.measure(drive, sweeps=256) - truth
    err_single = chain.measure(drive, sweeps=1) - truth
    assert np.nanstd(err_long) < 0.5e-6
    # One sweep: each point is one 5.8 uT frame; the fit over ~70 points leaves ~2 uT per pixel.
    assert 1e-6 < np.nanstd(err_single) < 5e-6


def test_heating_reads_as_field_through_the_temperature_shift_of_d():
    q = LockInQDM(config=quiet_config(heating_k=0.5, heating_sigma_m=1e-3), seed=1)
    drive = np.zeros(q.n_sources)
    drive[0] = 1.0
    apparent = np.nanmedian(q.measure(drive, sweeps=10**5) - q.truth(drive))
    # f = D(T) - gamma B on the lower branch: a 0.5 K rise (-37 kHz) looks like +1.32 uT.
    assert apparent == pytest.approx(0.5 * 74e3 / 28.025e9, rel=0.1)


def test_movie_is_calibrated_to_field_and_quiet_frames_are_zero(chain):
    drives = np.zeros((60, chain.n_sources))
    drives[30:, 1] = 1.0
    movie = chain.measure_movie(drives)
    truth = chain.truth(drives[-1])
    busy = movie[30:].mean(axis=0)
    slope = np.sum(busy * truth) / np.sum(truth**2)
    assert slope == pytest.approx(1.0, abs=0.1)
    assert abs(np.mean(movie[:30])) < 0.2e-6


def test_nominal_model_differs_from_the_true_sample(chain):
    nominal = chain.nominal_unit_maps()
    assert nominal.shape == chain.true_unit.shape
    rel = np.linalg.norm(nominal - chain.true_unit) / np.linalg.norm(chain.true_unit)
    assert 0.02 < rel < 0.5  # standoff errors and leads: a real but modest mismatch


def test_binned_pixels_keep_the_papers_field_of_view():
    camera = LockInQDM(config=quiet_config(roi_pixels=129), seed=0)
    binned = LockInQDM(config=quiet_config(roi_pixels=43, pixel_m=3 * camera.pixel_m), seed=0)
    assert binned.shape == (43, 43)
    span = lambda q: q.x.max() - q.x.min() + q.pixel_m  # noqa: E731
    assert span(binned) == pytest.approx(span(camera), rel=1e-9)
    # The same coils, sampled coarser: their peak fields agree to the sampling.
    assert np.abs(binned.true_unit).max() == pytest.approx(np.abs(camera.true_unit).max(), rel=0.25)


def test_two_day_protocol_fills_failed_fits_and_measures_the_dictionary_on_another_day(monkeypatch):
    protocol = TwoDayProtocol(LockInQDM(config=quiet_config(roi_pixels=21), seed=1), sweeps=16)
    days = []
    real = protocol.qdm.measure

    def measure(drive, session=None, sweeps=None):
        days.append((session, sweeps))
        image = real(drive, session, sweeps)
        image[0, 0] = np.nan  # a failed fit
        return image

    monkeypatch.setattr(protocol.qdm, "measure", measure)
    drive = np.eye(protocol.n_sources)[0]
    dictionary, test = protocol.measure_dictionary(drive), protocol.measure(drive)
    assert np.isfinite(dictionary).all() and np.isfinite(test).all()
    assert days == [(DICTIONARY_DAY, 256), (TEST_DAY, 16)]
    assert DICTIONARY_DAY != TEST_DAY
