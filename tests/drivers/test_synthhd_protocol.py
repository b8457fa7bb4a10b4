"""SynthHD exchanges replayed line by line, and the strict simulator (facts in docs/hardware/synthhd.md)."""

import itertools

import pytest

from drivers.synthhd import SynthHDSource
from instrument.protocols import InstrumentError, InstrumentTimeout, SafetyLimitError, SafetyLimits
from sim.synthhd import SimSynthHD
from sim.world import World
from tests.drivers.expected_protocol import Exchange, serial_protocol

LIMITS = SafetyLimits(mw_power_max_dbm=5.0)
FREQS = [2.86e9, 2.87e9, 2.88e9]
_names = itertools.count()


def connect_script(version: str = "Version 2.06", sub: str | None = "HD") -> list[Exchange]:
    script = [Exchange("+", "SynthHD", "HD-1"), Exchange("v1", version, "HD-1"),
              Exchange("v0", "3.22", "HD-1")]
    if sub is not None:
        script.append(Exchange("v2", sub, "HD-1"))
    return [*script, Exchange("C0", None, "HD-3"), Exchange("C?", "0", "HD-3")]


SAFE = [Exchange("h0", None, "HD-4"), Exchange("r0", None), Exchange("E0", None), Exchange("E?", "0")]


def open_source(port: str) -> SynthHDSource:
    return SynthHDSource(f"hdp{next(_names)}", port, LIMITS, timeout_s=0.3)


def test_rf_on_and_off_send_pll_amplifier_and_mute_and_read_all_back():
    """HD-4: RF on is E1 r1 h1; off mutes first."""
    script = [*connect_script(),
              Exchange("E1", None), Exchange("r1", None), Exchange("h1", None, "HD-4"),
              Exchange("E?", "1"), Exchange("r?", "1"), Exchange("h?", "1", "HD-4"),
              Exchange("h0", None, "HD-4"), Exchange("r0", None), Exchange("E0", None),
              Exchange("E?", "0"), Exchange("r?", "0"), Exchange("h?", "0"), *SAFE]
    with serial_protocol(script) as (port, _):
        src = open_source(port)
        src.set_output(True)
        src.set_output(False)
        src.close()


def test_a_unit_that_stays_muted_is_reported():
    script = [*connect_script(), Exchange("E1", None), Exchange("r1", None), Exchange("h1", None),
              Exchange("E?", "1"), Exchange("r?", "1"), Exchange("h?", "0"), *SAFE]
    with serial_protocol(script) as (port, _):
        src = open_source(port)
        with pytest.raises(InstrumentError, match=r"did not switch its output \(h\?=0\)"):
            src.set_output(True)
        src.close()


def test_table_sweep_sequence():
    """HD-5/HD-6: table loaded row by row, single-step trigger mode, started, first point checked."""
    rows = [e for i, f in enumerate(FREQS)
            for e in (Exchange(f"L{i}f{f / 1e6:.7f}", None, "HD-6"), Exchange(f"L{i}a-5.000", None, "HD-6"))]
    script = [*connect_script(),
              Exchange("g0", None), Exchange("f?", "2500.0000000"), Exchange("Ld", None, "HD-6"), *rows,
              Exchange("X1", None, "HD-6"), Exchange("w2", None, "HD-5"), Exchange("c1", None),
              Exchange("g1", None, "HD-5"), Exchange("g?", "1"), Exchange("f?", "2860.0000000"),
              Exchange("f?", "2870.0000000"),  # after one trigger edge
              Exchange("g0", None), Exchange("g1", None), Exchange("g?", "1"), Exchange("f?", "2860.0000000"),
              Exchange("g0", None), Exchange("w0", None), Exchange("X0", None),
              Exchange("f2500.0000000", None), Exchange("f?", "2500.0000000"), *SAFE]
    with serial_protocol(script) as (port, _):
        src = open_source(port)
        src.arm_list(FREQS, -5.0)
        assert src.list_index() == 1
        src.restart_list()
        src.abort_list()
        src.close()


def test_a_table_the_device_did_not_take_is_caught_at_the_first_point():
    """HD-6 is unconfirmed: if the rows were ignored the sweep does not start on point 0."""
    rows = [Exchange(f"L{i}{k}", None) for i, f in enumerate(FREQS)
            for k in (f"f{f / 1e6:.7f}", "a-5.000")]
    script = [*connect_script(), Exchange("g0", None), Exchange("f?", "2500.0000000"), Exchange("Ld", None),
              *rows, Exchange("X1", None), Exchange("w2", None), Exchange("c1", None), Exchange("g1", None),
              Exchange("g?", "1"), Exchange("f?", "1000.0000000"), *SAFE]
    with serial_protocol(script) as (port, _):
        src = open_source(port)
        with pytest.raises(InstrumentError, match="not a point of the armed list") as err:
            src.arm_list(FREQS, -5.0)
        assert err.value.value == 1e9
        src.close()


@pytest.mark.parametrize(("version", "sub", "hardware", "f_max"), [
    ("Version 2.06", "HD", "SynthHD v2", 15e9),
    ("Version 2.10", "HDPRO", "SynthHD PRO v2", 24e9),
    ("Version 1.4", None, "SynthHD v1.4", 13999.999999e6),
])
def test_the_hardware_version_decides_the_range(version, sub, hardware, f_max):
    """HD-1/HD-2."""
    with serial_protocol([*connect_script(version, sub), *SAFE]) as (port, _):
        src = open_source(port)
        assert src.hardware == hardware
        assert src.constraints.frequency_max_hz == pytest.approx(f_max)
        src.close()


@pytest.mark.parametrize(("version", "match"), [("banana", "unrecognised hardware version"),
                                                ("Version 1.2", "before v1.4"), ("", "unrecognised")])
def test_a_hardware_version_that_is_not_understood_is_refused(version, match):
    script = [Exchange("+", "SynthHD"), Exchange("v1", version), Exchange("v0", "3.22")]
    with serial_protocol(script) as (port, _), pytest.raises(InstrumentError, match=match) as err:
        open_source(port)
    assert err.value.command == "v1"


def test_an_unanswered_version_query_is_a_timeout():
    with serial_protocol([Exchange("+", "SynthHD"), Exchange("v1", None)]) as (port, _), \
            pytest.raises(InstrumentTimeout) as err:
        open_source(port)
    assert err.value.command == "v1"


def test_a_reply_cut_short_is_a_timeout_and_a_garbled_one_an_error():
    script = [*connect_script(), Exchange("f?", "2870.00", terminated=False),
              Exchange("W?", "-5.0dBm?"), *SAFE]
    with serial_protocol(script) as (port, _):
        src = open_source(port)
        with pytest.raises(InstrumentTimeout, match="no complete answer") as err:
            src.frequency()
        assert err.value.command == "f?"
        with pytest.raises(InstrumentError, match="garbled") as err:
            src.power()
        assert err.value.value == "-5.0dBm?"
        src.close()


def test_a_table_power_above_the_ceiling_sends_nothing():
    with serial_protocol([*connect_script(), *SAFE]) as (port, _):
        src = open_source(port)
        with pytest.raises(SafetyLimitError):
            src.arm_list(FREQS, 6.0)
        with pytest.raises(SafetyLimitError):
            src.write("L0f2870L0a9")
        src.close()


# ---- the strict simulator ----------------------------------------------------------------------

@pytest.fixture
def sim():
    s = SimSynthHD(World(shape=(4, 4)))
    s.start()
    yield s
    s.stop()


def test_the_sim_starts_muted_and_pll_plus_amplifier_alone_emit_nothing(sim):
    """HD-4: the old driver's E1 r1 left a muted unit dark."""
    sim.handle("E1")
    sim.handle("r1")
    assert sim.world.mw_output is False
    src = SynthHDSource("hd_muted", sim.port, LIMITS, timeout_s=0.3)
    try:
        src.set_output(True)
        assert sim.world.mw_output is True
    finally:
        src.close()
    assert sim.world.mw_output is False


def test_a_full_driver_session_leaves_nothing_rejected(sim):
    src = SynthHDSource("hd_strict", sim.port, LIMITS, timeout_s=0.3)
    try:
        src.set_frequency(2.5e9)
        src.set_power(-10.0)
        src.set_output(True)
        src.arm_list(FREQS, -5.0)
        sim.trigger()
        assert src.list_index() == 1
        src.restart_list()
        src.abort_list()
        results = {r.check: r for r in src.station_checks()}
    finally:
        src.close()
    assert sim.rejected == []
    assert results["RF output off (E? r? h?)"].ok is False  # RF was on: reported
    assert results["power setting (W?)"].ok is True


def test_the_sim_records_what_the_device_would_ignore(sim):
    sim.handle("f99999")
    sim.handle("Q1")
    sim.handle("h2")
    assert [why for _, why in sim.rejected] == ["outside 10..15000", "unknown command", "takes 0 or 1"]


def test_station_checks_on_a_safe_unit(sim):
    src = SynthHDSource("hd_checks", sim.port, LIMITS, timeout_s=0.3)
    try:
        sim.commands.clear()
        results = {r.check: r for r in src.station_checks()}
        assert all(r.ok for r in results.values()), results
        assert "SynthHD v2" in results["hardware version (v1)"].detail
        assert "falling" in results["trigger input"].detail
        assert not [c for c in sim.commands if not c.endswith("?") and c not in ("-",)]
    finally:
        src.close()
