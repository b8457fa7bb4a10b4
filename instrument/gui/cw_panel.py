"""CW-ODMR scan panel: sweep parameters checked against the lab limits before start, run controls,
progress with ETA."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from instrument.commands.common import UsageError
from instrument.commands.odmr import coil_currents
from instrument.protocols import SafetyLimitError
from sequences.cw_odmr import CwOdmrSweep
from sequences.engine import Progress


def _spin(lo: float, hi: float, value: float, decimals: int, suffix: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setSuffix(f" {suffix}")
    return box


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--"
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


class CwOdmrPanel(QWidget):
    """Parameters and controls of a CW-ODMR I-off/I-on sweep.

    The panel builds and checks the sweep (``build_sweep``); the main window runs it. The widgets
    take operator units (MHz, dBm, uA); the sweep gets SI units.

    Signals:
        start_requested(CwOdmrSweep): the operator pressed Start with a valid sweep.
        pause_requested(), resume_requested(), abort_requested()
    """

    start_requested = pyqtSignal(object)
    pause_requested = pyqtSignal()
    resume_requested = pyqtSignal()
    abort_requested = pyqtSignal()

    def __init__(self, station: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        world = station.world
        center_mhz = world.resonance_estimate_hz() / 1e6 if world is not None else 2870.0
        drive_ua = world.sample.drive_current_a * 1e6 if world is not None else 0.0
        mw_ceiling = station.limits.mw_power_max_dbm
        self.image_shape = tuple(station["camera"].shape)  # read once, while no run owns the camera
        self.center = _spin(1.0, 6000.0, center_mhz, 4, "MHz")
        self.span = _spin(0.01, 1000.0, 12.0, 3, "MHz")
        self.points = QSpinBox()
        self.points.setRange(2, 100_000)
        self.points.setValue(61)
        # The spin box allows more than the ceiling on purpose: the limit check explains the refusal.
        self.power = _spin(-120.0, 30.0, min(0.0, mw_ceiling), 1, "dBm")
        self.frames = QSpinBox()
        self.frames.setRange(0, 10_000)
        self.frames.setValue(4)
        self.coils = QLineEdit("L1C1")
        self.current = _spin(0.0, 1e5, drive_ua, 1, "uA")

        form = QFormLayout()
        form.addRow("sweep centre", self.center)
        form.addRow("sweep span", self.span)
        form.addRow("frequency points", self.points)
        form.addRow("MW power", self.power)
        form.addRow("frames per point", self.frames)
        form.addRow("coils (I-on)", self.coils)
        form.addRow("coil current", self.current)
        form.addRow("MW power ceiling", QLabel(f"{mw_ceiling:g} dBm (station limit)"))

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.abort_button = QPushButton("Abort")
        self.pause_button.setCheckable(True)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.abort_button):
            buttons.addWidget(b)
        self.progress_bar = QProgressBar()
        self.progress_label = QLabel("idle")
        self.progress_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>CW ODMR</b>: I-off then I-on sweep with the lock-in camera"))
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        layout.addStretch(1)

        for box in (self.center, self.span, self.power, self.current):
            box.valueChanged.connect(self.validate)
        for box in (self.points, self.frames):
            box.valueChanged.connect(self.validate)
        self.coils.textChanged.connect(self.validate)
        self.start_button.clicked.connect(self._start)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.abort_button.clicked.connect(self.abort_requested)
        self.set_running(False)

    # ---- parameters ------------------------------------------------------------------------------

    def build_sweep(self) -> CwOdmrSweep:
        """The sweep the widgets describe, checked against the station's safety limits.

        Raises:
            ValueError: the sweep cannot run (too few points, unknown coil, ...); the message says why.
            SafetyLimitError: a setting exceeds a lab limit.
        """
        center_hz = self.center.value() * 1e6
        span_hz = self.span.value() * 1e6
        freqs = center_hz + np.linspace(-span_hz / 2, span_hz / 2, self.points.value())
        try:
            currents = coil_currents(self.station, self.coils.text(), self.current.value() * 1e-6)
        except UsageError as exc:
            raise ValueError(str(exc).replace("--current-a", "the coil current")) from exc
        sweep = CwOdmrSweep(freqs, self.power.value(), currents,
                            image_shape=self.image_shape,
                            frames_per_point=self.frames.value())
        sweep.check(self.station.limits)
        return sweep

    def validate(self) -> CwOdmrSweep | None:
        """Check the parameters now; show the problem and disable Start if there is one.

        Not while a run owns the instruments: the parameters are locked then anyway.
        """
        if self._running:
            return None
        try:
            sweep = self.build_sweep()
        except (ValueError, SafetyLimitError) as exc:
            self.message.setText(f"Cannot start: {exc}")
            self.message.setStyleSheet("color:#c62828;")
            self.start_button.setEnabled(False)
            return None
        self.message.setText(f"{sweep.n_steps} steps, at least {format_duration(sweep.estimated_duration_s)} "
                             "of camera time")
        self.message.setStyleSheet("")
        self.start_button.setEnabled(True)
        return sweep

    # ---- run state -------------------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        self._running = running
        for w in (self.center, self.span, self.points, self.power, self.frames, self.coils, self.current):
            w.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.abort_button.setEnabled(running)
        if not running:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)
        self.start_button.setEnabled(False)
        self.validate()

    def show_progress(self, progress: Progress) -> None:
        self.progress_bar.setRange(0, progress.total)
        self.progress_bar.setValue(progress.done)
        self.progress_label.setText(
            f"{progress.done}/{progress.total} steps  {progress.label}  "
            f"elapsed {format_duration(progress.elapsed_s)}, ETA {format_duration(progress.eta_s)}"
        )

    def show_outcome(self, status: str, reason: str) -> None:
        self.progress_label.setText(f"run {status}" + (f": {reason}" if reason else ""))

    def _start(self) -> None:
        sweep = self.validate()
        if sweep is not None:
            self.start_requested.emit(sweep)

    def _pause_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        (self.pause_requested if paused else self.resume_requested).emit()
