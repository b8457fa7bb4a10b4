"""The base of the scan panels: the signals the main window connects and the run-state plumbing."""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QWidget

from instrument.gui.run_controls import RunControls


class ScanPanel(QWidget):
    """A panel that validates its parameters into a sequence and asks the main window to run it.

    Subclasses build their form, set ``self.controls`` (a ``RunControls``) and define
    ``validate() -> sequence | None`` (None: show the problem, keep Start disabled).

    Signals:
        start_requested(sequence): the operator pressed Start with valid parameters.
        pause_requested(), resume_requested(), abort_requested()
    """

    start_requested = pyqtSignal(object)
    pause_requested = pyqtSignal()
    resume_requested = pyqtSignal()
    abort_requested = pyqtSignal()
    controls: RunControls

    def show_progress(self, progress: Any) -> None:
        self.controls.show_progress(progress)

    def show_outcome(self, status: str, reason: str) -> None:
        self.controls.show_outcome(status, reason)

    def _start(self) -> None:
        sequence = self.validate()  # type: ignore[attr-defined]
        if sequence is not None:
            self.start_requested.emit(sequence)
