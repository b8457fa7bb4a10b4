"""Pulsed scan panel: Rabi, Ramsey, Hahn echo, T1 and pulsed ODMR on the gated photon counter.

The sweep values and the measurement are built by the same helpers as ``acquire pulsed``, so the GUI
and the command agree on defaults, clock-grid rounding and refusals. Ramsey, echo and pulsed ODMR
need the pi pulse: the panel takes it in ns (a completed Rabi run in the GUI fills it in).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from instrument.gui.cw_panel import spin
from instrument.gui.run_controls import RunControls, format_duration
from instrument.gui.scan_panel import ScanPanel
from instrument.physics.constants import D_HZ
from instrument.protocols import SafetyLimitError
from instrument.services.pulsed import (
    DEFAULT_REPETITIONS,
    DEFAULT_SWEEPS,
    KINDS,
    NEEDS_PI,
    PulsedRequest,
    build_pulsed,
    lowest_line_hz,
    pulsed_sweep,
)
from sequences.pulsed import PiPulse

COUNTER_ROLE = "counter"
# Sweep widgets in operator units: (unit, scale from SI) per kind; pulsed ODMR sweeps a frequency offset.
SWEEP_UNITS = {"odmr": ("MHz", 1e-6), "t1": ("us", 1e6)}
DEFAULT_SWEEP_UNIT = ("ns", 1e9)


def load_sweep_defaults(panel: Any, sweep: tuple[float, float, int], repetitions: int) -> None:
    """Put a kind's default sweep (start, stop in s or Hz; points) and repetitions into ``panel``'s
    ``start``/``stop``/``points``/``repetitions`` boxes, in ``panel.sweep_unit``, without firing their
    change signals (the caller validates once). Shared by the pulsed and widefield pulsed panels."""
    unit, scale = panel.sweep_unit
    start, stop, points = sweep
    for box, value in ((panel.start, start), (panel.stop, stop)):
        box.blockSignals(True)
        box.setSuffix(f" {unit}")
        box.setValue(value * scale)
        box.blockSignals(False)
    for box, count in ((panel.points, points), (panel.repetitions, repetitions)):
        box.blockSignals(True)
        box.setValue(int(count))
        box.blockSignals(False)


class PulsedPanel(ScanPanel):
    """Parameters and run controls of one pulsed measurement; emits ``start_requested(measurement)``."""


    def __init__(self, station: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        # Read once, while no run owns the instruments.
        self.clock_hz = float(station["pulser"].clock_hz)
        self.shape = tuple(station[COUNTER_ROLE].shape)
        line_hz = lowest_line_hz(station.sample)
        line_mhz = (line_hz if line_hz is not None else D_HZ) / 1e6
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.frequency = spin(1.0, 6000.0, line_mhz, 4, "MHz")
        self.power = spin(-120.0, 30.0, min(10.0, station.limits.mw_power_max_dbm), 1, "dBm")
        self.start = spin(-1e6, 1e6, 0.0, 3, "ns")
        self.stop = spin(-1e6, 1e6, 0.0, 3, "ns")
        self.points = QSpinBox()
        self.points.setRange(2, 100_000)
        self.repetitions = QSpinBox()
        self.repetitions.setRange(0, 2_000_000)
        self.pi_ns = spin(0.0, 1e6, 0.0, 1, "ns")
        self.detuning = spin(-100.0, 100.0, 5.0, 3, "MHz")
        form = QFormLayout()
        for label, widget in (("measurement", self.kind), ("MW frequency", self.frequency),
                              ("MW power", self.power), ("sweep start", self.start),
                              ("sweep stop", self.stop),
                              ("points", self.points), ("shots per point", self.repetitions),
                              ("pi pulse", self.pi_ns), ("Ramsey detuning", self.detuning)):
            form.addRow(label, widget)
        self.controls = RunControls()
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>Pulsed</b>: gated photon counter ({self.shape[0]}x{self.shape[1]} px), "
                                f"pulse clock {self.clock_hz / 1e6:g} MHz"))
        layout.addLayout(form)
        layout.addWidget(self.controls)
        layout.addStretch(1)

        self.kind.currentTextChanged.connect(self._kind_changed)
        self._watch_inputs(self.frequency, self.power, self.start, self.stop, self.points, self.repetitions,
                           self.pi_ns, self.detuning)
        self._connect_controls()
        self._kind_changed(self.kind.currentText())

    @property
    def sweep_unit(self) -> tuple[str, float]:
        return SWEEP_UNITS.get(self.kind.currentText(), DEFAULT_SWEEP_UNIT)

    def _kind_changed(self, kind: str) -> None:
        """Load the kind's defaults (the same as ``acquire pulsed``) into the widgets."""
        load_sweep_defaults(self, DEFAULT_SWEEPS[kind], DEFAULT_REPETITIONS[kind])
        self.pi_ns.setEnabled(kind in NEEDS_PI and not self._running)
        self.detuning.setEnabled(kind == "ramsey" and not self._running)
        self.power.setValue(0.0 if kind == "odmr" else min(10.0, self.station.limits.mw_power_max_dbm))
        self.validate()

    def set_pi_pulse(self, pi_s: float) -> None:
        """Use a calibrated pi pulse (from a Rabi fit) for the next Ramsey, echo or pulsed ODMR."""
        self.pi_ns.setValue(pi_s * 1e9)

    def build_measurement(self) -> Any:
        """The measurement the widgets describe, checked against the station's limits.

        Raises:
            ValueError: the measurement cannot run; the message says why.
            SafetyLimitError: a setting exceeds a lab limit.
        """
        kind = self.kind.currentText()
        unit, scale = self.sweep_unit
        power = self.power.value()
        self.station.limits.check_mw_power(power)
        if kind in NEEDS_PI and self.pi_ns.value() <= 0:
            raise ValueError(f"{kind} needs the pi pulse: run a Rabi measurement first, or enter it in ns")
        if self.repetitions.value() < 1:
            raise ValueError("shots per point must be at least 1")
        frequency = self.frequency.value() * 1e6
        values = pulsed_sweep(kind, self.clock_hz, self.start.value() / scale, self.stop.value() / scale,
                              self.points.value())
        pi = None
        if kind in NEEDS_PI:
            pi = PiPulse(round(self.pi_ns.value() * 1e-9 * self.clock_hz) / self.clock_hz, frequency, power)
        request = PulsedRequest(kind, frequency, power, values, self.repetitions.value(),
                                self.detuning.value() * 1e6, COUNTER_ROLE)
        measurement = build_pulsed(request, self.shape, self.clock_hz, pi)
        measurement.check(self.station.limits)
        return measurement

    def validate(self) -> Any:
        """Check the parameters now (not while a run owns the instruments); show any problem."""
        if self._running:
            return None
        try:
            measurement = self.build_measurement()
        except (ValueError, SafetyLimitError) as exc:
            self.controls.show_problem(str(exc))
            return None
        sweep = np.asarray(measurement.sweep)
        self.controls.show_problem(None, f"{measurement.n_steps} points x {measurement.timing.repetitions} "
                                   f"shots, {format_duration(measurement.estimated_duration_s)} of pulse "
                                   f"programs; sweep {sweep.min():.4g} .. {sweep.max():.4g} "
                                   f"{measurement.sweep_unit}")
        return measurement

    def set_running(self, running: bool) -> None:
        self.kind.setEnabled(not running)  # not an input of _watch_inputs: a new kind loads its defaults
        super().set_running(running)
        if not running:
            kind = self.kind.currentText()
            self.pi_ns.setEnabled(kind in NEEDS_PI)
            self.detuning.setEnabled(kind == "ramsey")

