"""CW-ODMR scan panel: sweep parameters checked against the lab limits before start, run controls,
progress with ETA."""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from instrument.gui.run_controls import RunControls, format_duration
from instrument.gui.scan_panel import ScanPanel, sweep_center_mhz
from instrument.protocols import IntensityCamera, SafetyLimitError
from instrument.services.cw import CwOdmrRequest, build_cw_sweep
from sequences.cw_odmr import CwOdmrSweep
from sequences.mw_stepping import STEPPING_MODES
from sequences.sweep_order import ORDERS


def spin(lo: float, hi: float, value: float, decimals: int, suffix: str) -> QDoubleSpinBox:
    """A spin box in operator units; the range is the widget's, the lab limits are checked apart."""
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setSuffix(f" {suffix}")
    return box


class CwOdmrPanel(ScanPanel):
    """Parameters and controls of a CW-ODMR I-off/I-on sweep.

    The panel builds and checks the sweep (``build_sweep``); the main window runs it. The widgets
    take operator units (MHz, dBm, uA); the sweep gets SI units.

    With an intensity camera (a Basler) the sweep measures MW-on/MW-off frame pairs
    (``CameraCwSweep``) and the panel adds the frames' exposure and spacing.

    Signals:
        start_requested(CwOdmrSweep | CameraCwSweep): the operator pressed Start with a valid sweep.
        pause_requested(), resume_requested(), abort_requested()
    """


    def __init__(self, station: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        drive_a = station.sample.drive_current_a
        drive_ua = drive_a * 1e6 if drive_a is not None else 0.0
        mw_ceiling = station.limits.mw_power_max_dbm
        camera = station["camera"]
        self.image_shape = tuple(camera.shape)  # read once, while no run owns the camera
        self.intensity_camera = isinstance(camera, IntensityCamera)
        self.center = spin(1.0, 6000.0, sweep_center_mhz(station), 4, "MHz")
        self.span = spin(0.01, 1000.0, 12.0, 3, "MHz")
        self.points = QSpinBox()
        self.points.setRange(2, 100_000)
        self.points.setValue(61)
        # The spin box allows more than the ceiling on purpose: the limit check explains the refusal.
        self.power = spin(-120.0, 30.0, min(0.0, mw_ceiling), 1, "dBm")
        self.frames = QSpinBox()
        self.frames.setRange(0, 10_000)
        self.frames.setValue(4)
        self.coils = QLineEdit("L1C1")
        self.current = spin(0.0, 1e5, drive_ua, 1, "uA")
        self.stepping = QComboBox()
        self.stepping.addItems(STEPPING_MODES)
        self.stepping.setToolTip("auto: the PulseBlaster steps the source's frequency list where the station "
                                 "allows it, else one frequency command per point; list/software: insist")
        self.repeats = QSpinBox()
        self.repeats.setRange(0, 100_000)  # 0 is allowed on purpose: the sweep's check explains the refusal
        self.repeats.setValue(1)
        self.order = QComboBox()
        self.order.addItems(ORDERS)
        self.order.setToolTip("sequential: every pass up in frequency; random: a seeded permutation per "
                              "pass; interleaved: passes alternate up and down. Random and interleaved also "
                              "alternate I-off/I-on from sweep to sweep, so drift averages out over repeats")
        self.max_runtime = spin(0.0, 1e4, 0.0, 2, "h")
        self.max_runtime.setSpecialValueText("no limit")  # 0 h: no limit

        form = QFormLayout()
        form.addRow("sweep centre", self.center)
        form.addRow("sweep span", self.span)
        form.addRow("frequency points", self.points)
        form.addRow("MW power", self.power)
        form.addRow("frames per point", self.frames)
        form.addRow("coils (I-on)", self.coils)
        form.addRow("coil current", self.current)
        form.addRow("MW stepping", self.stepping)
        # Intensity camera only: the frames the pulse program gates (defaults: CameraCwSweep's).
        self.exposure = spin(0.001, 10_000.0, 10.0, 3, "ms")
        self.frame_period = spin(0.001, 10_000.0, 12.0, 3, "ms")
        if self.intensity_camera:
            self.frames.setToolTip("MW-on/MW-off frame pairs averaged per frequency")
            form.addRow("exposure", self.exposure)
            form.addRow("frame period", self.frame_period)
        form.addRow("repeats", self.repeats)
        form.addRow("frequency order", self.order)
        form.addRow("max runtime", self.max_runtime)
        form.addRow("MW power ceiling", QLabel(f"{mw_ceiling:g} dBm (station limit)"))

        self.controls = RunControls()

        layout = QVBoxLayout(self)
        kind = "intensity camera (MW-on/MW-off frame pairs)" if self.intensity_camera else "lock-in camera"
        layout.addWidget(QLabel(f"<b>CW ODMR</b>: I-off then I-on sweep with the {kind}"))
        layout.addLayout(form)
        layout.addWidget(self.controls)
        layout.addStretch(1)

        self._watch_inputs(self.center, self.span, self.points, self.power, self.frames, self.coils,
                           self.current, self.stepping, self.exposure, self.frame_period, self.repeats,
                           self.order, self.max_runtime)
        self._connect_controls()
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
        exposure_s, frame_period_s = ((self.exposure.value() * 1e-3, self.frame_period.value() * 1e-3)
                                      if self.intensity_camera else (None, None))
        runtime_h = self.max_runtime.value()
        request = CwOdmrRequest(freqs, self.power.value(), self.coils.text(), self.current.value() * 1e-6,
                                self.frames.value(), self.stepping.currentText(), exposure_s=exposure_s,
                                frame_period_s=frame_period_s, repeats=self.repeats.value(),
                                order=self.order.currentText(),
                                max_runtime_s=runtime_h * 3600 if runtime_h > 0 else None)
        return build_cw_sweep(self.station, request)

    def validate(self) -> CwOdmrSweep | None:
        """Check the parameters now; show the problem and disable Start if there is one.

        Not while a run owns the instruments: the parameters are locked then anyway.
        """
        if self._running:
            return None
        try:
            sweep = self.build_sweep()
        except (ValueError, SafetyLimitError) as exc:
            self.controls.show_problem(str(exc))
            return None
        sweeps = f" ({sweep.planned_sweeps} sweeps)" if sweep.planned_sweeps > 1 else ""
        self.controls.show_problem(None, f"{sweep.n_steps} steps{sweeps}, at least "
                                   f"{format_duration(sweep.estimated_duration_s)} of camera time")
        return sweep

