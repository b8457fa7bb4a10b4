"""Drive the main window offscreen: a simulated CW-ODMR scan, live views, pause/abort, stored runs."""

import numpy as np
import pytest

from instrument.gui.live_pane import LIVE_FRAME
from instrument.storage.runs import load_run
from tests.gui.conftest import SHAPE, configure, run_to_end


def test_scan_updates_the_live_image_and_spectra_and_is_stored(qtbot, window):
    configure(window, points=11)
    seen_live = []
    window.timer.timeout.connect(lambda: seen_live.append(window.image_panel.frames_shown))
    outcome = run_to_end(qtbot, window)
    assert outcome.status == "completed" and outcome.steps_done == 22
    # the live image was drawn while the engine ran, from the live sink
    assert window.frames_displayed >= 1
    assert window.steps_received == 22
    # the repaint is throttled to a share of the time: the next tick waits 3x the last update's cost
    from instrument.gui.live_views import MAX_GUI_SHARE, REFRESH_INTERVAL_MS

    assert window.last_update_cost_ms > 0
    assert window.timer.interval() >= max(REFRESH_INTERVAL_MS,
                                          int(window.last_update_cost_ms * (1 / MAX_GUI_SHARE - 1)))
    window.image_choice.setCurrentText(LIVE_FRAME)  # the run ended on its field map; the last frame is here
    assert window.image_panel.data.shape == SHAPE
    assert np.isfinite(window.image_panel.data).all()
    # the spectrum at the chosen pixel holds every measured point (both sweeps), the mean too
    assert window.spectrum_panel.points_shown("pixel") == 22
    assert window.spectrum_panel.points_shown("mean") == 22
    assert window.cw_panel.progress_bar.value() == 22
    assert "22/22 steps" in window.cw_panel.progress_label.text() or "completed" in \
        window.cw_panel.progress_label.text()
    # the run browser lists and selects the new run; the stored run says how it ended
    run = window.run_browser.selected_run()
    assert run is not None and run.run_id == window.engine_run.writer.run_id
    assert run.metadata["status"] == "completed" and run.metadata["simulated"] is True
    assert run.metadata["command"] == "acquire --sim gui"
    assert window.cw_panel.start_button.isEnabled()


def test_choosing_a_pixel_shows_its_spectrum(qtbot, window):
    configure(window, points=11)
    run_to_end(qtbot, window)
    window.image_panel.set_pixel(3, 5)
    assert window.spectrum_panel.pixel_plot.titleLabel.text == "spectrum at pixel (row 3, col 5)"
    stored = load_run(window.out_dir, window.engine_run.writer.run_id).images("signal")
    curve = window.spectrum_panel._curves[("pixel", 0)]
    order = np.argsort(window.cube.pixel_spectra(3, 5).x[0])
    np.testing.assert_allclose(np.sort(curve.yData), np.sort(stored[:11, 3, 5][order]))


def test_pause_holds_the_engine_and_abort_stores_a_partial_run(qtbot, window):
    configure(window, points=60)
    panel = window.cw_panel
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.progress_bar.value() >= 2, timeout=10_000)
    panel.pause_button.click()
    assert window.engine_run.runner.paused and panel.pause_button.text() == "Resume"
    qtbot.wait(150)  # the step in flight finishes; then nothing moves
    held = window.live_sink.counter  # the engine's own count of steps, not the (throttled) display
    qtbot.wait(400)
    assert window.live_sink.counter == held
    assert window.running
    assert panel.progress_bar.value() == held  # the display caught up while paused
    panel.pause_button.click()  # resume
    qtbot.waitUntil(lambda: window.live_sink.counter > held, timeout=10_000)
    panel.abort_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=10_000)
    outcome = window.engine_run.last_outcome
    assert outcome.status == "aborted" and outcome.reason == "aborted by operator"
    assert held < outcome.steps_done < 120
    run = load_run(window.out_dir, window.engine_run.writer.run_id)
    assert run.metadata["status"] == "aborted"
    assert run.steps_done == outcome.steps_done
    assert panel.start_button.isEnabled() and not panel.abort_button.isEnabled()
    assert panel.progress_label.text().startswith("run aborted")
    # the station was left safe by the engine: RF off, coils at zero
    assert np.allclose(window.station["coils"].read_currents(), 0, atol=5e-6)  # a read-back is noisy


def test_open_refit_and_export_a_stored_run(qtbot, window, tmp_path):
    configure(window, points=31, frames=2)
    run_to_end(qtbot, window)
    window.views.setCurrentIndex(1)
    browser = window.run_browser
    browser.refresh()
    browser.select_run(window.engine_run.writer.run_id)
    window.live_sink = None
    browser.open_button.click()
    assert window.source_label.text().startswith(f"stored run {window.engine_run.writer.run_id} (completed)")
    assert window.views.currentIndex() == 0
    assert window.spectrum_panel.points_shown("pixel") == 62
    browser.refit_button.click()
    qtbot.waitUntil(lambda: window.stored_runs.fit is not None, timeout=20_000)
    assert window.image_choice.currentText() == "B_NV of the coils"
    assert window.image_panel.unit == "uT"
    assert "of pixels fitted" in window.statusBar().currentMessage()
    assert "(lorentzian, hyperfine 15N)" in window.statusBar().currentMessage()
    window.image_choice.setCurrentText("fitted resonance, I-off")
    assert window.image_panel.unit == "MHz"
    finite = window.image_panel.data[np.isfinite(window.image_panel.data)]
    assert finite.size and np.all(np.abs(finite - window.cw_panel.center.value()) < 6.0)
    figure = tmp_path / "export.png"
    window.export_figure(browser.selected_run(), figure)
    assert figure.stat().st_size > 10_000
    # re-fit with other options: a Gaussian without the hyperfine multiplet
    browser.model.setCurrentText("gaussian")
    browser.hyperfine.setCurrentText("none")
    first = window.stored_runs.fit
    browser.refit_button.click()
    jobs = window.stored_runs
    qtbot.waitUntil(lambda: jobs.fit is not None and jobs.fit is not first, timeout=20_000)
    assert jobs.fit.fit_off.model == "gaussian" and jobs.fit.fit_off.hyperfine is None
    assert "(gaussian, hyperfine none)" in window.statusBar().currentMessage()


def test_refit_of_an_aborted_run_says_it_is_incomplete(qtbot, window):
    configure(window, points=11)
    run_to_end(qtbot, window)
    done = window.run_browser.selected_run()
    window.engine_run.last_outcome = None
    configure(window, points=600)  # long enough to be still running when checked, however fast steps are
    window.cw_panel.start_button.click()
    qtbot.waitUntil(lambda: window.cw_panel.progress_bar.value() >= 1, timeout=10_000)
    # while a scan runs, stored runs are neither opened nor re-fitted: the views belong to the scan
    assert window.stored_runs.refit(done) is None
    assert "re-fit stored runs when it has ended" in window.statusBar().currentMessage()
    assert window.source_label.text().startswith("live:")
    window.cw_panel.abort_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=10_000)
    run = window.run_browser.selected_run()
    task = window.stored_runs.refit(run)
    assert task is not None, window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not task.is_running() and "cannot fit" in window.statusBar().currentMessage(),
                    timeout=10_000)
    assert "is incomplete" in window.statusBar().currentMessage()
    assert window.stored_runs.fit is None


def test_cursor_readout_is_in_micrometres_and_image_units(qtbot, window, station):
    image = np.arange(SHAPE[0] * SHAPE[1], dtype=float).reshape(SHAPE)
    window.image_panel.set_image(image, "test", "counts")
    pixel_um = station.world.pixel_size_m * 1e6
    text = window.image_panel.readout_text(2, 5)
    assert text == (f"x = {5.5 * pixel_um:.1f} um, y = {2.5 * pixel_um:.1f} um (row 2, col 5): "
                    f"{image[2, 5]:.5g} counts")
    # a scene point over pixel (2, 5) maps back to it; outside the image there is no pixel
    vb = window.image_panel.plot.vb
    from PyQt6.QtCore import QPointF

    inside = vb.mapViewToScene(QPointF(5.5 * pixel_um, 2.5 * pixel_um))
    assert window.image_panel.pixel_at(inside) == (2, 5)
    outside = vb.mapViewToScene(QPointF(-3 * pixel_um, 2.5 * pixel_um))
    assert window.image_panel.pixel_at(outside) is None


def test_station_panel_shows_simulated_banner_instruments_and_limits(window):
    panel = window.station_panel
    assert "SIMULATED" in panel.banner.text()
    assert panel.banner.isVisible()  # above the tabs, seen whichever tab is open
    assert "[SIMULATED]" in window.windowTitle()
    tops = {panel.tree.topLevelItem(i).text(0): panel.tree.topLevelItem(i)
            for i in range(panel.tree.topLevelItemCount())}
    assert {"mw (SG384Source)", "camera (HeliCamC3)", "safety limits"} <= set(tops)
    assert tops["camera (HeliCamC3)"].text(1) == "connected"
    limits = {tops["safety limits"].child(i).text(0): tops["safety limits"].child(i).text(1)
              for i in range(tops["safety limits"].childCount())}
    assert limits["MW power ceiling"] == "10 dBm"
    assert limits["coil current ceiling"] == "1 mA"


def test_abort_right_after_start_is_not_lost(qtbot, window):
    configure(window, points=60)
    window.cw_panel.start_button.click()
    window.cw_panel.abort_button.click()  # before the worker thread has even entered the engine
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=10_000)
    assert window.engine_run.last_outcome.status == "aborted"
    assert window.engine_run.last_outcome.steps_done <= 1


def test_closing_mid_run_aborts_and_leaves_the_run_stored(qtbot, window):
    configure(window, points=60)
    window.cw_panel.start_button.click()
    qtbot.waitUntil(lambda: window.cw_panel.progress_bar.value() >= 1, timeout=10_000)
    window.close()
    assert not window.engine_run.runner.is_running()
    run = load_run(window.out_dir, window.engine_run.writer.run_id)
    assert run.metadata["status"] == "aborted"


def test_send_a_run_to_reconstruction_finds_the_driven_coil(qtbot, window):
    configure(window, points=31, frames=2)
    window.cw_panel.current.setValue(900.0)
    run_to_end(qtbot, window)
    run = window.run_browser.selected_run()
    window.run_browser.reconstruct_button.click()
    view = window.reconstruction_view
    qtbot.waitUntil(lambda: view.result is not None, timeout=30_000)
    result = view.result
    assert window.views.currentWidget() is view
    assert result.run_id == run.run_id and len(result.coefficients) == len(result.coil_names)
    driven = result.coil_names.index("L1C1")
    assert result.expected[driven] == pytest.approx(1.5)
    # the driven coil dominates the reconstruction (the GUI tests' sample: tests/gui/conftest.py)
    assert abs(result.coefficients[driven]) == max(abs(result.coefficients))
    assert result.reconstructed_t.shape == SHAPE
    assert "L1C1" in view.summary.text()


def test_reconstruction_is_refused_for_a_pulsed_run(qtbot, window):
    panel = window.pulsed_panel
    panel.points.setValue(11)
    panel.repetitions.setValue(100)
    panel.controls.start_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=20_000)
    window.stored_runs.reconstruct(window.run_browser.selected_run())
    assert "reconstruction takes the B_NV map of a CW-ODMR run" in window.statusBar().currentMessage()


def test_no_panel_offers_pause_or_abort_before_a_run(window):
    for panel in window.scan_panels:
        assert not panel.pause_button.isEnabled() and not panel.abort_button.isEnabled(), type(panel).__name__


def test_image_view_fits_its_range_to_the_image(window, station):
    """The whole image fills the view: a 16-pixel image is not shown in a view twice its size."""
    pixel_um = station.world.pixel_size_m * 1e6
    width = SHAPE[1] * pixel_um
    window.image_panel.set_image(np.ones(SHAPE), "test", "counts")
    x0, x1, y0, y1 = window.image_panel.view_rect()
    # the aspect is locked, so one axis may show more than the image; never less, and the other fits
    assert x0 <= 1e-6 * width and x1 >= width * (1 - 1e-6) and y0 <= 1e-6 * width
    assert min(x1 - x0, y1 - y0) == pytest.approx(width, rel=0.02)
    # what the widget's shape adds lies evenly on both sides of the image, not on one side of a wide view
    assert (x0 + x1) / 2 == pytest.approx(width / 2, rel=0.02)
    assert (y0 + y1) / 2 == pytest.approx(width / 2, rel=0.02)
    # a marker moved to a corner does not widen the view (auto-range is off once the image is shown)
    window.image_panel.set_pixel(SHAPE[0] - 1, SHAPE[1] - 1, emit=False)
    assert window.image_panel.view_rect() == (x0, x1, y0, y1)


def test_fit_curves_are_dashed_apart_from_the_data(window):
    from PyQt6.QtCore import Qt

    panel = window.spectrum_panel
    data, fit = panel._curve("pixel", 0), panel._curve("pixel", 0, fit=True)
    assert data.opts["pen"].style() == Qt.PenStyle.SolidLine
    assert fit.opts["pen"].style() == Qt.PenStyle.DashLine
    assert fit.zValue() > data.zValue()


def test_a_cw_scan_ends_with_its_field_map_on_screen(qtbot, window):
    """As ``acquire odmr`` ends with a field map, so does a CW scan started from the GUI: no Re-fit needed."""
    configure(window, points=21, frames=1)
    run_to_end(qtbot, window)
    run_id = window.engine_run.writer.run_id
    jobs = window.stored_runs
    qtbot.waitUntil(lambda: jobs.fit is not None and jobs.fit_run_id == run_id, timeout=30_000)
    assert window.image_choice.currentText() == "B_NV of the coils"
    assert window.image_panel.unit == "uT"
    assert np.isfinite(window.image_panel.data).any()
    # fitted and stored beside the run, with its summary in the dataset, as the CLI does
    run = load_run(window.out_dir, run_id)
    assert (run.run_dir / "analysis.h5").exists()
    assert "converged_fraction" in run.metadata
