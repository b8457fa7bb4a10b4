"""Realtime capture soak: the simulated heliCam paced to the wall clock (run with ``-m soak``)."""

import pytest

from drivers.helicam import HeliCamC3
from sequences.capture import capture_to_file
from sim.clock import VirtualClock
from sim.helicam import SimLibHeLIC
from sim.world import World


@pytest.mark.soak
def test_one_minute_at_208_fps_without_drops(tmp_path):
    world = World(clock=VirtualClock(realtime=True), seed=0)
    world.mw_output, world.mw_power_dbm = True, 5.0
    world.mw_frequency_hz = world.resonance_estimate_hz() - 2e6
    world.mw_gate_modulation_hz = 6250.0
    world.coil_unit_fields_t()
    cam = HeliCamC3("soak", SimLibHeLIC(world), clock=world.clock.now)
    res = capture_to_file(cam, tmp_path / "soak.h5", duration_s=60.0, on_overflow="drop")
    assert res.end_reason == "completed: duration reached"
    assert res.frames_dropped == 0 and res.frames_written == pytest.approx(60 * 208, rel=0.01)
