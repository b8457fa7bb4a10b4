"""The CW-ODMR panel refuses what the lab limits or the sweep forbid, before anything starts."""

import re

import numpy as np
import pytest

from instrument.gui.cw_panel import CwOdmrPanel
from instrument.gui.run_controls import format_duration


@pytest.fixture
def panel(qtbot, station):
    p = CwOdmrPanel(station)
    qtbot.addWidget(p)
    return p


def test_valid_parameters_give_a_sweep_in_si_units(panel, station):
    panel.center.setValue(2800.0)
    panel.span.setValue(10.0)
    panel.points.setValue(11)
    panel.current.setValue(500.0)
    panel.coils.setText("L1C2")
    sweep = panel.validate()
    assert sweep is not None and panel.start_button.isEnabled()
    np.testing.assert_allclose(sweep.frequencies_hz[[0, -1]], [2795e6, 2805e6])
    assert sweep.image_shape == station["camera"].shape
    assert sweep.coil_currents_a[1] == pytest.approx(500e-6)
    assert np.count_nonzero(sweep.coil_currents_a) == 1


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: p.power.setValue(15.0), r"MW power = 15 dBm exceeds the lab safety limit of 10 dBm"),
        (lambda p: p.current.setValue(1500.0), r"coil 0 current = 0.0015 A exceeds .* 0.001 A"),
        (lambda p: p.points.setValue(3), r"at least 5 frequency points"),
        (lambda p: p.frames.setValue(0), r"frames per point must be at least 1"),
        (lambda p: p.coils.setText("L1C1, L9C9"), r"unknown coil 'L9C9'"),
    ],
)
def test_bad_parameters_disable_start_and_say_why(panel, setup, expected):
    setup(panel)
    assert panel.validate() is None
    assert not panel.start_button.isEnabled()
    assert panel.message.text().startswith("Cannot start:")
    assert re.search(expected, panel.message.text()), panel.message.text()


def test_fixing_the_problem_enables_start_again(panel):
    panel.power.setValue(20.0)
    assert not panel.start_button.isEnabled()
    panel.power.setValue(-5.0)
    assert panel.start_button.isEnabled()


def test_running_locks_the_parameters_and_start(panel):
    panel.set_running(True)
    assert not panel.start_button.isEnabled()
    assert not panel.power.isEnabled()
    assert panel.abort_button.isEnabled() and panel.pause_button.isEnabled()
    panel.set_running(False)
    assert panel.start_button.isEnabled() and not panel.abort_button.isEnabled()


def test_the_stepping_choice_reaches_the_sweep_and_is_locked_while_running(panel):
    assert [panel.stepping.itemText(i) for i in range(panel.stepping.count())] == ["auto", "list", "software"]
    assert panel.validate().stepping == "auto"
    panel.stepping.setCurrentText("software")
    sweep = panel.validate()
    assert sweep.stepping == "software" and sweep.parameters()["stepping"] == "software"
    panel.set_running(True)
    assert not panel.stepping.isEnabled()
    panel.set_running(False)
    assert panel.stepping.isEnabled()


def test_durations_read_naturally():
    assert format_duration(float("nan")) == "--"
    assert format_duration(2.5) == "2.5 s"
    assert format_duration(42) == "42 s"
    assert format_duration(125) == "2 min 05 s"


def test_repeats_order_and_runtime_limit_reach_the_sweep(panel):
    panel.points.setValue(11)
    panel.repeats.setValue(4)
    panel.order.setCurrentText("interleaved")
    panel.max_runtime.setValue(2.0)
    sweep = panel.validate()
    assert sweep is not None
    assert (sweep.repeats, sweep.order, sweep.max_runtime_s) == (4, "interleaved", 7200.0)
    assert "(4 sweeps)" in panel.message.text()
    panel.max_runtime.setValue(0.0)  # "no limit"
    assert panel.validate().max_runtime_s is None


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: p.repeats.setValue(0), r"repeats must be a whole number of sweeps >= 1, got 0"),
        (lambda p: (p.frames.setValue(10_000), p.max_runtime.setValue(0.01)),
         r"max runtime of 36 s is shorter than one sweep .*; raise max runtime"),
    ],
)
def test_bad_repeat_settings_disable_start_naming_the_field(panel, setup, expected):
    setup(panel)
    assert panel.validate() is None
    assert not panel.start_button.isEnabled()
    assert re.search(expected, panel.message.text()), panel.message.text()
