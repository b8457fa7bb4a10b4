"""Runs the sequence engine (and slow analysis) in a QThread so the GUI thread never blocks.

The engine owns the instruments while it runs; the GUI only talks to the engine's thread-safe
``pause``/``resume``/``abort`` and receives progress and the outcome as queued Qt signals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from sequences.engine import Engine, Progress, RunOutcome


class RunnerJob(QObject):
    """A controller of one background runner (``self.runner``: an ``EngineRunner`` or a coil-scan
    runner) with the operator's pause, resume, abort and the window's shutdown."""

    runner: Any = None

    def is_running(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def pause(self) -> None:
        if self.runner is not None:
            self.runner.pause()

    def resume(self) -> None:
        if self.runner is not None:
            self.runner.resume()

    def abort(self) -> None:
        if self.runner is not None:
            self.runner.abort()

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Abort the job in flight and wait until the instruments are safe; False if it did not stop."""
        if not self.is_running():
            return True
        self.abort()
        return bool(self.runner.wait(timeout_ms))


class _Job(QObject):
    progress = pyqtSignal(object)
    done = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._fn = fn

    @pyqtSlot()
    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:  # noqa: BLE001 - handed to the GUI thread to show the operator
            self.failed.emit(exc)
        else:
            self.done.emit(result)
        finally:
            # End the thread from inside, so a GUI thread blocked in wait() (closing) is released.
            self.thread().quit()


class BackgroundTask(QObject):
    """Runs ``fn()`` once in its own QThread; emits ``done(result)`` or ``failed(exception)``."""

    done = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._job = _Job(fn)
        self._job.moveToThread(self._thread)
        self._thread.started.connect(self._job.run)
        self._job.done.connect(self._finish_ok)
        self._job.failed.connect(self._finish_failed)

    def start(self) -> None:
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        return self._thread.wait(timeout_ms)

    def _stop_thread(self) -> None:
        self._thread.wait()

    def _finish_ok(self, result: Any) -> None:
        self._stop_thread()
        self.done.emit(result)

    def _finish_failed(self, exc: Any) -> None:
        self._stop_thread()
        self.failed.emit(exc)


class EngineRunner(BackgroundTask):
    """Runs ``engine.run(sequence)`` in a worker thread.

    Signals:
        progress(Progress): after every step (queued to the GUI thread).
        done(RunOutcome): when the run has ended and the hardware is safe.
        failed(Exception): the engine itself raised (e.g. a sink could not open).
    """

    progress = pyqtSignal(object)

    def __init__(self, engine: Engine, sequence: Any, parent: QObject | None = None) -> None:
        self.engine = engine
        super().__init__(lambda: engine.run(sequence), parent)
        # The callback runs in the engine's thread; emitting a signal is the thread-safe hand-over.
        engine.on_progress = self._emit_progress

    def _emit_progress(self, progress: Progress) -> None:
        self.progress.emit(progress)

    def pause(self) -> None:
        self.engine.pause()

    def resume(self) -> None:
        self.engine.resume()

    def abort(self) -> None:
        # Safe before the worker thread reaches the engine: the engine keeps the request.
        self.engine.abort()

    @property
    def paused(self) -> bool:
        return self.engine.paused


__all__ = ["BackgroundTask", "EngineRunner", "RunOutcome"]
