"""The operator's main window: station and scan panels, live image and spectra, run browser.

While a run is going the engine runs in a worker thread and owns the instruments. The window reads
the engine's ``LiveSink`` on a QTimer: if several steps arrived since the last repaint only the newest
is drawn (stale frames are dropped, never queued), so a slow repaint can never hold up acquisition.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from instrument.analysis.cw_run import CwFieldMap, fitted_curve
from instrument.gui.capture_controller import CaptureController
from instrument.gui.coil_scan_controller import CoilScanController
from instrument.gui.coil_scan_panel import (
    CoilScanPanel,
    CoilScanResult,
    ConfigDone,
)
from instrument.gui.cw_panel import CwOdmrPanel
from instrument.gui.live_data import IMAGE_LABELS, IMAGE_NAME, SweepCube, pixel_size_of, stored_run_view
from instrument.gui.live_pane import LIVE_FRAME, LivePane
from instrument.gui.live_views import REFRESH_INTERVAL_MS, next_refresh_ms
from instrument.gui.lockin_panel import LockInPanel
from instrument.gui.lockin_view import LockInMovieView
from instrument.gui.pulsed_panel import PulsedPanel
from instrument.gui.queue_view import QueueView
from instrument.gui.reconstruction_view import ReconstructionView
from instrument.gui.run_browser import RunBrowser
from instrument.gui.run_controller import RunController
from instrument.gui.spad_panel import SpadOdmrPanel
from instrument.gui.station_panel import StationPanel
from instrument.gui.stored_run_controller import StoredRunController
from instrument.gui.widefield_panel import WidefieldPulsedPanel
from instrument.gui.wording import gui_words
from instrument.services.capabilities import missing
from instrument.services.runs import run_metadata
from instrument.storage.runs import StoredRun
from sequences.engine import LiveSink, Progress, RunOutcome, Sink

SCAN_MAP = "latest field map of the coil scan"
FIT_VIEWS = {
    "fitted resonance, I-off": ("center_off_hz", "MHz", 1e-6, "viridis"),
    "fitted resonance, I-on": ("center_on_hz", "MHz", 1e-6, "viridis"),
    "B_NV of the coils": ("b_nv_t", "uT", 1e6, "diverging"),
}


class MainWindow(QMainWindow):
    """The application window for one station and one output directory."""

    def __init__(self, station: Any, out_dir: Path, queue_dir: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.out_dir = Path(out_dir)
        self.setWindowTitle(f"QDM acquire: {station.name}" + ("  [SIMULATED]" if station.simulated else ""))
        controls = self._build_panels(station)
        views = self._build_views(station.snapshot(), queue_dir)
        self._lay_out(controls, views)
        self._make_jobs(station)
        self._wire()
        self.statusBar().showMessage("simulated station" if station.simulated else "ready")
        self.resize(1400, 820)

    def _build_panels(self, station: Any) -> QTabWidget:
        """One scan panel per measurement the station has the instruments (roles and capabilities) for."""
        controls = QTabWidget()
        self.station_panel = StationPanel(station)
        self.lacks = missing(station)
        can = {kind for kind, problems in self.lacks.items() if not problems}
        self.cw_panel: CwOdmrPanel | None = CwOdmrPanel(station) if "cw_odmr" in can else None
        self.pulsed_panel: PulsedPanel | None = PulsedPanel(station) if "pulsed" in can else None
        self.widefield_panel: WidefieldPulsedPanel | None = (WidefieldPulsedPanel(station)
                                                             if "widefield_pulsed" in can else None)
        self.spad_panel: SpadOdmrPanel | None = SpadOdmrPanel(station) if "spad_odmr" in can else None
        self.lockin_panel: LockInPanel | None = LockInPanel(station) if "lockin" in can else None
        self.coil_scan_panel: CoilScanPanel | None = (CoilScanPanel(station, self.out_dir)
                                                      if "coil_scan" in can else None)
        for panel, title in ((self.cw_panel, "CW ODMR"), (self.pulsed_panel, "Pulsed"),
                             (self.widefield_panel, "Widefield pulsed"),
                             (self.spad_panel, "SPAD ODMR"), (self.lockin_panel, "Lock-in"),
                             (self.coil_scan_panel, "Coil scan")):
            if panel is not None:
                controls.addTab(panel, title)
        # Panels whose measurement is one engine run; the lock-in capture and the coil scan run their own way.
        self.engine_panels = [p for p in (self.cw_panel, self.pulsed_panel, self.widefield_panel,
                                          self.spad_panel) if p is not None]
        self.scan_panels = [*self.engine_panels,
                            *(p for p in (self.lockin_panel, self.coil_scan_panel) if p is not None)]
        self.active_panel: Any = self.scan_panels[0] if self.scan_panels else None
        self.sequence: Any = None
        controls.addTab(self.station_panel, "Station")
        controls.setMinimumWidth(360)
        return controls

    def _build_views(self, snapshot: dict[str, Any], queue_dir: Path | None) -> QTabWidget:
        """The live image and spectra, the run browser, the reconstruction (and movie and queue)."""
        self.live = LivePane(pixel_size_of(snapshot))
        live = self.live
        self.image_panel, self.image_choice = live.image_panel, live.image_choice
        self.spectrum_panel, self.source_label = live.spectrum_panel, live.source_label
        self.run_browser = RunBrowser(self.out_dir)
        self.reconstruction_view = ReconstructionView(pixel_size_of(snapshot))
        self.views = QTabWidget()
        self.views.addTab(live, "Live")
        self.views.addTab(self.run_browser, "Runs")
        self.views.addTab(self.reconstruction_view, "Reconstruction")
        self.movie_view: LockInMovieView | None = None
        if self.lockin_panel is not None:
            self.movie_view = LockInMovieView(pixel_size_of(snapshot))
            self.views.insertTab(1, self.movie_view, "Lock-in movie")
        self.queue_view: QueueView | None = None
        if queue_dir is not None:
            self.queue_view = QueueView(queue_dir)
            self.views.addTab(self.queue_view, "Queue")
        return self.views

    def _lay_out(self, controls: QWidget, views: QWidget) -> None:
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(controls)
        split.addWidget(views)
        split.setStretchFactor(1, 1)
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(4, 4, 4, 4)
        # The simulated/live banner sits above everything, so it is seen whichever tab is open.
        central_layout.addWidget(self.station_panel.banner)
        central_layout.addWidget(split, 1)
        self.setCentralWidget(central)

    def _make_jobs(self, station: Any) -> None:
        """One controller per job, and the live-view state the timer draws from."""
        self.engine_run = RunController(station, self.out_dir, self)
        self.capture = CaptureController(station, self.out_dir, self._command, self)
        self.coil_scan = CoilScanController(self)
        self.stored_runs = StoredRunController(
            station, self.out_dir, lambda: self.running, self.open_run, self.run_browser.fit_options,
            lambda: self.image_panel.pixel, self)
        self.live_sink: LiveSink | None = None
        self.cube: SweepCube | None = None
        self._seen_step: Any = None
        self._pending_progress: Progress | None = None
        self._tick_started = 0.0
        self.last_update_cost_ms = float("nan")
        self.image_name = IMAGE_NAME
        self._latest_frame: np.ndarray | None = None
        self.steps_received = 0  # steps the engine produced, as counted by the live sink
        self.frames_displayed = 0  # of which were drawn; the rest were dropped as stale
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_INTERVAL_MS)

    def _wire(self) -> None:
        """Panels' requests to the controllers, the controllers' ends to the views."""
        self.timer.timeout.connect(self.refresh_live)
        self.image_choice.currentTextChanged.connect(lambda _: self._show_current_image())
        self.engine_run.progress.connect(self._progress)
        self.engine_run.done.connect(self._run_done)
        self.engine_run.failed.connect(self._run_failed)
        for panel in self.engine_panels:
            panel.start_requested.connect(lambda seq, p=panel: self.start_run(seq, panel=p))
            panel.pause_requested.connect(self.engine_run.pause)
            panel.resume_requested.connect(self.engine_run.resume)
            panel.abort_requested.connect(self.abort_run)
        if self.lockin_panel is not None and self.movie_view is not None:
            lockin = self.lockin_panel
            lockin.start_requested.connect(self.start_capture)
            lockin.stop_requested.connect(self.capture.stop)
            lockin.abort_requested.connect(self.capture.abort)
            self.movie_view.stats_changed.connect(lockin.show_capture)
            self.capture.done.connect(self._capture_done)
            self.capture.failed.connect(self._run_failed)
        if self.coil_scan_panel is not None:
            scan = self.coil_scan_panel
            scan.start_requested.connect(self.start_coil_scan)
            scan.pause_requested.connect(self.coil_scan.pause)
            scan.resume_requested.connect(self.coil_scan.resume)
            scan.abort_requested.connect(self.coil_scan.abort)
            self.coil_scan.step.connect(self._progress)
            self.coil_scan.config_done.connect(self._config_done)
            self.coil_scan.done.connect(self._coil_scan_done)
            self.coil_scan.failed.connect(self._run_failed)
        self.stored_runs.fitted.connect(self._show_fit)
        self.stored_runs.reconstructed.connect(self._reconstruction_done)
        self.stored_runs.message.connect(self.statusBar().showMessage)
        self.image_panel.pixel_chosen.connect(lambda r, c: self.refresh_spectra())
        self.run_browser.open_requested.connect(self.open_run)
        self.run_browser.refit_requested.connect(self.stored_runs.refit)
        self.run_browser.export_requested.connect(self.export_figure)
        self.run_browser.reconstruct_requested.connect(self.stored_runs.reconstruct)

    # ---- running a scan ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """A measurement (engine run, lock-in capture or coil scan) owns the instruments, or the field map of
        the CW run just measured is being fitted (the run ends with its map on screen)."""
        measuring = any(job.is_running() for job in (self.engine_run, self.capture, self.coil_scan))
        return measuring or self.stored_runs.fitting_after_a_run()

    def _set_running(self, running: bool) -> None:
        for p in self.scan_panels:
            p.set_running(running)
        self.station_panel.set_busy(running)
        if not running:
            self.station_panel.refresh()

    def start_run(self, sequence: Any, probes: Sequence[Sink] = (), panel: Any = None) -> None:
        """Start ``sequence`` on the station in a worker thread, storing it and feeding the live views.

        Args:
            sequence: the measurement to run (already checked by its panel).
            probes: extra engine sinks, e.g. a benchmark's timing probe.
            panel: the scan panel that started it (default: CW ODMR), which shows its progress.
        """
        if self.running:
            self.statusBar().showMessage("a run is already going; abort it first")
            return
        self.live_sink = LiveSink()
        self.sequence = sequence
        self.active_panel = panel or self.active_panel
        self.image_name = next(iter(sequence.image_shapes))
        x_name = sequence.setpoints[-1]
        self.cube = SweepCube(self.image_name, x_name)
        self.live.reset_image_choices()
        self.live.set_spectrum_axes(x_name, sequence.scalars[x_name], self.image_name,
                                is_cw=sequence.name == "cw_odmr")
        self._go_live(f"live: {sequence.name} on {self.station.name}")
        self.active_panel.show_progress(Progress(0, sequence.n_steps, 0.0, "starting"))
        # The same service calls as the CLI: the run is wired (writer, engine, metadata) there.
        self.engine_run.start(sequence, self._command(), [self.live_sink, self.cube, *probes],
                              pulsed=panel is not None and panel is self.pulsed_panel,
                              widefield=panel is not None and panel is self.widefield_panel)
        self.timer.start()

    def _go_live(self, source: str) -> None:
        """A measurement starts: forget the last fit and the drawn steps, lock the panels, show Live."""
        self.stored_runs.forget_fit()
        self._seen_step = None
        self.steps_received = self.frames_displayed = 0
        self._set_running(True)
        self.source_label.setText(source)
        self.views.setCurrentIndex(0)

    def _browse(self, folder: Path, run_id: int | None) -> None:
        """Show ``folder`` in the run browser with the run just made selected."""
        self.run_browser.show_folder(folder)
        if run_id is not None:
            self.run_browser.select_run(run_id)

    def abort_run(self) -> None:
        if self.engine_run.runner is not None:
            self.engine_run.abort()
            self.statusBar().showMessage("aborting: the engine stops after the step in flight")

    def refresh_live(self) -> None:
        """Timer tick: draw the newest step if there is one; older ones are dropped.

        The repaint itself happens when the event loop processes the paint events; a zero-delay
        timer fires after them, and the time until then is the cost of the update. The next tick is
        put off until the GUI has used at most ``MAX_GUI_SHARE`` of the time, so a slow display
        (large window, software rendering) cannot starve the acquisition of CPU.
        """
        if self._pending_progress is not None:
            self.active_panel.show_progress(self._pending_progress)
            self._pending_progress = None
        if self.live_sink is None:
            return
        counter, step = self.live_sink.latest()
        # the step itself, not the counter: each coil-scan configuration's engine restarts the counter
        if step is None or step is self._seen_step:
            return
        self._tick_started = time.perf_counter()
        self.steps_received = counter
        self._seen_step = step
        self._latest_frame = step.images.get(self.image_name)
        if self.image_choice.currentText() == LIVE_FRAME and self._latest_frame is not None:
            label, unit = IMAGE_LABELS.get(self.image_name, (self.image_name, ""))
            self.image_panel.set_image(self._latest_frame, f"{label}, {step.label}", unit)
        self.frames_displayed += 1
        self.refresh_spectra()
        self.timer.stop()
        QTimer.singleShot(0, self._repainted)

    def _repainted(self) -> None:
        if self.live_sink is None or not self.running:
            return
        cost_ms = (time.perf_counter() - self._tick_started) * 1e3
        self.last_update_cost_ms = cost_ms
        self.timer.start(next_refresh_ms(cost_ms))

    def refresh_spectra(self) -> None:
        if self.cube is None or self.cube.image_shape is None:
            return
        row, col = self.image_panel.pixel
        pixel, mean = self.cube.pixel_spectra(row, col), self.cube.mean_spectra()
        self.spectrum_panel.show_spectra(pixel, mean, row, col)
        fit = self.stored_runs.fit
        if fit is not None:
            curves = {g: fitted_curve(f, fit.frequencies_hz, (row, col))
                      for g, f in enumerate((fit.fit_off, fit.fit_on))}
            self.spectrum_panel.show_fit(fit.frequencies_hz, curves)

    def _progress(self, progress: Progress) -> None:
        # Shown on the next timer tick, not now: a label change per step would relayout and repaint
        # the panel at the step rate.
        self._pending_progress = progress

    def _run_done(self, outcome: RunOutcome) -> None:
        self.timer.stop()
        self.refresh_live()
        self._set_running(False)
        self.active_panel.show_outcome(outcome.status, outcome.reason)
        writer = self.engine_run.writer
        run_id = writer.run_id if writer else None
        self.statusBar().showMessage(
            f"run {run_id} {outcome.status} after {outcome.steps_done} steps; "
            f"{self.frames_displayed} of {self.steps_received} steps drawn live")
        self._browse(self.out_dir, run_id)  # the browser may be showing a coil scan
        if run_id is None or outcome.status != "completed":
            return
        if self.sequence.name.startswith("widefield_"):
            self._widefield_done(run_id)
            return
        if getattr(self.sequence, "kind", "") == "rabi" and self.pulsed_panel is not None:
            pi_s, message = self.engine_run.calibrate_pi_pulse(self.sequence, run_id)
            if pi_s is not None:
                self.pulsed_panel.set_pi_pulse(pi_s)
            self.statusBar().showMessage(message)
        if self.sequence.name == "cw_odmr":
            started = self.engine_run.runs_started  # the map is shown unless another run owns the views
            self.stored_runs.field_map_after_run(
                run_id, self.run_browser,
                lambda: started == self.engine_run.runs_started and not self.running)

    def _widefield_done(self, run_id: int) -> None:
        """A widefield run ended: its maps fitted and stored (a Rabi run's pi pulse handed on)."""
        bin_px = self.widefield_panel.bin.value() if self.widefield_panel is not None else None
        message, pi_s = self.engine_run.finish_widefield(self.sequence, run_id, bin_px)
        if pi_s is not None and self.widefield_panel is not None:
            self.widefield_panel.set_pi_pulse(pi_s)
        self.statusBar().showMessage(message)

    def _run_failed(self, exc: Exception) -> None:
        self.timer.stop()
        if self.movie_view is not None:
            self.movie_view.stop()
        self._set_running(False)
        self.active_panel.show_outcome("failed", f"{type(exc).__name__}: {exc}")
        self.statusBar().showMessage(f"run failed: {gui_words(str(exc))}")

    # ---- lock-in capture ----------------------------------------------------------------------------

    def _command(self) -> str:
        return "acquire --sim gui" if self.station.simulated else "acquire gui"

    def start_capture(self, plan: Any) -> None:
        """Run a checked lock-in capture (``LockInPlan``) in a worker thread; the movie view follows it."""
        if self.running or self.movie_view is None or self.lockin_panel is None:
            self.statusBar().showMessage("a run is already going; abort it first")
            return
        self.active_panel = self.lockin_panel
        self._set_running(True)
        tap = self.capture.start(plan, self.lockin_panel.image_shape)
        self.movie_view.watch(tap)
        self.views.setCurrentWidget(self.movie_view)
        self.statusBar().showMessage(f"lock-in capture of {plan.n_frames} frames started")

    def _capture_done(self, outcome: Any) -> None:
        assert self.movie_view is not None and self.lockin_panel is not None
        self.movie_view.finish()
        self._set_running(False)
        frames = self.capture.frames_note(outcome)
        self.lockin_panel.show_outcome(outcome.status, outcome.reason + frames)
        self.statusBar().showMessage(f"lock-in run {outcome.run_id} {outcome.status}{frames}; "
                                     f"{self.movie_view.frames_displayed} frames shown live")
        self._browse(self.out_dir, outcome.run_id)

    # ---- coil scan ----------------------------------------------------------------------------------

    def start_coil_scan(self, scan: Any) -> None:
        """Run a checked coil scan in a worker thread; the live views follow the configuration in flight."""
        if self.running or self.coil_scan_panel is None:
            self.statusBar().showMessage("a run is already going; abort it first")
            return
        self.live_sink = LiveSink()
        self.cube = SweepCube(IMAGE_NAME, "frequency_hz")
        self.sequence = None
        self.active_panel = self.coil_scan_panel
        self.image_name = IMAGE_NAME
        self.live.reset_image_choices()
        self.live.set_spectrum_axes("frequency_hz", "Hz", IMAGE_NAME, is_cw=True)
        self.spectrum_panel.clear()
        self._go_live(f"live: coil scan of {', '.join(scan.scanned_names)} in {scan.measurement.out_dir}")
        self.coil_scan.start(scan, run_metadata(self.station, self._command()), [self.live_sink, self.cube])
        self.timer.start()

    def _config_done(self, done: ConfigDone) -> None:
        assert self.coil_scan_panel is not None
        self.coil_scan_panel.show_config(done)
        if done.b_nv_t is None:
            return
        if self.image_choice.findText(SCAN_MAP) < 0:
            self.live.offer([SCAN_MAP], SCAN_MAP)  # the field map is what a coil scan is for
        elif self.image_choice.currentText() == SCAN_MAP:
            self._show_current_image()

    def _coil_scan_done(self, result: CoilScanResult) -> None:
        assert self.coil_scan_panel is not None
        self.timer.stop()
        self.refresh_live()
        self._set_running(False)
        reason, summary = self.coil_scan.summary(result)
        self.coil_scan_panel.show_outcome(result.outcome.status, reason)
        self.statusBar().showMessage(f"coil scan {result.outcome.status}: {summary}; results in "
                                     f"{result.results_path}")
        self._browse(result.out_dir, result.last_run_id)

    # ---- stored runs ---------------------------------------------------------------------------------

    def open_run(self, run: StoredRun) -> None:
        """Show a stored run in the live views (last measured frame, spectra at any pixel)."""
        if self.running:
            self.statusBar().showMessage("a run is going; open stored runs when it has ended")
            return
        try:
            view = stored_run_view(run)
        except (KeyError, OSError) as exc:
            self.statusBar().showMessage(f"cannot open run {run.run_id}: {exc}")
            return
        self.live_sink = None
        self.stored_runs.forget_fit()
        self.cube, self.image_name, self._latest_frame = view.cube, view.cube.image_name, view.latest
        self.live.set_spectrum_axes(self.cube.x_name, view.x_unit, self.image_name, view.is_cw)
        self.live.reset_image_choices()
        if view.pixel_size_m:
            self.image_panel.pixel_size_m = view.pixel_size_m
        self.spectrum_panel.clear()
        self._show_current_image()
        self.refresh_spectra()
        self.source_label.setText(f"stored run {run.run_id} ({run.metadata.get('status', '?')}) "
                                  f"from {run.run_dir.parent}")
        self.views.setCurrentIndex(0)

    def _show_fit(self, run: StoredRun, result: CwFieldMap) -> None:
        """A fit ended (``stored_runs.fit``): offer its maps, show B_NV and the fitted curves."""
        self.live.offer(list(FIT_VIEWS), "B_NV of the coils")
        self.refresh_spectra()

    def export_figure(self, run: StoredRun, path: Path | None = None) -> None:
        """Ask where to export the run's summary figure (unless ``path`` is given) and export it."""
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Export figure",
                                                    str(run.run_dir / f"{run.run_dir.name}.png"),
                                                    "PNG image (*.png);;PDF (*.pdf);;SVG (*.svg)")
            if not chosen:
                return
            path = Path(chosen)
        self.stored_runs.export_figure(run, path)

    def _reconstruction_done(self, result: Any) -> None:
        self.reconstruction_view.show_result(result)
        self.views.setCurrentWidget(self.reconstruction_view)
        self.statusBar().showMessage(self.reconstruction_view.summary.text())

    def _show_current_image(self) -> None:
        choice, scan_map, fit = self.image_choice.currentText(), self.coil_scan.scan_map, self.stored_runs.fit
        if choice == SCAN_MAP and scan_map is not None and scan_map.b_nv_t is not None:
            p = scan_map.progress
            self.image_panel.set_image(scan_map.b_nv_t * 1e6, f"B_NV of configuration #{p.position} "
                                       f"{p.label} (run {scan_map.run_id})", "uT", "diverging")
        elif choice in FIT_VIEWS and fit is not None:
            attr, unit, scale, cmap = FIT_VIEWS[choice]
            self.image_panel.set_image(getattr(fit, attr) * scale, choice, unit, cmap)
        elif self._latest_frame is not None:
            label, unit = IMAGE_LABELS.get(self.image_name, (self.image_name, ""))
            self.image_panel.set_image(self._latest_frame, f"{label}, last measured step", unit)

    # ---- closing -----------------------------------------------------------------------------------

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        """Closing mid-run aborts the run and waits until the engine has made the hardware safe."""
        if not self.capture.shutdown(60_000):
            print("acquire gui: the lock-in capture did not stop within 60 s", file=sys.stderr)
        if not self.coil_scan.shutdown(60_000):
            print("acquire gui: the coil scan did not stop within 60 s", file=sys.stderr)
        if not self.engine_run.shutdown(60_000):
            print("acquire gui: the measurement did not stop within 60 s", file=sys.stderr)
        if self.movie_view is not None:
            self.movie_view.timer.stop()
        self.stored_runs.wait(60_000)
        self.timer.stop()
        super().closeEvent(event)
