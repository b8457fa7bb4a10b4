"""Coil scans in the GUI: refusals, a tiny scan with its live field map and health warnings, pause and
abort (resumable), and reconstruction of a scan's runs with the dictionary that scan measured."""

import h5py
import numpy as np
import pytest

from instrument.analysis.cw_run import ANALYSIS_NAME
from instrument.gui.main_window import SCAN_MAP
from instrument.storage.scan_ledger import read_ledger
from sequences.coil_scan import RESULTS_NAME
from tests.gui.conftest import SHAPE


def configure(panel, points=21, frames=4, coils="2"):
    panel.coils.setText(coils)
    panel.points.setValue(points)
    panel.frames.setValue(frames)
    panel.span.setValue(12.0)


def wait_scan(qtbot, window, timeout_ms=30_000):
    qtbot.waitUntil(lambda: window.coil_scan.last_scan is not None and not window.running, timeout=timeout_ms)
    return window.coil_scan.last_scan


@pytest.mark.parametrize(("field", "value", "says"), [
    ("coils", "L1C1,L9C9", "unknown coil(s) L9C9"),
    ("configs", "L1C1+L3C3", "unknown coil 'L3C3'"),
    ("configs", "L1C1,L1C1", "listed twice"),
    ("current", 5000.0, "exceeds the lab safety limit"),
    ("power", 25.0, "MW power"),
    ("points", 3, "at least 5 frequency points"),
    ("folder", "", "give the scan folder"),
])
def test_bad_parameters_are_refused_before_start_with_the_reason(window, field, value, says):
    panel = window.coil_scan_panel
    configure(panel)
    assert panel.start_button.isEnabled(), panel.message.text()
    widget = getattr(panel, field)
    text_field = field in ("coils", "configs", "folder")
    good = widget.text() if text_field else widget.value()
    widget.setText(value) if text_field else widget.setValue(value)
    assert not panel.start_button.isEnabled()
    assert panel.message.text().startswith("Cannot start:") and says in panel.message.text()
    widget.setText(good) if text_field else widget.setValue(good)
    assert panel.start_button.isEnabled()


def test_tiny_scan_shows_field_maps_and_warnings_and_its_runs_reconstruct(qtbot, window):
    panel = window.coil_scan_panel
    configure(panel)
    panel.contrast_drift.setValue(0.1)  # 0.1 %: every configuration after the first drifts past it
    panel.start_button.click()
    assert window.running and panel.pause_button.isEnabled() and not window.cw_panel.start_button.isEnabled()
    result = wait_scan(qtbot, window)
    assert result.outcome.status == "completed" and result.outcome.counts["done"] == 4
    folder = window.out_dir / "coil-scan"
    assert result.out_dir == folder and (folder / RESULTS_NAME).exists()
    rows = read_ledger(folder)
    assert [r.status for r in rows] == ["done"] * 4
    # progress per configuration and for the scan; health warnings listed
    assert "4/4 finished" in panel.scan_label.text()
    assert "run completed" in panel.progress_label.text()
    assert "contrast drifted" in panel.warnings.toPlainText()
    # the live view shows the newest field map: the last configuration's stored analysis
    assert window.image_choice.currentText() == SCAN_MAP
    with h5py.File(folder / f"run-{rows[-1].run_id:04d}" / ANALYSIS_NAME) as f:
        last_map = f["b_nv_t"][...]
    assert window.image_panel.data.shape == SHAPE
    np.testing.assert_allclose(window.image_panel.data, last_map * 1e6, rtol=1e-5)
    assert "L1C1+L1C2" in window.image_panel.title.text()
    assert window.frames_displayed >= 1  # the configuration in flight was drawn live too
    # the browser now lists the scan's folder, the last configuration selected
    assert window.run_browser.out_dir == folder
    assert sorted(window.run_browser.runs) == [r.run_id for r in rows]
    assert window.run_browser.selected_run().run_id == rows[-1].run_id
    # the folder holds this scan, finished: Start would resume it (and measure nothing)
    assert "4 of 4 finished: Start resumes it" in panel.message.text()

    by_label = {r.label: r.run_id for r in rows}

    def reconstruct(label):
        window.reconstruction_view.result = None
        window.stored_runs.reconstruct(window.run_browser.runs[by_label[label]])
        qtbot.waitUntil(lambda: window.reconstruction_view.result is not None, timeout=20_000)
        return window.reconstruction_view.result

    both = reconstruct("L1C1+L1C2")
    assert both.coil_names == ["L1C1", "L1C2"] and both.expected.tolist() == [1.0, 1.0]
    assert np.all(both.coefficients > 0.6), both.coefficients
    assert "dictionary measured by the coil scan" in window.reconstruction_view.summary.text()
    assert f"L1C1 run {by_label['L1C1']}" in both.source
    assert window.views.currentWidget() is window.reconstruction_view
    assert window.reconstruction_view.measured.data.shape == SHAPE
    assert window.reconstruction_view.reconstructed.data.shape == SHAPE
    one = reconstruct("L1C2")
    assert one.expected.tolist() == [0.0, 1.0]
    assert abs(one.coefficients[0]) < 0.2 and one.coefficients[1] > 0.6, one.coefficients
    # a CW-ODMR run afterwards is stored in the output directory, and the browser goes back to it
    window.cw_panel.points.setValue(11)
    window.cw_panel.frames.setValue(1)
    window.engine_run.last_outcome = None
    window.cw_panel.start_button.click()
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None, timeout=20_000)
    assert window.run_browser.out_dir == window.out_dir
    assert window.run_browser.selected_run().run_id == window.engine_run.writer.run_id


def settled_counter(qtbot, window, quiet_s=0.4, timeout_s=20.0):
    """The live step counter once it has not moved for ``quiet_s`` (however slow a step is)."""
    import time

    deadline = time.monotonic() + timeout_s
    last, since = window.live_sink.counter, time.monotonic()
    while time.monotonic() < deadline:
        qtbot.wait(50)
        now, counter = time.monotonic(), window.live_sink.counter
        if counter != last:
            last, since = counter, now
        elif now - since >= quiet_s:
            return counter
    raise AssertionError(f"the scan did not hold still within {timeout_s} s of Pause")


def test_pause_holds_the_scan_and_abort_leaves_it_resumable(qtbot, window):
    panel = window.coil_scan_panel
    configure(panel, points=60, frames=1)
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.progress_bar.value() >= 2, timeout=10_000)
    assert "configuration 1/4 (all off)" in panel.progress_label.text()
    panel.pause_button.click()
    assert window.coil_scan.runner.paused
    held = settled_counter(qtbot, window)  # the step in flight when Pause came still finishes
    qtbot.wait(300)
    assert window.live_sink.counter == held
    panel.pause_button.click()  # resume
    qtbot.waitUntil(lambda: window.live_sink.counter > held, timeout=5_000)
    panel.abort_button.click()
    result = wait_scan(qtbot, window)
    assert result.outcome.status == "paused" and "aborted" in result.outcome.reason
    rows = read_ledger(window.out_dir / "coil-scan")
    assert rows[0].status == "pending" and all(r.status == "pending" for r in rows)
    assert "run paused" in panel.progress_label.text()
    # the same settings resume the scan in the same folder
    assert "0 of 4 finished: Start resumes it" in panel.message.text() and panel.start_button.isEnabled()
    panel.coils.setText("1")
    assert "holds another scan" in panel.message.text() and not panel.start_button.isEnabled()
