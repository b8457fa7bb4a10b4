"""Lock-in capture panel: the seed-000 temporal experiment (208 frame/s movie of coil waveforms).

The request is checked by the same ``plan_lockin`` as ``acquire lockin`` before Start is enabled:
capture length, modulation frequency and frame rate, the calibration centre the MW parks near,
MW power against the lab ceiling and the coil waveforms' peak currents against the coil limit.
A capture cannot pause (the camera runs free): "Stop" ends it early and keeps what was captured,
"Abort" ends it and marks the run aborted.
"""

from __future__ import annotations

import math
from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QFormLayout, QLabel, QLineEdit, QSpinBox, QVBoxLayout, QWidget

from instrument.gui.cw_panel import spin
from instrument.gui.lockin_view import CaptureStats
from instrument.gui.run_controls import RunControls, format_duration
from instrument.gui.scan_panel import ScanPanel, sweep_center_mhz
from instrument.protocols import SafetyLimitError
from instrument.services.lockin import ROLES, LockInPlan, LockInRequest, plan_lockin, stimulus_channel_names

LOCKIN_ROLES = ROLES
RAW_BYTES_PER_PIXEL = 4  # int16 I plus int16 Q
LIVE_FRAMES_PER_VOLUME = 8
"""The camera hands over whole volumes, and the movie can show only the newest frame of each: 8
frames a volume give 26 movie frames/s at 208 frames/s (``acquire lockin`` reads 1 s volumes)."""


class LockInPanel(ScanPanel):
    """Parameters and controls of a lock-in capture; emits ``start_requested(LockInPlan)``.

    Signals (besides ScanPanel's): stop_requested(): end the capture early, keep the run.
    """

    stop_requested = pyqtSignal()

    def __init__(self, station: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        # Read once, while no run owns the instruments.
        self.channel_names = stimulus_channel_names(station)
        self.image_shape = tuple(station["camera"].shape)
        self.seconds = spin(0.0, 36_000.0, 2.0, 2, "s")
        self.modulation = spin(1.0, 1e6, 6250.0, 1, "Hz")
        self.frame_rate = spin(0.1, 10_000.0, 208.0, 2, "frames/s")
        self.volume = QSpinBox()
        self.volume.setRange(1, 512)
        self.volume.setValue(LIVE_FRAMES_PER_VOLUME)
        self.volume.setToolTip("frames the camera hands over at once; the movie shows one per volume")
        self.center = spin(1.0, 6000.0, sweep_center_mhz(station), 4, "MHz")
        self.power = spin(-120.0, 30.0, min(5.0, station.limits.mw_power_max_dbm), 1, "dBm")
        self.coils = QLineEdit()
        self.coils.setPlaceholderText(f"all: {', '.join(self.channel_names)}")
        self.rate = spin(0.0, 1000.0, 2.0, 2, "/s per coil")
        form = QFormLayout()
        for label, widget in (("capture length", self.seconds), ("modulation frequency", self.modulation),
                              ("frame rate", self.frame_rate), ("frames per volume", self.volume),
                              ("MW parked near", self.center),
                              ("MW power", self.power), ("coils with waveforms", self.coils),
                              ("firing rate", self.rate)):
            form.addRow(label, widget)
        form.addRow("MW park", QLabel("steepest slope near it (calibration sweep)"))

        self.controls = RunControls(pausable=False)
        self.stop_button = self.controls.pause_button
        self.frames_label = QLabel("frames: --")
        layout = QVBoxLayout(self)
        title = QLabel("<b>Lock-in capture</b>: action-potential-like coil waveforms filmed at the "
                       "camera's frame rate (seed 000)")
        title.setWordWrap(True)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.controls)
        layout.addWidget(self.frames_label)
        layout.addStretch(1)

        self._watch_inputs(self.seconds, self.modulation, self.frame_rate, self.center, self.power,
                           self.coils, self.rate, self.volume)
        self._connect_controls()  # a capture has no pause: Stop instead
        self.controls.stop_requested.connect(self.stop_requested)
        self.validate()

    def request(self) -> LockInRequest:
        coils = tuple(s.strip() for s in self.coils.text().split(",") if s.strip())
        return LockInRequest(self.seconds.value(), self.power.value(), self.rate.value(), coils,
                             self.center.value() * 1e6, self.modulation.value(), self.frame_rate.value(),
                             self.volume.value())

    def build_plan(self) -> LockInPlan:
        """The checked capture (raises ValueError or SafetyLimitError naming the problem)."""
        return plan_lockin(self.station, self.request(), self.channel_names)

    def validate(self) -> LockInPlan | None:
        if self._running:
            return None
        try:
            plan = self.build_plan()
        except (ValueError, SafetyLimitError) as exc:
            self.controls.show_problem(str(exc))
            return None
        rows, cols = self.image_shape
        mb = plan.n_frames * rows * cols * RAW_BYTES_PER_PIXEL / 1e6
        spikes = sum(len(o) for o in plan.waveforms.onsets_s)
        movie_fps = plan.request.frame_rate_hz / plan.request.frames_per_volume
        self.controls.show_problem(None, f"{plan.n_frames} frames ({mb:.1f} MB raw before compression); "
                                   f"{spikes} spikes on {len(plan.request.coils) or len(self.channel_names)} "
                                   f"coil(s); the movie shows up to {movie_fps:.0f} frames/s")
        return plan

    def show_capture(self, s: CaptureStats) -> None:
        """Progress of the capture in frames, with the ETA at the measured capture rate."""
        self.progress_bar.setRange(0, max(1, s.n_frames))
        self.progress_bar.setValue(min(s.frames_acquired, s.n_frames))
        if s.phase == "calibrating":
            self.progress_label.setText(f"calibrating the slope, {format_duration(s.elapsed_s)}")
        else:
            eta = format_duration(s.eta_s) if math.isfinite(s.eta_s) else "--"
            self.progress_label.setText(f"{s.phase}: {s.frames_acquired}/{s.n_frames} frames, elapsed "
                                        f"{format_duration(s.elapsed_s)}, ETA {eta}")
        self.frames_label.setText(f"frames: {s.frames_acquired} captured, {s.frames_dropped} dropped; "
                                  f"capture {s.capture_fps:.0f} frames/s, display {s.display_fps:.0f}/s")
