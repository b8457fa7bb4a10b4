"""RohdeSchwarzSource against the live SMB100A / SGS100A simulator: messages are the specification."""

import itertools
from pathlib import Path

import pytest

from drivers.rohde_schwarz import RohdeSchwarzSource
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    ListSweepSource,
    SafetyLimitError,
    SafetyLimits,
)
from sim.rohde_schwarz import SimRohdeSchwarz
from sim.scpi_server import ScpiServer
from sim.world import World

_names = itertools.count()
LIMITS = SafetyLimits(mw_power_max_dbm=5.0)
NO_ERROR = "SYST:ERR?"


@pytest.fixture(scope="module")
def world():
    return World(shape=(8, 8))


@pytest.fixture(params=["SMB100A", "SGS100A"])
def sim(world, request):
    s = SimRohdeSchwarz(world, request.param, "B106")
    s.start()
    yield s
    s.stop()


def connect(sim, limits=LIMITS, **kwargs):
    return RohdeSchwarzSource(f"rs{next(_names)}", sim.start(), limits, **kwargs)


@pytest.fixture
def source(sim):
    src = connect(sim)
    sim.commands.clear()
    yield src
    src.close()


def test_connect_dialogue_reads_model_and_frequency_option(sim):
    sim.errors.append((-113, "Undefined header"))  # stale
    src = connect(sim)
    try:
        assert sim.commands == ["*IDN?", "*OPT?", "SYST:ERR?", "SYST:ERR?"]
        assert src.model == sim.model
        assert src.constraints.frequency_max_hz == 6e9
        assert src.constraints.frequency_min_hz == sim.spec.frequency_min_hz
        assert src.constraints.power_max_dbm == 5.0
        assert isinstance(src, ListSweepSource)
    finally:
        src.close()


def test_frequency_power_output_dialogue(source, sim, world):
    source.set_frequency(2.87e9)
    source.set_power(-3.0)
    source.set_output(True)
    assert sim.commands == ["SOUR:FREQ 2870000000.00", NO_ERROR, "SOUR:POW -3.00", NO_ERROR,
                            ":OUTP:STAT 1", NO_ERROR]
    assert (world.mw_frequency_hz, world.mw_power_dbm, world.mw_output) == (2.87e9, -3.0, True)
    assert source.frequency() == 2.87e9


@pytest.mark.parametrize("call", [
    lambda s: s.set_power(6.0),
    lambda s: s.power(6.0),
    lambda s: s.write("SOUR:POW:LEV:IMM:AMPL 6"),
    lambda s: s.write("POWer 7 dBm"),
    lambda s: s.write("SOUR1:POW MAX"),
    lambda s: s.write("SOUR:LIST:POW -10,-10,20"),
    lambda s: s.arm_list([2.87e9], 5.5),
])
def test_power_above_the_ceiling_is_never_sent(source, sim, call):
    with pytest.raises(SafetyLimitError):
        call(source)
    assert sim.commands == []


def test_frequency_outside_the_option_range(source, sim):
    with pytest.raises(InstrumentError, match="range") as err:
        source.set_frequency(6.5e9)
    assert (err.value.instrument, err.value.command, err.value.value) == (source.name, "SOUR:FREQ", 6.5e9)
    assert sim.commands == []


def test_power_below_the_device_range(source, sim):
    with pytest.raises(InstrumentError, match="minimum"):
        source.set_power(-200.0)
    assert sim.commands == []


def test_device_error_reply_is_typed(source, sim):
    with pytest.raises(InstrumentError) as err:
        source.write("SOUR:FREQ:MODE SWEEP")
    assert err.value.command == "SOUR:FREQ:MODE SWEEP"
    assert err.value.value == "SWEEP"
    assert "error -224 (Illegal parameter value" in str(err.value)
    source.set_frequency(2.8e9)  # drained


def test_garbled_error_answer(source, sim, monkeypatch):
    original = sim.handle
    monkeypatch.setattr(sim.server, "handler", lambda c: "what" if c == "SYST:ERR?" else original(c))
    with pytest.raises(InstrumentError, match="garbled") as err:
        source.set_output(False)
    assert err.value.value == "what"


def test_timeout_and_disconnect_are_typed(source, sim):
    source.timeout(0.2)
    sim.server.mute = True
    with pytest.raises(InstrumentTimeout):
        source.frequency()
    sim.server.mute = False
    sim.server.drop_connections()
    with pytest.raises(InstrumentDisconnected) as err:
        source.frequency()
    assert err.value.command == "SOUR:FREQ?"
    with pytest.raises(InstrumentError, match=":OUTP:STAT 0: could not switch RF off.*front panel"):
        source.safe_state()
    with pytest.raises(InstrumentError):
        source.close()  # reports, and still releases the session


def test_close_turns_rf_off_first(sim, world):
    src = connect(sim)
    src.set_output(True)
    sim.commands.clear()
    src.close()
    assert sim.commands == [":OUTP:STAT 0", NO_ERROR]
    assert world.mw_output is False
    src.close()


def test_unknown_option_needs_frequency_max_from_station_file(world):
    def answer(command):
        return {"*IDN?": "Rohde&Schwarz,SMB100A,1406.6000k03/1,3.1", "*OPT?": "SMB-K22",
                "SYST:ERR?": '0,"No error"'}.get(command)

    with ScpiServer(answer) as server:
        with pytest.raises(InstrumentError, match="frequency_max_hz") as err:
            RohdeSchwarzSource("rs_noopt", server.resource_name, LIMITS)
        assert err.value.command == "*OPT?"
        src = RohdeSchwarzSource("rs_opt", server.resource_name, LIMITS, frequency_max_hz=3.2e9)
        assert src.constraints.frequency_max_hz == 3.2e9
        src.close()


def test_wrong_instrument_is_refused(world):
    def sg384(command):
        return "Stanford Research Systems,SG384,s/n1,ver1" if command == "*IDN?" else None

    with ScpiServer(sg384) as srv, pytest.raises(InstrumentError, match="not an R&S"):
        RohdeSchwarzSource("rs_wrong", srv.resource_name, LIMITS)


# ---- list mode -------------------------------------------------------------------------------

FREQS = [2.86e9, 2.87e9, 2.88e9]


@pytest.fixture
def smb(world):
    s = SimRohdeSchwarz(world, "SMB100A", "B106")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def smb_source(smb):
    src = connect(smb)
    smb.commands.clear()
    yield src
    src.close()


def test_arm_list_dialogue(smb_source, smb, world):
    """Facts RS-4..RS-7: Extern Step, no LIST:TRIG:EXEC (it belongs to the single source)."""
    smb_source.arm_list(FREQS, -5.0)
    assert smb.commands == [
        "SOUR:FREQ:MODE?",
        'SOUR:LIST:SEL "qdm_sweep"', NO_ERROR,
        "SOUR:LIST:FREQ 2860000000.00,2870000000.00,2880000000.00", NO_ERROR,
        "SOUR:LIST:POW -5.00,-5.00,-5.00", NO_ERROR,
        "SOUR:LIST:MODE STEP", NO_ERROR,
        "SOUR:LIST:TRIG:SOUR EXT", NO_ERROR,
        "SOUR:LIST:LEAR", NO_ERROR, "*OPC?",
        "SOUR:FREQ:MODE LIST", NO_ERROR,
        "SOUR:LIST:IND?",
    ]
    assert smb_source.timeout() == pytest.approx(5.0)  # the long LEARn timeout was put back
    assert (world.mw_frequency_hz, world.mw_power_dbm) == (FREQS[0], -5.0)


def test_each_external_edge_steps_one_point_and_the_list_runs_once(smb_source, smb, world):
    """RS-5: each trigger event one step; RS-6: external source, executed once (no wrap)."""
    smb_source.arm_list(FREQS, -5.0)
    seen = [world.mw_frequency_hz]
    for _ in range(len(FREQS) - 1):
        smb.trigger()
        seen.append(world.mw_frequency_hz)
    assert seen == FREQS
    assert smb_source.list_index() == 2
    smb.trigger()
    assert (smb_source.list_index(), world.mw_frequency_hz) == (2, FREQS[2])  # stays on the last point


def test_software_trigger_is_refused_and_abort_returns_to_cw(smb_source, smb, world):
    smb_source.set_frequency(2.5e9)
    smb_source.arm_list(FREQS, -5.0)
    smb.commands.clear()
    with pytest.raises(InstrumentError, match="single trigger source") as err:
        smb_source.software_trigger()
    assert err.value.command == "SOUR:LIST:TRIG:EXEC"
    assert smb.commands == []
    smb_source.abort_list()
    assert world.mw_frequency_hz == 2.5e9
    assert smb_source.frequency_mode() == "CW"


def test_restart_list_resets_to_point_0_and_edges_step_again(smb_source, smb, world):
    smb_source.arm_list(FREQS, -5.0)
    for _ in range(3):
        smb.trigger()  # ran to the end and stayed there
    smb.commands.clear()
    smb_source.restart_list()
    assert smb.commands == ["SOUR:FREQ:MODE?", "SOUR:LIST:RES", NO_ERROR, "SOUR:LIST:IND?"]
    assert world.mw_frequency_hz == FREQS[0]
    smb.trigger()
    assert world.mw_frequency_hz == FREQS[1]


def test_restart_without_a_running_list_is_refused(smb_source, smb):
    with pytest.raises(InstrumentError, match="no list is running") as err:
        smb_source.restart_list()
    assert err.value.command == "SOUR:LIST:RES"
    assert smb.commands == []


def test_rearming_a_running_list_goes_through_cw(smb_source, smb, world):
    smb_source.arm_list(FREQS, -5.0)
    smb.trigger()
    smb.commands.clear()
    smb_source.arm_list([2.9e9, 2.91e9], -6.0)
    assert smb.commands[:3] == ["SOUR:FREQ:MODE?", "SOUR:FREQ:MODE CW", NO_ERROR]
    assert smb_source.list_index() == 0
    assert world.mw_frequency_hz == 2.9e9


@pytest.mark.parametrize(("freqs", "command", "value"), [
    ([], "SOUR:LIST:FREQ", 0),
    ([2.87e9] * 2001, "SOUR:LIST:FREQ", 2001),
    ([2.87e9, 7e9], "SOUR:LIST:FREQ", 7e9),
    ([2.87e9, 200e3], "SOUR:LIST:FREQ", 200e3),  # RS-4: list frequencies from 300 kHz
])
def test_bad_lists_refused_before_anything_is_sent(smb_source, smb, freqs, command, value):
    with pytest.raises(InstrumentError) as err:
        smb_source.arm_list(freqs, -5.0)
    assert (err.value.command, err.value.value) == (command, value)
    assert smb.commands == []


@pytest.mark.parametrize("answer", ["1", "x", "7", "0.5", ""])
def test_list_index_that_is_not_a_point_of_the_armed_list_is_reported(smb_source, smb, monkeypatch, answer):
    """RS-8 (live LIST:INDex? unconfirmed): the answer is checked, never trusted blindly."""
    original = smb.handle
    monkeypatch.setattr(smb.server, "handler", lambda c: answer if c == "SOUR:LIST:IND?" else original(c))
    smb_source.timeout(0.3)
    with pytest.raises(InstrumentError, match="SOUR:LIST:IND?"):
        smb_source.arm_list(FREQS, -5.0)


def test_sgs100a_refuses_list_mode_before_anything_is_sent(world):
    """RS-10: no public source confirms SGS100A list mode; the sweep steps in software."""
    with SimRohdeSchwarz(world, "SGS100A", "B106") as sgs:
        src = connect(sgs)
        try:
            sgs.commands.clear()
            assert src.constraints.list_max_points == 0
            assert "not confirmed" in src.list_mode_unavailable
            with pytest.raises(InstrumentError, match="SGS100A is not confirmed.*software") as err:
                src.arm_list(FREQS, -5.0)
            assert err.value.command == "SOUR:LIST"
            assert sgs.commands == []
        finally:
            src.close()


def test_sgs100a_sim_has_no_list_commands(world):
    sgs = SimRohdeSchwarz(world, "SGS100A", "B106")
    sgs.handle('SOUR:LIST:SEL "x"')
    sgs.handle("SOUR:FREQ:MODE LIST")
    assert [code for code, _ in sgs.errors] == [-113, -224]


def test_smb_sim_follows_the_manual_trigger_sources(world):
    """RS-6/RS-7: EXEC steps only with the single (bus) source; AUTO restarts; 241 without a list."""
    smb = SimRohdeSchwarz(world, "SMB100A", "B106")
    smb.handle("SOUR:FREQ:MODE LIST")
    assert [code for code, _ in smb.errors] == [241]
    for command in ('SOUR:LIST:SEL "t"', "SOUR:LIST:FREQ 1e9,2e9", "SOUR:LIST:POW -10,-10",
                    "SOUR:LIST:MODE STEP", "SOUR:LIST:TRIG:SOUR EXT", "SOUR:FREQ:MODE LIST"):
        smb.handle(command)
    smb.handle("SOUR:LIST:TRIG:EXEC")
    assert smb.list_index == 0  # EXECute does nothing with the external source
    smb.handle("SOUR:LIST:TRIG:SOUR BUS")
    smb.handle("SOUR:LIST:TRIG:EXEC")
    smb.handle("SOUR:LIST:TRIG:EXEC")
    assert smb.list_index == 1  # single source: one step per EXECute, executed once
    smb.handle("SOUR:LIST:TRIG:SOUR IMM")
    smb.handle("SOUR:LIST:TRIG:EXEC")
    assert smb.list_trigger_source == "AUTO" and smb.list_index == 1
    smb.handle("SOUR:LIST:FREQ 3e9")
    assert [code for code, _ in smb.errors] == [241, -221]  # the running list cannot be rewritten


def test_station_checks_read_back_and_change_nothing(sim):
    src = connect(sim)
    try:
        sim.commands.clear()
        results = {r.check: r for r in src.station_checks()}
        assert all(r.ok is not False for r in results.values()), results
        assert "B106" in results["options (*OPT?)"].detail and "6 GHz" in results["options (*OPT?)"].detail
        if sim.model == "SGS100A":
            assert results["list mode"].ok is None and "software" in results["list mode"].detail
        else:
            assert results["list mode"].ok is True and "unconfirmed" in results["list mode"].detail
        sent = [c for c in sim.commands if not c.endswith("?")]
        assert sent == []  # only queries
        sim.output, sim.power_dbm = True, 10.0
        results = {r.check: r for r in src.station_checks()}
        assert results["RF output off (OUTP?)"].ok is False
        assert results["level setting (SOUR:POW?)"].ok is False
        assert sim.output is True  # reported, not touched
        sim.output = False
    finally:
        src.close()


# ---- static dialogue with pyvisa-sim ----------------------------------------------------------

SIM_YAML = Path(__file__).with_name("rohde_schwarz_pyvisa_sim.yaml")


def test_pyvisa_sim_dialogue():
    src = RohdeSchwarzSource("rs_yaml", "GPIB::28::INSTR", LIMITS, visalib=f"{SIM_YAML}@sim")
    try:
        assert src.model == "SGS100A"
        assert src.constraints.frequency_max_hz == 12.75e9
        src.set_frequency(10e9)
        assert src.frequency() == pytest.approx(10e9)
        src.set_power(-12.0)
        assert src.power() == pytest.approx(-12.0)
        src.set_output(True)
        assert src.status() is True
    finally:
        src.close()
