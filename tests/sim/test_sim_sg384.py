"""The SG384 simulator's command interpreter, called directly (no sockets)."""

import pytest

from sim.sg384 import LIST_MAX_POINTS, SimSG384
from sim.world import World


@pytest.fixture(scope="module")
def world():
    return World(shape=(8, 8))


@pytest.fixture
def sg(world):
    return SimSG384(world)


def ask(sg, *commands):
    return [sg.handle(c) for c in commands]


def lerr(sg):
    return int(sg.handle("LERR?"))


def test_idn_names_model(world):
    assert SimSG384(world, "SG386").handle("*IDN?").startswith("Stanford Research Systems,SG386,")
    with pytest.raises(ValueError, match="SG999"):
        SimSG384(world, "SG999")


@pytest.mark.parametrize(("text", "hz"), [
    ("2.87e9", 2.87e9), ("2870 MHz", 2.87e9), ("2.87GHz", 2.87e9), ("2870000 kHz", 2.87e9), ("1e6 Hz", 1e6),
])
def test_frequency_units(sg, world, text, hz):
    assert sg.handle(f"FREQ {text}") is None
    assert lerr(sg) == 0
    assert float(sg.handle("FREQ?")) == pytest.approx(hz)
    assert world.mw_frequency_hz == pytest.approx(hz)


@pytest.mark.parametrize(("command", "code"), [
    ("FREQ 5e9", 10), ("FREQ 100", 10), ("FREQ 2.87 PHZ", 127), ("FREQ abc", 118), ("FREQ", 116),
    ("AMPR 20", 10), ("AMPR x", 118), ("ENBR 2", 10), ("ENBR", 116), ("XYZZY 1", 111), ("123", 111),
    ("LSTE 1", 12), ("LSTC? 0", 10), (f"LSTC? {LIST_MAX_POINTS + 1}", 10), ("LSTC? x", 120),
])
def test_refused_commands_push_codes_and_change_nothing(sg, world, command, code):
    before = (sg.frequency_hz, sg.ampr_dbm, sg.enbr)
    sg.handle(command)
    assert lerr(sg) == code
    assert lerr(sg) == 0  # popped
    assert (sg.frequency_hz, sg.ampr_dbm, sg.enbr) == before


def test_error_buffer_is_bounded(sg):
    for _ in range(50):
        sg.handle("BOGUS")
    codes = [lerr(sg) for _ in range(25)]
    assert codes[:19] == [111] * 19
    assert codes[19] == 254
    assert codes[20:] == [0] * 5


def test_power_output_and_modulation_reach_the_world(sg, world):
    ask(sg, "AMPR -4.5", "ENBR 1", "MODL 1")
    assert (world.mw_power_dbm, world.mw_output) == (-4.5, True)
    assert ask(sg, "AMPR?", "ENBR?", "MODL?") == ["-4.50", "1", "1"]
    sg.handle("*RST")
    assert world.mw_output is False


def test_plain_settings_round_trip(sg):
    sg.handle("PHAS 45.5")
    assert sg.handle("PHAS?") == "45.5"
    sg.handle("*TRG")  # not in list mode: ignored
    assert lerr(sg) == 0


def test_list_mode(sg, world):
    assert ask(sg, "LSTS?", "LSTE?") == ["0", "0"]
    assert sg.handle("LSTC? 3") == "1"
    # Fact SG-4: 15 fields, the type-N power (AMPR) is field 5.
    ask(sg, "LSTP 0,2.86e9,N,N,N,-5" + ",N" * 10, "LSTP 1,2.87e9" + ",N" * 14,
        "LSTP 2,2.88e9,N,N,N,-6" + ",N" * 10)
    assert lerr(sg) == 0
    assert sg.handle("LSTP? 1") == "2.87E9" + ",N" * 14
    sg.handle("LSTE 1")
    assert (world.mw_frequency_hz, world.mw_power_dbm) == (2.86e9, -5.0)
    sg.trigger()
    assert (world.mw_frequency_hz, world.mw_power_dbm) == (2.87e9, -5.0)  # "N": power unchanged
    sg.trigger()
    assert (sg.handle("LSTI?"), world.mw_power_dbm) == ("2", -6.0)
    sg.trigger()
    assert sg.handle("LSTI?") == "0"
    sg.handle("FREQ 2.5e9")
    assert lerr(sg) == 11  # CW frequency is locked while the list runs
    ask(sg, "LSTI 2")
    assert world.mw_frequency_hz == 2.88e9
    ask(sg, "LSTR")
    assert world.mw_frequency_hz == 2.86e9
    ask(sg, "LSTD")
    assert ask(sg, "LSTS?", "LSTE?") == ["0", "0"]
    assert sg.trigger_count == 3


@pytest.mark.parametrize(("command", "code"), [
    ("LSTP 3,2.87e9" + ",N" * 14, 10), ("LSTP 0,9e9" + ",N" * 14, 10),
    ("LSTP 0,2.87e9,N,N,N,30" + ",N" * 10, 10), ("LSTP 0", 116), ("LSTP 0,2.87e9", 116),
    ("LSTP 0," + ",".join(["N"] * 16), 115), ("LSTP 0,abc" + ",N" * 14, 118), ("LSTI 5", 10),
    ("LSTE 7", 10), ("LSTP 0,2.87e9,N,N,-10" + ",N" * 11, 10),  # -10 "V" in OFSL (field 4)
])
def test_bad_list_points(sg, command, code):
    sg.handle("LSTC? 3")
    sg.handle(command)
    assert lerr(sg) == code
    assert sg.handle("LSTP? 0") == ",".join(["N"] * 15)
