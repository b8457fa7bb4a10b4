"""The simulated NI card is strict about its cabling and the order of arming and running."""

import numpy as np
import pytest

from drivers.nidaq_counter import NiGatedCounter
from drivers.pulseblaster import PulseBlaster
from instrument.protocols import InstrumentError, InstrumentTimeout, SafetyLimits
from sequences.pulsed import Rabi, ShotTiming
from sim.nidaqmx import SimNidaqmx
from sim.spinapi import SimSpinAPI
from sim.world import World


@pytest.fixture
def rig():
    world = World(shape=(8, 8))
    library = SimSpinAPI(world)
    pulser = PulseBlaster("pulser", library=library, limits=SafetyLimits())
    card = SimNidaqmx(world, library, "/Dev1/PFI0", {"/Dev1/PFI1": "spad_gate"}, photon_rate_hz=2e8)
    rabi = Rabi(np.linspace(0, 2e-7, 5), 2.87e9, 0.0, (1, 1), timing=ShotTiming(repetitions=200))
    pulser.load(rabi.program(0.0))
    yield card, pulser
    pulser.close()


def test_counts_follow_the_spin_model_with_shot_noise(rig):
    card, pulser = rig
    counts = NiGatedCounter("counter", pulser, nidaqmx_module=card).count_gates()[:, 0, 0]
    expected, order = card.expected_windows("spad_gate")
    assert np.bincount(order).tolist() == [200, 200]
    truth = np.bincount(order, weights=expected)
    assert np.all(np.abs(counts - truth) < 5 * np.sqrt(truth))  # Poisson around the model
    assert counts[0] > counts[1] * 0.9  # no MW: the signal gate is as bright as the reference


def test_a_gate_cabled_elsewhere_times_out_and_a_wrong_photon_input_counts_nothing(rig):
    card, pulser = rig
    with pytest.raises(InstrumentTimeout, match="gate cable from pulser"):
        NiGatedCounter("counter", pulser, gate_terminal="/Dev1/PFI5", nidaqmx_module=card).count_gates()
    dark = NiGatedCounter("counter", pulser, photon_terminal="/Dev1/PFI3", nidaqmx_module=card).count_gates()
    assert not dark.any()
    with pytest.raises(InstrumentError, match="Device identifier is invalid"):
        NiGatedCounter("counter", pulser, counter="Dev1/ctr7", nidaqmx_module=card).count_gates()


def test_a_read_before_the_program_runs_times_out(rig):
    card, _ = rig
    task = card.Task()
    task.ci_channels.add_ci_count_edges_chan("Dev1/ctr0")
    task.timing.cfg_samp_clk_timing(1e6, source="/Dev1/PFI1", active_edge=card.constants.Edge.FALLING)
    task.triggers.pause_trigger.trig_type = card.constants.TriggerType.DIGITAL_LEVEL
    task.triggers.pause_trigger.dig_lvl_src = "/Dev1/PFI1"
    task.triggers.pause_trigger.dig_lvl_when = card.constants.Level.LOW
    task.start()
    with pytest.raises(card.errors.DaqError) as err:
        task.read(4)
    assert err.value.error_code == -200284
