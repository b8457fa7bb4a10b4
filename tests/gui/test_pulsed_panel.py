"""The pulsed panel: defaults per kind, refusals before start, and a Rabi run that calibrates the pi pulse."""

import re

import pytest

from instrument.gui.pulsed_panel import PulsedPanel
from tests.gui.conftest import run_to_end


@pytest.fixture
def panel(qtbot, station):
    p = PulsedPanel(station)
    qtbot.addWidget(p)
    return p


def test_each_kind_loads_the_command_defaults_in_operator_units(panel):
    assert panel.kind.currentText() == "rabi"
    assert panel.start.suffix() == " ns" and panel.stop.value() == pytest.approx(600.0)
    assert panel.controls.start_button.isEnabled()
    panel.kind.setCurrentText("odmr")
    assert panel.start.suffix() == " MHz" and panel.start.value() == pytest.approx(-4.0)
    assert panel.power.value() == 0.0
    assert panel.pi_ns.isEnabled() and not panel.detuning.isEnabled()
    panel.kind.setCurrentText("t1")
    assert panel.start.suffix() == " us" and panel.stop.value() == pytest.approx(10_000.0)


@pytest.mark.parametrize(
    ("kind", "setup", "expected"),
    [
        ("rabi", lambda p: p.power.setValue(12.0), r"MW power = 12 dBm exceeds the lab safety limit of 10"),
        ("ramsey", lambda p: None, r"ramsey needs the pi pulse"),
        ("rabi", lambda p: (p.start.setValue(12.0), p.stop.setValue(13.0), p.points.setValue(50)),
         r"50 points between .* closer than the clock allows"),
        ("rabi", lambda p: p.stop.setValue(5.0), r"stop > start"),
        ("rabi", lambda p: p.points.setValue(3), r"points must be at least 5"),
        ("echo", lambda p: (p.pi_ns.setValue(50.0), p.repetitions.setValue(0)), r"shots per point"),
    ],
)
def test_bad_parameters_disable_start_and_say_why(panel, kind, setup, expected):
    panel.kind.setCurrentText(kind)
    setup(panel)
    assert panel.validate() is None
    assert not panel.controls.start_button.isEnabled()
    assert re.search(expected, panel.controls.message.text()), panel.controls.message.text()


def test_a_rabi_run_shows_live_ratio_and_fills_in_the_pi_pulse(qtbot, window):
    panel = window.pulsed_panel
    assert panel is not None, "the sim station has a gated counter: the Pulsed tab must exist"
    panel.points.setValue(31)
    panel.repetitions.setValue(300)
    panel.controls.start_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=20_000)
    assert window.engine_run.last_outcome.status == "completed"
    assert window.image_panel.title.text().startswith("signal / reference")
    assert window.spectrum_panel.pixel_plot.getAxis("bottom").labelText == "pulse time (us)"
    assert window.spectrum_panel.points_shown("pixel") == 31
    assert panel.controls.progress_label.text() == "run completed"
    # the simulated sample's Rabi fit gives a pi pulse; Ramsey can start with it
    assert 10.0 < panel.pi_ns.value() < 600.0
    assert "pi pulse" in window.statusBar().currentMessage()
    panel.kind.setCurrentText("ramsey")
    assert panel.controls.start_button.isEnabled()
    # the CW panel was locked during the run and is free again
    assert window.cw_panel.start_button.isEnabled()


def test_stored_pulsed_run_opens_but_is_not_refit_as_cw(qtbot, window):
    panel = window.pulsed_panel
    panel.points.setValue(21)
    panel.repetitions.setValue(200)
    panel.controls.start_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=20_000)
    run = window.run_browser.selected_run()
    window.open_run(run)
    assert window.cube.x_name == "tau_s"
    assert window.spectrum_panel.points_shown("pixel") == 21
    assert window.stored_runs.refit(run) is None
    assert "re-fit and figure export are for CW-ODMR runs" in window.statusBar().currentMessage()


def test_cw_scan_still_runs_after_a_pulsed_one(qtbot, window):
    from tests.gui.conftest import configure

    window.pulsed_panel.points.setValue(11)
    window.pulsed_panel.repetitions.setValue(100)
    window.pulsed_panel.controls.start_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=20_000)
    window.engine_run.last_outcome = None
    configure(window, points=11)
    outcome = run_to_end(qtbot, window)
    assert outcome.status == "completed"
    assert window.spectrum_panel.pixel_plot.getAxis("bottom").labelText == "MW frequency (MHz)"
