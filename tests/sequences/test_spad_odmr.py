"""CW ODMR on the simulated SPAD array through the sequence engine."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.spad_bridge import SpadArray
from instrument.protocols import PhotonCountingArray, SafetyLimitError, SafetyLimits
from sequences.engine import Engine, LiveSink
from sequences.spad_odmr import SpadOdmrSweep
from sim.spad_bridge import SimSpadBridge
from sim.world import World
from tests.fakes import WorldMicrowave


class Collect(LiveSink):
    def __init__(self) -> None:
        super().__init__()
        self.steps = []

    def write(self, step) -> None:
        super().write(step)
        self.steps.append(step)


@pytest.fixture
def station():
    world = World(shape=(60, 60), seed=2)
    bridge = SimSpadBridge(world, frame_period_s=1e-3, seed=2)
    spad = SpadArray("spad_odmr_test", bridge.start())
    yield world, {"mw": WorldMicrowave(world), "spad": spad}
    spad.close()
    bridge.stop()


def test_sweep_finds_the_resonance_dip_and_leaves_everything_safe(station):
    world, instruments = station
    assert isinstance(instruments["spad"], PhotonCountingArray)
    f0 = world.resonance_estimate_hz()
    sweep = SpadOdmrSweep(f0 + np.linspace(-4e6, 4e6, 17), power_dbm=0.0, frames_per_point=20)
    sink = Collect()
    outcome = Engine(instruments, SafetyLimits(), [sink]).run(sweep)
    assert outcome.status == "completed" and len(sink.steps) == 17
    counts = np.array([s.values["mean_counts"] for s in sink.steps])
    freqs = np.array([s.values["frequency_hz"] for s in sink.steps])
    assert sink.steps[0].images["counts"].shape == (16, 16)
    off = np.median(counts[[0, 1, -2, -1]])
    # the 15N hyperfine doublet sits at f0 -+ 1.5 MHz; the deepest point is one of its lines
    assert counts.min() < off * 0.995
    assert abs(abs(freqs[np.argmin(counts)] - f0) - 1.5e6) <= 0.5e6
    assert not world.mw_output and not instruments["spad"].reader.running


def test_unsafe_power_is_refused_before_anything_moves(station):
    world, instruments = station
    sweep = SpadOdmrSweep(np.linspace(2.80e9, 2.81e9, 11), power_dbm=30.0)
    with pytest.raises(SafetyLimitError):
        Engine(instruments, SafetyLimits(), []).run(sweep)
    assert world.mw_frequency_hz == 2.87e9 and not world.mw_output


@pytest.mark.parametrize("kwargs,match", [
    ({"frequencies_hz": np.linspace(2.8e9, 2.81e9, 3)}, "at least 5"),
    ({"frequencies_hz": np.array([2.8e9, -1, 2.9e9, 3e9, 3.1e9])}, "positive"),
    ({"frames_per_point": 0}, "frames per point"),
    ({"settle_frames": -1}, "settle"),
    ({"settle_frames": 0}, "settle frames must be at least 1"),
])
def test_bad_sweeps_are_refused(kwargs, match):
    params = {"frequencies_hz": np.linspace(2.8e9, 2.81e9, 11), "power_dbm": 0.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        SpadOdmrSweep(**params).check(SafetyLimits())
