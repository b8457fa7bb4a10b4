"""The stored-run job of the operator application: fit a run's field map (after a CW scan or on
Re-fit), export its summary figure and send it to the reconstruction.

The controller owns the fit on screen (``fit``, ``fit_run_id``) and decides what each request needs
(a figure or a reconstruction of a run not fitted yet fits it first); the main window wires its
signals to the views. The work runs in ``AnalysisJobs``' worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from instrument.gui.analysis_jobs import AnalysisJobs
from instrument.gui.live_data import pixel_size_of
from instrument.gui.wording import gui_words
from instrument.gui.worker import BackgroundTask
from instrument.services.report import plot_cw_result


def is_cw_run(run: Any) -> bool:
    return (run.metadata.get("sequence") or {}).get("name") == "cw_odmr"


class StoredRunController(QObject):
    """Fits, figures and reconstructions of the stored runs of one station.

    Args:
        station: the station (the reconstruction reads its sample).
        out_dir: where the window's own runs are stored.
        busy: whether a measurement owns the views and the CPU (nothing is fitted then).
        open_run: shows a stored run in the live views (a re-fit shows its run first).
        fit_options: the operator's fit options (the run browser's).
        pixel: the pixel the figure's spectrum is drawn at.

    Signals:
        fitted(StoredRun, CwFieldMap): a fit ended; ``fit`` holds it.
        reconstructed(object): a reconstruction ended with this result.
        message(str): what to tell the operator (status bar).
    """

    fitted = pyqtSignal(object, object)
    reconstructed = pyqtSignal(object)
    message = pyqtSignal(str)

    def __init__(self, station: Any, out_dir: Path, busy: Callable[[], bool],
                 open_run: Callable[[Any], None], fit_options: Callable[[], dict[str, Any]],
                 pixel: Callable[[], tuple[int, int]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.station, self.out_dir = station, Path(out_dir)
        self.busy, self.open_run, self.fit_options, self.pixel = busy, open_run, fit_options, pixel
        self.jobs = AnalysisJobs(self)
        self.jobs.failed.connect(lambda text: self.message.emit(gui_words(text)))
        self.fit: Any = None  # instrument.analysis.cw_run.CwFieldMap on screen
        self.fit_run_id: int | None = None

    def forget_fit(self) -> None:
        self.fit = None

    def fitting_after_a_run(self) -> bool:
        return self.jobs.fitting_after_a_run()

    def field_map_after_run(self, run_id: int, run_browser: Any, still_shown: Callable[[], bool]) -> None:
        """A completed CW run ends with its field map on screen, fitted and stored as by ``acquire odmr``;
        ``still_shown`` says whether the views still belong to that run when the fit ends."""
        self.message.emit(f"run {run_id} completed; fitting its field map...")

        def done(result: Any) -> None:
            if not still_shown():
                return  # another run owns the views now; the map is stored beside the run
            run_browser.refresh()
            run = run_browser.runs.get(run_id)
            if run is not None:
                self._fit_done(run, result, None)

        self.jobs.field_map(self.out_dir, run_id, done)

    def refit(self, run: Any, then_export: Path | None = None,
              then: Callable[[], Any] | None = None) -> BackgroundTask | None:
        """Fit every pixel of ``run`` in the background (None: refused, the message says why)."""
        if not is_cw_run(run):
            self.message.emit(f"run {run.run_id}: re-fit and figure export are for CW-ODMR runs")
            return None
        if self.busy():
            # The live views belong to the scan, and the CPU to its acquisition.
            self.message.emit("a run is going; re-fit stored runs when it has ended")
            return None
        self.open_run(run)
        self.message.emit(f"fitting run {run.run_id}...")
        return self.jobs.refit(run, self.fit_options(),
                               lambda result: self._fit_done(run, result, then_export, then))

    def export_figure(self, run: Any, path: Path) -> None:
        """Write the run's summary figure (spectrum at the chosen pixel, resonance and B_NV maps),
        fitting the run first if its fit is not the one on screen."""
        if self.fit is None or self.fit_run_id != run.run_id:
            self.refit(run, then_export=path)
        else:
            self._write_figure(run, path)

    def reconstruct(self, run: Any) -> None:
        """Send the run's fitted B_NV map to the dictionary reconstruction (fits the run first if needed).

        A coil-scan run is reconstructed with the dictionary its own scan measured.
        """
        if run.metadata.get("coil_scan"):
            from instrument.gui.reconstruction_view import reconstruct_coil_scan_run

            self.message.emit(f"reconstructing run {run.run_id} with its scan's dictionary...")
            self.jobs.reconstruct(run.run_id, lambda: reconstruct_coil_scan_run(run), self.reconstructed.emit)
            return
        if not is_cw_run(run):
            self.message.emit(f"run {run.run_id}: reconstruction takes the B_NV map of a CW-ODMR run")
            return
        if self.fit is None or self.fit_run_id != run.run_id:
            self.refit(run, then=lambda: self.reconstruct(run))
            return
        from instrument.gui.reconstruction_view import reconstruct_run_map

        b_nv = self.fit.b_nv_t
        currents = np.asarray(run.metadata["sequence"].get("coil_currents_a", []), dtype=float)
        self.message.emit(f"reconstructing run {run.run_id}...")
        station = self.station
        self.jobs.reconstruct(run.run_id, lambda: reconstruct_run_map(station, run.run_id, b_nv, currents),
                              self.reconstructed.emit)

    def wait(self, timeout_ms: int = 60_000) -> None:
        self.jobs.wait(timeout_ms)

    def _fit_done(self, run: Any, result: Any, then_export: Path | None,
                  then: Callable[[], Any] | None = None) -> None:
        self.fit, self.fit_run_id = result, run.run_id
        self.fitted.emit(run, result)
        lo, hi = result.field_range_t
        self.message.emit(f"run {run.run_id} ({result.fit_off.model}, hyperfine "
                          f"{result.fit_off.hyperfine or 'none'}): B_NV {lo * 1e6:+.2f} .. "
                          f"{hi * 1e6:+.2f} uT, {result.converged_fraction:.1%} of pixels fitted")
        if then_export is not None:
            self._write_figure(run, then_export)
        if then is not None:
            then()

    def _write_figure(self, run: Any, path: Path) -> None:
        assert self.fit is not None
        plot_cw_result(self.fit, path, pixel=self.pixel(), title=f"run {run.run_id}: CW ODMR",
                       pixel_size_m=pixel_size_of(run.metadata))
        self.message.emit(f"figure written to {path}")
