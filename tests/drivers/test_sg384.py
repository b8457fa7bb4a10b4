"""SG384Source against the live simulator: the exchanged messages are the specification."""

import itertools
from pathlib import Path

import pytest

from drivers.sg384 import SG384Source
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    ListSweepSource,
    MicrowaveSource,
    SafetyLimitError,
    SafetyLimits,
)
from sim.scpi_server import ScpiServer
from sim.sg384 import SimSG384
from sim.world import World

_names = itertools.count()
LIMITS = SafetyLimits(mw_power_max_dbm=5.0)


@pytest.fixture(scope="module")
def world():
    return World(shape=(8, 8))


@pytest.fixture
def sim(world):
    s = SimSG384(world)
    s.start()
    yield s
    s.stop()


def connect(sim, limits=LIMITS, **kwargs) -> SG384Source:
    source = SG384Source(f"sg{next(_names)}", sim.start(), limits, **kwargs)
    return source


@pytest.fixture
def source(sim):
    src = connect(sim)
    sim.commands.clear()
    yield src
    src.close()


def test_connect_dialogue_identifies_and_clears_stale_errors(sim):
    sim.errors.append(111)  # left over from someone else's session
    src = connect(sim)
    try:
        assert sim.commands == ["*IDN?", "LERR?", "LERR?"]
        assert src.model == "SG384"
        assert src.constraints.frequency_max_hz == 4.05e9
        assert src.constraints.list_max_points == 2000
        assert src.constraints.power_max_dbm == LIMITS.mw_power_max_dbm  # the ceiling, not 16.5 dBm
        assert isinstance(src, MicrowaveSource)
        assert isinstance(src, ListSweepSource)
    finally:
        src.close()


def test_set_frequency_sends_freq_then_checks_errors_and_moves_the_world(source, sim, world):
    source.set_frequency(2.87e9)
    assert sim.commands == ["FREQ 2870000000.000", "LERR?"]
    assert world.mw_frequency_hz == 2.87e9
    assert source.frequency() == pytest.approx(2.87e9)
    assert sim.commands[-1] == "FREQ?"


def test_set_power_and_output(source, sim, world):
    source.set_power(-3.0)
    source.set_output(True)
    assert sim.commands == ["AMPR -3.00", "LERR?", "ENBR 1", "LERR?"]
    assert (world.mw_power_dbm, world.mw_output) == (-3.0, True)
    source.set_output(False)
    assert sim.commands[-2:] == ["ENBR 0", "LERR?"]
    assert world.mw_output is False


def test_dips_follow_the_source(source, world):
    """The World sees what the source emits: on resonance the PL drops, off resonance it does not."""
    f0 = world.resonance_estimate_hz() - 0.5 * 3.03e6
    source.set_power(0.0)
    source.set_output(True)
    source.set_frequency(f0)
    dark = world.pl_rate_hz(True).mean()
    source.set_frequency(f0 + 50e6)
    bright = world.pl_rate_hz(True).mean()
    assert dark < bright * 0.995


@pytest.mark.parametrize("call", [
    lambda s: s.set_power(5.5),
    lambda s: s.set_power(float("nan")),
    lambda s: s.amplitude_RF(10.0),
    lambda s: s.write("AMPR 12"),
    lambda s: s.write("AMPR garbage"),
    lambda s: s.arm_list([2.87e9], 6.0),
    lambda s: s.write("LSTP 0,2.87e9,N,N,N,9.0,N,N,N,N,N,N,N,N,N"),  # field 5 is AMPR (fact SG-4)
    lambda s: s.write("LSTP 0, 2.87e9, N, N, N, 9.0dBm, N, N, N, N, N, N, N, N, N"),
    lambda s: s.write("AMPR -20;AMPR 12"),  # a second command behind a semicolon
    lambda s: s.ask("AMPR 12;AMPR?"),  # a setting hidden in a query message
])
def test_power_above_the_lab_ceiling_is_never_sent(source, sim, world, call):
    power_before = world.mw_power_dbm
    with pytest.raises(SafetyLimitError, match="5 dBm"):
        call(source)
    assert sim.commands == []
    assert world.mw_power_dbm == power_before


def test_power_inside_ceiling_but_outside_device_range(sim):
    src = connect(sim, SafetyLimits(mw_power_max_dbm=30.0))
    sim.commands.clear()
    try:
        with pytest.raises(InstrumentError) as err:
            src.set_power(17.0)
        assert (err.value.instrument, err.value.command, err.value.value) == (src.name, "AMPR", 17.0)
        assert sim.commands == []
    finally:
        src.close()


@pytest.mark.parametrize(("model", "good_hz", "bad_hz"), [
    ("SG382", 2.0e9, 2.1e9), ("SG384", 4.0e9, 4.1e9), ("SG386", 6.0e9, 6.1e9),
])
def test_model_decides_the_upper_frequency(world, model, good_hz, bad_hz):
    with SimSG384(world, model) as sim:
        src = connect(sim)
        try:
            src.set_frequency(good_hz)
            sim.commands.clear()
            with pytest.raises(InstrumentError, match=model) as err:
                src.set_frequency(bad_hz)
            assert (err.value.command, err.value.value) == ("FREQ", bad_hz)
            with pytest.raises(InstrumentError):
                src.set_frequency(500e3)
            assert sim.commands == []
        finally:
            src.close()


def test_device_error_reply_names_instrument_command_value_and_code(source, sim):
    with pytest.raises(InstrumentError) as err:
        source.write("FREQ 2.87 PHZ")  # the instrument refuses unknown units
    assert err.value.instrument == source.name
    assert err.value.command == "FREQ 2.87 PHZ"
    assert "error 127 (illegal units)" in str(err.value)
    assert str(err.value).startswith(f"{source.name}: FREQ 2.87 PHZ")
    source.set_frequency(2.8e9)  # the error was drained: the next write is clean


def test_every_queued_error_is_reported_and_drained(source, sim):
    sim.errors.extend([10, 11])
    with pytest.raises(InstrumentError, match=r"error 10 \(illegal value\); error 11 \(illegal mode\)"):
        source.write("ENBR 0")
    assert sim.errors == []


def test_garbled_error_query_answer(source, sim, monkeypatch):
    original = sim.handle
    monkeypatch.setattr(sim.server, "handler", lambda c: "x7" if c == "LERR?" else original(c))
    with pytest.raises(InstrumentError, match="garbled") as err:
        source.set_output(True)
    assert err.value.command == "LERR?"
    assert err.value.value == "x7"


def test_visa_timeout_is_typed(source, sim):
    source.timeout(0.2)
    sim.server.mute = True
    with pytest.raises(InstrumentTimeout) as err:
        source.set_frequency(2.8e9)  # the write goes out; the LERR? after it is never answered
    assert err.value.instrument == source.name
    assert err.value.command == "LERR?"
    assert "0.2 s" in str(err.value)
    with pytest.raises(InstrumentError, match="could not switch RF off"):
        source.close()  # RF off cannot be confirmed either: reported, and the session is released


def test_lost_connection_is_typed_and_safe_state_reports_it(source, sim):
    source.timeout(0.3)
    sim.server.drop_connections()
    with pytest.raises(InstrumentDisconnected) as err:
        source.frequency()
    assert err.value.command == "FREQ?"
    with pytest.raises(InstrumentError, match="ENBR 0: could not switch RF off"):
        source.safe_state()
    with pytest.raises(InstrumentError):
        source.close()  # reports, and still releases the session
    source.close()


def test_close_turns_rf_off_first_and_twice_is_harmless(sim, world):
    src = connect(sim)
    src.set_output(True)
    sim.commands.clear()
    src.close()
    assert sim.commands == ["ENBR 0", "LERR?"]
    assert world.mw_output is False
    src.close()


def test_not_an_sg384_is_refused_without_touching_the_output():
    commands = []

    def other(command):
        commands.append(command)
        return "Rohde&Schwarz,SMB100A,1406.6000k03/123456,3.1.19.15" if command == "*IDN?" else None

    with ScpiServer(other) as server:
        with pytest.raises(InstrumentError, match="not an SRS SG38x") as err:
            SG384Source("wrong", server.resource_name, LIMITS)
        assert err.value.value == "SMB100A"
    assert commands == ["*IDN?"]


# ---- list mode -------------------------------------------------------------------------------

FREQS = [2.86e9, 2.87e9, 2.88e9]


def test_arm_list_dialogue(source, sim, world):
    """Facts SG-4 (power in field 5, AMPR), SG-5/SG-9 (LSTD before LSTC?)."""
    source.arm_list(FREQS, -5.0)
    point = "{:.6f},N,N,N,-5.00,N,N,N,N,N,N,N,N,N,N"
    assert sim.commands == [
        "LSTD", "LERR?", "LSTC? 3",
        f"LSTP 0,{point.format(FREQS[0])}", "LERR?",
        f"LSTP 1,{point.format(FREQS[1])}", "LERR?",
        f"LSTP 2,{point.format(FREQS[2])}", "LERR?",
        "LSTR", "LERR?", "LSTE 1", "LERR?",
    ]
    assert world.mw_frequency_hz == FREQS[0]
    assert world.mw_power_dbm == -5.0
    assert source.list_index() == 0


def test_trigger_steps_the_list_and_wraps(source, sim, world):
    source.arm_list(FREQS, -5.0)
    seen = []
    for _ in range(4):
        sim.trigger()  # the PulseBlaster's edge on the rear trigger input
        seen.append((source.list_index(), world.mw_frequency_hz))
    assert seen == [(1, FREQS[1]), (2, FREQS[2]), (0, FREQS[0]), (1, FREQS[1])]


def test_software_trigger_steps_the_list(source, world):
    source.arm_list(FREQS, -5.0)
    source.software_trigger()
    assert source.list_index() == 1
    assert world.mw_frequency_hz == FREQS[1]


def test_rearming_replaces_a_running_list(source, sim, world):
    source.arm_list(FREQS, -5.0)
    sim.trigger()
    source.arm_list([2.9e9, 2.91e9], -6.0)
    assert sim.commands.count("LSTD") == 2  # the running list was deleted, not reused (fact SG-9)
    assert source.list_index() == 0
    assert world.mw_frequency_hz == 2.9e9


def test_restart_list_goes_back_to_point_0_without_reloading(source, sim, world):
    source.arm_list(FREQS, -5.0)
    sim.trigger()
    sim.trigger()
    sim.commands.clear()
    source.restart_list()
    assert sim.commands == ["LSTS?", "LSTE?", "LSTR", "LERR?"]
    assert (source.list_index(), world.mw_frequency_hz) == (0, FREQS[0])
    sim.trigger()
    assert world.mw_frequency_hz == FREQS[1]


def test_restart_without_a_list_is_refused_before_anything_is_sent(source, sim):
    with pytest.raises(InstrumentError, match="no list is armed") as err:
        source.restart_list()
    assert err.value.command == "LSTR"
    assert sim.commands == ["LSTS?"]


def test_abort_list_returns_to_cw(source, sim, world):
    source.arm_list(FREQS, -5.0)
    sim.commands.clear()
    source.abort_list()
    assert sim.commands == ["LSTS?", "LSTE 0", "LERR?", "LSTD", "LERR?"]
    source.set_frequency(2.5e9)
    assert world.mw_frequency_hz == 2.5e9
    sim.commands.clear()
    source.abort_list()  # nothing armed: only the size is asked
    assert sim.commands == ["LSTS?"]


@pytest.mark.parametrize(("freqs", "command", "value"), [
    ([], "LSTC?", 0),
    ([2.87e9] * 2001, "LSTC?", 2001),
    ([2.87e9, 4.2e9], "LSTP", 4.2e9),
    ([2.87e9, float("nan")], "LSTP", None),
])
def test_bad_lists_are_refused_before_anything_is_sent(source, sim, freqs, command, value):
    with pytest.raises(InstrumentError) as err:
        source.arm_list(freqs, -5.0)
    assert err.value.command == command
    if value is not None:
        assert err.value.value == value
    assert sim.commands == []


def test_list_refused_by_the_device_is_reported(source, sim, monkeypatch):
    original = sim.handle

    def out_of_memory(command):
        if command.startswith("LSTC?"):
            sim.errors.append(12)
            return "0"
        return original(command)

    monkeypatch.setattr(sim.server, "handler", out_of_memory)
    with pytest.raises(InstrumentError, match=r"list not created.*error 12 \(not allowed\)") as err:
        source.arm_list(FREQS, -5.0)
    assert err.value.command == "LSTC? 3"


# ---- static dialogue with pyvisa-sim ----------------------------------------------------------

SIM_YAML = Path(__file__).with_name("sg384_pyvisa_sim.yaml")


def test_pyvisa_sim_dialogue():
    src = SG384Source("sg_yaml", "GPIB::27::INSTR", LIMITS, visalib=f"{SIM_YAML}@sim")
    try:
        assert src.model == "SG386"
        src.set_frequency(5.5e9)
        assert src.frequency() == pytest.approx(5.5e9)
        src.set_power(-7.5)
        assert src.amplitude_RF() == pytest.approx(-7.5)
        src.set_output(True)
        assert src.enable_RF() == "ON"
        assert src.list_size() == 0
    finally:
        src.close()


def test_connecting_prints_nothing_and_logs_the_identity(sim, capsys, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="drivers.checked_visa"):
        connect(sim).close()
    assert capsys.readouterr().out == ""  # the acquire command's output stays its own
    assert "connected to" in caplog.text and "SG384" in caplog.text
