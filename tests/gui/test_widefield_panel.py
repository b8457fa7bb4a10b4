"""The widefield pulsed panel on the Basler emulator: defaults, refusals, and a Rabi map run end to end."""

import re

import numpy as np
import pytest

from instrument.station import build_station
from tests.widefield_station import basler_test_station


# `window` comes from tests/gui/conftest.py and opens on this module's station.
@pytest.fixture(scope="module")  # qcodes allows one "mw" instrument at a time
def station(tmp_path_factory):
    path = basler_test_station(tmp_path_factory.mktemp("basler_station"))
    with build_station(path, simulated=True) as st:
        yield st


def test_the_camera_station_offers_widefield_pulsed_not_the_counter_panel(window):
    assert window.widefield_panel is not None
    assert window.pulsed_panel is None  # no gated photon counter on the Basler station
    panel = window.widefield_panel
    assert panel.kind.currentText() == "rabi"
    assert panel.start.value() == pytest.approx(12.0) and panel.stop.value() == pytest.approx(212.0)
    panel.kind.setCurrentText("t1")
    assert panel.start.suffix() == " us"


@pytest.mark.parametrize(
    ("kind", "setup", "expected"),
    [
        ("xy8", lambda p: p.pi_ns.setValue(54.0), r"needs an IQ-modulated MW source .* or an AWG"),
        ("cpmg", lambda p: (p.pi_ns.setValue(54.0), p.phase_cycled.setChecked(True)),
         r"PulseBlaster only switches the MW on and off"),
        ("t1", lambda p: (p.repetitions.setValue(5000), p.stop.setValue(8000.0)),
         r"outside the camera's .* shots per frame"),
        ("echo", lambda p: None, r"echo needs the pi pulse"),
    ],
)
def test_refusals_before_start_name_the_fix(window, kind, setup, expected):
    panel = window.widefield_panel
    panel.kind.setCurrentText(kind)
    setup(panel)
    assert panel.validate() is None
    assert not panel.controls.start_button.isEnabled()
    assert re.search(expected, panel.controls.message.text()), panel.controls.message.text()


def test_a_widefield_rabi_run_stores_a_map_that_matches_the_truth(qtbot, window, tmp_path):
    panel = window.widefield_panel
    panel.points.setValue(25)
    panel.bin.setValue(6)
    panel.controls.start_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=60_000)
    assert window.engine_run.last_outcome.status == "completed"
    result = window.engine_run.last_widefield
    assert result is not None and result.maps is not None
    assert (result.run.run_dir / "maps.npz").exists() and (result.run.run_dir / "map.png").exists()
    assert result.agreement["within_3_sigma"] > 0.9, result.agreement
    assert "map stored" in window.statusBar().currentMessage()
    assert 10.0 < panel.pi_ns.value() < 200.0  # the pixel-mean Rabi fit's pi pulse
    stored = np.load(result.run.run_dir / "maps.npz")
    assert stored["rabi_hz"].shape == (10, 10)
