"""The base of the scan panels: the signals the main window connects and the run-state plumbing."""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QComboBox, QLabel, QLineEdit, QProgressBar, QPushButton, QWidget

from instrument.gui.run_controls import RunControls
from instrument.physics.constants import D_HZ


def sweep_center_mhz(station: Any) -> float:
    """Default sweep centre in MHz: the sample's expected resonance, else the zero-field splitting D."""
    resonance = station.sample.resonance_hz
    return (resonance if resonance is not None else D_HZ) / 1e6


class ScanPanel(QWidget):
    """A panel that validates its parameters into a sequence and asks the main window to run it.

    Subclasses build their form, name its parameter widgets with ``_watch_inputs()`` (each change
    re-validates; a run locks them), set ``self.controls`` (a ``RunControls``) and connect it with
    ``_connect_controls()``, and define ``validate() -> sequence | None`` (None: show the problem,
    keep Start disabled; nothing while a run owns the instruments). The controls' widgets are
    reachable on the panel (``panel.start_button``...).

    Signals:
        start_requested(sequence): the operator pressed Start with valid parameters.
        pause_requested(), resume_requested(), abort_requested()
    """

    start_requested = pyqtSignal(object)
    pause_requested = pyqtSignal()
    resume_requested = pyqtSignal()
    abort_requested = pyqtSignal()
    controls: RunControls
    inputs: tuple[QWidget, ...] = ()
    _running = False

    @property
    def message(self) -> QLabel:
        return self.controls.message

    @property
    def start_button(self) -> QPushButton:
        return self.controls.start_button

    @property
    def pause_button(self) -> QPushButton:
        return self.controls.pause_button

    @property
    def abort_button(self) -> QPushButton:
        return self.controls.abort_button

    @property
    def progress_bar(self) -> QProgressBar:
        return self.controls.progress_bar

    @property
    def progress_label(self) -> QLabel:
        return self.controls.progress_label

    def _watch_inputs(self, *widgets: QWidget) -> None:
        """The parameter widgets: a change re-validates, and ``set_running`` locks them during a run."""
        self.inputs = widgets
        for w in widgets:
            if isinstance(w, QLineEdit):
                w.textChanged.connect(self.validate)  # type: ignore[attr-defined]
            elif isinstance(w, QComboBox):
                w.currentTextChanged.connect(self.validate)  # type: ignore[attr-defined]
            else:  # spin boxes
                w.valueChanged.connect(self.validate)  # type: ignore[attr-defined]

    def set_running(self, running: bool) -> None:
        """Lock the parameters while a run owns the instruments; check them again when it ends."""
        self._running = running
        for w in self.inputs:
            w.setEnabled(not running)
        self.controls.set_running(running)
        self.validate()  # type: ignore[attr-defined]

    def _connect_controls(self) -> None:
        """Start validates and emits ``start_requested``; pause, resume and abort pass straight on."""
        c = self.controls
        c.start_clicked.connect(self._start)
        c.pause_requested.connect(self.pause_requested)
        c.resume_requested.connect(self.resume_requested)
        c.abort_requested.connect(self.abort_requested)

    def show_progress(self, progress: Any) -> None:
        self.controls.show_progress(progress)

    def show_outcome(self, status: str, reason: str) -> None:
        self.controls.show_outcome(status, reason)

    def _start(self) -> None:
        sequence = self.validate()  # type: ignore[attr-defined]
        if sequence is not None:
            self.start_requested.emit(sequence)
