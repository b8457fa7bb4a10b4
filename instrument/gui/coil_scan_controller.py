"""The coil-scan job: a checked ``CoilScan`` run configuration by configuration in a worker thread.

The controller owns the job's state (the runner, the last field map, how the last scan ended); the
main window wires its signals to the panel and the live views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from instrument.gui.coil_scan_panel import CoilScanResult, CoilScanRunner, ConfigDone, ScanControl
from instrument.gui.worker import RunnerJob


class CoilScanController(RunnerJob):
    """Starts, pauses, resumes and aborts coil scans.

    Signals:
        step(Progress): engine progress of the configuration in flight.
        config_done(ConfigDone): a configuration finished (its field map when it was measured).
        done(CoilScanResult): the scan ended (completed or paused) and its results file is written.
        failed(Exception): the scan raised.
    """

    step = pyqtSignal(object)
    config_done = pyqtSignal(object)
    done = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner: CoilScanRunner | None = None
        self.last_scan: CoilScanResult | None = None
        self.scan_map: ConfigDone | None = None  # the newest configuration with a field map

    def start(self, scan: Any, metadata: dict[str, Any], sinks: Sequence[Any]) -> None:
        """Run ``scan`` (each configuration's run stores ``metadata``), feeding ``sinks`` live."""
        scan.measurement.metadata = metadata
        self.scan_map, self.last_scan = None, None
        self.runner = CoilScanRunner(scan, ScanControl(list(sinks)), self)
        self.runner.step.connect(self.step)
        self.runner.config_done.connect(self._config_done)
        self.runner.done.connect(self._done)
        self.runner.failed.connect(self.failed)
        self.runner.start()

    @staticmethod
    def summary(result: CoilScanResult) -> tuple[str, str]:
        """How a scan ended, for its panel (reason and counts) and the status bar (counts)."""
        c = result.outcome.counts
        counts = (f"{c['done']} measured, {c['open_coil']} open-coil, "
                  f"{c['pending'] + c['failed'] + c['running']} left")
        return (f"{result.outcome.reason}; {counts}" if result.outcome.reason else counts), counts

    def _config_done(self, done: ConfigDone) -> None:
        if done.b_nv_t is not None:
            self.scan_map = done
        self.config_done.emit(done)

    def _done(self, result: CoilScanResult) -> None:
        self.last_scan = result
        self.done.emit(result)
