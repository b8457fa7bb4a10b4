"""The stimulus on the coil board: seed-000 waveforms as frame-clocked tables, against the simulated
board (firmware depth of 16 segments a channel, so the tables are streamed while they play)."""

import numpy as np
import pytest

from drivers.coil_board import CoilBoard, open_serial
from drivers.coil_stimulus import CoilBoardStimulus, StimulusPlaybackError, encode_segments
from instrument.protocols import InstrumentError, SafetyLimitError, SafetyLimits
from sequences.temporal import CoilWaveforms, firing_pattern
from sim.coil_board import SimCoilBoard
from sim.world import World

LIMITS = SafetyLimits(coil_current_max_a=1e-3, coil_ramp_rate_a_per_s=1e-2)
FRAME_RATE_HZ = 208.0


@pytest.fixture
def rig():
    world = World(shape=(16, 16))
    sim = SimCoilBoard(world)  # 16 segments a channel, as the ATmega328P firmware
    port = sim.start()
    board = CoilBoard("coils", open_serial(port), LIMITS, ceilings_a=9e-4, sleep=world.clock.advance,
                      watchdog_s=None)
    stim = CoilBoardStimulus("stimulus", board, lambda: FRAME_RATE_HZ, background=False)
    yield world, sim, board, stim
    stim.close()
    board.close()
    sim.stop()


def test_run_length_segments_end_in_a_hold_at_zero():
    assert encode_segments(np.array([0, 0, 1e-4, 1.00004e-4, 1e-4, -2e-5])) == [
        (0.0, 2), (1e-4, 3), (-2e-5, 1), (0.0, 0)]


def test_every_frame_sees_the_planned_current_while_the_tables_stream(rig):
    world, sim, _, stim = rig
    waveforms = firing_pattern([0, 4, 7], sim.n, 1.5, rate_hz=3.0, start_s=0.05, seed=2)
    stim.start(waveforms)
    t = np.arange(int(1.6 * FRAME_RATE_HZ)) / FRAME_RATE_HZ
    expected = waveforms.matrix(t)
    alive = np.array([not c.dead for c in world.sample.coils])
    assert np.any(expected[:, alive] != 0) and len(t) > sim.depth  # more frames than one ring holds
    seen = []
    for _ in t:
        stim.pump()  # the host tops up the rings between frames (the streaming thread does this)
        sim.frame_edge()
        seen.append(world.coil_currents_a.copy())
    # 4 significant digits on the line: within 50 nA (a third of a DAC step) of the plan
    np.testing.assert_allclose(np.array(seen), expected * alive, rtol=5e-4, atol=1e-9)
    status = stim.status()
    assert status["state"] == "PLAY" and status["frames"] == len(t) and status["fault"] == "0 none"
    stim.stop()
    assert np.all(world.coil_currents_a == 0) and sim.state == "IDLE"


def test_unsafe_waveforms_are_refused_before_anything_is_sent(rig):
    _, sim, _, stim = rig
    loud = CoilWaveforms(sim.n, tuple((0.1,) if k == 2 else () for k in range(sim.n)), peak_a=9.5e-4)
    sent = len(sim.commands)
    with pytest.raises(SafetyLimitError, match="channel 2 current .* exceeds .* 0.0009 A"):
        stim.start(loud)
    with pytest.raises(ValueError, match="need an 'end_s'"):
        stim.start(lambda t: np.zeros(sim.n))
    with pytest.raises(ValueError, match="expected \\(12,\\)"):
        stim.start(CoilWaveforms(3, ((0.1,), (), ())))
    assert len(sim.commands) == sent and sim.state == "IDLE"


def test_a_table_that_runs_dry_fails_the_playback_loudly(rig):
    world, sim, _, stim = rig
    stim.start(firing_pattern([1], sim.n, 1.0, rate_hz=5.0, seed=1))
    for _ in range(int(FRAME_RATE_HZ)):
        sim.frame_edge()  # frames come, but the host never tops the ring up
    assert sim.state == "IDLE" and np.all(world.coil_currents_a == 0)
    with pytest.raises(StimulusPlaybackError, match="table exhausted on channel 1 at frame [1-9]"):
        stim.stop()
    stim.stop()  # stopping again has nothing left to report


def test_a_version_1_board_cannot_play_tables():
    class Old:
        protocol, firmware = 1, "1.0"

    with pytest.raises(InstrumentError, match="no waveform tables; flash firmware/coil_board"):
        CoilBoardStimulus("stimulus", Old(), lambda: FRAME_RATE_HZ)


def test_station_checks_see_the_tables_and_an_idle_board(rig):
    _, sim, _, stim = rig
    checks = stim.station_checks()
    assert [c.ok for c in checks] == [True, True] and "16 segments" in checks[0].detail
    sim.latched = "9 clock edge during the update of frame 3"
    assert stim.station_checks()[1].ok is False


def test_tables_the_serial_line_cannot_stream_in_time_are_refused(rig):
    _, sim, _, stim = rig
    busy = firing_pattern(list(range(sim.n)), sim.n, 20.0, rate_hz=5.0, seed=3)
    with pytest.raises(ValueError, match="segments/s, .* more than 80% of the coil board's 115200 baud line"):
        stim.start(busy)
    assert sim.state == "IDLE"
    calm = firing_pattern(list(range(sim.n)), sim.n, 20.0, rate_hz=0.5, seed=3)
    stim.start(calm)  # streams: fewer segments a second than the line carries
    assert sim.state == "ARMED"


def test_the_streaming_thread_keeps_the_rings_filled_and_reports_a_fault(rig):
    import threading
    import time

    world, sim, board, _ = rig
    stim = CoilBoardStimulus("stimulus", board, lambda: FRAME_RATE_HZ, poll_s=0.001)
    waveforms = firing_pattern([0, 4], sim.n, 1.0, rate_hz=3.0, start_s=0.05, seed=2)
    stim.start(waveforms)
    n = int(1.1 * FRAME_RATE_HZ)
    seen = []
    for _ in range(n):
        deadline = time.monotonic() + 10.0  # liveness only: a dead thread fails here, a slow one waits
        while any(stim._pending.get(k) and not sim.tables[k] for k in (0, 4)):
            assert time.monotonic() < deadline, "the streaming thread stopped topping up the rings"
            time.sleep(0.001)
        with sim._lock:
            if all(sim.tables[k] for k in (0, 4)):
                sim.frame_edge()
                seen.append(world.coil_currents_a[[0, 4]].copy())
    t = np.arange(len(seen)) / FRAME_RATE_HZ
    alive = np.array([not world.sample.coils[k].dead for k in (0, 4)])
    np.testing.assert_allclose(np.array(seen), waveforms.matrix(t)[:, [0, 4]] * alive, rtol=5e-4, atol=1e-9)
    assert len(seen) == n
    sim.latched = "9 clock edge during the update of frame 7"  # the board reports a fault
    deadline = time.monotonic() + 10.0
    while stim.fault is None and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(StimulusPlaybackError, match="clock edge during the update of frame 7"):
        stim.stop()
    assert not any(t.name == "stimulus-stream" for t in threading.enumerate())
