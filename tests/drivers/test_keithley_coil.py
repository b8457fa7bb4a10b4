"""Keithley 2450 coil channel through QCoDeS's driver on pyvisa-sim SMUs."""

from pathlib import Path

import numpy as np
import pytest
from qcodes.instrument_drivers.Keithley import Keithley2450

from drivers.keithley_coil import KeithleyCoilChannel
from instrument.protocols import InstrumentError, SafetyLimitError, SafetyLimits

SIM = str(Path(__file__).with_name("keithley_2450_coil.yaml")) + "@sim"
LIMITS = SafetyLimits(coil_current_max_a=1e-3, coil_ramp_rate_a_per_s=1e-2)


@pytest.fixture
def smu(request):
    inst = Keithley2450(f"smu_{request.node.name[:20]}", request.param, visalib=SIM)
    yield inst
    inst.close()


def channel(smu, **kw):
    return KeithleyCoilChannel("coil", smu, LIMITS, sleep=lambda s: None, **kw)


@pytest.mark.parametrize("smu", ["GPIB::5::INSTR"], indirect=True)
def test_configures_current_source_with_compliance_and_ramps_in_steps(smu):
    ch = channel(smu, voltage_limit_v=1.5, ramp_step_a=2e-4)
    seen = [smu.source.current()]
    original = smu.source.current.set
    smu.source.current.set = lambda v: (seen.append(v), original(v))
    assert smu.source_function() == "current" and smu.sense_function() == "current"
    assert smu.source.limit() == 1.5
    ch.set_currents([6e-4])
    assert np.allclose(seen, [0, 2e-4, 4e-4, 6e-4])
    assert smu.output_enabled() is True
    assert ch.read_currents() == pytest.approx([6e-4])
    ch.safe_state()
    assert smu.source.current() == 0 and smu.output_enabled() is False


@pytest.mark.parametrize("smu", ["GPIB::6::INSTR"], indirect=True)
def test_open_coil_reads_back_near_zero(smu):
    ch = channel(smu)
    ch.set_currents([6e-4])
    assert ch.setpoints == pytest.approx([6e-4])
    assert abs(ch.read_currents()[0]) < 1e-6


@pytest.mark.parametrize("smu", ["GPIB::7::INSTR"], indirect=True)
def test_garbage_reading_is_a_typed_error(smu):
    ch = channel(smu)
    assert ch.read_currents() == [0.0]  # output off: nothing to measure
    ch.set_currents([1e-4])
    with pytest.raises(InstrumentError, match="measure current"):
        ch.read_currents()


@pytest.mark.parametrize("smu", ["GPIB::5::INSTR"], indirect=True)
def test_ceiling_and_shape_are_checked_before_the_smu_moves(smu):
    ch = channel(smu, ceiling_a=5e-4)
    with pytest.raises(SafetyLimitError, match="coil current = 0.0006 A exceeds .* 0.0005 A"):
        ch.set_currents([6e-4])
    with pytest.raises(SafetyLimitError, match="coil 0 current"):
        ch.set_currents([2e-3])
    with pytest.raises(ValueError, match="takes 1 current"):
        ch.set_currents([1e-4, 1e-4])
    assert smu.source.current() == 0


def test_a_2450_in_tsp_mode_is_a_typed_error_naming_the_fix():
    """Fact K-3: QCoDeS adds no parameters outside SCPI; no AttributeError escapes."""
    from drivers.keithley_coil import WrongCommandSet

    smu = Keithley2450("smu_tsp", "GPIB::8::INSTR", visalib=SIM)
    try:
        assert "source_function" not in smu.parameters  # what QCoDeS does in TSP mode
        with pytest.raises(WrongCommandSet, match=r"\*LANG\? answered 'TSP'.*switch the 2450 to SCPI mode") \
                as err:
            channel(smu)
        assert isinstance(err.value, InstrumentError)
        assert err.value.value == "TSP"
        assert "MENU > System > Settings > Command Set" in str(err.value)
    finally:
        smu.close()


@pytest.mark.parametrize("smu", ["GPIB::5::INSTR"], indirect=True)
def test_station_checks_read_back_at_zero_current(smu):
    ch = channel(smu, voltage_limit_v=1.5)
    results = {r.check: r for r in ch.station_checks()}
    assert all(r.ok for r in results.values()), results
    assert results["command set (*LANG?)"].detail == "*LANG? = SCPI"
    assert "1.5 V" in results["voltage compliance"].detail
    assert smu.output_enabled() is False and smu.source.current() == 0  # nothing was switched
