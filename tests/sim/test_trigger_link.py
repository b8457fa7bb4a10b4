"""Simulated trigger cables: PulseBlaster edges reach the inputs wired to them, in camera time."""

import math

import numpy as np
import pytest

from drivers.helicam import HeliCamC3
from drivers.pulseblaster import PulseBlaster
from instrument.protocols import Opcode, PulseInstruction, PulseProgram
from instrument.station import StationFileError, build_station
from sequences.pulses import (
    CAMERA_START_PULSE_S,
    lockin_modulation_program,
    stepped_point_program,
    stepped_point_timing,
)
from sim.helicam import SimLibHeLIC
from sim.spinapi import STATUS_STOPPED, SimSpinAPI
from sim.trigger_link import PulseTriggerLink
from sim.world import World

ON = 0x7 << 21
BIT4 = 1 << 4


@pytest.fixture
def world():
    return World(shape=(4, 4))


def board_running(world, words):
    """A SimSpinAPI running ``words`` (flags, opcode, data, cycles at 500 MHz)."""
    board = SimSpinAPI(world)
    pb = PulseBlaster("pb", library=board)
    pb.load(PulseProgram(tuple(PulseInstruction(f, op, d, c / 500e6) for f, op, d, c in words)))
    pb.start()
    return board, pb


def test_rising_edges_of_a_forever_program_repeat_every_period(world):
    # 1 us high, 9 us low, forever: rising edges at 0, 10, 20 ... us after the start.
    board, _ = board_running(world, [(ON | BIT4, Opcode.CONTINUE, 0, 500), (ON, Opcode.BRANCH, 0, 4500)])
    t0 = board.started_at_s
    edges = board.rising_edges_s("mw_trigger", t0 - 1e-12, t0 + 35e-6)
    np.testing.assert_allclose(edges - t0, [0, 10e-6, 20e-6, 30e-6], atol=1e-12)
    # half-open interval (after, until]: an edge exactly at ``after`` is not repeated
    np.testing.assert_allclose(board.rising_edges_s("mw_trigger", t0 + 10e-6, t0 + 20e-6) - t0, [20e-6])
    assert len(board.rising_edges_s("camera_start", t0, t0 + 1e-3)) == 0
    assert board.drives("mw_trigger") and not board.drives("camera_start")


def test_a_finite_program_stops_its_edges_and_a_stopped_board_has_none(world):
    board, pb = board_running(world, [(ON, Opcode.CONTINUE, 0, 500), (ON | BIT4, Opcode.CONTINUE, 0, 500),
                                      (0, Opcode.STOP, 0, 5)])
    t0 = board.started_at_s
    np.testing.assert_allclose(board.rising_edges_s("mw_trigger", t0 - 1, t0 + 1) - t0, [1e-6])
    pb.stop()
    assert len(board.rising_edges_s("mw_trigger", t0 - 1, t0 + 1)) == 0
    with pytest.raises(ValueError, match="no output 'nope'"):
        PulseTriggerLink(board, SimLibHeLIC(world)).connect("nope", lambda: None)


def test_edges_are_delivered_before_the_frames_that_follow_them(world):
    board, pb = board_running(world, [(ON | BIT4, Opcode.CONTINUE, 0, 500),
                                      (ON, Opcode.BRANCH, 0, 5_000_000 - 500)])  # one edge per 10 ms
    camera_lib = SimLibHeLIC(world)
    link = PulseTriggerLink(board, camera_lib)
    seen = []
    link.connect("mw_trigger", lambda: seen.append(world.clock.now()))
    hooked = []
    camera_lib.frame_hook = (lambda prev: lambda t: (prev(t), hooked.append(t)))(camera_lib.frame_hook)
    camera = HeliCamC3("cam", library=camera_lib, clock=world.clock.now)
    world.mw_gate_modulation_hz = 6250.0
    camera.configure(6250.0, 208.0, 10)
    camera.acquire(10)  # ~48 ms of frames
    span = hooked[-1] - board.started_at_s
    assert len(seen) == math.floor(span / 10e-3) + 1  # every edge up to the last frame, no more
    assert link.deliver_until(hooked[-1]) == 0  # each edge once


def test_an_external_trigger_camera_waits_for_each_point_programs_camera_start(world):
    timing = stepped_point_timing(6250.0, 2 / 208, 2e-3)
    board = SimSpinAPI(world)
    pb = PulseBlaster("pb", library=board)
    camera_lib = SimLibHeLIC(world)
    PulseTriggerLink(board, camera_lib)
    camera = HeliCamC3("cam", library=camera_lib, clock=world.clock.now, trigger="external")
    settings = camera.configure(6250.0, 208.0, 2)
    period = 160e-6
    pb.load(stepped_point_program(timing, step=True))
    for latency_s in (0.0, 5e-3, 0.3):  # software between points: the board waits, stopped
        world.clock.advance(latency_s)
        pb.start()
        camera.acquire(2)
        start = camera.last_volume.first_frame_time_s - board.started_at_s
        # the camera starts on the falling edge of the camera_start pulse (C3 user manual)
        assert start == pytest.approx(timing.settle * period + CAMERA_START_PULSE_S, abs=1e-7)
        assert world.mw_gate_modulation_hz == pytest.approx(6250.0) and world.laser_on
    assert 2 / settings.frame_rate_hz <= timing.volume * period
    world.clock.advance(timing.periods * period)  # the program has reached its STOP
    with pytest.raises(Exception, match="no volume within"):
        camera.acquire(2)
    assert world.mw_gate_modulation_hz == 0.0 and not world.laser_on  # the STOP word: all low
    pb.load(lockin_modulation_program())  # no camera_start line: the reference clocks the camera
    pb.start()
    t = world.clock.now()
    camera.acquire(2)
    assert camera.last_volume.first_frame_time_s - t == pytest.approx(camera_lib.readout_dead_time_s)


@pytest.mark.parametrize("step", [False, True])
def test_a_point_program_runs_once_and_stops(world, step):
    timing = stepped_point_timing(6250.0, 4 / 208, 2e-3)
    assert (timing.settle, timing.volume, timing.tail) == (13, 121, 2)  # 2.08 ms, 19.36 ms, 0.32 ms
    board = SimSpinAPI(world)
    pb = PulseBlaster("pb", library=board)
    program = stepped_point_program(timing, step)
    assert program.instructions[-1].opcode == Opcode.STOP and len(program.instructions) <= 12
    pb.load(program)
    pb.start()
    t0 = board.started_at_s
    assert not board.timeline.periodic
    assert board.timeline.duration_s == pytest.approx(timing.periods * 160e-6, abs=1e-7)
    np.testing.assert_allclose(board.rising_edges_s("mw_trigger", t0 - 1e-12, t0 + 1) - t0,
                               [0.0] if step else [])
    np.testing.assert_allclose(board.rising_edges_s("camera_start", t0 - 1e-12, t0 + 1) - t0,
                               [timing.settle * 160e-6], atol=1e-12)
    assert world.mw_gate_modulation_hz == pytest.approx(6250.0)
    world.clock.advance(1.0)
    assert pb.status() == STATUS_STOPPED
    with pytest.raises(ValueError, match="settle and volume periods >= 1"):
        stepped_point_program(type(timing)(settle=0, volume=3), step)


def test_station_refuses_a_trigger_from_that_is_no_simulated_pulser(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("instruments:\n  mw: {driver: sg384, address: x, trigger_from: camera}\n"
                    "  camera: {driver: helicam_c3}\n")
    with pytest.raises(StationFileError, match="takes its trigger from 'camera'"):
        build_station(path, simulated=True, image_shape=(4, 4))


def test_camera_start_pulse_is_wider_than_the_cameras_10_us_minimum(world):
    # heliCam C3 user manual, external triggering: start on the falling edge, width > 10 us
    timing = stepped_point_timing(6250.0, 2 / 208, 2e-3)
    board = SimSpinAPI(world)
    pb = PulseBlaster("pb", library=board)
    pb.load(stepped_point_program(timing, step=True))
    pb.start()
    t0 = board.started_at_s
    pulses = board.pulses_s("camera_start", t0 - 1e-12, t0 + 1)
    assert len(pulses) == 1
    width = pulses[0, 1] - pulses[0, 0]
    assert width > 10e-6 and width == pytest.approx(CAMERA_START_PULSE_S)
