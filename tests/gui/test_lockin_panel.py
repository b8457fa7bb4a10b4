"""Lock-in capture in the GUI: refusals before start, a short sim capture watched live, stop and abort."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from instrument.gui.lockin_view import QUANTITIES, frame_quantity
from instrument.storage.runs import load_run
from tests.gui.conftest import SHAPE


def wait_capture(qtbot, window, timeout_ms=20_000):
    qtbot.waitUntil(lambda: window.capture.last_outcome is not None and not window.running,
                    timeout=timeout_ms)
    return window.capture.last_outcome


def wait_frames(qtbot, window, frames):
    qtbot.waitUntil(lambda: window.capture.tap.parts is not None
                    and window.capture.tap.parts.capture.frames_acquired >= frames, timeout=20_000)


def start_long_capture(window):
    """Start a 60 s capture (long enough to be stopped or aborted); returns the lock-in panel."""
    panel = window.lockin_panel
    panel.seconds.setValue(60.0)
    panel.start_button.click()
    return panel


@pytest.mark.parametrize(("field", "value", "says"), [
    ("seconds", 0.3, "raise capture length above 0.55 s"),
    ("power", 20.0, "MW power"),
    ("coils", "L1C1,L9C9", "unknown coil(s) L9C9"),
    ("frame_rate", 4000.0, "at most half the modulation frequency"),
    ("rate", 0.0, "firing rate"),
])
def test_bad_parameters_are_refused_before_start_with_the_reason(window, field, value, says):
    panel = window.lockin_panel
    assert panel.start_button.isEnabled()
    widget = getattr(panel, field)
    good = widget.text() if field == "coils" else widget.value()
    widget.setText(value) if field == "coils" else widget.setValue(value)
    assert not panel.start_button.isEnabled()
    assert panel.message.text().startswith("Cannot start:") and says in panel.message.text()
    widget.setText(good) if field == "coils" else widget.setValue(good)
    assert panel.start_button.isEnabled() and "frames" in panel.message.text()


def test_short_capture_is_shown_live_from_the_capture_tap_and_stored(qtbot, window):
    panel, view = window.lockin_panel, window.movie_view
    panel.seconds.setValue(0.6)
    panel.start_button.click()
    assert window.running and not panel.start_button.isEnabled() and panel.abort_button.isEnabled()
    outcome = wait_capture(qtbot, window)
    assert outcome.status == "completed", outcome.reason
    capture = outcome.result.capture
    n = capture.frames_written
    # 0.6 s at 208 frames/s, less the camera's read-out dead time between volumes of 8 frames
    assert 120 <= n <= 125 and capture.frames_dropped == 0 and capture.frames_acquired == n
    # the movie view drew the capture's newest frame, converted in the GUI from the raw I/Q copy
    assert view.frames_displayed >= 1 and view.last_index == n - 1
    # the cost of an update, repaint included, was measured (it spaces the timer's ticks)
    assert view.last_update_cost_ms > 0 and not view.timer.isActive()
    parts = window.capture.tap.parts
    latest = parts.capture.latest()
    expected, unit = frame_quantity(latest.raw, "field B_NV", parts)
    assert unit == "uT" and view.image_panel.data.shape == SHAPE
    np.testing.assert_allclose(view.image_panel.data, expected, rtol=1e-6)
    assert f"frame {n - 1}" in view.image_panel.title.text()
    assert view.image_panel.readout_text(2, 3).endswith("uT")
    assert f"{n} captured, 0 dropped" in view.status.text() and "frames/s" in view.status.text()
    view.quantity.setCurrentText("magnitude")
    i, q = (latest.raw[..., k].astype(np.float32) - parts.offset for k in (0, 1))
    np.testing.assert_allclose(view.image_panel.data, np.hypot(i, q), rtol=1e-6)
    assert view.image_panel.readout_text(2, 3).endswith("counts")
    # the panel showed progress in frames and the counts
    assert panel.progress_bar.value() == n and panel.progress_bar.maximum() == 125
    assert f"{n} captured, 0 dropped" in panel.frames_label.text()
    assert panel.start_button.isEnabled() and not window.running
    # the run is in the browser, selected, with the capture's summary and its field movie
    run = window.run_browser.selected_run()
    assert run is not None and run.run_id == outcome.run_id
    assert run.metadata["status"] == "completed" and run.metadata["command"] == "acquire --sim gui"
    assert run.metadata["capture"]["frames_dropped"] == 0
    with h5py.File(run.metadata["field_file"]) as f:
        assert f["field_t"].shape == (n, *SHAPE)
        stored = f["field_t"][n - 1] * 1e6
    # the live field frame is the stored movie's frame up to the baseline (calibration spectrum
    # live, baseline frames in the movie): the same pixels, the same scale
    view.quantity.setCurrentText("field B_NV")
    live = view.image_panel.data
    ok = np.isfinite(live) & np.isfinite(stored)
    assert ok.mean() > 0.5
    assert np.corrcoef(live[ok], stored[ok])[0, 1] > 0.9
    slope = np.polyfit(stored[ok], live[ok], 1)[0]
    assert 0.9 < slope < 1.1


def test_frame_quantities_are_offset_free_i_q_magnitude_and_field():
    from instrument.gui.lockin_view import TapParts
    from sequences.temporal import SlopeCalibration

    rng = np.random.default_rng(0)
    raw = rng.integers(400, 700, size=(4, 5, 2)).astype(np.int16)
    offset = np.full((4, 5), 512, np.float32)
    cal = SlopeCalibration(np.array([1.0, 2.0]), np.zeros((2, 4, 5), np.float32), 2.0,
                           np.full((4, 5), -3e-3, np.float32), -1)
    parts = TapParts(None, cal, offset, np.full((4, 5), 7.0, np.float32), 0.0)
    i, q = raw[..., 0] - 512.0, raw[..., 1] - 512.0
    got = {name: frame_quantity(raw, name, parts) for name in QUANTITIES}
    np.testing.assert_allclose(got["in-phase I"][0], i)
    np.testing.assert_allclose(got["quadrature Q"][0], q)
    np.testing.assert_allclose(got["magnitude"][0], np.hypot(i, q), rtol=1e-6)
    np.testing.assert_allclose(got["field B_NV"][0], cal.field_t(i.astype(np.float32), parts.baseline) * 1e6)
    with pytest.raises(ValueError, match="unknown lock-in quantity"):
        frame_quantity(raw, "phase", parts)


def test_abort_ends_the_capture_at_once_and_marks_the_run_aborted(qtbot, window):
    panel = start_long_capture(window)
    wait_frames(qtbot, window, 20)
    panel.abort_button.click()
    outcome = wait_capture(qtbot, window)
    assert outcome.status == "aborted" and outcome.reason == "aborted by the operator"
    assert 20 <= outcome.result.capture.frames_written < 60 * 208
    run = load_run(window.out_dir, outcome.run_id)
    assert run.metadata["status"] == "aborted"
    assert window.run_browser.selected_run().run_id == outcome.run_id
    assert "run aborted" in panel.progress_label.text() and panel.start_button.isEnabled()


def test_abort_during_the_slope_calibration_stops_before_capturing(qtbot, window):
    panel = start_long_capture(window)
    panel.abort_button.click()  # the capture does not exist yet: the stop waits for it
    outcome = wait_capture(qtbot, window)
    assert outcome.status == "aborted" and outcome.reason.startswith("aborted by the operator")
    assert load_run(window.out_dir, outcome.run_id).metadata["status"] == "aborted"


def test_stop_ends_early_and_keeps_a_completed_run_with_its_field_movie(qtbot, window):
    panel = start_long_capture(window)
    wait_frames(qtbot, window, 60)
    panel.stop_button.click()
    outcome = wait_capture(qtbot, window)
    assert outcome.status == "completed" and outcome.reason == "stopped by the operator"
    written = outcome.result.capture.frames_written
    with h5py.File(Path(outcome.result.field_path)) as f:
        assert f["field_t"].shape[0] == written >= 60


def test_the_raw_size_shown_is_four_bytes_per_pixel_and_frame(window):
    panel = window.lockin_panel
    plan = panel.validate()
    rows, cols = panel.image_shape
    expected_mb = plan.n_frames * rows * cols * 4 / 1e6  # int16 I + int16 Q
    assert f"{plan.n_frames} frames ({expected_mb:.1f} MB raw" in panel.message.text()


def test_a_failed_run_stops_the_movie_view_for_good(qtbot):
    from instrument.gui.lockin_view import LiveTap, LockInMovieView

    view = LockInMovieView(pixel_size_m=1e-6)
    qtbot.addWidget(view)
    view.watch(LiveTap(n_frames=10, frame_rate_hz=208.0, shape=(4, 4)))
    view.refresh()  # queues the zero-delay "repainted" shot that used to restart the timer
    view.stop()
    qtbot.wait(50)
    assert not view.timer.isActive()
