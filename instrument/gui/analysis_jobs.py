"""The stored-run jobs of the operator application: fitting a run's field map (after a CW scan or on
Re-fit) and reconstructing its sources, each in a worker thread.

The controller starts the jobs and says how they ended; the main window shows the results. The work
itself is the service layer's (``services.cw.analyse_cw``) and the analysis/reconstruction code's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from instrument.gui.worker import BackgroundTask


class AnalysisJobs(QObject):
    """Fits and reconstructions of stored runs, one worker per job kind.

    Signals:
        failed(str): a job failed; the message says which run and why.
    """

    failed = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fit_task: BackgroundTask | None = None  # the field map of a CW run just completed
        self.task: BackgroundTask | None = None  # re-fit or reconstruction asked for by the operator

    def field_map(self, out_dir: Path, run_id: int, done: Callable[[Any], None]) -> BackgroundTask:
        """Fit a completed CW run and store its maps beside it (as ``acquire odmr`` does)."""
        from instrument.services.cw import analyse_cw

        self.fit_task = self._start(lambda: analyse_cw(out_dir, run_id), done,
                                    f"run {run_id} stored; its fit failed")
        return self.fit_task

    def refit(self, run: Any, options: dict[str, Any], done: Callable[[Any], None]) -> BackgroundTask:
        """Fit a stored CW run with the operator's options (nothing is written)."""
        from instrument.analysis.cw_run import analyse_cw_run

        self.task = self._start(lambda: analyse_cw_run(run, **options), done, f"cannot fit run {run.run_id}")
        return self.task

    def reconstruct(self, run_id: int, work: Callable[[], Any],
                    done: Callable[[Any], None]) -> BackgroundTask:
        """Run a reconstruction (``gui.reconstruction_view``) of run ``run_id``."""
        self.task = self._start(work, done, f"cannot reconstruct run {run_id}")
        return self.task

    def fitting_after_a_run(self) -> bool:
        return self.fit_task is not None and self.fit_task.is_running()

    def wait(self, timeout_ms: int = 60_000) -> None:
        for task in (self.task, self.fit_task):
            if task is not None and task.is_running():
                task.wait(timeout_ms)

    def _start(self, work: Callable[[], Any], done: Callable[[Any], None], failure: str) -> BackgroundTask:
        task = BackgroundTask(work, self)
        task.done.connect(done)
        task.failed.connect(lambda exc: self.failed.emit(f"{failure}: {exc}"))
        task.start()
        return task
