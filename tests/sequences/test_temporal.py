import h5py
import numpy as np
import pytest

from instrument.protocols import SafetyLimitError, SafetyLimits
from instrument.station import build_station
from sequences.temporal import (
    AP_DURATION_S,
    CoilWaveforms,
    ap_waveform,
    check_temporal,
    firing_pattern,
    run_temporal_imaging,
)


def test_ap_waveform_shape():
    t = np.linspace(-0.1, 0.4, 5001)
    i = ap_waveform(t)
    assert i.max() == pytest.approx(800e-6, rel=1e-3)
    assert t[np.argmax(i)] == pytest.approx(0.06, abs=2e-3)  # peak after 20 % of 300 ms
    assert i.min() == pytest.approx(-0.15 * 800e-6, rel=1e-2)  # undershoot
    assert np.all(i[(t < 0) | (t > AP_DURATION_S)] == 0)
    assert np.all(ap_waveform(t, undershoot=0.0) >= 0)


def test_firing_pattern_respects_refractory_period():
    wf = firing_pattern([0, 2, 5], 8, duration_s=20, rate_hz=3, refractory_s=0.4, seed=1)
    assert [len(o) for o in wf.onsets_s][1] == 0
    for onsets in wf.onsets_s:
        assert np.all(np.diff(onsets) >= AP_DURATION_S + 0.4 - 1e-9)
        assert all(t >= 0 and t + AP_DURATION_S <= 20 for t in onsets)
    assert sum(len(o) for o in wf.onsets_s) > 20
    assert wf.peak_abs_a == pytest.approx(800e-6, rel=1e-2)
    with pytest.raises(ValueError, match="channels"):
        firing_pattern([9], 8, 1.0, 1.0)
    with pytest.raises(ValueError):
        firing_pattern([0], 8, 1.0, 0.0)
    with pytest.raises(ValueError, match="onsets for 3 channels"):
        CoilWaveforms(3, ((0.0,),))


def test_unsafe_runs_are_refused_before_anything_moves():
    limits = SafetyLimits(coil_current_max_a=500e-6)
    wf = CoilWaveforms(2, ((0.1,), ()))
    with pytest.raises(SafetyLimitError, match="coil 0"):
        check_temporal(limits, 0.0, wf, 1.0)
    with pytest.raises(SafetyLimitError, match="MW power"):
        check_temporal(SafetyLimits(), 20.0, CoilWaveforms(2, ((), ())), 1.0)
    with pytest.raises(ValueError, match="`seconds`"):
        check_temporal(SafetyLimits(), 0.0, CoilWaveforms(2, ((), ())), 0.0)


@pytest.fixture(scope="module")
def temporal_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("temporal")
    with build_station(simulated=True, image_shape=(24, 24), seed=1) as st:
        world = st.world
        coil = next(i for i, c in enumerate(world.sample.coils) if not c.dead and c.layer == 0)
        onsets = tuple((0.4,) if i == coil else () for i in range(world.coil_currents_a.size))
        # 0.9 mA, the sim station's coil ceiling (sim.yaml, ceilings_a): the seed-000 fields are
        # below 10 uT, a tenth of the line width.
        wf = CoilWaveforms(len(onsets), onsets, peak_a=0.9e-3)
        res = run_temporal_imaging(st.instruments, out, seconds=1.0, center_hz=world.resonance_estimate_hz(),
                                   waveforms=wf, limits=st.limits, on_overflow="wait", frames_per_point=6)
        safe = {"currents": world.coil_currents_a.copy(), "mw": world.mw_output,
                "gate": world.mw_gate_modulation_hz, "acq_stop": st["camera"].get_setting("AcqStop")}
        truth = world.true_b_nv_t(currents_a=np.eye(len(onsets))[coil] * 0.9e-3)
        yield res, safe, truth, coil


def test_temporal_run_recovers_the_coil_field(temporal_run):
    res, safe, truth, coil = temporal_run
    assert res.capture.end_reason == "completed: duration reached"
    assert res.capture.frames_written == pytest.approx(208, abs=2)
    with h5py.File(res.field_path) as f:
        field, t, currents = f["field_t"][...], f["time_s"][...], f["currents_a"][...]
    peak = int(np.argmax(currents[:, coil]))
    assert t[peak] == pytest.approx(0.4 + 0.06, abs=0.01)
    # the peak frame matches the coil's true field; before the spike there is only noise
    measured = np.nan_to_num(field[peak - 3:peak + 4].mean(axis=0))  # +-15 ms around the peak
    # Noise of a 7-frame mean, from the frames before the spike; the bounds below follow from it.
    sigma = np.nanstd(field[: res.baseline_frames]) / np.sqrt(7)
    expected_r = np.std(truth) / np.sqrt(np.var(truth) + sigma**2)
    assert np.corrcoef(measured.ravel(), truth.ravel())[0, 1] > expected_r - 0.15
    slope_error = sigma / np.sqrt(np.sum(truth**2))
    assert np.sum(measured * truth) / np.sum(truth**2) == pytest.approx(1.0, abs=0.15 + 4 * slope_error)
    quiet = np.nan_to_num(field[: res.baseline_frames].mean(axis=0))
    assert np.abs(quiet).max() < 5 * np.nanstd(field[: res.baseline_frames]) / np.sqrt(res.baseline_frames)


def test_temporal_run_leaves_everything_safe(temporal_run):
    res, safe, truth, coil = temporal_run
    assert np.all(safe["currents"] == 0) and not safe["mw"] and safe["gate"] == 0 and safe["acq_stop"] == 1


def test_default_drive_fits_inside_the_capture(tmp_path):
    from types import SimpleNamespace

    untouched = {"mw": None, "pulser": None, "camera": None, "stimulus": SimpleNamespace(n_channels=12)}
    with pytest.raises(ValueError, match="`seconds`"):  # refused before any instrument is used
        run_temporal_imaging(untouched, tmp_path, seconds=0.5, center_hz=2.78e9)
    wf = firing_pattern(range(12), 12, duration_s=1.75, rate_hz=3.0, start_s=0.25, seed=0)
    assert wf.end_s <= 2.0 and min(min(o) for o in wf.onsets_s if o) >= 0.25


def test_steepest_point_is_on_a_flank(temporal_run):
    res = temporal_run[0]
    cal = res.calibration
    mean = cal.spectra.reshape(len(cal.frequencies_hz), -1).mean(axis=1)
    i = int(np.argmin(np.abs(cal.frequencies_hz - cal.parked_hz)))
    assert 0 < mean[i] < mean.max()  # neither off resonance nor on the top
    assert np.nanmedian(np.abs(cal.slope_per_hz)) > 0



def test_peaks_and_matrix_match_the_waveform_sampled_point_by_point():
    # channel 0: two overlapping spikes (they add) and one alone; channel 1: one spike; channel 2: none
    wf = CoilWaveforms(3, ((0.0, 0.05, 1.0), (0.5,), ()), peak_a=500e-6)
    t = np.arange(0.0, 1.4, 1e-3)
    brute = np.array([wf(x) for x in t])
    np.testing.assert_allclose(wf.channel_peaks_a(), np.abs(brute).max(axis=0), rtol=1e-3)
    assert wf.channel_peaks_a()[0] > 500e-6  # the overlap adds: above one spike's peak
    shuffled = np.random.default_rng(0).permutation(len(t))
    np.testing.assert_allclose(wf.matrix(t[shuffled]), brute[shuffled])
    with pytest.raises(SafetyLimitError, match="coil 0"):
        check_temporal(SafetyLimits(coil_current_max_a=600e-6), 0.0, wf, 2.0)
