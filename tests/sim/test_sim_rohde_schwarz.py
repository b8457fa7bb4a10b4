"""The R&S simulator's SCPI interpreter, called directly (no sockets)."""

import pytest

from sim.rohde_schwarz import ERROR_QUEUE_SIZE, SimRohdeSchwarz
from sim.scpi_headers import canonical_header, parse_number, short_form
from sim.world import World


@pytest.fixture(scope="module")
def world():
    return World(shape=(8, 8))


@pytest.fixture
def rs(world):
    return SimRohdeSchwarz(world, "SMB100A", "B106")


def err(rs):
    return rs.handle("SYST:ERR?")


@pytest.mark.parametrize(("word", "short"), [
    ("FREQuency", "FREQ"), ("SOURce1", "SOUR"), ("LEVel", "LEV"), ("TRIGGER", "TRIG"), ("POINts", "POIN"),
    ("LIST", "LIST"), ("EXT", "EXT"), ("*IDN", "*IDN"),
])
def test_short_forms(word, short):
    assert short_form(word) == short


@pytest.mark.parametrize(("header", "canonical"), [
    (":SOURce1:FREQuency:CW", "FREQ"), ("SOUR:POW:LEV:IMM:AMPL?", "POW?"), ("OUTPut:STATe", "OUTP"),
    ("TRIGger:LIST:SOURce", "LIST:TRIG:SOUR"), ("SYSTem:ERRor:NEXT?", "SYST:ERR?"),
    ("sour:list:freq:poin?", "LIST:FREQ:POIN?"),
])
def test_canonical_headers(header, canonical):
    assert canonical_header(header) == canonical


@pytest.mark.parametrize(("text", "value"), [
    ("2.87 GHz", 2.87e9), ("-5dBm", -5.0), ("10 ms", 0.01), ("1e3", 1e3),
])
def test_numbers_with_units(text, value):
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "5 parsecs", "1..2"])
def test_bad_numbers(text):
    with pytest.raises(ValueError):
        parse_number(text)


def test_identity_and_option(world):
    rs = SimRohdeSchwarz(world, "SGS100A", "B112V")
    assert rs.handle("*IDN?").startswith("Rohde&Schwarz,SGS100A,")
    assert rs.handle("*OPT?") == "SGS-B112V"
    assert rs.frequency_max_hz == 12.75e9
    with pytest.raises(ValueError, match="B140"):
        SimRohdeSchwarz(world, "SGS100A", "B140")
    with pytest.raises(ValueError, match="SMX"):
        SimRohdeSchwarz(world, "SMX")


def test_cw_settings_reach_the_world(rs, world):
    for command in ("SOUR:FREQ 2.87 GHz", "POW:LEV:IMM:AMPL -4.5", ":OUTP:STAT ON"):
        rs.handle(command)
    assert err(rs) == '0,"No error"'
    assert (world.mw_frequency_hz, world.mw_power_dbm, world.mw_output) == (2.87e9, -4.5, True)
    assert [rs.handle(q) for q in ("FREQ?", "POW?", "OUTP?")] == ["2870000000.00", "-4.50", "1"]
    rs.handle("*RST")
    assert world.mw_output is False


@pytest.mark.parametrize(("command", "code"), [
    ("SOUR:FREQ 7e9", -222), ("SOUR:FREQ 50e3", -222), ("SOUR:FREQ", -109), ("SOUR:FREQ abc", -224),
    ("SOUR:POW 31", -222), ("OUTP MAYBE", -224), ("SOUR:WARP 9", -113), ("FREQ:MODE SWEEP", -224),
    ("FREQ:MODE LIST", 241), ("LIST:FREQ 2e9", 241),  # 241 "No current list" (fact RS-4)
    ("FREQ? 5", -108), ("LIST:SEL \"\"", -151),
    ("*IDN", -113),
])
def test_refused_commands_queue_scpi_errors_and_change_nothing(rs, world, command, code):
    before = (rs.frequency_hz, rs.power_dbm, rs.output, rs.frequency_mode)
    rs.handle(command)
    assert err(rs).startswith(f"{code},")
    assert err(rs) == '0,"No error"'
    assert (rs.frequency_hz, rs.power_dbm, rs.output, rs.frequency_mode) == before


def test_error_queue_overflow(rs):
    for _ in range(ERROR_QUEUE_SIZE + 5):
        rs.handle("BOGUS")
    answers = [err(rs) for _ in range(ERROR_QUEUE_SIZE + 1)]
    assert answers[ERROR_QUEUE_SIZE - 1].startswith("-350,")
    assert answers[-1] == '0,"No error"'


def load_list(rs, freqs=(2.86e9, 2.87e9, 2.88e9), power=-5.0):
    rs.handle('SOUR:LIST:SEL "sweep"')
    rs.handle("SOUR:LIST:FREQ " + ",".join(str(f) for f in freqs))
    rs.handle("SOUR:LIST:POW " + ",".join([str(power)] * len(freqs)))
    rs.handle("SOUR:LIST:MODE STEP")
    rs.handle("TRIG:LIST:SOUR EXT")
    rs.handle("SOUR:LIST:LEAR")
    assert err(rs) == '0,"No error"'


def test_each_external_trigger_steps_one_point_and_the_list_runs_once(rs, world):
    """Facts RS-5 (STEP: one step per trigger event) and RS-6 (EXTernal: executed once)."""
    load_list(rs)
    rs.handle("SOUR:FREQ:MODE LIST")
    seen = [(rs.handle("LIST:IND?"), world.mw_frequency_hz)]
    for _ in range(4):
        rs.trigger()
        seen.append((rs.handle("LIST:IND?"), world.mw_frequency_hz))
    assert seen == [("0", 2.86e9), ("1", 2.87e9), ("2", 2.88e9), ("2", 2.88e9), ("2", 2.88e9)]
    assert rs.handle("FREQ?") == "2880000000.00"


def test_execute_belongs_to_the_single_source_and_reset_goes_back_to_the_start(rs, world):
    """Fact RS-7: LIST:TRIG:EXEC is "Execute Single"; with the external source it does nothing here."""
    load_list(rs)
    rs.handle("FREQ:MODE LIST")
    rs.handle("LIST:TRIG:EXEC")
    assert rs.handle("LIST:IND?") == "0"
    rs.trigger()
    assert rs.handle("LIST:IND?") == "1"
    rs.handle("LIST:RES")
    assert (rs.handle("LIST:IND?"), world.mw_frequency_hz) == ("0", 2.86e9)
    rs.trigger()
    assert rs.handle("LIST:IND?") == "1"
    rs.handle("LIST:TRIG:SOUR SING")
    rs.handle("LIST:TRIG:EXEC")
    assert rs.handle("LIST:IND?") == "2"
    rs.handle("FREQ:MODE CW")
    assert world.mw_frequency_hz == rs.frequency_hz


def test_triggers_ignored_unless_external_step_list(rs):
    load_list(rs)
    rs.handle("TRIG:LIST:SOUR AUTO")
    rs.handle("FREQ:MODE LIST")
    rs.trigger()
    rs.trigger()
    assert rs.handle("LIST:IND?") == "0"
    assert rs.trigger_count == 2


@pytest.mark.parametrize(("command", "code"), [
    ("SOUR:LIST:FREQ " + ",".join(["2e9"] * 2001), -223),
    ("SOUR:LIST:FREQ 2e9,9e9", -222),
    ("SOUR:LIST:POW -5,40", -222),
    ("SOUR:LIST:POW", -109),
    ("SOUR:LIST:MODE SOMETIMES", -224),
])
def test_bad_lists(rs, command, code):
    rs.handle('SOUR:LIST:SEL "x"')
    rs.handle(command)
    assert err(rs).startswith(f"{code},")
    assert rs.handle("LIST:FREQ:POIN?") == "0"


def test_lists_of_different_length_cannot_run(rs):
    rs.handle('SOUR:LIST:SEL "x"')
    rs.handle("SOUR:LIST:FREQ 2e9,2.1e9")
    rs.handle("SOUR:LIST:POW -5")
    rs.handle("SOUR:LIST:LEAR")
    rs.handle("FREQ:MODE LIST")
    assert err(rs).startswith("-221,")
    assert err(rs).startswith("-221,")
    assert rs.frequency_mode == "CW"


def test_list_cannot_change_while_running(rs):
    load_list(rs)
    rs.handle("FREQ:MODE LIST")
    rs.handle("SOUR:LIST:FREQ 2e9,2e9,2e9")
    assert err(rs).startswith("-221,")
    rs.handle("LIST:IND 2")
    assert rs.handle("FREQ?") == "2880000000.00"
