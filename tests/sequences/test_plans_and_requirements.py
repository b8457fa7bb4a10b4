"""A plan is a value computed without touching anything; sequences declare the roles and capabilities
they need, and the engine refuses a station that lacks them before anything moves."""

import numpy as np
import pytest

from instrument.services.capabilities import missing
from instrument.station import build_station
from sequences.cw_odmr import CwOdmrSweep
from sequences.engine import Engine, MissingInstrument, missing_requirements


@pytest.fixture(scope="module")
def station():
    with build_station(None, simulated=True, image_shape=(16, 16), seed=2) as st:
        yield st


def _sweep(station, stepping="auto"):
    return CwOdmrSweep(2.87e9 + np.linspace(-5e6, 5e6, 7), 0.0, np.zeros(station["coils"].n_channels),
                       image_shape=(16, 16), frames_per_point=1, stepping=stepping)


def test_inspecting_a_plan_configures_nothing(station, mocker):
    camera, pulser, mw = station["camera"], station["pulser"], station["mw"]
    spies = [mocker.spy(camera, "configure"), mocker.spy(camera, "set_trigger"), mocker.spy(pulser, "load"),
             mocker.spy(pulser, "start"), mocker.spy(mw, "set_frequency"), mocker.spy(mw, "set_output")]
    sweep = _sweep(station)
    first, second = sweep.plan(station.instruments), sweep.plan(station.instruments)
    assert first == second  # a value: the same station gives the same plan, however often it is asked
    assert first.mode == "list" and first.timing is not None  # the bundled station steps in hardware
    assert [spy.call_count for spy in spies] == [0] * len(spies)


def test_the_plan_uses_the_frame_rate_the_camera_will_really_run_at(station):
    sweep = _sweep(station)
    camera = station["camera"]
    settings = camera.settings_for(sweep.modulation_hz, sweep.frame_rate_hz, sweep.frames_per_point)
    assert settings.frame_rate_hz != sweep.frame_rate_hz  # register quantisation moves it a little
    plan = sweep.plan(station.instruments)
    clock = station["pulser"].clock_hz
    period = 1 / sweep.modulation_hz
    volume_s = settings.frames_per_volume / settings.frame_rate_hz
    assert plan.timing.volume * period == pytest.approx(volume_s, abs=2 * period + 1 / clock)


def test_engine_runs_the_plan_it_stored(station, tmp_path):
    from instrument.storage.runs import RunWriter, load_run

    sweep = _sweep(station, stepping="software")
    writer = RunWriter(tmp_path, sweep.name, "s", sweep.scalars, sweep.setpoints)
    outcome = Engine(station.instruments, station.limits, [writer]).run(sweep)
    assert outcome.status == "completed"
    stored = load_run(tmp_path, writer.run_id).metadata["sequence"]["plan"]
    assert stored["mw_stepping_mode"] == "software"
    assert stored["mw_stepping_reason"] == "software stepping requested"


class _Sink:
    opened = False

    def open(self, *args):
        self.opened = True

    def write(self, step):
        raise AssertionError("nothing may be measured")

    def close(self, *args):
        pass


def test_engine_refuses_a_station_without_a_required_role_before_anything_moves(station, mocker):
    instruments = {k: v for k, v in station.instruments.items() if k != "coils"}
    spy = mocker.spy(station["mw"], "set_output")
    sink = _Sink()
    with pytest.raises(MissingInstrument, match=r"no instrument with role 'coils' \(CoilDriver\)"):
        Engine(instruments, station.limits, [sink]).run(_sweep(station))
    assert not sink.opened and spy.call_count == 0


def test_engine_refuses_an_instrument_without_the_capability(station):
    instruments = {**station.instruments, "camera": station["coils"]}  # a coil driver is no camera
    with pytest.raises(MissingInstrument, match=r"'camera' \(\w+\) is not a LockInCamera"):
        Engine(instruments, station.limits).run(_sweep(station))


def test_requirements_of_every_measurement_on_the_bundled_stations(station):
    lacking = missing(station)  # the seed-000 station runs everything but the SPAD-array sweep
    assert lacking.pop("spad_odmr") == ["no instrument with role 'spad' (PhotonCountingArray)"]
    # ... and the widefield pulsed maps, which need an intensity camera (the Basler station's).
    assert lacking.pop("widefield_pulsed") == ["'camera' (HeliCamC3) is not an IntensityCamera"]
    assert not any(lacking.values()), lacking
    assert missing_requirements(station.instruments, {"spad": object}) == [
        "no instrument with role 'spad' (object)"]


def test_lockin_capture_runs_through_the_engine_and_needs_its_stimulus(station, tmp_path, mocker):
    """The temporal experiment is an engine sequence: the engine checks its roles before anything
    moves, stores its per-second steps and makes everything safe (one execution path)."""
    from sequences.temporal import CoilWaveforms, TemporalCapture, run_temporal_imaging

    n = station["stimulus"].n_channels
    wf = CoilWaveforms(n, ((0.3,),) + ((),) * (n - 1), peak_a=400e-6)
    capture = TemporalCapture(1.0, station.sample.resonance_hz, wf, tmp_path, frames_per_point=4)
    assert capture.requires.keys() == {"mw", "pulser", "camera", "stimulus"} and capture.n_steps == 1
    spy = mocker.spy(station["mw"], "set_output")
    without = {k: v for k, v in station.instruments.items() if k != "stimulus"}
    with pytest.raises(MissingInstrument, match="no instrument with role 'stimulus'"):
        Engine(without, station.limits).run(capture)
    assert spy.call_count == 0 and not (tmp_path / "frames.h5").exists()
    result = run_temporal_imaging(station.instruments, tmp_path, 1.0, station.sample.resonance_hz,
                                  waveforms=wf, limits=station.limits, on_overflow="wait", frames_per_point=4)
    assert result.capture.completed and result.not_made_safe == []
    assert not station.world.mw_output and np.all(station.world.coil_currents_a == 0)
