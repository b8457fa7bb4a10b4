"""The simulated camera line: PulseBlaster pulses become the Basler emulator's exposures, nothing else."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from drivers.pulseblaster import PulseBlaster
from instrument.protocols import CameraTrigger, InstrumentTimeout
from sequences.pulses import Block, ChannelMap, Pulse, PulseSequence, compile_sequence
from sim.camera_line import ExposureRenderer, ExposureWindow, exposure_windows
from sim.spinapi import SimSpinAPI
from sim.world import World

T = 2e-3  # frame spacing
E = 0.5e-3  # camera pulse width


def _program(*pulses: Pulse, duration_s: float = 2 * T, repetitions: int = 3, forever: bool = False):
    return compile_sequence(PulseSequence((Block(duration_s, pulses, repetitions),), ChannelMap(),
                                          loop_forever=forever))


def _pair_program(repetitions: int = 3):
    """Laser on; MW switch on for the first of two frames; one camera pulse per frame."""
    return _program(Pulse("laser", 0, 2 * T), Pulse("mw_switch", 0, T),
                    Pulse("camera_trigger", 1e-5, E), Pulse("camera_trigger", T + 1e-5, E),
                    repetitions=repetitions)


@pytest.fixture
def world():
    return World(shape=(6, 8), seed=1)


def _running(world, program):
    board = SimSpinAPI(world)
    pb = PulseBlaster("pb", library=board)
    pb.load(program)
    pb.start()
    return board, pb


def test_trigger_width_windows_are_the_pulses_and_timed_ones_start_at_the_edge(world):
    board, _ = _running(world, _pair_program())
    t0 = board.started_at_s
    gated = CameraTrigger("Line1", exposure="trigger_width", width_s=E)
    width, ignored, _ = exposure_windows(board, "camera_trigger", gated, 0.0, t0 - 1, t0 + 1)
    starts = [w.start_s - t0 for w in width]
    np.testing.assert_allclose(starts, [1e-5 + k * T for k in range(6)], atol=1e-12)
    np.testing.assert_allclose([w.duration_s for w in width], E, atol=1e-12)
    timed, _, _ = exposure_windows(board, "camera_trigger", CameraTrigger("Line1", edge="falling"), 0.1e-3,
                                   t0 - 1, t0 + 1)
    np.testing.assert_allclose([w.start_s - t0 for w in timed], [1e-5 + E + k * T for k in range(6)],
                               atol=1e-12)
    np.testing.assert_allclose([w.duration_s for w in timed], 0.1e-3, atol=1e-12)
    assert ignored == 0


def test_pulses_faster_than_the_camera_are_ignored_as_overtriggers(world):
    board, _ = _running(world, _pair_program())
    t0 = board.started_at_s
    windows, ignored, _ = exposure_windows(board, "camera_trigger", CameraTrigger("Line1"), E, t0 - 1, t0 + 1,
                                           min_period_s=1.5 * T)  # the camera manages every other pulse
    assert len(windows) == 3 and ignored == 3


def test_a_line_the_program_never_raises_gives_no_exposure(world):
    board, _ = _running(world, _program(Pulse("laser", 0, 2 * T)))
    windows, _, _ = exposure_windows(board, "camera_trigger", CameraTrigger("Line1"), E, -1, 1)
    assert windows == []


def test_the_window_integrates_the_programs_laser_and_mw_levels(world):
    # Laser on for the first half of a 1 ms window only: half the photons of a full window.
    board, _ = _running(world, _program(Pulse("laser", 0, 0.5e-3), Pulse("mw_switch", 0, 0.25e-3),
                                        duration_s=1e-3, repetitions=1))
    t0 = board.started_at_s
    renderer = ExposureRenderer(world, board)
    times = renderer.state_times_s(ExposureWindow(t0, t0 + 1e-3))
    assert times[(True, True)] == pytest.approx(0.25e-3)
    assert times[(True, False)] == pytest.approx(0.25e-3)
    assert times[(False, False)] == pytest.approx(0.5e-3)
    world.mw_output = False  # no MW reaches the spins: PL proportional to the laser time alone
    half = renderer.photons(ExposureWindow(t0, t0 + 1e-3))
    np.testing.assert_allclose(half, 0.5e-3 * world.pl_rate_hz(mw_on=False))
    # After the program's STOP every output is low: no light at all.
    assert renderer.photons(ExposureWindow(t0 + 2e-3, t0 + 3e-3)).max() == 0


def test_a_forever_program_repeats_its_levels(world):
    board, _ = _running(world, _program(Pulse("laser", 0, 0.5e-3), duration_s=1e-3, repetitions=1,
                                        forever=True))
    t0 = board.started_at_s
    times = ExposureRenderer(world, board).state_times_s(ExposureWindow(t0 + 10.25e-3, t0 + 13.25e-3))
    assert times[(True, False)] == pytest.approx(1.5e-3)
    assert times[(False, False)] == pytest.approx(1.5e-3)


pylon = pytest.mark.skipif(importlib.util.find_spec("pypylon") is None, reason="pypylon not installed")


@pylon
def test_frames_through_the_emulator_follow_the_program(tmp_path):
    from instrument.station import build_station, bundled_station
    from sim.basler_images import enable_emulator

    enable_emulator(1)
    with build_station(bundled_station("basler.yaml"), simulated=True, image_shape=(12, 16)) as st:
        cam, pb, mw, world = st["camera"], st["pulser"], st["mw"], st.world
        link = st.sim_parts["camera_line"]
        assert any("cannot see Line1" in g and "camera_trigger output (bit 2)" in g
                   for g in st.snapshot()["instruments"]["camera"]["sim_gaps"])
        f = world.resonance_estimate_hz() + 1.515e6  # on a 15N hyperfine line
        mw.set_power(5.0)
        mw.set_frequency(f)
        mw.set_output(True)
        cam.set_exposure(E)
        cam.set_frame_rate(cam.constraints.frame_rate_max_hz)
        cam.set_trigger(CameraTrigger("Line1", exposure="trigger_width", width_s=E))
        cam.arm(16)
        pb.load(_pair_program(repetitions=4))
        pb.start()
        frames = cam.read_frames(8, timeout_s=2.0)
        assert frames.timestamp_source == "simulation"
        np.testing.assert_allclose(np.diff(frames.timestamps_s), T, atol=1e-9)
        means = frames.images.reshape(8, -1).mean(axis=1)
        signal, reference = means[0::2], means[1::2]
        assert np.all(signal < reference)  # MW on the resonance during every signal frame only
        assert len(link.windows) == 8 and link.overtriggers == 0
        # The program has ended: no pulse, no frame; the timeout names the cable.
        with pytest.raises(InstrumentTimeout, match="check the trigger cable"):
            cam.read_frames(1, timeout_s=0.2)
        # Unplugged: the program runs, yet nothing comes.
        link.connected = False
        pb.start()
        with pytest.raises(InstrumentTimeout) as err:
            cam.read_frames(2, timeout_s=0.2)
        assert err.value.frames.images.shape[0] == 0
        cam.disarm()
