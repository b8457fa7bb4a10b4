"""SynthHDSource against the simulator on a pseudo-terminal: the exchanged commands are the spec."""

import itertools

import pytest

from drivers.synthhd import SynthHDSource
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    ListSweepSource,
    MicrowaveSource,
    SafetyLimitError,
    SafetyLimits,
)
from sim.synthhd import SimSynthHD
from sim.world import World

_names = itertools.count()
LIMITS = SafetyLimits(mw_power_max_dbm=5.0)
FREQS = [2.86e9, 2.87e9, 2.88e9]


@pytest.fixture(scope="module")
def world():
    return World(shape=(4, 4))


@pytest.fixture
def sim(world):
    s = SimSynthHD(world)
    s.start()
    yield s
    s.stop()


def connect(sim, limits=LIMITS, **kwargs):
    return SynthHDSource(f"hd{next(_names)}", sim.port, limits, timeout_s=0.3, **kwargs)


@pytest.fixture
def source(sim):
    src = connect(sim)
    sim.commands.clear()
    yield src
    src.close()


def test_connect_dialogue(sim):
    src = connect(sim, channel=1)
    try:
        assert sim.commands == ["+", "v1", "v0", "v2", "C1", "C?"]  # fact HD-1
        assert src.hardware == "SynthHD v2"
        assert src.constraints.frequency_min_hz == 10e6
        assert src.constraints.frequency_max_hz == 15e9
        assert src.constraints.list_max_points == 100
        assert isinstance(src, MicrowaveSource)
        assert isinstance(src, ListSweepSource)
    finally:
        src.close()


def test_hardware_version_one_range(world):
    """Fact HD-1/HD-2: 'Version 1.4' gets the v1.4 range (53 MHz..14 GHz), not v2's."""
    with SimSynthHD(world, "1") as sim:
        src = connect(sim)
        assert src.hardware == "SynthHD v1.4"
        assert sim.commands[:3] == ["+", "v1", "v0"] and "v2" not in sim.commands
        assert src.constraints.frequency_min_hz == 53e6
        assert src.constraints.frequency_max_hz == pytest.approx(13999.999999e6)
        with pytest.raises(InstrumentError, match="range") as err:
            src.set_frequency(14e9)
        assert (err.value.command, err.value.value) == ("f", 14e9)
        src.close()


def test_settings_are_written_in_mhz_and_read_back(source, sim, world):
    source.set_frequency(2.87e9)
    source.set_power(-3.0)
    source.set_output(True)
    assert sim.commands == ["f2870.0000000", "f?", "W-3.000", "W?", "E1", "r1", "h1", "E?", "r?", "h?"]
    assert (world.mw_frequency_hz, world.mw_power_dbm, world.mw_output) == (2.87e9, -3.0, True)
    source.set_output(False)
    assert world.mw_output is False


@pytest.mark.parametrize("call", [
    lambda s: s.set_power(6.0),
    lambda s: s.write("W 7"),
    lambda s: s.write("L3a12.5"),
    lambda s: s.write("]30"),
    lambda s: s.arm_list(FREQS, 5.5),
])
def test_power_above_the_ceiling_is_never_sent(source, sim, call):
    with pytest.raises(SafetyLimitError):
        call(source)
    assert sim.commands == []


@pytest.mark.parametrize(("call", "command", "value"), [
    (lambda s: s.set_frequency(5e6), "f", 5e6),
    (lambda s: s.set_frequency(float("inf")), "f", float("inf")),
    (lambda s: s.set_power(-80.0), "W", -80.0),
])
def test_out_of_range_is_refused_before_sending(source, sim, call, command, value):
    with pytest.raises(InstrumentError) as err:
        call(source)
    assert (err.value.instrument, err.value.command, err.value.value) == (source.name, command, value)
    assert sim.commands == []


def test_value_the_device_ignored_is_reported(source, sim, monkeypatch):
    original = sim.handle
    monkeypatch.setattr(sim, "handle", lambda line: "" if line.startswith("f2") else original(line))
    with pytest.raises(InstrumentError, match="did not take the frequency") as err:
        source.set_frequency(2.87e9)
    assert (err.value.command, err.value.value) == ("f2870.0000000", 2.87e9)


def test_output_the_device_did_not_switch_is_reported(source, sim, monkeypatch):
    original = sim.handle
    monkeypatch.setattr(sim, "handle", lambda line: "" if line == "r1" else original(line))
    with pytest.raises(InstrumentError, match="did not switch"):
        source.set_output(True)


def test_silence_is_a_timeout_and_garbage_is_an_error(source, sim, monkeypatch):
    original = sim.handle
    monkeypatch.setattr(sim, "handle", lambda line: "" if line == "W?" else original(line))
    with pytest.raises(InstrumentTimeout) as err:
        source.power()
    assert err.value.command == "W?"
    monkeypatch.setattr(sim, "handle", lambda line: "2.8e9GHz!\n" if line == "f?" else original(line))
    with pytest.raises(InstrumentError, match="garbled") as err:
        source.frequency()
    assert err.value.value == "2.8e9GHz!"


def test_not_a_synthhd(sim, monkeypatch):
    monkeypatch.setattr(sim, "handle", lambda line: "SynthNV\n" if line == "+" else "")
    with pytest.raises(InstrumentError, match="not a Windfreak SynthHD"):
        connect(sim)


def test_missing_port_is_a_disconnect():
    with pytest.raises(InstrumentDisconnected, match="cannot open"):
        SynthHDSource("hd_missing", "/dev/does-not-exist", LIMITS)


def test_bad_channel():
    with pytest.raises(InstrumentError, match="channel"):
        SynthHDSource("hd_bad_channel", "/dev/null", LIMITS, channel=2)


def test_close_turns_rf_off_first(sim, world):
    src = connect(sim)
    src.set_output(True)
    sim.commands.clear()
    src.close()
    assert sim.commands == ["h0", "r0", "E0", "E?"]
    assert world.mw_output is False
    src.close()


# ---- sweep -----------------------------------------------------------------------------------

def test_arm_list_dialogue(source, sim, world):
    source.set_frequency(2.5e9)
    sim.commands.clear()
    source.arm_list(FREQS, -5.0)
    assert sim.commands == [
        "g0", "f?", "Ld",
        "L0f2860.0000000", "L0a-5.000", "L1f2870.0000000", "L1a-5.000", "L2f2880.0000000", "L2a-5.000",
        "X1", "w2", "c1", "g1", "g?", "f?",
    ]
    assert (world.mw_frequency_hz, world.mw_power_dbm) == (FREQS[0], -5.0)


def test_each_trigger_steps_one_point_and_wraps(source, sim, world):
    source.arm_list(FREQS, -5.0)
    seen = [source.list_index()]
    for _ in range(3):
        sim.trigger()
        seen.append(source.list_index())
    assert seen == [0, 1, 2, 0]


def test_restart_list_runs_the_table_again_from_point_0(source, sim, world):
    source.arm_list(FREQS, -5.0)
    sim.trigger()
    sim.trigger()
    sim.commands.clear()
    source.restart_list()
    assert sim.commands == ["g0", "g1", "g?", "f?"]
    assert world.mw_frequency_hz == FREQS[0]
    sim.trigger()
    assert source.list_index() == 1


def test_restart_without_a_list_is_refused(source, sim):
    with pytest.raises(InstrumentError, match="no list is armed"):
        source.restart_list()
    assert sim.commands == []


def test_abort_returns_to_the_cw_frequency(source, sim, world):
    source.set_frequency(2.5e9)
    source.arm_list(FREQS, -5.0)
    sim.trigger()
    source.abort_list()
    assert world.mw_frequency_hz == 2.5e9
    with pytest.raises(InstrumentError, match="no list is armed"):
        source.list_index()


@pytest.mark.parametrize(("freqs", "command", "value"), [
    ([], "L", 0),
    ([2.87e9 + i * 1e5 for i in range(101)], "L", 101),
    ([2.87e9, 16e9], "L0f", 16e9),
    ([2.87e9, 2.87e9 + 0.5], "L", 2),
])
def test_bad_lists_refused_before_sending(source, sim, freqs, command, value):
    with pytest.raises(InstrumentError) as err:
        source.arm_list(freqs, -5.0)
    assert (err.value.command, err.value.value) == (command, value)
    assert sim.commands == []


def test_index_of_a_frequency_not_in_the_list(source, sim):
    source.arm_list(FREQS, -5.0)
    sim.handle("g0f2500")  # someone stopped the sweep from the front panel
    with pytest.raises(InstrumentError, match="not a point of the armed list") as err:
        source.list_index()
    assert err.value.value == 2.5e9


def test_device_vanishing_mid_sweep(source, sim):
    source.arm_list(FREQS, -5.0)
    sim.trigger()
    assert source.list_index() == 1
    sim.unplug()
    with pytest.raises(InstrumentDisconnected) as err:
        source.list_index()
    assert err.value.instrument == source.name
    assert err.value.command == "f?"
    with pytest.raises(InstrumentError, match="E0: could not switch RF off.*USB power"):
        source.safe_state()
    with pytest.raises(InstrumentError):
        source.close()  # reports, and still releases the port
