"""CW ODMR with an intensity camera, end to end on Basler's emulator: frame pairs, checks, a missing cable."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

if importlib.util.find_spec("pypylon") is None:
    if os.environ.get("CI"):
        raise RuntimeError("pypylon is missing in CI; it is part of the test extra (pip install -e .[test])")
    pytest.skip("pypylon not installed: pip install -e .[basler]", allow_module_level=True)

from instrument.protocols import IntensityCamera  # noqa: E402
from instrument.services.cw import CwOdmrRequest, build_cw_sweep, run_cw_odmr  # noqa: E402
from instrument.services.runs import prepare_run  # noqa: E402
from instrument.station import build_station, bundled_station  # noqa: E402
from instrument.storage.runs import load_run  # noqa: E402
from sequences.camera_cw import CameraCwSweep  # noqa: E402
from sim.basler_images import enable_emulator  # noqa: E402

enable_emulator(1)
SHAPE = (16, 16)


@pytest.fixture(scope="module")  # qcodes allows one "mw" instrument at a time
def station():
    with build_station(bundled_station("basler.yaml"), simulated=True, image_shape=SHAPE, seed=3) as st:
        yield st


def sweep_frequencies(station, points=11, span_hz=14e6):
    return station.world.resonance_estimate_hz() + np.linspace(-span_hz / 2, span_hz / 2, points)


def test_the_station_picks_the_frame_pair_sweep_for_its_camera(station):
    assert isinstance(station["camera"], IntensityCamera)
    sweep = build_cw_sweep(station, CwOdmrRequest(sweep_frequencies(station), 0.0, frames_per_point=3))
    assert isinstance(sweep, CameraCwSweep)
    assert sweep.image_shapes == {"signal": SHAPE, "reference": SHAPE}
    ramps_s = 2 * np.abs(sweep.coil_currents_a).max() / station.limits.coil_ramp_rate_a_per_s
    assert ramps_s > 0  # camera time of 22 points of 3 frame pairs, and the coils' ramp on and off
    assert sweep.estimated_duration_s == pytest.approx(22 * 6 * 12e-3 + ramps_s)


def test_a_sweep_on_the_emulator_finds_the_resonance_through_basler_code(station, tmp_path):
    freqs = sweep_frequencies(station)
    f0 = station.world.resonance_estimate_hz()
    link = station.sim_parts["camera_line"]
    before = len(link.windows)
    result = run_cw_odmr(station, CwOdmrRequest(freqs, 5.0, frames_per_point=4), tmp_path, "test")
    assert result.outcome.status == "completed" and result.outcome.steps_done == 22
    # every frame came from a pulse on the camera line: 4 pairs per point, none ignored
    assert len(link.windows) - before == 22 * 8 and link.overtriggers == 0
    run = load_run(tmp_path, result.run.run_id)
    camera = run.metadata["station_snapshot"]["instruments"]["camera"]
    assert (camera["model"], camera["serial"], camera["device_class"]) == ("Emulation", "0815-0000",
                                                                           "BaslerCamEmu")
    assert any("cannot see Line1" in gap for gap in camera["sim_gaps"])
    assert run.metadata["sequence"]["plan"]["camera_exposure_mode"] == "trigger_width"
    # signal = MW-off minus MW-on frames: a peak at the resonance, nothing far from it
    signal, reference = run.images("signal")[:11], run.images("reference")[:11]
    spectrum = signal.mean(axis=(1, 2))
    noise = signal[0].std() / SHAPE[0]  # the pixel mean's noise
    assert spectrum[5] > 10 * noise and abs(spectrum[0]) < 5 * noise
    assert np.all(reference.mean(axis=(1, 2)) > 20 * spectrum.max())  # the PL the contrast is on
    # the fit of the I-off pass finds the World's resonance; the trivial baseline (the frequency of
    # the strongest mean point) is off by about the 15N half splitting
    fit = result.field_map
    converged = np.asarray(fit.fit_off.converged)
    assert converged.mean() > 0.2
    fitted_error = abs(np.median(fit.center_off_hz[converged]) - f0)
    baseline_error = abs(freqs[np.argmax(spectrum)] - f0)
    assert fitted_error < 0.3e6 and fitted_error < baseline_error / 2


def test_a_frame_rate_the_camera_cannot_follow_is_refused_before_anything_moves(station):
    board = station["pulser"].library
    starts, world = board.start_count, station.world
    output = world.mw_output
    request = CwOdmrRequest(sweep_frequencies(station), 0.0, exposure_s=50e-6, frame_period_s=100e-6)
    with pytest.raises(ValueError, match=r"`frame_period_s` 0.0001 s asks for 1e\+04 frames/s but the camera "
                                         r"manages 5000"):
        build_cw_sweep(station, request)
    with pytest.raises(ValueError, match=r"`exposure_s` 20 s is outside the camera's exposure range"):
        build_cw_sweep(station, CwOdmrRequest(sweep_frequencies(station), 0.0, exposure_s=20.0,
                                              frame_period_s=30.0))
    assert board.start_count == starts and world.mw_output == output


def test_a_missing_trigger_cable_stops_the_run_with_the_points_measured_kept(station, tmp_path):
    link = station.sim_parts["camera_line"]
    sweep = CameraCwSweep(sweep_frequencies(station, points=6), 0.0, np.zeros(station["coils"].n_channels),
                          SHAPE, frames_per_point=1, frame_timeout_s=0.3)

    def unplug_after_three(progress):
        if progress.done == 3:
            link.connected = False

    try:
        prepared = prepare_run(station, sweep, tmp_path, "test", on_progress=unplug_after_three)
        outcome = prepared.run()
    finally:
        link.connected = True
    assert outcome.status == "failed" and outcome.steps_done == 3
    assert "I-off point 4 of 6: 0 of 2 frames came within 0.3 s" in outcome.reason
    assert "camera_trigger pulses (bit 2) did not reach the camera's Line1" in outcome.reason
    run = load_run(tmp_path, prepared.run_id)
    assert run.steps_done == 3 and np.isfinite(run.images("signal")[:3]).all()
    assert station.world.mw_output is False  # made safe


def test_timed_exposures_start_on_the_pulse_and_last_the_cameras_exposure_time(station, tmp_path):
    link = station.sim_parts["camera_line"]
    before = len(link.windows)
    sweep = CameraCwSweep(sweep_frequencies(station, points=5), 0.0, np.zeros(station["coils"].n_channels),
                          SHAPE, frames_per_point=1, exposure="timed", exposure_s=4e-3, frame_period_s=6e-3)
    outcome = prepare_run(station, sweep, tmp_path, "test").run()
    assert outcome.status == "completed" and outcome.steps_done == 10
    windows = link.windows[before:]
    assert len(windows) == 20
    np.testing.assert_allclose([w.duration_s for w in windows], 4e-3, rtol=1e-6)
    np.testing.assert_allclose(windows[1].start_s - windows[0].start_s, 6e-3, rtol=1e-6)


def test_interleaved_sweeps_visit_the_plan_and_the_runtime_limit_keeps_whole_sweeps(station):
    from sequences.engine import Engine
    from sequences.sweep_order import plan_sweeps
    from tests.sequences.test_cw_list_stepping import ListSink
    from tests.sequences.test_cw_repeats import FakeClock

    freqs = sweep_frequencies(station, points=5)
    coils = np.zeros(station["coils"].n_channels)
    probe = CameraCwSweep(freqs, 0.0, coils, SHAPE, frames_per_point=1)
    clock = FakeClock(1.5 * probe.sweep_duration_s / 10)  # every sweep takes 1.5 times the estimate
    sweep = CameraCwSweep(freqs, 0.0, coils, SHAPE, frames_per_point=1, repeats=4, order="interleaved",
                          max_runtime_s=3.2 * probe.sweep_duration_s, clock=clock)
    assert sweep.planned_sweeps == 3 and sweep.n_steps == 30
    sink = ListSink()
    outcome = Engine(station.instruments, station.limits, [sink], on_progress=clock.step).run(sweep)
    assert outcome.status == "completed", outcome.reason
    # After two sweeps (3.0 estimates) a third (1.5 at this pace) would end past 3.2: it never starts.
    assert outcome.steps_done == 20
    assert outcome.reason.startswith("2 of 4 sweeps ran (3 planned)")
    assert "would end after `max_runtime`" in outcome.reason
    expected = plan_sweeps("interleaved", 2, 2, 5).visits  # I-off up, I-on down; I-on up, I-off down
    recorded = np.array([[s.values[k] for k in ("sweep", "config", "frequency_index")] for s in sink.steps])
    np.testing.assert_array_equal(recorded, expected)
    assert [s.index for s in sink.steps] == list(range(20))
    for s in sink.steps:
        assert s.values["frequency_hz"] == freqs[s.values["frequency_index"]]
        assert s.label.startswith(f"sweep {s.values['sweep'] + 1} ")
    parameters = sink.metadata["sequence"]
    assert (parameters["order"], parameters["repeats"], parameters["repeats_requested"]) == (
        "interleaved", 3, 4)
    assert station.world.mw_output is False


def test_bad_repeat_settings_on_the_camera_sweep_are_refused_naming_the_setting(station):
    freqs = sweep_frequencies(station, points=5)
    coils = np.zeros(station["coils"].n_channels)
    for options, match in (({"repeats": 0}, r"`repeats` must be a whole number of sweeps >= 1, got 0"),
                           ({"order": "backwards"}, r"`order` must be one of sequential, random"),
                           ({"max_runtime_s": 1e-3}, r"`max_runtime` of 0.001 s is shorter than one sweep")):
        with pytest.raises(ValueError, match=match):
            build_cw_sweep(station, CwOdmrRequest(freqs, 0.0, frames_per_point=1, **options))
        with pytest.raises(ValueError, match=match):
            CameraCwSweep(freqs, 0.0, coils, SHAPE, **options).check(station.limits)
