"""The NI-DAQmx gated counter against a fake of nidaqmx written from NI's documentation."""

import sys

import numpy as np
import pytest

from drivers.nidaq_counter import NiGatedCounter, gate_schedule
from instrument.protocols import InstrumentError, InstrumentTimeout, Opcode, PulseInstruction, PulseProgram
from sequences.pulsed import Rabi, ShotTiming
from tests.drivers import fake_nidaqmx as fake

GATE = 3
CHANNELS = {"laser": 0, "spad_gate": GATE}


def inst(flags, duration_s=1e-6, opcode=Opcode.CONTINUE, data=0):
    return PulseInstruction(flags, opcode, data, duration_s)


def looped(reps):
    """init laser, then reps x (signal gate, gap, reference gate, gap), then STOP."""
    g, laser = 1 << GATE, 1
    return PulseProgram((inst(laser, 3e-6), inst(laser | g, 3e-7, Opcode.LOOP, reps), inst(laser, 2e-6),
                         inst(laser | g, 3e-7), inst(0, 1e-6, Opcode.END_LOOP, 1),
                         inst(0, 1e-6, Opcode.STOP)), CHANNELS)


class FakePulser:
    name = "pulser"

    def __init__(self, hw, program=None):
        self.hw, self.program, self.starts = hw, program, 0

    def start(self):
        self.starts += 1
        self.hw.program_started()

    def stop(self):
        pass


@pytest.fixture
def hw(monkeypatch):
    card = fake.Hardware()
    monkeypatch.setattr(fake.Task, "hardware", card)
    return card


def counter(hw, program, **kw):
    return NiGatedCounter("counter", FakePulser(hw, program), nidaqmx_module=fake, **kw)


def test_the_schedule_numbers_windows_in_the_program_text_and_expands_loops():
    sched = gate_schedule(looped(3), GATE)
    assert sched.n_windows == 2 and sched.window_of_execution.tolist() == [0, 1, 0, 1, 0, 1]
    assert sched.shortest_period_s == pytest.approx(1.3e-6)  # reference gate end to next signal gate end


def test_a_real_rabi_program_opens_signal_and_reference_windows_every_shot():
    rabi = Rabi(np.linspace(0, 2e-7, 5), 2.87e9, 0.0, (1, 1), timing=ShotTiming(repetitions=7))
    sched = gate_schedule(rabi.program(1e-7), rabi.channels.bits["spad_gate"])
    assert sched.n_windows == 2 and np.bincount(sched.window_of_execution).tolist() == [7, 7]


def test_counts_per_window_are_summed_over_the_loop_and_the_task_is_set_up_as_documented(hw):
    hw.photons = [5, 7, 6, 8, 4, 9]
    c = counter(hw, looped(3))
    counts = c.count_gates()
    assert counts.shape == (2, 1, 1) and counts[:, 0, 0].tolist() == [15, 24]
    task = hw.tasks[-1]
    ch = task.ci_channels[0]
    assert ch.name == "Dev1/ctr0" and ch.ci_count_edges_term == "/Dev1/PFI0"
    assert task.channel_args["edge"] is fake.Edge.RISING and task.channel_args["initial_count"] == 0
    pause = task.triggers.pause_trigger
    assert (pause.trig_type, pause.dig_lvl_src, pause.dig_lvl_when) == (
        fake.TriggerType.DIGITAL_LEVEL, "/Dev1/PFI1", fake.Level.LOW)  # counts only while the gate is high
    clock = task.timing.sample_clock
    assert clock["source"] == "/Dev1/PFI1" and clock["active_edge"] is fake.Edge.FALLING
    assert clock["sample_mode"] is fake.AcquisitionType.FINITE and clock["samps_per_chan"] == 6
    assert hw.events == ["task started", "program started"]  # armed before the first window
    assert task.closed


def test_the_count_gate_variant_and_a_wrapping_32_bit_counter(hw):
    hw.photons = [2**32 - 3, 10, 1, 1]  # the running count passes 2**32 after the first window
    c = counter(hw, looped(2), gating="count_gate", counter="Dev1/ctr2")
    counts = c.count_gates()[:, 0, 0]
    assert counts.tolist() == [2**32 - 3 + 1, 11]
    ch = hw.tasks[-1].ci_channels[0]
    assert ch.ci_count_edges_gate_enable and ch.ci_count_edges_gate_term == "/Dev1/PFI1"
    assert ch.ci_count_edges_gate_when is fake.Level.LOW
    assert hw.tasks[-1].triggers.pause_trigger.trig_type is fake.TriggerType.NONE


def test_missing_gate_edges_time_out_naming_the_cable(hw):
    hw.photons = [1, 2, 3]  # the card saw only three falling edges of six
    with pytest.raises(InstrumentTimeout, match="fewer than 6 gate windows .* gate cable from pulser"):
        counter(hw, looped(3), timeout_s=0.5).count_gates()
    assert hw.tasks[-1].closed


@pytest.mark.parametrize(("program", "match"), [
    (None, "has no program loaded"),
    (PulseProgram((inst(1, opcode=Opcode.STOP),), {"laser": 0}), "no 'spad_gate' line"),
    (PulseProgram((inst(1 << GATE), inst(0, opcode=Opcode.BRANCH, data=0)), CHANNELS),
     "branches back forever"),
    (PulseProgram((inst(1), inst(1 << GATE, opcode=Opcode.STOP)), CHANNELS),
     "still high when the program stops"),
    (PulseProgram((inst(1), inst(0, opcode=Opcode.STOP)), CHANNELS), "opens no gate window"),
])
def test_programs_the_counter_cannot_count_are_refused_before_the_card_is_touched(hw, program, match):
    with pytest.raises(InstrumentError, match=match):
        counter(hw, program).count_gates()
    assert hw.tasks == []


def test_a_bad_counter_name_is_a_daqmx_error_and_bad_gating_a_station_error(hw):
    hw.photons = [1, 1]
    with pytest.raises(InstrumentError, match="Device identifier is invalid"):
        counter(hw, looped(1), counter="Dev9/ctr0").count_gates()
    with pytest.raises(ValueError, match="'gating' must be one of"):
        counter(hw, looped(1), gating="arm_start")


def test_station_checks_find_the_device_and_its_counter(hw):
    checks = counter(hw, looped(1)).station_checks()
    assert [(c.check, c.ok) for c in checks] == [("identity", True), ("counter input", True)]
    assert "PCIe-6321" in checks[0].detail
    checks = counter(hw, looped(1), counter="Dev2/ctr0").station_checks()
    assert checks[0].ok is False and "no device 'Dev2'" in checks[0].detail


def test_without_the_nidaqmx_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nidaqmx", None)  # import nidaqmx now raises ImportError
    with pytest.raises(InstrumentError, match="pip install 'qdm-acquire\\[nidaq\\]'"):
        NiGatedCounter("counter", FakePulser(None))
