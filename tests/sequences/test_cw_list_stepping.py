"""CW ODMR with the MW list stepped by the PulseBlaster, through the bundled sim station.

Each source is chosen by changing the ``mw`` line of the bundled station file only. The sim cables
the PulseBlaster's ``mw_trigger`` output into the source's trigger input and its ``camera_start``
output into the camera: the source steps at the edges' simulated times, never when the sequence
asks, so a missing cable shows as a list index that does not advance.
"""

import logging
import threading
from importlib import resources

import numpy as np
import pytest
from scipy.optimize import curve_fit

from instrument.protocols import InstrumentTimeout
from instrument.station import build_station
from sequences.cw_odmr import CwOdmrSweep
from sequences.engine import Engine
from sequences.mw_stepping import ListSweepStalled, SteppingUnavailable, plan_stepping
from sequences.pulses import ChannelMap, stepped_point_timing
from sim.spinapi import STATUS_STOPPED
from tests.fakes import WorldMicrowave

SHAPE = (6, 6)
DEFAULT_MW = 'mw: {driver: sg384, address: "TCPIP0::192.168.1.20::5025::SOCKET"}'
SOURCES = {
    "sg384": DEFAULT_MW,
    "smb100a": 'mw: {driver: smb100a, address: "TCPIP0::10.0.0.2::inst0::INSTR"}',
    "sgs100a": 'mw: {driver: sgs100a, address: "TCPIP0::10.0.0.3::inst0::INSTR"}',
    "synthhd": "mw: {driver: synthhd, port: /dev/ttyACM0}",
}
LIST_SOURCES = sorted(set(SOURCES) - {"sgs100a"})  # SGS100A list mode is unconfirmed: refused


class ListSink:
    def __init__(self):
        self.steps = []

    def open(self, metadata, image_shapes, n_steps):
        self.metadata = metadata

    def write(self, step):
        self.steps.append(step)

    def close(self, status, reason=""):
        self.status = status

    def spectrum(self, config=0):
        return np.array([s.values["mean_signal"] for s in self.steps if s.values["config"] == config])


def station_file(tmp_path, mw_entry):
    bundled = resources.files("instrument.stations").joinpath("sim.yaml").read_text()
    assert DEFAULT_MW in bundled
    path = tmp_path / "station.yaml"
    path.write_text(bundled.replace(DEFAULT_MW, mw_entry))
    return path


def run_sweep(station, n_points=21, span_hz=16e6, **options):
    center = station.world.resonance_estimate_hz()
    freqs = center + np.linspace(-span_hz / 2, span_hz / 2, n_points)
    sweep = CwOdmrSweep(freqs, -10.0, np.zeros(station["coils"].n_channels), image_shape=SHAPE,
                        frames_per_point=options.pop("frames_per_point", 2), **options)
    sink = ListSink()
    outcome = Engine(station.instruments, station.limits, [sink]).run(sweep)
    return freqs, sink, outcome


def fitted_centre_hz(freqs, spectrum):
    """Centre of one Lorentzian fitted to the spectrum (the 15N doublet is unresolved here)."""
    def lorentz(f, a, f0, w, c):
        return a / (1 + ((f - f0) / w) ** 2) + c

    i = int(np.argmax(spectrum))
    popt, _ = curve_fit(lorentz, freqs, spectrum, p0=(spectrum[i], freqs[i], 2e6, 0.0))
    return popt[1]


@pytest.mark.parametrize("kind", LIST_SOURCES)
def test_list_mode_finds_the_same_resonance_as_software_stepping(tmp_path, caplog, kind):
    path = station_file(tmp_path, SOURCES[kind])
    results = {}
    for stepping in ("software", "list"):
        caplog.clear()
        with build_station(path, simulated=True, image_shape=SHAPE, seed=1) as station, \
                caplog.at_level(logging.INFO, logger="sequences.cw_odmr"):
            freqs, sink, outcome = run_sweep(station, stepping=stepping)
            assert outcome.status == "completed", outcome.reason
            plan = sink.metadata["sequence"]["plan"]
            assert plan["mw_stepping_mode"] == stepping
            assert f"{stepping} MW stepping" in caplog.text
            edges = station.sim_parts["mw"].trigger_count
            assert station.world.mw_output is False  # left safe
        results[stepping] = (sink.spectrum(0), sink.spectrum(1), edges)
    (software, software_on, no_edges), (listed, listed_on, edges) = results["software"], results["list"]
    assert no_edges == 0
    assert edges == 2 * (len(freqs) - 1)  # I-off and I-on (list restarted): n - 1 PulseBlaster edges each
    centre_sw, centre_list = fitted_centre_hz(freqs, software), fitted_centre_hz(freqs, listed)
    assert abs(centre_list - centre_sw) < 50e3
    assert abs(fitted_centre_hz(freqs, listed_on) - fitted_centre_hz(freqs, software_on)) < 50e3
    assert abs(centre_list - station.world.resonance_estimate_hz()) < 1.5e6
    assert listed.max() > 5 * np.median(np.abs(listed))  # a resonance, not noise


def test_a_sweep_longer_than_the_list_is_split_into_segments(tmp_path, caplog):
    path = station_file(tmp_path, SOURCES["synthhd"])  # the SynthHD table holds 100 points
    spectra = {}
    for stepping in ("software", "auto"):
        with build_station(path, simulated=True, image_shape=(3, 3), seed=1) as station, \
                caplog.at_level(logging.INFO, logger="sequences.cw_odmr"):
            freqs, sink, outcome = run_sweep(station, n_points=130, span_hz=30e6, stepping=stepping,
                                             frames_per_point=1)
            assert outcome.status == "completed", outcome.reason
            spectra[stepping] = sink.spectrum(0)
            plan = sink.metadata["sequence"]["plan"]
    assert plan["mw_stepping_mode"] == "list"
    assert (plan["list_segment_points"], plan["list_n_segments"]) == (100, 2)
    assert "130 points split into 2 list segments of at most 100" in caplog.text
    assert len(spectra["auto"]) == 130
    np.testing.assert_allclose(spectra["auto"], spectra["software"], atol=1e-3)


def test_a_missing_trigger_cable_stops_the_sweep_keeping_the_points_measured(tmp_path):
    path = station_file(tmp_path, DEFAULT_MW.replace("}", ", trigger_from: null}"))
    with build_station(path, simulated=True, image_shape=SHAPE, seed=1) as station:
        freqs, sink, outcome = run_sweep(station)
        assert station.sim_parts["mw"].trigger_count == 0
        assert station.world.mw_output is False
    assert outcome.status == "failed"
    assert isinstance(outcome.error, ListSweepStalled)
    message = str(outcome.error)
    assert "stayed at point 1 of 21 (index 0)" in message and "to point 2" in message
    assert "mw_trigger" in message and "cable" in message
    assert "set `mw_stepping` to software" in message
    assert [s.values["frequency_hz"] for s in sink.steps] == [freqs[0]]  # point 0 was right: kept
    assert sink.status == "failed"


def test_a_camera_that_misses_its_start_trigger_is_detected(tmp_path):
    # The simulated camera needs 1 ms to read out and re-arm after a volume; a 0.1 ms settle time
    # puts the second point's camera_start before the camera is ready, and no other comes.
    with build_station(station_file(tmp_path, DEFAULT_MW), simulated=True, image_shape=SHAPE) as station:
        freqs, sink, outcome = run_sweep(station, step_settle_s=1e-4)
        assert station.world.mw_output is False
    assert isinstance(outcome.error, InstrumentTimeout)
    message = str(outcome.error)
    assert "no volume at point 2 of 21" in message and "missed the PulseBlaster's camera_start" in message
    assert "step settle time (0.1 ms)" in message and "set `mw_stepping` to software" in message
    assert [s.values["frequency_hz"] for s in sink.steps] == [freqs[0]]


def test_a_source_without_list_mode_steps_in_software(tmp_path, caplog):
    with build_station(station_file(tmp_path, DEFAULT_MW), simulated=True, image_shape=SHAPE) as station, \
            caplog.at_level(logging.INFO, logger="sequences.cw_odmr"):
        station.instruments.pop("mw").close()
        station.instruments["mw"] = WorldMicrowave(station.world)
        _, sink, outcome = run_sweep(station)
    assert outcome.status == "completed"
    plan = sink.metadata["sequence"]["plan"]
    assert plan["mw_stepping_mode"] == "software"
    assert "no trigger-stepped list mode" in plan["mw_stepping_reason"]
    assert "software MW stepping" in caplog.text
    assert len(sink.steps) == 42


def test_the_sgs100a_steps_in_software_with_the_reason_recorded(tmp_path):
    """Fact RS-10: no public source confirms SGS100A list mode; auto falls back, list is refused."""
    path = station_file(tmp_path, SOURCES["sgs100a"])
    with build_station(path, simulated=True, image_shape=SHAPE, seed=1) as station:
        freqs, sink, outcome = run_sweep(station, stepping="auto")
        assert outcome.status == "completed", outcome.reason
        plan = sink.metadata["sequence"]["plan"]
        assert plan["mw_stepping_mode"] == "software"
        assert "no trigger-stepped list mode" in plan["mw_stepping_reason"]
        assert "SGS100A is not confirmed" in plan["mw_stepping_reason"]
        assert station.sim_parts["mw"].trigger_count == 0
        assert len(sink.steps) == 2 * len(freqs)
        _, sink, outcome = run_sweep(station, stepping="list")
    assert outcome.status == "failed" and isinstance(outcome.error, SteppingUnavailable)
    assert "SGS100A is not confirmed" in str(outcome.error)


def test_a_pulser_without_the_trigger_lines_steps_in_software(tmp_path):
    no_trigger_lines = ChannelMap({"laser": 0, "mw_switch": 1, "camera_trigger": 2})
    with build_station(station_file(tmp_path, DEFAULT_MW), simulated=True, image_shape=SHAPE) as station:
        _, sink, outcome = run_sweep(station, channels=no_trigger_lines)
        assert station.sim_parts["mw"].trigger_count == 0
    assert outcome.status == "completed"
    assert "no mw_trigger or camera_start line" in sink.metadata["sequence"]["plan"]["mw_stepping_reason"]


def test_without_a_pulse_generator_the_plan_is_software_and_list_is_refused(tmp_path):
    def timing(pulser, camera):
        return stepped_point_timing(6250.0, 2 / 208, 2e-3, pulser.clock_hz)

    with build_station(station_file(tmp_path, DEFAULT_MW), simulated=True, image_shape=SHAPE) as station:
        instruments = {k: v for k, v in station.instruments.items() if k != "pulser"}
        plan = plan_stepping(instruments, 21, "auto", ChannelMap(), timing, 6250.0)
        assert plan.mode == "software"
        assert plan.reason == "no pulse generator (role 'pulser') to trigger the list"
        with pytest.raises(SteppingUnavailable, match="no pulse generator"):
            plan_stepping(instruments, 21, "list", ChannelMap(), timing, 6250.0)
        with pytest.raises(ValueError, match="must be one of"):
            plan_stepping(station.instruments, 21, "hardware", ChannelMap(), timing, 6250.0)


def test_forcing_list_mode_on_a_station_that_cannot_fails_before_anything_moves(tmp_path):
    with build_station(station_file(tmp_path, DEFAULT_MW), simulated=True, image_shape=SHAPE) as station:
        station.instruments.pop("mw").close()
        station.instruments["mw"] = WorldMicrowave(station.world)
        _, sink, outcome = run_sweep(station, stepping="list")
    assert outcome.status == "failed" and isinstance(outcome.error, SteppingUnavailable)
    assert sink.steps == [] and not hasattr(sink, "metadata")  # no run was opened


@pytest.mark.parametrize("bad", [{"stepping": "fast"}, {"step_settle_s": 0.0},
                                 {"step_settle_s": float("nan")}])
def test_bad_stepping_options_are_refused_by_check(bad):
    sweep = CwOdmrSweep(np.linspace(2.86e9, 2.88e9, 11), -10.0, np.zeros(2), image_shape=SHAPE, **bad)
    from instrument.protocols import SafetyLimits

    with pytest.raises(ValueError):
        sweep.check(SafetyLimits())


@pytest.mark.parametrize("stepping", ["auto", "software"])
def test_acquire_odmr_reports_the_stepping_mode_it_ran(tmp_path, capsys, stepping):
    from instrument.cli import main

    code = main(["--sim", "--image-shape", "8x8", "--out", str(tmp_path / "o"), "odmr", "--points", "15",
                 "--frames-per-point", "1", "--no-figure", "--mw-stepping", stepping])
    out = capsys.readouterr().out
    assert code == 0, out
    expected = "list (mw steps its list" if stepping == "auto" else "software (software stepping requested)"
    assert f"MW steps   {expected}" in out


def test_acquire_odmr_refuses_an_unknown_stepping_mode(tmp_path, capsys):
    from instrument.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--sim", "--out", str(tmp_path / "o"), "odmr", "--mw-stepping", "hardware"])
    assert info.value.code == 2
    assert "invalid choice: 'hardware'" in capsys.readouterr().err


def let_time_pass(station, seconds):
    """Simulated time passes outside a camera frame (a bus round trip, a disk write, a pause): the
    PulseBlaster's edges due by then reach the cabled inputs, as in the lab."""
    station.world.clock.advance(seconds)
    station.sim_parts["camera"].frame_hook(station.world.clock.now())


class SlowSink(ListSink):
    """A sink whose writes take simulated time, like HDF5 writes on a busy disk."""

    def __init__(self, station, seconds):
        super().__init__()
        self.station, self.seconds = station, seconds

    def write(self, step):
        let_time_pass(self.station, self.seconds)
        super().write(step)


@pytest.mark.parametrize("kind", ["sg384", "smb100a", "synthhd"])
def test_list_mode_survives_slow_read_back_and_slow_storage(tmp_path, kind):
    # On real hardware the list-index query is a SCPI/serial round trip of milliseconds and the run
    # is written to disk between points; a free-running program would step on without waiting.
    path = station_file(tmp_path, SOURCES[kind])
    spectra = {}
    for stepping in ("software", "list"):
        with build_station(path, simulated=True, image_shape=SHAPE, seed=1) as station:
            mw = station["mw"]

            def slow_list_index(station=station, read_index=mw.list_index):
                let_time_pass(station, 3e-3)  # a bus round trip
                return read_index()

            mw.list_index = slow_list_index
            center = station.world.resonance_estimate_hz()
            freqs = center + np.linspace(-8e6, 8e6, 21)
            sweep = CwOdmrSweep(freqs, -10.0, np.zeros(station["coils"].n_channels), image_shape=SHAPE,
                                frames_per_point=2, stepping=stepping)
            sink = SlowSink(station, 7e-3)
            outcome = Engine(station.instruments, station.limits, [sink]).run(sweep)
            assert outcome.status == "completed", outcome.reason
            assert sink.metadata["sequence"]["plan"]["mw_stepping_mode"] == stepping
            if stepping == "list":
                assert station.sim_parts["mw"].trigger_count == 2 * (len(freqs) - 1)
        assert [s.values["frequency_hz"] for s in sink.steps] == list(freqs) * 2
        spectra[stepping] = (sink.spectrum(0), sink.spectrum(1))
    for config in (0, 1):
        np.testing.assert_allclose(spectra["list"][config], spectra["software"][config], atol=1e-3)
    assert abs(fitted_centre_hz(freqs, spectra["list"][0]) - center) < 1.5e6


def test_a_pause_mid_list_sweep_leaves_the_list_where_it_was_and_resumes(tmp_path):
    path = station_file(tmp_path, SOURCES["smb100a"])
    with build_station(path, simulated=True, image_shape=SHAPE, seed=1) as station:
        mw, board = station["mw"], station["pulser"].library
        seen = {}
        engine = None

        def pause_at_point_8(progress):
            if progress.done != 8:
                return
            engine.pause()
            index, edges = mw.list_index(), station.sim_parts["mw"].trigger_count
            let_time_pass(station, 30.0)  # the operator pauses for half a minute
            seen["during"] = (mw.list_index() - index, station.sim_parts["mw"].trigger_count - edges,
                              board.pb_read_status())
            threading.Timer(0.05, engine.resume).start()

        center = station.world.resonance_estimate_hz()
        freqs = center + np.linspace(-8e6, 8e6, 21)
        sweep = CwOdmrSweep(freqs, -10.0, np.zeros(station["coils"].n_channels), image_shape=SHAPE,
                            frames_per_point=2, stepping="list")
        sink = ListSink()
        engine = Engine(station.instruments, station.limits, [sink], on_progress=pause_at_point_8)
        outcome = engine.run(sweep)
    assert outcome.status == "completed", outcome.reason
    assert seen["during"] == (0, 0, STATUS_STOPPED)  # no step, no edge, the board stopped
    assert [s.values["frequency_hz"] for s in sink.steps] == list(freqs) * 2
    with build_station(path, simulated=True, image_shape=SHAPE, seed=1) as station:
        _, reference, _ = run_sweep(station, stepping="list")
    np.testing.assert_allclose(sink.spectrum(0), reference.spectrum(0), atol=1e-3)
