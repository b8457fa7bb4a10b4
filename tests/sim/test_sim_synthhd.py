"""The SynthHD simulator: command parsing (direct) and the pseudo-terminal (pyserial)."""

import pytest
import serial

from sim.synthhd import TABLE_MAX_POINTS, SimSynthHD
from sim.world import World


@pytest.fixture(scope="module")
def world():
    return World(shape=(4, 4))


@pytest.fixture
def hd(world):
    return SimSynthHD(world)


def test_identity_and_versions(world):
    """Fact HD-1: 'Version 2.x' / 'Version 1.4', sub-version HD or HDPRO from v2 on."""
    assert SimSynthHD(world).handle("+-v0v1v2") == "SynthHD\n1429\n3.22\nVersion 2.06\nHD\n"
    assert SimSynthHD(world, "2pro").handle("v2") == "HDPRO\n"
    v1 = SimSynthHD(world, "1")
    assert v1.handle("v1v2") == "Version 1.4\n"  # no sub-version before v2: ignored
    assert v1.rejected == [("v2", "no sub-version before hardware v2")]
    with pytest.raises(ValueError, match="version"):
        SimSynthHD(world, "7")


def test_concatenated_settings_reach_the_world(hd, world):
    assert hd.handle("C0f2870.5W-5.5E1r1") == ""
    assert world.mw_output is False  # fact HD-4: still muted
    assert hd.handle("h1") == ""
    assert hd.handle("f?W?E?r?p") == "2870.5000000\n-5.500\n1\n1\n1\n"
    assert (world.mw_frequency_hz, world.mw_power_dbm, world.mw_output) == (2870.5e6, -5.5, True)
    hd.handle("h0")
    assert world.mw_output is False  # muted
    hd.handle("h1 r0")
    assert world.mw_output is False  # amplifier off


def test_channel_b_does_not_drive_the_world(hd, world):
    hd.handle("C0f2000E1r1")
    hd.handle("C1f3000W0E1r1")
    assert hd.handle("C?f?") == "1\n3000.0000000\n"
    assert world.mw_frequency_hz == 2000e6


@pytest.mark.parametrize("command", ["f5", "f20000", "W30", "W-99", "fabc", "f", "w12", "X3", "E7", "t1",
                                     "Q1", "#", "f1e3"])
def test_what_the_device_cannot_do_is_ignored(hd, command):
    before = hd.handle("f?W?w?X?E?t?")
    assert hd.handle(command) == ""
    assert hd.handle("f?W?w?X?E?t?") == before


def load(hd, freqs=(2860, 2870, 2880), power=-3):
    hd.handle("Ld")
    for i, f in enumerate(freqs):
        hd.handle(f"L{i}f{f}L{i}a{power}")
    hd.handle("X1w2c1g1")


def test_single_step_table_sweep_wraps_when_continuous(hd, world):
    load(hd)
    assert hd.handle("L1f?L1a?g?") == "2870.0000000\n-3.000\n1\n"
    seen = [world.mw_frequency_hz]
    for _ in range(3):
        hd.trigger()
        seen.append(world.mw_frequency_hz)
    assert seen == [2860e6, 2870e6, 2880e6, 2860e6]
    assert world.mw_power_dbm == -3


def test_single_pass_stops_on_the_last_point(hd, world):
    load(hd)
    hd.handle("c0")
    for _ in range(5):
        hd.trigger()
    assert hd.handle("g?f?") == "0\n2880.0000000\n"


def test_triggers_ignored_outside_single_step_mode(hd, world):
    load(hd)
    hd.handle("w1")
    hd.trigger()
    assert hd.handle("f?") == "2860.0000000\n"
    assert hd.trigger_count == 1


def test_table_end_mark_and_bounds(hd):
    hd.handle("Ld L0f2860 L1f2870 L2f0 L3f2890")
    assert [p[0] for p in hd.channels[0].table()] == [2860, 2870]
    hd.handle(f"L{TABLE_MAX_POINTS}f2900 L0f99999")
    assert hd.handle("L0f?") == "2860.0000000\n"


def test_pseudo_terminal_round_trip_and_unplug(world):
    with SimSynthHD(world) as hd:
        port = serial.Serial(hd.port, timeout=1)
        port.write(b"f2870\nf?\n")
        assert port.readline() == b"2870.0000000\n"
        hd.unplug()
        with pytest.raises(serial.SerialException):
            port.write(b"f?\n")
            port.readline()
        port.close()
