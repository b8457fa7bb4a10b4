"""The live lock-in movie: the capture's newest frame as I, Q, magnitude or field, on a timer.

The capture runs in the worker thread (``record_lockin``); when it starts it hands this module a
``LiveTap`` (the capture and its slope calibration). The view polls ``capture.latest()`` on a QTimer
and draws only the newest frame: frames that arrived between two ticks are skipped, never queued,
and nothing here waits on a lock the camera thread takes, so the display cannot hold up the camera.
The conversions are plain numpy on the copied frame; no driver is called from the GUI thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from instrument.gui.live_views import REFRESH_INTERVAL_MS, ImagePanel, next_refresh_ms

QUANTITIES = ("in-phase I", "quadrature Q", "magnitude", "field B_NV")
RATE_WINDOW_S = 1.0
STATS_INTERVAL_S = 0.25
"""Text (frame counts, rates, progress) is updated at most this often: a label change relayouts."""


@dataclass(frozen=True)
class TapParts:
    """What the worker thread hands over once the capture runs."""

    capture: Any  # sequences.capture.LockInCapture
    calibration: Any  # sequences.temporal.SlopeCalibration
    offset: np.ndarray  # raw offset per pixel (the camera's demodulate subtracts it)
    baseline: np.ndarray  # in-phase signal without coil current at the parked frequency
    started_s: float


class LiveTap:
    """Thread-safe meeting point of the capture (worker thread) and the movie view (GUI thread).

    ``attach`` is ``record_lockin``'s ``on_capture`` callback; ``stop`` may come at any time, even
    before the capture exists (during the slope calibration): it is applied the moment it does.
    """

    def __init__(self, n_frames: int, frame_rate_hz: float, shape: tuple[int, int]) -> None:
        self.n_frames = n_frames
        self.shape = shape
        self.frame_rate_hz = frame_rate_hz
        self.parts: TapParts | None = None
        self.stop_reason: str | None = None
        self.created_s = time.monotonic()
        self._lock = threading.Lock()

    def attach(self, capture: Any, calibration: Any) -> None:
        """Worker thread: the capture runs. Measures the camera's raw offset here, not in the GUI."""
        rows, cols = capture.camera.shape
        offset = -capture.camera.demodulate(np.zeros((1, rows, cols, 2), np.int16))[0]
        parked = int(np.argmin(np.abs(calibration.frequencies_hz - calibration.parked_hz)))
        parts = TapParts(capture, calibration, offset.astype(np.float32),
                         np.asarray(calibration.spectra[parked], np.float32), time.monotonic())
        with self._lock:
            self.parts = parts
            reason = self.stop_reason
        if reason is not None:
            capture.stop(reason)

    def stop(self, reason: str) -> None:
        """GUI thread: end the capture (now, or as soon as it starts)."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            parts = self.parts
        if parts is not None:
            parts.capture.stop(reason)

    def aborted(self, marker: str) -> bool:
        return self.stop_reason is not None and self.stop_reason.startswith(marker)


@dataclass(frozen=True)
class CaptureStats:
    """What the operator sees of a running capture."""

    phase: str
    frames_acquired: int
    frames_dropped: int
    n_frames: int
    elapsed_s: float
    capture_fps: float
    display_fps: float
    frame_index: int

    @property
    def eta_s(self) -> float:
        if self.phase != "capturing":
            return float("nan")
        left = max(0, self.n_frames - self.frames_acquired)
        return left / self.capture_fps if self.capture_fps > 0 else float("nan")


def frame_quantity(raw: np.ndarray, quantity: str, parts: TapParts) -> tuple[np.ndarray, str]:
    """One raw I/Q frame (rows, cols, 2) as the chosen quantity and its unit."""
    i = raw[..., 0].astype(np.float32) - parts.offset
    if quantity == "in-phase I":
        return i, "counts"
    # The heliCam stores I and Q with the same raw offset.
    q = raw[..., 1].astype(np.float32) - parts.offset
    if quantity == "quadrature Q":
        return q, "counts"
    if quantity == "magnitude":
        return np.hypot(i, q), "counts"
    if quantity == "field B_NV":
        return parts.calibration.field_t(i, parts.baseline) * 1e6, "uT"
    raise ValueError(f"unknown lock-in quantity {quantity!r}; choose one of {', '.join(QUANTITIES)}")


class LockInMovieView(QWidget):
    """The lock-in movie with a colour bar, a cursor readout, the frame index and the frame rates.

    Signals:
        stats_changed(CaptureStats): on every tick while a capture is watched.
    """

    stats_changed = pyqtSignal(object)

    def __init__(self, pixel_size_m: float | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.quantity = QComboBox()
        self.quantity.addItems(QUANTITIES)
        self.quantity.setCurrentText("field B_NV")
        self.quantity.currentTextChanged.connect(lambda _: self._draw_last())
        self.image_panel = ImagePanel(pixel_size_m)
        self.image_panel.readout.setText("move the cursor over the movie to read position and value")
        self.status = QLabel("no capture yet: start one in the 'Lock-in' panel")
        row = QHBoxLayout()
        row.addWidget(QLabel("show"))
        row.addWidget(self.quantity, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.image_panel, 1)

        self.tap: LiveTap | None = None
        self.frames_displayed = 0
        self.last_index = -1
        self.last_update_cost_ms = float("nan")
        self._watching = False
        self._tick_started = 0.0
        self._stats_shown_s = 0.0
        self._last_raw: np.ndarray | None = None
        self._seen: deque[tuple[float, int]] = deque()
        self._drawn: deque[float] = deque()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)

    def watch(self, tap: LiveTap) -> None:
        """Follow a new capture."""
        self.tap = tap
        self.frames_displayed = 0
        self.last_index = -1
        self._last_raw = None
        self._seen.clear()
        self._drawn.clear()
        self._stats_shown_s = 0.0
        # Lay the image out now, during the slope calibration: the first draw of a new shape costs
        # most (axes, colour bar), and the camera is not streaming yet.
        self.image_panel.set_image(np.zeros(tap.shape), "lock-in movie: waiting for the first frame", "")
        self.status.setText("calibrating the slope: sweeping the MW over the resonance")
        self._watching = True
        self.timer.start()

    def finish(self) -> None:
        """The capture has ended: one last update, then the timer stops."""
        self._watching = False
        self.refresh()
        self.timer.stop()

    def stop(self) -> None:
        """The run failed: stop following it at once, so no late tick overwrites the failure message."""
        self._watching = False
        self.timer.stop()

    def stats(self) -> CaptureStats | None:
        tap = self.tap
        if tap is None:
            return None
        parts = tap.parts
        now = time.monotonic()
        if parts is None:
            return CaptureStats("calibrating", 0, 0, tap.n_frames, now - tap.created_s, 0.0, 0.0, -1)
        capture = parts.capture
        acquired = capture.frames_acquired
        phase = "capturing" if acquired < tap.n_frames and tap.stop_reason is None else "finishing"
        self._seen.append((now, acquired))
        while len(self._seen) > 2 and self._seen[0][0] < now - RATE_WINDOW_S:
            self._seen.popleft()
        (t0, n0), (t1, n1) = self._seen[0], self._seen[-1]
        fps = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        while self._drawn and self._drawn[0] < now - RATE_WINDOW_S:
            self._drawn.popleft()
        span = min(RATE_WINDOW_S, now - parts.started_s)
        display = len(self._drawn) / span if span > 0 else 0.0
        return CaptureStats(phase, acquired, capture.frames_dropped, tap.n_frames, now - parts.started_s,
                            fps, display, self.last_index)

    def refresh(self) -> None:
        """Timer tick: draw the newest frame if it is new; put off the next tick if drawing is slow."""
        tap = self.tap
        if tap is None:
            return
        started = time.perf_counter()
        parts = tap.parts
        live = parts.capture.latest() if parts is not None else None
        if live is not None and live.index != self.last_index:
            self.last_index = live.index
            self._last_raw = live.raw
            self._draw(live.raw, parts)
            self.frames_displayed += 1
            self._drawn.append(time.monotonic())
        now = time.monotonic()
        if now - self._stats_shown_s >= STATS_INTERVAL_S or not self._watching:
            self._stats_shown_s = now
            stats = self.stats()
            if stats is not None:
                self._show_stats(stats)
                self.stats_changed.emit(stats)
        if self._watching:
            # The repaint happens when the event loop handles the paint events; a zero-delay timer
            # fires after them, so the time until then is the whole cost of the update.
            self.timer.stop()
            self._tick_started = started
            QTimer.singleShot(0, self._repainted)

    def _repainted(self) -> None:
        cost_ms = (time.perf_counter() - self._tick_started) * 1e3
        self.last_update_cost_ms = cost_ms
        if self._watching:
            self.timer.start(next_refresh_ms(cost_ms))

    def _draw(self, raw: np.ndarray, parts: TapParts) -> None:
        quantity = self.quantity.currentText()
        image, unit = frame_quantity(raw, quantity, parts)
        cmap = "diverging" if quantity == "field B_NV" else "viridis"
        self.image_panel.set_image(image, f"lock-in {quantity}, frame {self.last_index}", unit, cmap)

    def _draw_last(self) -> None:
        if self._last_raw is not None and self.tap is not None and self.tap.parts is not None:
            self._draw(self._last_raw, self.tap.parts)

    def _show_stats(self, s: CaptureStats) -> None:
        if s.phase == "calibrating":
            self.status.setText(f"calibrating the slope ({s.elapsed_s:.1f} s): sweeping the MW over the "
                                "resonance")
            return
        self.status.setText(f"frame {s.frame_index} of {s.n_frames}: capture {s.capture_fps:.0f} frames/s, "
                            f"display {s.display_fps:.0f} frames/s; {s.frames_acquired} captured, "
                            f"{s.frames_dropped} dropped")
