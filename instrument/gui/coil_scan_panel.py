"""Coil-scan panel: combinatorial on/off configurations of N coils, each a CW-ODMR field map.

The scan is built by the same ``build_coil_scan`` as ``acquire coil-scan`` and stored in its own
folder with its ledger, so it is crash-safe and resumable the same way: Start on a folder that holds
an unfinished scan with the same settings resumes it. Each configuration is one engine run;
``ScanControl`` forwards pause and abort to whichever configuration's engine is running and adds the
main window's live sinks to it. Abort stops the configuration in flight; the scan stays resumable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from instrument.gui.cw_panel import spin
from instrument.gui.run_controls import RunControls, format_duration
from instrument.gui.scan_panel import ScanPanel, sweep_center_mhz
from instrument.gui.worker import BackgroundTask
from instrument.protocols import SafetyLimitError
from instrument.services.coil_scan import COIL_SCAN_ROLES  # noqa: F401 - every configuration is a CW sweep
from sequences.engine import Progress
from sequences.scan_health import HEALTH_ACTIONS, HealthLimits

SCAN_FOLDER = "coil-scan"
MIN_POINTS = 5


class ScanControl:
    """Pause, resume and abort for a scan whose engines come and go (one per configuration).

    ``attach`` is the measurement's ``on_engine`` hook (worker thread); the GUI thread calls the
    rest. A request made between two configurations applies to the next one as soon as it exists.
    """

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks
        self._lock = threading.Lock()
        self._engine: Any = None
        self.info: dict[str, Any] = {}  # the configuration in flight (position, label, total)
        self._paused = False
        self._aborted = False

    def attach(self, engine: Any) -> None:
        engine.sinks.extend(self.sinks)
        with self._lock:
            self._engine = engine
            self.info = dict(engine.metadata.get("coil_scan") or {})
            paused, aborted = self._paused, self._aborted
        if paused:
            engine.pause()
        if aborted:
            engine.abort()

    def pause(self) -> None:
        with self._lock:
            self._paused, engine = True, self._engine
        if engine is not None:
            engine.pause()

    def resume(self) -> None:
        with self._lock:
            self._paused, engine = False, self._engine
        if engine is not None:
            engine.resume()

    def abort(self) -> None:
        with self._lock:
            self._aborted, engine = True, self._engine
        if engine is not None:
            engine.abort()

    @property
    def paused(self) -> bool:
        return self._paused


@dataclass(frozen=True)
class ConfigStep:
    """Engine progress of the configuration in flight."""

    info: dict[str, Any]
    progress: Progress


@dataclass(frozen=True)
class ConfigDone:
    """One configuration finished, with its field map when it was measured and analysed."""

    progress: Any  # sequences.coil_scan.ScanProgress
    run_id: int | None
    b_nv_t: np.ndarray | None


@dataclass(frozen=True)
class CoilScanResult:
    outcome: Any  # sequences.coil_scan.ScanOutcome
    out_dir: Path
    results_path: Path
    last_run_id: int | None


def finished_config(out_dir: Path, progress: Any) -> ConfigDone:
    """The run and B_NV map of the configuration ``progress`` reports (read from the ledger)."""
    import h5py

    from instrument.analysis.cw_run import ANALYSIS_NAME
    from instrument.storage.runs import run_folder
    from instrument.storage.scan_ledger import read_ledger

    row = next((r for r in read_ledger(out_dir) if r.position == progress.position), None)
    run_id = row.run_id if row is not None else None
    image = None
    if run_id is not None and progress.status == "done":
        path = run_folder(out_dir, run_id) / ANALYSIS_NAME
        if path.exists():
            with h5py.File(path, "r") as f:
                image = f["b_nv_t"][...]
    return ConfigDone(progress, run_id, image)


class CoilScanRunner(BackgroundTask):
    """Runs a coil scan in a worker thread.

    Signals:
        step(ConfigStep): engine progress of the configuration in flight.
        config_done(ConfigDone): after each configuration, with its field map.
        done(CoilScanResult), failed(Exception)
    """

    step = pyqtSignal(object)
    config_done = pyqtSignal(object)

    def __init__(self, scan: Any, control: ScanControl, parent: QObject | None = None) -> None:
        self.scan = scan
        self.control = control
        super().__init__(self._run, parent)
        out = scan.measurement.out_dir
        scan.measurement.on_engine = control.attach
        # A signal emitted from the worker thread is queued to the GUI thread.
        scan.measurement.on_step = lambda p: self.step.emit(ConfigStep(control.info, p))
        scan.on_config = lambda p: self.config_done.emit(finished_config(out, p))

    def _run(self) -> CoilScanResult:
        from instrument.storage.scan_results import export_results

        scan = self.scan
        ledger = scan.open_ledger()
        try:
            outcome = scan.run(ledger)
            runs = [r.run_id for r in ledger.rows() if r.run_id is not None]
        finally:
            ledger.close()
        out = scan.measurement.out_dir
        return CoilScanResult(outcome, out, export_results(out, scan.scanned_names), max(runs, default=None))

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def abort(self) -> None:
        self.control.abort()

    @property
    def paused(self) -> bool:
        return self.control.paused


class CoilScanPanel(ScanPanel):
    """Parameters and controls of a coil scan; emits ``start_requested(CoilScan)``."""

    def __init__(self, station: Any, out_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        drive_a = station.sample.drive_current_a
        drive_ua = drive_a * 1e6 if drive_a is not None else 0.0
        self.folder = QLineEdit(str(Path(out_dir) / SCAN_FOLDER))
        self.coils = QLineEdit("2")
        self.coils.setToolTip("the first N coils, or names such as L1C1,L1C2")
        self.configs = QLineEdit()
        self.configs.setPlaceholderText("all 2^N; or e.g. L1C1+L1C2,L1C1,off")
        self.current = spin(0.0, 1e5, drive_ua, 1, "uA")
        self.center = spin(1.0, 6000.0, sweep_center_mhz(station), 4, "MHz")
        self.span = spin(0.01, 1000.0, 12.0, 3, "MHz")
        self.points = QSpinBox()
        self.points.setRange(2, 100_000)
        self.points.setValue(31)
        self.power = spin(-120.0, 30.0, min(0.0, station.limits.mw_power_max_dbm), 1, "dBm")
        self.frames = QSpinBox()
        self.frames.setRange(0, 10_000)
        self.frames.setValue(4)
        self.health_action = QComboBox()
        self.health_action.addItems(HEALTH_ACTIONS)
        defaults = HealthLimits()
        self.contrast_drift = spin(0.1, 1000.0, defaults.contrast_drift * 100, 1, "%")
        self.rate_drift = spin(0.1, 1000.0, defaults.count_rate_drift * 100, 1, "%")
        self.bias_drift = spin(0.01, 1000.0, defaults.bias_drift_t * 1e6, 2, "uT")
        form = QFormLayout()
        for label, widget in (("scan folder", self.folder), ("coils", self.coils),
                              ("configurations", self.configs), ("coil current", self.current),
                              ("sweep centre", self.center), ("sweep span", self.span),
                              ("frequency points", self.points), ("MW power", self.power),
                              ("frames per point", self.frames), ("on health drift", self.health_action),
                              ("allowed contrast drift", self.contrast_drift),
                              ("allowed count-rate drift", self.rate_drift),
                              ("allowed bias drift", self.bias_drift)):
            form.addRow(label, widget)

        self.controls = RunControls()
        self.scan_label = QLabel("configurations: --")
        self.scan_label.setWordWrap(True)
        self.warnings = QPlainTextEdit()
        self.warnings.setReadOnly(True)
        self.warnings.setMaximumHeight(90)
        self.warnings.setPlaceholderText("health-check and open-coil warnings appear here")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Coil scan</b>: every on/off configuration of N coils, each a CW-ODMR "
                                "I-off/I-on field map; resumable"))
        layout.addLayout(form)
        layout.addWidget(self.controls)
        layout.addWidget(self.scan_label)
        layout.addWidget(self.warnings)
        layout.addStretch(1)

        self._watch_inputs(self.folder, self.coils, self.configs, self.current, self.center, self.span,
                           self.points, self.power, self.frames, self.health_action, self.contrast_drift,
                           self.rate_drift, self.bias_drift)
        self._connect_controls()
        self.validate()

    # ---- parameters ------------------------------------------------------------------------------

    def build_scan(self) -> Any:
        """The scan the widgets describe, checked against the safety limits.

        The runs' metadata (station snapshot) is left empty here, so a keystroke never queries an
        instrument; the main window fills ``scan.measurement.metadata`` when it starts the scan.

        Raises:
            ValueError: the scan cannot run; the message says why.
            SafetyLimitError: a configuration exceeds a lab limit.
        """
        from instrument.services.coil_scan import build_coil_scan

        if self.points.value() < MIN_POINTS:
            raise ValueError(f"a field map needs at least {MIN_POINTS} frequency points, "
                             f"got {self.points.value()}")
        if not self.folder.text().strip():
            raise ValueError("give the scan folder (the same folder resumes a scan)")
        span_hz = self.span.value() * 1e6
        freqs = self.center.value() * 1e6 + np.linspace(-span_hz / 2, span_hz / 2, self.points.value())
        health = HealthLimits(self.contrast_drift.value() / 100, self.rate_drift.value() / 100,
                              self.bias_drift.value() * 1e-6, self.health_action.currentText())
        scan = build_coil_scan(self.station, Path(self.folder.text().strip()), self.coils.text(),
                               self.configs.text().strip() or None, self.current.value() * 1e-6, freqs,
                               self.power.value(), self.frames.value(), health, {})
        if self.frames.value() < 1:
            raise ValueError("frames per point must be at least 1")
        scan.check()
        return scan

    def validate(self) -> Any:
        if self._running:
            return None
        try:
            scan = self.build_scan()
            summary = self._summary(scan)
        except (ValueError, SafetyLimitError) as exc:
            self.controls.show_problem(str(exc))
            return None
        self.controls.show_problem(None, summary)
        return scan

    def _summary(self, scan: Any) -> str:
        from instrument.storage.scan_ledger import LEDGER_NAME, read_ledger

        n = len(scan.masks)
        text = f"{n} configurations of {', '.join(scan.scanned_names)}, each a CW-ODMR I-off/I-on map"
        folder = scan.measurement.out_dir
        if (folder / LEDGER_NAME).exists():
            rows = read_ledger(folder)
            if [r.mask for r in rows] != list(scan.masks):
                raise ValueError(f"the scan folder {folder} holds another scan ({len(rows)} configurations); "
                                 "choose another folder, or that scan's settings to resume it")
            done = sum(r.status in ("done", "open_coil") for r in rows)
            text += f"; the folder holds this scan with {done} of {n} finished: Start resumes it"
        return text

    # ---- run state -------------------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        if running:
            self.warnings.clear()
        super().set_running(running)

    def show_progress(self, step: ConfigStep | Progress) -> None:
        """Engine progress of the configuration in flight, with that configuration's ETA."""
        info, progress = (step.info, step.progress) if isinstance(step, ConfigStep) else ({}, step)
        self.controls.progress_bar.setRange(0, progress.total)
        self.controls.progress_bar.setValue(progress.done)
        where = (f"configuration {info['position'] + 1}/{info['total']} ({info['label']})" if info
                 else "configuration")
        self.controls.progress_label.setText(
            f"{where}: step {progress.done}/{progress.total}, ETA of this configuration "
            f"{format_duration(progress.eta_s)}")

    def show_config(self, done: ConfigDone) -> None:
        """A configuration finished: the scan's count and ETA, and any health or open-coil warning."""
        p = done.progress
        self.scan_label.setText(f"configurations: {p.finished}/{p.total} finished; last #{p.position} "
                                f"{p.label} ({p.status}); scan ETA {format_duration(p.eta_s)}")
        for message in p.messages:
            self.warnings.appendPlainText(f"#{p.position} {p.label}: {message}")
