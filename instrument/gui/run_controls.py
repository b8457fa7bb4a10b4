"""Start / pause / abort buttons, the validation message and progress with ETA, shared by scan panels."""

from __future__ import annotations

import math

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from instrument.gui.wording import gui_words
from sequences.engine import Progress


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--"
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


class RunControls(QWidget):
    """Run buttons and progress of one scan panel.

    Args:
        pausable: the middle button pauses and resumes; otherwise it is "Stop" (a capture cannot
            pause: the camera runs free), which ends the run early and keeps what was measured.

    Signals:
        start_clicked(), pause_requested(), resume_requested(), stop_requested(), abort_requested()
    """

    start_clicked = pyqtSignal()
    pause_requested = pyqtSignal()
    resume_requested = pyqtSignal()
    stop_requested = pyqtSignal()
    abort_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None, pausable: bool = True) -> None:
        super().__init__(parent)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause" if pausable else "Stop")
        self.abort_button = QPushButton("Abort")
        self.pausable = pausable
        self.pause_button.setCheckable(pausable)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.abort_button):
            buttons.addWidget(b)
        for b in (self.pause_button, self.abort_button):  # nothing to pause or abort until a run starts
            b.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_label = QLabel("idle")
        self.progress_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        self.start_button.clicked.connect(self.start_clicked)
        if pausable:
            self.pause_button.toggled.connect(self._pause_toggled)
        else:
            self.pause_button.clicked.connect(self.stop_requested)
        self.abort_button.clicked.connect(self.abort_requested)

    def show_problem(self, problem: str | None, summary: str = "") -> None:
        """A problem disables Start and says why; no problem shows ``summary``."""
        if problem:
            self.message.setText(f"Cannot start: {gui_words(problem)}")
            self.message.setStyleSheet("color:#c62828;")
        else:
            self.message.setText(summary)
            self.message.setStyleSheet("")
        self.start_button.setEnabled(not problem)

    def set_running(self, running: bool) -> None:
        self.pause_button.setEnabled(running)
        self.abort_button.setEnabled(running)
        self.start_button.setEnabled(False)
        if not running and self.pausable:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)

    def show_progress(self, progress: Progress) -> None:
        self.progress_bar.setRange(0, progress.total)
        self.progress_bar.setValue(progress.done)
        self.progress_label.setText(
            f"{progress.done}/{progress.total} steps  {progress.label}  "
            f"elapsed {format_duration(progress.elapsed_s)}, ETA {format_duration(progress.eta_s)}"
        )

    def show_outcome(self, status: str, reason: str) -> None:
        self.progress_label.setText(f"run {status}" + (f": {gui_words(reason)}" if reason else ""))

    def _pause_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        (self.pause_requested if paused else self.resume_requested).emit()
