"""The simulated SPAD bridge: optics, saturation, dark counts, and the byte stream on a pty."""

from __future__ import annotations

import time

import numpy as np
import pytest

from drivers.spad_bridge import SpadArray
from sim.spad_bridge import BANNER, MAGNIFICATION, SPAD_PITCH_M, Damage, SimSpadBridge
from sim.world import World


@pytest.fixture(scope="module")
def world() -> World:
    w = World(shape=(60, 60), seed=1)
    w.coil_unit_fields_t()  # warm the cache once for the module
    return w


def test_spad_footprint_covers_the_magnified_patch(world):
    bridge = SimSpadBridge(world)
    wy, wx = bridge._footprint
    weights = np.einsum("ir,jc->ijrc", wy, wx)
    x, y = world.pixel_coordinates_m()
    patch = 16 * SPAD_PITCH_M / MAGNIFICATION  # 25.9 um of sample seen by the whole array
    assert np.allclose(weights.sum(axis=(2, 3)), 1)
    used = weights.sum(axis=(0, 1)) > 0
    assert np.abs(x[used]).max() <= patch / 2 + world.pixel_size_m
    assert np.abs(x[used]).max() >= patch / 2 - world.pixel_size_m
    # a pixel on the left edge sees sample on the left
    assert (weights[5, 0] * x).sum() < -0.4 * patch


def test_rates_peak_rate_saturation_and_dark_counts(world):
    world.mw_output = False
    bridge = SimSpadBridge(world, peak_rate_hz=1e6, dark_rate_hz=100)
    rate = bridge.rate_hz()
    # 1 Mcps incident reads 0.75 Mcps through a 333 ns dead time
    assert 0.70e6 < rate.max() < 0.76e6
    bright = SimSpadBridge(world, peak_rate_hz=1e9).rate_hz()
    assert np.all(bright < 3e6) and np.all(bright > 2.9e6)
    world.laser_on = False
    try:
        np.testing.assert_allclose(SimSpadBridge(world, dark_rate_hz=100).rate_hz(), 100, rtol=1e-3)
    finally:
        world.laser_on = True


def test_odmr_dip_follows_the_world_mw_frequency(world):
    bridge = SimSpadBridge(world)
    world.mw_output, world.mw_power_dbm = True, -5.0
    off = bridge.rate_hz(mw_on=False).mean()
    f0 = world.resonance_estimate_hz()
    on_line = min(bridge.rate_hz(frequency_hz=f0 + d).mean() for d in np.linspace(-2e6, 2e6, 41))
    far = bridge.rate_hz(frequency_hz=f0 + 40e6).mean()
    assert on_line < off * 0.995 and abs(far - off) / off < 1e-3
    world.mw_frequency_hz = f0 + 40e6
    first = bridge.rate_hz().mean()
    world.mw_frequency_hz = f0 + 1.5e6
    assert bridge.rate_hz().mean() != first  # the cache follows the World's state
    world.mw_output = False


def test_counters_accumulate_poisson_and_wrap(world):
    bridge = SimSpadBridge(world, frame_period_s=1e-3, seed=3)
    bridge._counters[:] = 2**32 - 100
    a = bridge.next_frame_counters()
    b = bridge.next_frame_counters()
    counts = (b - a).astype(np.int64)  # uint32 arithmetic wraps like the FPGA
    assert np.all(a < 2000)  # every counter wrapped past 2**32 in the first frame
    expected = bridge.rate_hz() * 1e-3
    assert abs(counts.mean() - expected.mean()) < 5 * np.sqrt(expected.mean() / 256)


def test_bad_arguments(world):
    with pytest.raises(ValueError, match="byteorder"):
        SimSpadBridge(world, byteorder="pdp")
    with pytest.raises(ValueError, match="framing"):
        SimSpadBridge(world, framing="v3")
    with pytest.raises(ValueError, match="frame_period_s"):
        SimSpadBridge(world, frame_period_s=0)


def read_all(spad: SpadArray, n: int) -> np.ndarray:
    return spad.read_frames(n, timeout_s=10).frames


@pytest.mark.parametrize("framing,byteorder", [("legacy", "big"), ("v2", "little")])
def test_driver_reads_the_simulated_stream(world, framing, byteorder):
    bridge = SimSpadBridge(world, frame_period_s=1e-3, framing=framing, byteorder=byteorder, record=True)
    path = bridge.start()
    spad = SpadArray(f"spad_sim_{framing}", path, byteorder=byteorder)
    try:
        got = read_all(spad, 40)
        counts = spad.read_counts(20, timeout_s=10)
    finally:
        spad.close()
        bridge.stop()
    sent = {f.tobytes(): i for i, f in enumerate(bridge.sent)}
    idx = [sent[f.tobytes()] for f in got]
    assert idx == list(range(idx[0], idx[0] + 40))  # consecutive, none corrupt
    expected = bridge.rate_hz() * 1e-3
    assert abs(counts.mean() - expected.mean()) < 0.02 * expected.mean()


def test_damaged_stream_never_yields_a_corrupt_frame(world):
    damage = Damage(drop_probability=0.1, insert_probability=0.1, reset_probability=0.03)
    bridge = SimSpadBridge(world, frame_period_s=1e-3, damage=damage, seed=5, record=True)
    spad = SpadArray("spad_sim_damage", bridge.start())
    try:
        got = read_all(spad, 80)
        banners = spad.banners()
        rejected = spad.frames_rejected()
    finally:
        spad.close()
        bridge.stop()
    sent = {f.tobytes(): i for i, f in enumerate(bridge.sent)}
    idx = [sent.get(f.tobytes(), -1) for f in got]
    assert -1 not in idx and idx == sorted(idx)
    assert not set(idx) & set(bridge.damage_log.dropped)
    assert banners >= 1  # the boot banner at least; resets add more
    assert rejected > 0 and len(bridge.damage_log.dropped) > 0


def test_stuck_pixel_reads_ffffffff_every_frame(world):
    bridge = SimSpadBridge(world, frame_period_s=1e-3, record=True,
                           damage=Damage(drop_probability=0.1, after_frames=3))
    bridge.stuck_pixels = {(0, 9): 0xFFFFFFFF, (15, 15): 0xFFFFFFFF}
    spad = SpadArray("spad_sim_stuck", bridge.start())
    try:
        got = read_all(spad, 50)
    finally:
        spad.close()
        bridge.stop()
    sent = {f.tobytes() for f in bridge.sent}
    assert all(f.tobytes() in sent for f in got)
    assert np.all(got[:, 0, 9] == 0xFFFFFFFF)


def test_stop_makes_the_port_vanish_and_the_banner_comes_first(world):
    bridge = SimSpadBridge(world, frame_period_s=1e-3)
    path = bridge.start()
    with open(path, "rb", buffering=0) as port:
        head = port.read(len(BANNER))
    assert head == BANNER
    with pytest.raises(RuntimeError, match="already running"):
        bridge.start()
    spad = SpadArray("spad_sim_stop", path, connect_timeout_s=2)
    try:
        spad.read_frames(3, timeout_s=5)
        bridge.stop()
        deadline = time.monotonic() + 3
        while spad.reader.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not spad.reader.connected and spad.reconnects() == 1
    finally:
        spad.close()
