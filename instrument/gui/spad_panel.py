"""SPAD scan panel: CW ODMR read by the 16x16 SPAD array (seed 003), parameters checked before start."""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtWidgets import QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from instrument.gui.cw_panel import spin
from instrument.gui.run_controls import RunControls
from instrument.gui.scan_panel import ScanPanel, sweep_center_mhz
from instrument.protocols import SafetyLimitError
from sequences.spad_odmr import SpadOdmrSweep

SPAD_ROLE = "spad"


class SpadOdmrPanel(ScanPanel):
    """CW-ODMR sweep of the SPAD array; emits ``start_requested(SpadOdmrSweep)``."""


    def __init__(self, station: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.shape = tuple(station[SPAD_ROLE].shape)  # read once, while no run owns the array
        self.center = spin(1.0, 6000.0, sweep_center_mhz(station), 4, "MHz")
        self.span = spin(0.01, 1000.0, 12.0, 3, "MHz")
        self.points = QSpinBox()
        self.points.setRange(2, 100_000)
        self.points.setValue(41)
        self.power = spin(-120.0, 30.0, 0.0, 1, "dBm")
        self.frames = QSpinBox()
        self.frames.setRange(0, 1_000_000)
        self.frames.setValue(200)
        form = QFormLayout()
        for label, widget in (("sweep centre", self.center), ("sweep span", self.span),
                              ("frequency points", self.points), ("MW power", self.power),
                              ("SPAD frames per point", self.frames)):
            form.addRow(label, widget)
        self.controls = RunControls()
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>SPAD ODMR</b>: CW sweep counted by the {self.shape[0]}x{self.shape[1]} "
                                "SPAD array"))
        layout.addLayout(form)
        layout.addWidget(self.controls)
        layout.addStretch(1)
        self._watch_inputs(self.center, self.span, self.points, self.power, self.frames)
        self._connect_controls()
        self.validate()

    def build_sweep(self) -> SpadOdmrSweep:
        """The sweep the widgets describe, checked against the station's limits (raises if not)."""
        span_hz = self.span.value() * 1e6
        freqs = self.center.value() * 1e6 + np.linspace(-span_hz / 2, span_hz / 2, self.points.value())
        sweep = SpadOdmrSweep(freqs, self.power.value(), frames_per_point=self.frames.value(),
                              image_shape=self.shape)
        sweep.check(self.station.limits)
        return sweep

    def validate(self) -> SpadOdmrSweep | None:
        if self._running:
            return None
        try:
            sweep = self.build_sweep()
        except (ValueError, SafetyLimitError) as exc:
            self.controls.show_problem(str(exc).replace("raise --points", "raise the points")
                                       .replace("--center-hz/--span-hz", "the sweep centre and span"))
            return None
        self.controls.show_problem(None, f"{sweep.n_steps} steps of {sweep.frames_per_point} SPAD frames")
        return sweep

