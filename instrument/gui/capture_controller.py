"""The lock-in capture job: a checked ``LockInPlan`` recorded by the service layer in a worker thread.

The controller owns the job's state (the worker, the live tap the movie view reads, how the last
capture ended); the main window wires its signals to the panels and views.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from instrument.gui.lockin_view import LiveTap
from instrument.gui.worker import BackgroundTask
from instrument.services.lockin import ABORTED, STOPPED, record_lockin


class CaptureController(QObject):
    """Starts, stops and aborts lock-in captures of one station into one output folder.

    Signals:
        started(LiveTap): a capture started; the tap holds its frames for a live view.
        done(LockInOutcome): the capture ended (completed, aborted or failed) and its run is closed.
        failed(Exception): the capture raised before its run could be closed normally.
    """

    started = pyqtSignal(object)
    done = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(self, station: Any, out_dir: Path, command: Callable[[], str],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.out_dir = Path(out_dir)
        self.command = command
        self.task: BackgroundTask | None = None
        self.tap: LiveTap | None = None
        self.last_outcome: Any = None  # instrument.services.lockin.LockInOutcome

    def is_running(self) -> bool:
        return self.task is not None and self.task.is_running()

    def start(self, plan: Any, image_shape: tuple[int, int]) -> LiveTap:
        """Record ``plan`` in a worker thread; returns the tap a movie view watches."""
        tap = LiveTap(plan.n_frames, plan.request.frame_rate_hz, image_shape)
        station, out, command = self.station, self.out_dir, self.command()
        self.tap, self.last_outcome = tap, None
        self.task = BackgroundTask(
            lambda: record_lockin(station, out, plan, command, on_capture=tap.attach,
                                  aborted=lambda: tap.aborted(ABORTED)), self)
        self.task.done.connect(self._done)
        self.task.failed.connect(self.failed)
        self.task.start()
        self.started.emit(tap)
        return tap

    def stop(self) -> None:
        """End the capture early, keeping it (a completed run if nothing was dropped)."""
        if self.tap is not None:
            self.tap.stop(STOPPED)

    def abort(self) -> None:
        if self.tap is not None:
            self.tap.stop(ABORTED)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Abort a capture in flight and wait until the instruments are safe; False if it did not stop."""
        self.abort()
        return self.task is None or not self.task.is_running() or self.task.wait(timeout_ms)

    @staticmethod
    def frames_note(outcome: Any) -> str:
        """``; N frames written, M dropped`` for a capture that ran (empty if it never captured)."""
        capture = outcome.result.capture if outcome.result is not None else None
        return (f"; {capture.frames_written} frames written, {capture.frames_dropped} dropped"
                if capture is not None else "")

    def _done(self, outcome: Any) -> None:
        self.last_outcome = outcome
        self.done.emit(outcome)
