"""Pulsed measurements: inspection, refusal of bad input, engine runs, and the physics they recover."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from drivers.pulseblaster import PulseBlaster
from instrument.protocols import Opcode, SafetyLimitError, SafetyLimits
from sequences.engine import Engine
from sequences.plot import plot_sequence, sequence_traces
from sequences.pulsed import (
    GatedCounter,
    HahnEcho,
    PiPulse,
    PulsedOdmr,
    Rabi,
    Ramsey,
    ShotTiming,
    T1Relaxation,
    on_grid,
    pi_pulse_from_rabi,
    run_points,
)
from sim.spin import SimPhotonCounter
from sim.spinapi import SimSpinAPI
from sim.world import World
from tests.fakes import WorldMicrowave

NS = 1e-9
LIMITS = SafetyLimits()



@dataclass
class Sink:
    steps: list = field(default_factory=list)
    closed: tuple = ()

    def open(self, metadata, image_shapes, n_steps):
        self.metadata, self.shapes = metadata, image_shapes

    def write(self, step):
        self.steps.append(step)

    def close(self, status, reason=""):
        self.closed = (status, reason)


@pytest.fixture
def rig():
    world = World(shape=(16, 16), seed=11)
    lib = SimSpinAPI(world)
    instruments = {
        "mw": WorldMicrowave(world),
        "pulser": PulseBlaster("pulser", library=lib),
        "counter": SimPhotonCounter("counter", world, lib, shape=(8, 8), photon_rate_hz=2e7),
    }
    line = world.resonance_estimate_hz() - 0.5 * 3.03e6
    return world, instruments, line


def test_counter_satisfies_protocol(rig):
    assert isinstance(rig[1]["counter"], GatedCounter)


def test_rabi_program_structure_and_inspection(rig):
    _, _, line = rig
    rabi = Rabi(np.arange(20, 200, 20) * NS, line, 0.0, (8, 8), timing=ShotTiming(repetitions=500))
    assert rabi.n_steps == 9 and rabi.image_shapes == {"ratio": (8, 8)}
    assert rabi.setpoints == ("tau_s",) and "ratio_err" in rabi.scalars
    assert rabi.parameters()["timing"]["repetitions"] == 500
    p = rabi.program(40 * NS)
    ops = [i.opcode for i in p.instructions]
    assert ops.count(Opcode.LOOP) == 1 and ops.count(Opcode.END_LOOP) == 1 and ops[-1] == Opcode.STOP
    loop = p.instructions[ops.index(Opcode.LOOP)]
    assert loop.data == 500
    # The loop body: dark 1 us, MW 40 ns, gap 100 ns, readout 3 us with two 300 ns gates.
    body = p.instructions[ops.index(Opcode.LOOP):ops.index(Opcode.END_LOOP) + 1]
    assert sum(i.duration_s for i in body) == pytest.approx(1e-6 + 40 * NS + 100 * NS + 3e-6)
    assert rabi.estimated_duration_s == pytest.approx(
        sum(3e-6 + 500 * (4.1e-6 + t) for t in rabi.sweep))
    traces, blocks = sequence_traces(rabi.sequence(40 * NS))
    assert [b[3] for b in blocks] == [1, 500]
    mw_times, mw_levels = traces["mw_switch"]
    assert [t for t, lv in zip(mw_times, mw_levels, strict=True) if lv] == [pytest.approx(4e-6)]


def test_plot_writes_png(tmp_path, rig):
    _, _, line = rig
    pi = PiPulse(52 * NS, line, 10.0)
    echo = HahnEcho(np.arange(1, 6) * 1e-6, line, 10.0, (8, 8), pi_pulse=pi)
    path = tmp_path / "echo.png"
    plot_sequence(echo.sequence(2e-6), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda f: Rabi(np.arange(3) * 20 * NS, f, 0.0, (8, 8)), ValueError, "at least 5 points"),
        (lambda f: Rabi(np.r_[20, 40, 6, 80, 100] * NS, f, 0.0, (8, 8)), ValueError,
         r"tau_s=6e-09: pulse 'MW pulse'.*3 clock cycles"),
        (lambda f: Rabi(np.r_[20, 40, 61, 80, 100] * NS, f, 0.0, (8, 8)), ValueError,
         "pulse 'MW pulse'.*not on the 2 ns clock grid"),
        (lambda f: Rabi(np.arange(1, 6) * 20 * NS, f, 30.0, (8, 8)), SafetyLimitError, "MW power"),
        (lambda f: Rabi(np.r_[20, 40, np.nan, 80, 100] * NS, f, 0.0, (8, 8)), ValueError, "non-finite"),
        (lambda f: Rabi(np.arange(1, 6) * 20 * NS, -f, 0.0, (8, 8)), ValueError, "MW frequency"),
        (lambda f: Rabi(np.arange(1, 6) * 20 * NS, f, 0.0, (8, 8), timing=ShotTiming(repetitions=0)),
         ValueError, "repetitions"),
        (lambda f: Rabi(np.arange(1, 6) * 20 * NS, f, 0.0, (8, 8),
                        timing=ShotTiming(reference_start_s=2.9e-6)), ValueError, "reference gate"),
        (lambda f: Ramsey(np.arange(1, 6) * 20 * NS, f, 0.0, (8, 8)), ValueError, "pi-pulse calibration"),
        (lambda f: Ramsey(np.arange(1, 6) * 20 * NS, f, 0.0, (8, 8), pi_pulse=PiPulse(52 * NS, f, 10.0)),
         ValueError, "calibrated at 10 dBm"),
        (lambda f: HahnEcho(np.r_[1002, 2000, 3000, 4000, 5000] * NS, f, 10.0, (8, 8),
                            pi_pulse=PiPulse(52 * NS, f, 10.0)), ValueError, "two halves"),
        (lambda f: Ramsey(np.arange(1, 6) * 20 * NS, f, 10.0, (8, 8), pi_pulse=PiPulse(16 * NS, f, 10.0)),
         ValueError, "first pi/2.*4 clock cycles"),
    ],
)
def test_bad_measurements_refused_before_hardware(rig, make, error, match):
    world, instruments, line = rig
    lib = instruments["pulser"]._api
    with pytest.raises(error, match=match):
        Engine(instruments, LIMITS).run(make(line))
    assert not world.mw_output and lib  # nothing was switched on


def test_lab_pulse_minimum_applies_to_mw_pulses(rig):
    _, _, line = rig
    rabi = Rabi(np.arange(1, 6) * 20 * NS, line, 0.0, (8, 8))
    with pytest.raises(ValueError, match="pulse_min_s"):
        rabi.check(SafetyLimits(pulse_min_s=30 * NS))


def test_engine_run_stores_steps_and_leaves_everything_safe(rig):
    world, instruments, line = rig
    sink = Sink()
    rabi = Rabi(np.arange(20, 220, 20) * NS, line, 0.0, (8, 8), timing=ShotTiming(repetitions=200))
    outcome = Engine(instruments, LIMITS, [sink]).run(rabi)
    assert outcome.status == "completed", outcome.reason
    assert len(sink.steps) == 10 and sink.closed == ("completed", "")
    step = sink.steps[3]
    assert step.values["tau_s"] == pytest.approx(80 * NS)
    assert step.images["ratio"].shape == (8, 8) and step.images["ratio"].dtype == np.float32
    assert 0.9 < step.values["ratio"] < 1.01 and step.values["ratio_err"] > 0
    assert sink.metadata["sequence"]["name"] == "rabi"
    assert not world.mw_output and not world.laser_on


def test_counter_with_wrong_windows_fails_clearly(rig):
    world, instruments, line = rig

    class OneWindow:
        name, shape = "counter", (8, 8)

        def count_gates(self):
            return np.ones((1, 8, 8))

        def safe_state(self):
            pass

        def close(self):
            pass

    outcome = Engine({**instruments, "counter": OneWindow()}, LIMITS).run(
        Rabi(np.arange(1, 6) * 20 * NS, line, 0.0, (8, 8)))
    assert outcome.status == "failed" and "2 gate windows" in outcome.reason
    assert not world.mw_output


def test_pulsed_measurements_recover_the_simulator_parameters(rig):
    """Rabi frequency, pi pulse, T2*, T2 and T1 from the measurements match the sample's spin parameters."""
    world, instruments, line = rig
    spins = instruments["counter"].spins.params
    power = 10.0
    rabi = Rabi(np.arange(12, 600, 6) * NS, line, power, (8, 8), timing=ShotTiming(repetitions=1000))
    fit = rabi.fit(*run_points(rabi, instruments))
    truth = spins.rabi_hz(power)
    assert abs(fit["rabi_hz"] - truth) < 3 * fit.errors["rabi_hz"]
    assert fit.errors["rabi_hz"] < 0.02 * truth
    pi = pi_pulse_from_rabi(fit, line, power)
    assert pi.pi_s == pytest.approx(on_grid(0.5 / truth, 500e6), abs=4 * NS)

    ramsey = Ramsey(np.arange(0, 2400, 12) * NS, line + 2e6, power, (8, 8), pi_pulse=pi,
                    timing=ShotTiming(repetitions=1000))
    fit = ramsey.fit(*run_points(ramsey, instruments))
    assert abs(fit["t2_star_s"] - spins.t2_star_s) < 3 * fit.errors["t2_star_s"]
    assert fit.errors["t2_star_s"] < 0.15 * spins.t2_star_s
    assert abs(fit["detuning_hz"] - (2e6 - 3.03e6 / 2)) < 3 * fit.errors["detuning_hz"]

    echo = HahnEcho(np.arange(1000, 24000, 400) * NS, line, power, (8, 8), pi_pulse=pi,
                    timing=ShotTiming(repetitions=1000))
    fit = echo.fit(*run_points(echo, instruments))
    assert abs(fit["t2_s"] - spins.t2_s) < 3 * fit.errors["t2_s"]

    t1 = T1Relaxation(np.linspace(0, 8e-3, 33), line, power, (8, 8), timing=ShotTiming(repetitions=200))
    fit = t1.fit(*run_points(t1, instruments))
    assert abs(fit["t1_s"] - spins.t1_s) < 3 * fit.errors["t1_s"]
    assert fit.errors["t1_s"] < 0.15 * spins.t1_s


def test_pulsed_odmr_finds_the_line(rig):
    world, instruments, line = rig
    spins = instruments["counter"].spins.params
    pi = PiPulse(on_grid(0.5 / spins.rabi_hz(-10.0), 500e6), line, -10.0)
    odmr = PulsedOdmr(line + np.linspace(-3e6, 5e6, 61), line, -10.0, (8, 8), pi_pulse=pi,
                      timing=ShotTiming(repetitions=1000))
    fit = odmr.fit(*run_points(odmr, instruments))
    assert abs(fit["center_hz"] - line) < max(3 * fit.errors["center_hz"], 20e3)


def test_widefield_camera_path_uses_its_own_gate(rig):
    """The same measurement on a gated camera: counter and sequence gate on camera_trigger."""
    world, instruments, line = rig
    lib = instruments["pulser"].library
    camera = SimPhotonCounter("camera", world, lib, gate="camera_trigger", photon_rate_hz=1e8)
    assert camera.shape == world.shape
    rabi = Rabi(np.arange(1, 8) * 20 * NS, line, 10.0, camera.shape, counter_role="camera",
                gate_channel="camera_trigger", timing=ShotTiming(repetitions=200))
    sink = Sink()
    outcome = Engine({**instruments, "camera": camera}, LIMITS, [sink]).run(rabi)
    assert outcome.status == "completed", outcome.reason
    assert sink.steps[0].images["ratio"].shape == world.shape
    ratios = [s.values["ratio"] for s in sink.steps]
    assert max(ratios) - min(ratios) > 0.01  # the MW pulse shows on the camera
    spad_only = Rabi(np.arange(1, 8) * 20 * NS, line, 10.0, camera.shape, counter_role="camera",
                     timing=ShotTiming(repetitions=200))
    outcome = Engine({**instruments, "camera": camera}, LIMITS).run(spad_only)
    assert outcome.status == "failed" and "2 gate windows" in outcome.reason


def test_channel_delay_compensates_the_aom_latency():
    """A 500 ns AOM: uncompensated, the signal gate closes before the light arrives; the
    channel delay in the channel map moves the laser TTL earlier and restores the readout."""
    from sequences.pulses import DEFAULT_CHANNELS, ChannelMap

    def rabi_ratios(latency, delays):
        world = World(shape=(16, 16), seed=2)
        lib = SimSpinAPI(world, latency_s=latency)
        instruments = {"mw": WorldMicrowave(world), "pulser": PulseBlaster("pulser", library=lib),
                       "counter": SimPhotonCounter("counter", world, lib, shape=(8, 8), photon_rate_hz=1e9)}
        line = world.resonance_estimate_hz() - 0.5 * 3.03e6
        rabi = Rabi(np.array([0, 52, 104, 156, 208]) * NS, line, 10.0, (8, 8),
                    channels=ChannelMap(dict(DEFAULT_CHANNELS), delays), timing=ShotTiming(repetitions=200))
        return run_points(rabi, instruments)[1]

    ideal = rabi_ratios({}, {})
    late = rabi_ratios({"laser": 500 * NS}, {})
    fixed = rabi_ratios({"laser": 500 * NS}, {"laser": 500 * NS})
    assert ideal[0] - ideal[1] > 0.02  # the pi pulse darkens the readout
    assert np.all(late < 0.5)  # signal gate mostly before the light: almost no counts
    assert fixed == pytest.approx(ideal, abs=3e-3)
