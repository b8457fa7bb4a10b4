"""Widefield pulsed panel: Rabi, Ramsey, echo, CPMG (CP), XY8 (refused) and T1 maps on an intensity camera.

Built by the same service helpers as ``acquire pulsed`` on a camera (``instrument.services.
widefield_pulsed``), so the GUI and the command agree on defaults, the camera checks and refusals;
XY8 and phase-cycled CPMG show the hardware they need. The camera's limits are read once, while no
run owns it. A completed Rabi run's pixel-mean fit fills in the pi pulse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from instrument.gui.cw_panel import spin
from instrument.gui.pulsed_panel import load_sweep_defaults
from instrument.gui.run_controls import RunControls, format_duration
from instrument.gui.scan_panel import ScanPanel
from instrument.physics.constants import D_HZ
from instrument.protocols import IntensityCamera, SafetyLimitError
from instrument.services.errors import RequestError
from instrument.services.pulsed import lowest_line_hz
from instrument.services.widefield_pulsed import (
    CAMERA_KINDS,
    DEFAULT_BIN,
    DEFAULT_REPETITIONS,
    DEFAULT_SWEEPS,
    NEEDS_PI,
    WidefieldRequest,
    build_widefield,
    frame_period_s,
    widefield_sweep,
)
from sequences.pulsed import PiPulse

SWEEP_UNITS = {"t1": ("us", 1e6)}
DEFAULT_SWEEP_UNIT = ("ns", 1e9)


class _CameraFacts:
    """What the measurement checks need of the camera, read once (a run owns the camera later)."""

    def __init__(self, camera: Any) -> None:
        self.name = camera.name
        self.shape = tuple(camera.shape)
        self.constraints = camera.constraints
        self.resulting_frame_rate_hz = 1.0 / frame_period_s(camera)


def camera_role(station: Any) -> str | None:
    """The station's intensity camera role (the first), or None."""
    return next((r for r, inst in station.instruments.items() if isinstance(inst, IntensityCamera)), None)


class WidefieldPulsedPanel(ScanPanel):
    """Parameters and run controls of one widefield pulsed measurement; emits ``start_requested``."""

    def __init__(self, station: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        role = camera_role(station)
        if role is None:
            raise ValueError("the station has no intensity camera")
        self.role = role
        self.clock_hz = float(station["pulser"].clock_hz)
        self.camera = _CameraFacts(station[role])
        line_hz = lowest_line_hz(station.sample)
        self.kind = QComboBox()
        self.kind.addItems(CAMERA_KINDS)
        self.frequency = spin(1.0, 6000.0, (line_hz if line_hz is not None else D_HZ) / 1e6, 4, "MHz")
        self.power = spin(-120.0, 30.0, min(10.0, station.limits.mw_power_max_dbm), 1, "dBm")
        self.start = spin(0.0, 1e7, 0.0, 3, "ns")
        self.stop = spin(0.0, 1e7, 0.0, 3, "ns")
        self.points = QSpinBox()
        self.points.setRange(2, 10_000)
        self.repetitions = QSpinBox()
        self.repetitions.setRange(0, 1_048_575)
        self.pairs = QSpinBox()
        self.pairs.setRange(1, 64)
        self.pi_ns = spin(0.0, 1e6, 0.0, 1, "ns")
        self.detuning = spin(-100.0, 100.0, 5.0, 3, "MHz")
        self.n_pulses = QSpinBox()
        self.n_pulses.setRange(1, 256)
        self.n_pulses.setValue(8)
        self.phase_cycled = QCheckBox("phase-cycled (needs MW phase control)")
        self.bin = QSpinBox()
        self.bin.setRange(1, 512)
        self.bin.setValue(DEFAULT_BIN)
        form = QFormLayout()
        for label, widget in (("measurement", self.kind), ("MW frequency", self.frequency),
                              ("MW power", self.power), ("sweep start", self.start),
                              ("sweep stop", self.stop),
                              ("points", self.points), ("shots per frame", self.repetitions),
                              ("frame pairs per point", self.pairs), ("pi pulse", self.pi_ns),
                              ("Ramsey detuning", self.detuning), ("pi pulses / XY8 cycles", self.n_pulses),
                              ("CPMG", self.phase_cycled), ("map bin", self.bin)):
            form.addRow(label, widget)
        self.controls = RunControls()
        layout = QVBoxLayout(self)
        shape = self.camera.shape
        layout.addWidget(QLabel(f"<b>Widefield pulsed</b>: camera {role} ({shape[0]}x{shape[1]} px, one "
                                f"frame pair per point), pulse clock {self.clock_hz / 1e6:g} MHz"))
        layout.addLayout(form)
        layout.addWidget(self.controls)
        layout.addStretch(1)
        self.kind.currentTextChanged.connect(self._kind_changed)
        self.phase_cycled.toggled.connect(self.validate)
        self._watch_inputs(self.frequency, self.power, self.start, self.stop, self.points, self.repetitions,
                           self.pairs, self.pi_ns, self.detuning, self.n_pulses, self.bin)
        self._connect_controls()
        self._kind_changed(self.kind.currentText())

    @property
    def sweep_unit(self) -> tuple[str, float]:
        return SWEEP_UNITS.get(self.kind.currentText(), DEFAULT_SWEEP_UNIT)

    def _kind_changed(self, kind: str) -> None:
        """Load the kind's defaults (the same as the command's) into the widgets."""
        load_sweep_defaults(self, DEFAULT_SWEEPS[kind], DEFAULT_REPETITIONS[kind])
        self._enable(kind)
        self.validate()

    def _enable(self, kind: str) -> None:
        free = not self._running
        self.pi_ns.setEnabled(kind in NEEDS_PI and free)
        self.detuning.setEnabled(kind == "ramsey" and free)
        self.n_pulses.setEnabled(kind in ("cpmg", "xy8") and free)
        self.phase_cycled.setEnabled(kind == "cpmg" and free)

    def set_pi_pulse(self, pi_s: float) -> None:
        self.pi_ns.setValue(pi_s * 1e9)

    def build_measurement(self) -> Any:
        """The measurement the widgets describe, checked against the limits and the camera.

        Raises:
            ValueError, SafetyLimitError, RequestError: it cannot run; the message says why.
        """
        from sequences.widefield_pulsed import CameraTimingError

        kind = self.kind.currentText()
        _, scale = self.sweep_unit
        power = self.power.value()
        self.station.limits.check_mw_power(power)
        if kind in NEEDS_PI and self.pi_ns.value() <= 0:
            raise ValueError(f"{kind} needs the pi pulse: run a widefield Rabi first, or enter it in ns")
        if self.repetitions.value() < 1:
            raise ValueError("shots per frame must be at least 1")
        frequency = self.frequency.value() * 1e6
        values = widefield_sweep(kind, self.clock_hz, self.start.value() / scale, self.stop.value() / scale,
                                 self.points.value(), self.n_pulses.value())
        pi = None
        if kind in NEEDS_PI:
            pi = PiPulse(round(self.pi_ns.value() * 1e-9 * self.clock_hz) / self.clock_hz, frequency, power)
        request = WidefieldRequest(kind, frequency, power, values, self.repetitions.value(),
                                   self.pairs.value(), self.detuning.value() * 1e6, self.role,
                                   self.n_pulses.value(), self.phase_cycled.isChecked())
        measurement = build_widefield(request, self.camera, self.clock_hz, pi)
        measurement.check(self.station.limits)
        try:
            measurement.check_camera(self.camera.constraints, self.camera.shape,
                                     1.0 / self.camera.resulting_frame_rate_hz)
        except CameraTimingError as exc:
            raise ValueError(str(exc)) from exc
        return measurement

    def validate(self) -> Any:
        if self._running:
            return None
        try:
            measurement = self.build_measurement()
        except (ValueError, SafetyLimitError, RequestError) as exc:
            self.controls.show_problem(str(exc))
            return None
        sweep = np.asarray(measurement.sweep)
        f = measurement.frames
        self.controls.show_problem(None, f"{measurement.n_steps} points x {2 * f.pairs} frames of "
                                   f"{f.repetitions} shots, "
                                   f"{format_duration(measurement.estimated_duration_s)} "
                                   f"of pulse programs; sweep {sweep.min():.4g} .. {sweep.max():.4g} s")
        return measurement

    def set_running(self, running: bool) -> None:
        self.kind.setEnabled(not running)
        self.phase_cycled.setEnabled(not running and self.kind.currentText() == "cpmg")
        super().set_running(running)
        if not running:
            self._enable(self.kind.currentText())
