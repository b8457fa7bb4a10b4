"""SMB100A list mode as the R&S operating manual specifies it, replayed message by message.

Facts cited are entries of docs/hardware/rohde_schwarz.md. Nothing but the script answers, so the
driver cannot lean on a simulator written from the same understanding.
"""

import itertools

import pytest

from drivers import rohde_schwarz
from drivers.rohde_schwarz import RohdeSchwarzSource
from instrument.protocols import InstrumentError, InstrumentTimeout, SafetyLimitError, SafetyLimits
from tests.drivers.expected_protocol import Exchange, visa_protocol

LIMITS = SafetyLimits(mw_power_max_dbm=5.0)
OK = '0,"No error"'
FREQS = [2.86e9, 2.87e9, 2.88e9]
_names = itertools.count()


def connect_script(model: str = "SMB100A", option: str = "SMB-B106") -> list[Exchange]:
    return [Exchange("*IDN?", f"Rohde&Schwarz,{model},1406.6000k03/180123,3.1.19.15", "RS-1"),
            Exchange("*OPT?", option, "RS-1"), Exchange("SYST:ERR?", OK, "RS-3")]


def written(command: str, fact: str = "") -> list[Exchange]:
    return [Exchange(command, None, fact), Exchange("SYST:ERR?", OK, "RS-3")]


ARM = [
    Exchange("SOUR:FREQ:MODE?", "CW"),
    *written('SOUR:LIST:SEL "qdm_sweep"', "RS-4"),
    *written("SOUR:LIST:FREQ 2860000000.00,2870000000.00,2880000000.00", "RS-4"),
    *written("SOUR:LIST:POW -5.00,-5.00,-5.00", "RS-4"),
    *written("SOUR:LIST:MODE STEP", "RS-5"),
    *written("SOUR:LIST:TRIG:SOUR EXT", "RS-6"),
    *written("SOUR:LIST:LEAR", "RS-4"), Exchange("*OPC?", "1"),
    *written("SOUR:FREQ:MODE LIST", "RS-4"),
    Exchange("SOUR:LIST:IND?", "0", "RS-8"),
]
CLOSE = written(":OUTP:STAT 0")


def open_source(address: str, timeout: float = 1.0) -> RohdeSchwarzSource:
    return RohdeSchwarzSource(f"rsp{next(_names)}", address, LIMITS, timeout=timeout)


def test_arm_step_and_restart_send_exactly_the_manual_sequence():
    """Extern Step: no LIST:TRIG:EXEC anywhere (RS-7); the next pass starts with LIST:RESet (RS-6)."""
    script = [*connect_script(), *ARM,
              Exchange("SOUR:LIST:IND?", "2", "RS-8"),  # two edges later, on the last point
              Exchange("SOUR:FREQ:MODE?", "LIST"), *written("SOUR:LIST:RES", "RS-6"),
              Exchange("SOUR:LIST:IND?", "0", "RS-8"),
              *written("SOUR:FREQ:MODE CW"), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address)
        src.arm_list(FREQS, -5.0)
        assert src.list_index() == 2
        src.restart_list()
        src.abort_list()
        src.close()


def test_a_list_error_is_reported_with_the_instrument_text():
    script = [*connect_script(), Exchange("SOUR:FREQ:MODE?", "CW"),
              Exchange('SOUR:LIST:SEL "qdm_sweep"', None), Exchange("SYST:ERR?", '241,"No current list"'),
              Exchange("SYST:ERR?", OK), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address)
        with pytest.raises(InstrumentError, match='error 241 \\(No current list\\)'):
            src.arm_list(FREQS, -5.0)
        src.close()


@pytest.mark.parametrize("answer", ['-222,"Data out of ra', "-222", ""])
def test_a_truncated_error_answer_is_reported_as_garbled(answer):
    script = [*connect_script(), Exchange("SOUR:FREQ:MODE?", "CW"),
              Exchange('SOUR:LIST:SEL "qdm_sweep"', None), Exchange("SYST:ERR?", answer), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address)
        with pytest.raises(InstrumentError, match="garbled answer to the error query") as err:
            src.arm_list(FREQS, -5.0)
        assert err.value.value == answer
        src.close()


@pytest.mark.parametrize("answer", ["", "1,2", "-1", "3", "zero"])
def test_a_bad_index_answer_after_arming_is_an_error(answer):
    """RS-8: LIST:INDex? as a live index is unconfirmed; its answer is checked."""
    script = [*connect_script(), *ARM[:-1], Exchange("SOUR:LIST:IND?", answer), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address)
        with pytest.raises(InstrumentError, match="SOUR:LIST:IND?") as err:
            src.arm_list(FREQS, -5.0)
        assert err.value.value == answer
        src.close()


def test_an_unanswered_learn_is_a_typed_timeout(monkeypatch):
    monkeypatch.setattr(rohde_schwarz, "LEARN_TIMEOUT_S", 0.3)  # the long LEARn wait, shortened
    script = [*connect_script(), *ARM[:-4], Exchange("*OPC?", None), *CLOSE]
    with visa_protocol(script) as (address, _):
        src = open_source(address, timeout=0.3)
        with pytest.raises(InstrumentTimeout) as err:
            src.arm_list(FREQS, -5.0)
        assert err.value.command == "*OPC?"
        src.close()


def test_the_sgs100a_sends_nothing_for_a_list():
    """RS-10: refused before anything is sent; the ceiling is checked first."""
    with visa_protocol([*connect_script("SGS100A", "SGS-B106"), *CLOSE]) as (address, _):
        src = open_source(address)
        with pytest.raises(SafetyLimitError):
            src.arm_list(FREQS, 6.0)
        with pytest.raises(InstrumentError, match="not confirmed"):
            src.arm_list(FREQS, -5.0)
        src.close()


def test_a_list_above_the_ceiling_sends_nothing():
    with visa_protocol([*connect_script(), *CLOSE]) as (address, _):
        src = open_source(address)
        with pytest.raises(SafetyLimitError):
            src.arm_list(FREQS, 5.5)
        with pytest.raises(SafetyLimitError):
            src.write("SOUR:LIST:POW -10,20")
        with pytest.raises(SafetyLimitError):
            src.write("SOUR:FREQ 1e9;:SOUR:POW 20")  # a level behind a semicolon
        src.close()
