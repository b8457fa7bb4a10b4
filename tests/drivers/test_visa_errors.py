import pytest
from pyvisa import constants
from pyvisa.errors import InvalidSession, VisaIOError

from drivers.visa_errors import command_value, plain_errors, split_command, visa_errors
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    SafetyLimitError,
)


@pytest.mark.parametrize(("command", "header", "arg"), [
    ("FREQ 2.87e9", "FREQ", "2.87e9"), ("LSTI?", "LSTI?", None), ("LSTC? 3", "LSTC?", "3"),
    (":OUTP:STAT 1", ":OUTP:STAT", "1"), ("  SOUR:LIST:SEL \"a b\" ", "SOUR:LIST:SEL", "\"a b\""),
    ("", "", None),
])
def test_split_command(command, header, arg):
    assert split_command(command) == (header, arg)


def test_command_value_is_a_number_when_it_can_be():
    assert command_value("FREQ 2.87e9") == 2.87e9
    assert command_value("FREQ:MODE LIST") == "LIST"
    assert command_value("*IDN?") is None


@pytest.mark.parametrize(("raised", "expected", "words"), [
    (VisaIOError(constants.StatusCode.error_timeout), InstrumentTimeout, "no answer within 2 s"),
    (VisaIOError(constants.StatusCode.error_connection_lost), InstrumentDisconnected, "connection lost"),
    (VisaIOError(constants.StatusCode.error_resource_busy), InstrumentError, "VI_ERROR_RSRC_BUSY"),
    (InvalidSession(), InstrumentDisconnected, "session is closed"),
    (BrokenPipeError(32, "Broken pipe"), InstrumentDisconnected, "Broken pipe"),
])
def test_visa_failures_become_typed_errors(raised, expected, words):
    with pytest.raises(expected, match=words) as err, visa_errors("mw", "FREQ 2.87e9", 2.0):
        raise raised
    assert type(err.value) is expected
    assert (err.value.instrument, err.value.command, err.value.value) == ("mw", "FREQ 2.87e9", 2.87e9)
    assert err.value.__cause__ is raised


def test_other_exceptions_pass_through():
    with pytest.raises(KeyError), visa_errors("mw", "FREQ?"):
        raise KeyError("x")


def test_plain_errors_restores_the_message_qcodes_extended():
    with pytest.raises(InstrumentError) as err, plain_errors():
        exc = InstrumentError("mw", "FREQ 1", "refused", 1.0)
        exc.args = (*exc.args, "setting mw_frequency to 1")
        raise exc
    assert str(err.value) == "mw: FREQ 1 (value 1.0): refused"
    with pytest.raises(SafetyLimitError) as err, plain_errors():
        exc = SafetyLimitError("MW power", 20, 10, "dBm")
        exc.args = (*exc.args, "writing 'AMPR 20'")
        raise exc
    assert "writing" not in str(err.value)
