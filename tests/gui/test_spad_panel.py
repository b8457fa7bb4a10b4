"""The GUI on the SPAD station: only the panels the station has instruments for; live 16x16 counts."""

import pytest

from instrument.station import build_station, bundled_station


@pytest.fixture(scope="module")
def station():
    with build_station(bundled_station("spad.yaml"), simulated=True, seed=1) as st:
        yield st


def test_spad_station_gets_the_spad_panel_only(window):
    tabs = window.centralWidget().findChildren(type(window.views))
    titles = {t.tabText(i) for t in tabs for i in range(t.count())}
    assert "SPAD ODMR" in titles
    assert "CW ODMR" not in titles and "Pulsed" not in titles
    assert window.cw_panel is None and window.pulsed_panel is None


def test_bad_spad_parameters_are_refused(window):
    panel = window.spad_panel
    panel.power.setValue(11.0)
    assert not panel.controls.start_button.isEnabled()
    assert "exceeds the lab safety limit of 10 dBm" in panel.controls.message.text()
    panel.power.setValue(0.0)
    panel.frames.setValue(0)
    assert "frames per point must be at least 1" in panel.controls.message.text()


def test_spad_sweep_shows_live_counts_and_spectra(qtbot, window):
    panel = window.spad_panel
    panel.points.setValue(9)
    panel.frames.setValue(10)
    panel.controls.start_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=20_000)
    assert window.engine_run.last_outcome.status == "completed"
    assert window.image_panel.data.shape == (16, 16)
    assert window.image_panel.title.text().startswith("SPAD counts")
    assert window.spectrum_panel.points_shown("pixel") == 9
    assert window.spectrum_panel.pixel_plot.getAxis("left").labelText == "SPAD counts (counts)"
    assert window.run_browser.selected_run().metadata["sequence"]["name"] == "spad_odmr"
