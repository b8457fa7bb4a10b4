"""The engine-run job (CW ODMR, pulsed, SPAD ODMR): a checked sequence wired by the service layer,
run in a worker thread, and what follows a completed run (a Rabi run's pi pulse).

The controller owns the job's state (the runner, the run writer, how the last run ended); the main
window wires its signals to the panels and the live views.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from instrument.gui.worker import EngineRunner, RunnerJob


class RunController(RunnerJob):
    """Runs one sequence at a time on the station, through the same service calls as the CLI.

    Signals:
        progress(Progress): after each step (emitted from the engine's thread, queued here).
        done(RunOutcome): the run ended (completed, aborted or failed) and is stored.
        failed(Exception): the engine itself raised (a sink could not open, a missing instrument).
    """

    progress = pyqtSignal(object)
    done = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(self, station: Any, out_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.out_dir = Path(out_dir)
        self.runner: EngineRunner | None = None
        self.prepared: Any = None  # instrument.services.runs.SequenceRun of the run in flight
        self.last_outcome: Any = None  # sequences.engine.RunOutcome
        self.runs_started = 0
        self.last_widefield: Any = None  # instrument.services.widefield_pulsed.WidefieldResult

    @property
    def writer(self) -> Any:
        return self.prepared.writer if self.prepared is not None else None

    def start(self, sequence: Any, command: str, sinks: Sequence[Any], pulsed: bool = False,
              widefield: bool = False) -> None:
        """Wire ``sequence`` and run it (a pulsed measurement's run is ``pulsed_KIND``, a widefield one
        ``widefield_KIND``, as by the CLI)."""
        from instrument.services.pulsed import prepare_pulsed
        from instrument.services.runs import prepare_run
        from instrument.services.widefield_pulsed import prepare_widefield

        prepare = prepare_widefield if widefield else prepare_pulsed if pulsed else prepare_run
        self.prepared = prepare(self.station, sequence, self.out_dir, command, sinks=list(sinks))
        self.runs_started += 1
        self.runner = EngineRunner(self.prepared.engine, sequence, self)
        self.runner.progress.connect(self.progress)
        self.runner.done.connect(self._done)
        self.runner.failed.connect(self.failed)
        self.runner.start()

    def pi_pulse(self, rabi: Any) -> Any:
        """The pi pulse the completed Rabi run just measured gives (fit and pi pulse stored with the run).

        Raises:
            RequestError: the fit gave no pi pulse; says why.
        """
        from instrument.services.pulsed import finish_pulsed, pi_pulse_from_run

        return pi_pulse_from_run(finish_pulsed(self.out_dir, self.prepared, rabi), rabi.clock_hz)

    def calibrate_pi_pulse(self, rabi: Any, run_id: int) -> tuple[float | None, str]:
        """The pi pulse (s) a completed Rabi run hands to the next Ramsey, echo or pulsed ODMR, and what
        to tell the operator; None when its fit gave none."""
        from instrument.gui.wording import gui_words
        from instrument.services.errors import RequestError

        try:
            pi = self.pi_pulse(rabi)
        except RequestError as exc:
            return None, f"Rabi run {run_id}: no pi pulse from the fit ({gui_words(str(exc))})"
        return pi.pi_s, (f"Rabi run {run_id}: pi pulse {pi.pi_s * 1e9:.0f} ns "
                         f"(Rabi frequency {pi.rabi_hz / 1e6:.4g} MHz)")

    def finish_widefield(self, measurement: Any, run_id: int,
                         bin_px: int | None = None) -> tuple[str, float | None]:
        """Fit and store the maps of the completed widefield run; (what to tell the operator, pi pulse
        in s of a Rabi run or None). The map figure goes into the run's folder."""
        from instrument.gui.wording import gui_words
        from instrument.services.errors import RequestError
        from instrument.services.pulsed import pi_pulse_from_run
        from instrument.services.report import plot_pulsed_map
        from instrument.services.widefield_pulsed import DEFAULT_BIN, finish_widefield

        result = finish_widefield(self.station, self.out_dir, self.prepared, measurement,
                                  bin_px or DEFAULT_BIN)
        self.last_widefield = result
        if result.maps is None:
            return f"run {run_id}: the {measurement.kind} fit failed: {gui_words(result.fit_error)}", None
        figure = plot_pulsed_map(result, self.prepared.run_dir / "map.png",
                                 truth=result.truth.get(result.parameter),
                                 title=f"run {run_id}: widefield {measurement.kind}")
        text = f"run {run_id}: {measurement.kind} map stored ({figure.name})"
        if result.agreement:
            text += (f"; vs simulated truth {result.agreement['within_2_sigma']:.0%} of bins within 2 sigma, "
                     f"median |z| {result.agreement['median_abs_z']:.2f}")
        pi_s = None
        if measurement.kind == "rabi":
            try:
                pi = pi_pulse_from_run(result, measurement.clock_hz)
                pi_s = pi.pi_s
                text += f"; pi pulse {pi.pi_s * 1e9:.0f} ns"
            except RequestError as exc:
                text += f"; no pi pulse ({gui_words(str(exc))})"
        return text, pi_s

    def _done(self, outcome: Any) -> None:
        self.last_outcome = outcome
        if self.prepared is not None:
            self.prepared.outcome = outcome
        self.done.emit(outcome)
