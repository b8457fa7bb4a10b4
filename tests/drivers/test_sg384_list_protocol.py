"""SG384 list mode as the SG380 manual specifies it (facts in docs/hardware/sg384.md).

Two kinds of tests: replayed exchanges (the messages are the specification, nothing else answers)
and the strict simulator, which refuses what the manual says the instrument refuses.
"""

import contextlib
import itertools

import pytest

from drivers.sg384 import SG384Source
from instrument.protocols import InstrumentError, InstrumentTimeout, SafetyLimitError, SafetyLimits
from sim.sg384 import FIELD_INDEX, SimSG384
from sim.world import World
from tests.drivers.expected_protocol import Exchange, visa_protocol

LIMITS = SafetyLimits(mw_power_max_dbm=5.0)
IDN = "Stanford Research Systems,SG384,s/n004384,ver1.02.0E"
FREQS = [2.86e9, 2.87e9, 2.88e9]
_names = itertools.count()


def point(f_hz: float, dbm: str) -> str:
    return f"{f_hz:.6f},N,N,N,{dbm},N,N,N,N,N,N,N,N,N,N"


CONNECT = [Exchange("*IDN?", IDN, "SG-1"), Exchange("LERR?", "0", "SG-3")]
ARM = [
    Exchange("LSTD", None, "SG-9"), Exchange("LERR?", "0"),
    Exchange("LSTC? 3", "1", "SG-5"),
    *[e for i, f in enumerate(FREQS)
      for e in (Exchange(f"LSTP {i},{point(f, '-5.00')}", None, "SG-4"), Exchange("LERR?", "0"))],
    Exchange("LSTR", None, "SG-6"), Exchange("LERR?", "0"),
    Exchange("LSTE 1", None, "SG-6"), Exchange("LERR?", "0"),
]
CLOSE = [Exchange("ENBR 0", None), Exchange("LERR?", "0")]


def open_source(address: str, timeout: float = 1.0) -> SG384Source:
    return SG384Source(f"sgp{next(_names)}", address, LIMITS, timeout=timeout)


# ---- replayed exchanges ------------------------------------------------------------------------

def test_arm_list_sends_exactly_the_manual_sequence():
    """SG-4: power in field 5 (AMPR), OFSL left N; SG-9: the old list is deleted before LSTC?."""
    with visa_protocol([*CONNECT, *ARM, Exchange("LSTI?", "0", "SG-6"), *CLOSE]) as (address, _):
        src = open_source(address)
        src.arm_list(FREQS, -5.0)
        assert src.list_index() == 0
        src.close()


def test_a_protocol_deviation_is_caught():
    """The helper itself: a driver that put the power in OFSL (field 4) fails the replay."""
    wrong = [Exchange(f"LSTP 0,{point(FREQS[0], '-5.00')}", None, "SG-4"), Exchange("LERR?", "0")]
    expected = r"expected 'LSTP 0,.*N,N,N,-5.00.*\(fact SG-4\), got 'LSTP 0,.*N,N,-5.00,N"
    with pytest.raises(AssertionError, match=expected), visa_protocol([*CONNECT, *wrong]) as (address, _):
        src = open_source(address, timeout=0.3)
        with contextlib.suppress(InstrumentTimeout):  # the replay answers nothing after a deviation
            src.write(f"LSTP 0,{FREQS[0]:.6f},N,N,-5.00,N,N,N,N,N,N,N,N,N,N")
        src.close_without_rf_off()


def test_list_not_created_names_the_answer_and_the_error():
    script = [*CONNECT, Exchange("LSTD", None), Exchange("LERR?", "0"),
              Exchange("LSTC? 3", "0", "SG-5"), Exchange("LERR?", "12"), Exchange("LERR?", "0"), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address)
        with pytest.raises(InstrumentError, match=r"list not created \(answer '0'.*error 12 \(not allowed\)"):
            src.arm_list(FREQS, -5.0)
        src.close()


@pytest.mark.parametrize("answer", ["", "1,2", "yes"])
def test_garbled_answer_to_list_create_is_an_error(answer):
    script = [*CONNECT, Exchange("LSTD", None), Exchange("LERR?", "0"),
              Exchange("LSTC? 3", answer), Exchange("LERR?", "0"), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address)
        with pytest.raises(InstrumentError, match="list not created"):
            src.arm_list(FREQS, -5.0)
        src.close()


@pytest.mark.parametrize("answer", ["x", "1.5", "-1"])
def test_garbled_list_index_is_an_error(answer):
    with visa_protocol([*CONNECT, Exchange("LSTI?", answer), *CLOSE]) as (address, _):
        src = open_source(address)
        with pytest.raises(InstrumentError, match="LSTI?") as err:
            src.list_index()
        assert err.value.value in (answer, int(answer) if answer == "-1" else answer)
        src.close()


def test_unanswered_list_create_is_a_typed_timeout():
    script = [*CONNECT, Exchange("LSTD", None), Exchange("LERR?", "0"), Exchange("LSTC? 3", None),
              Exchange("ENBR 0", None), Exchange("LERR?", "0")]
    with visa_protocol(script) as (address, _):
        src = open_source(address, timeout=0.3)
        with pytest.raises(InstrumentTimeout) as err:
            src.arm_list(FREQS, -5.0)
        assert err.value.command == "LSTC? 3"
        src.close()


def test_cw_frequency_while_a_list_is_armed_is_refused_before_sending():
    """SG-10 (unconfirmed whether FREQ is refused while a list runs): never sent then."""
    script = [*CONNECT, *ARM, Exchange("LSTS?", "3"), Exchange("LSTE 0", None), Exchange("LERR?", "0"),
              Exchange("LSTD", None), Exchange("LERR?", "0"),
              Exchange("FREQ 2500000000.000", None), Exchange("LERR?", "0"), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address)
        src.arm_list(FREQS, -5.0)
        with pytest.raises(InstrumentError, match="abort_list"):
            src.set_frequency(2.5e9)
        src.abort_list()
        src.set_frequency(2.5e9)
        src.close()


def test_list_above_the_ceiling_sends_nothing():
    with visa_protocol([*CONNECT, *CLOSE]) as (address, _):
        src = open_source(address)
        with pytest.raises(SafetyLimitError):
            src.arm_list(FREQS, 6.0)
        with pytest.raises(SafetyLimitError):
            src.write(f"LSTP 0,{point(FREQS[0], '6')}")
        src.close()


# ---- the strict simulator ----------------------------------------------------------------------

@pytest.fixture
def sim():
    s = SimSG384(World(shape=(4, 4)))
    s.start()
    yield s
    s.stop()


@pytest.fixture
def source(sim):
    src = SG384Source(f"sgs{next(_names)}", sim.start(), LIMITS)
    sim.commands.clear()
    yield src
    src.close()


def test_strict_sim_receives_the_list_power_in_ampr_and_no_ofsl(source, sim):
    """SG-4: the point carries AMPR = -5 dBm, OFSL is N; the BNC offset stays 0 V."""
    source.arm_list(FREQS, -5.0)
    for fields in sim.list_points:
        assert fields[FIELD_INDEX["AMPR"]] == "-5.00"
        assert fields[FIELD_INDEX["OFSL"]] == "N"
    assert sim.settings["OFSL"] == 0.0
    assert sim.world.mw_power_dbm == -5.0
    assert sim.errors == []


def test_strict_sim_refuses_a_power_written_into_ofsl(sim):
    """SG-4: -10 in field 4 (OFSL, volts) is error 10 and the point is unchanged."""
    sim.handle("LSTC? 1")
    sim.handle(f"LSTP 0,{FREQS[0]},N,N,-10" + ",N" * 11)  # the old driver's point
    assert sim.errors == [10]
    assert sim.list_points[0] == ["N"] * 15


def test_strict_sim_puts_a_small_ofsl_on_the_bnc_and_keeps_the_old_power(sim):
    """SG-4: 0.5 in OFSL is a DC offset on the BNC; the type-N power is what it was."""
    sim.handle("AMPR -20")
    sim.handle("LSTC? 1")
    sim.handle(f"LSTP 0,{FREQS[0]},N,N,0.5" + ",N" * 11)
    sim.handle("LSTE 1")
    assert sim.errors == []
    assert sim.settings["OFSL"] == 0.5
    assert sim.world.mw_power_dbm == -20.0


@pytest.mark.parametrize(("fields", "code"), [
    ("2.87e9,N,N,N,-5", 116),                    # too few fields
    ("2.87e9" + ",N" * 15, 115),                  # too many
    ("2.87e9,N,N,N,loud,N,N,N,N,N,N,N,N,N,N", 118),  # garbage where a number belongs
    ("2.87e9,N,N,N,-5,2.5,N,N,N,N,N,N,N,N,N", 120),  # DISP takes an integer
    ("2.87e9,N,N,N,-5,N,32,N,N,N,N,N,N,N,N", 10),    # enable bits are 0..31
    ("2.87e9,N,N,N,17,N,N,N,N,N,N,N,N,N,N", 10),     # AMPR above +16.5 dBm
    ("5e9,N,N,N,-5,N,N,N,N,N,N,N,N,N,N", 10),        # above the SG384's 4.05 GHz
])
def test_strict_sim_parses_every_field(sim, fields, code):
    sim.handle("LSTC? 1")
    sim.handle(f"LSTP 0,{fields}")
    assert sim.errors == [code]
    assert sim.list_points[0] == ["N"] * 15


def test_strict_sim_refuses_a_second_list_until_the_first_is_deleted(sim):
    """SG-9 (inferred): LSTC? is refused while a list exists; LSTD frees it."""
    assert sim.handle("LSTC? 2") == "1"
    assert sim.handle("LSTC? 3") is None
    assert sim.errors == [12]
    sim.handle("LSTD")
    assert sim.handle("LSTC? 3") == "1"
    sim.handle("LSTD")
    sim.handle("LSTD")  # without a list: accepted (the qudi driver sends it unconditionally)
    assert sim.errors == [12]


def test_strict_sim_refuses_unknown_commands(sim):
    sim.handle("LSTX 1")
    sim.handle("FOO?")
    assert sim.errors == [12, 111]  # LSTX needs a list first, FOO is undefined


def test_raw_lstp_above_the_ceiling_never_reaches_the_sim(source, sim):
    source.arm_list(FREQS, -5.0)
    sim.commands.clear()
    for message in (f"LSTP 0,{point(FREQS[0], '9.0')}", f"LSTP 0,{point(FREQS[0], 'nan')}",
                    f"LSTD;LSTP 0,{point(FREQS[0], '9')}"):
        with pytest.raises(SafetyLimitError):
            source.write(message)
    assert sim.commands == []
    assert all(p[FIELD_INDEX["AMPR"]] == "-5.00" for p in sim.list_points)


def test_station_checks_read_back_and_leave_rf_off(source, sim):
    results = {r.check: r for r in source.station_checks()}
    assert all(r.ok for r in results.values()), results
    assert "SG384" in results["identity"].detail
    assert "ver1.02.0E" in results["firmware"].detail
    assert results["options (OPTN?)"].detail == "installed: none"
    assert not any(c.startswith(("ENBR 1", "AMPR ", "FREQ ", "LST")) and "?" not in c for c in sim.commands)
    assert sim.enbr is False


def test_station_checks_report_rf_on_and_a_power_above_the_ceiling(source, sim):
    sim.enbr = True
    sim.ampr_dbm = 10.0
    sim.errors.append(111)
    sim.handle("LSTC? 1")
    sim.handle("LSTE 1")  # a list left enabled by an earlier session
    results = {r.check: r for r in source.station_checks()}
    assert results["list mode off (LSTE?)"].ok is False
    assert results["RF output off (ENBR?)"].ok is False
    assert "front panel" in results["RF output off (ENBR?)"].fix
    assert results["power setting (AMPR?)"].ok is False
    assert "above the lab ceiling 5 dBm" in results["power setting (AMPR?)"].detail
    assert results["error queue (LERR?)"].ok is False
    assert "111" in results["error queue (LERR?)"].detail
    assert sim.enbr is True  # the check reports; it does not touch the output
