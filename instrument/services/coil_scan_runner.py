"""The coil scan's runner: each configuration measured as one engine run, stored and analysed.

``sequences.coil_scan.CoilScan`` decides what to measure and keeps the ledger; this module wires the
engine, the run writer and the CW-ODMR analysis for it (``cw_measurement``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrument.analysis.cw_run import analyse_cw_run, save_analysis
from instrument.protocols import CoilDriver, Instrument, IntensityCamera, SafetyLimits
from instrument.storage.runs import CorruptDatabase, RunWriter, StorageError, load_run
from sequences.camera_cw import CameraCwSweep
from sequences.coil_scan import Measured
from sequences.cw_odmr import CwOdmrSweep
from sequences.engine import Engine, MeasurementSequence, Progress
from sequences.scan_health import HealthSample, health_from_spectra

log = logging.getLogger("sequences.coil_scan")  # the scan's log: the CLI routes it to the scan's log file

EXPERIMENT = "coil_scan"


Analyse = Callable[..., tuple[dict[str, Any], HealthSample | None]]
"""``analyse(out_dir, run_id, reference_pl=None)``: summary and health of a stored configuration."""


def analyse_cw_config(out_dir: Path, run_id: int,
                      reference_pl: np.ndarray | None = None) -> tuple[dict[str, Any], HealthSample | None]:
    """Fit a stored CW-ODMR configuration run; returns its summary and health sample.

    Both passes are registered to ``reference_pl`` (the scan's first configuration), or the I-on
    pass to the I-off pass without one (``cw_run.register_passes``), and shifted back; the shift goes
    in the summary and a drift above a pixel is logged to the scan's log.
    """
    run = load_run(out_dir, run_id)
    result = analyse_cw_run(run, reference_pl=reference_pl)
    save_analysis(result, run.run_dir)
    lo, hi = result.field_range_t
    health = health_from_spectra(result.spectra[0], result.center_off_hz)
    summary = {"b_nv_range_t": [lo, hi], "converged_fraction": result.converged_fraction,
               "health": health.as_dict(), "drift": result.drift}
    for message in result.warnings:
        log.warning("run %d: %s", run_id, message)
    return summary, health


class ScanDriftTracker:
    """Registers every configuration's PL image to the first configuration's (the scan's drift).

    Wraps an ``Analyse``: the I-off PL image of the run is registered to the reference (the first
    configuration this tracker analysed: after a resume, the first one analysed since), the shift
    goes in the summary as ``scan_drift`` and a drift above ``warn_px`` is logged as a warning; the
    analysis registers the run's passes to the same reference, so every configuration's map lines
    up with the first's (the dictionary of single-coil maps and the scan's maps share one grid).
    """

    def __init__(self, analyse: Analyse, warn_px: float = 1.0) -> None:
        self.analyse = analyse
        self.warn_px = warn_px
        self.reference: np.ndarray | None = None
        self.reference_run: int | None = None

    def __call__(self, out_dir: Path, run_id: int) -> tuple[dict[str, Any], HealthSample | None]:
        try:
            pl = self._pl_image(out_dir, run_id)
        except (ValueError, StorageError) as exc:
            summary, health = self.analyse(out_dir, run_id)
            return {**summary, "scan_drift": {"error": str(exc)}}, health
        if self.reference is None or self.reference.shape != pl.shape:
            self.reference, self.reference_run = pl, run_id
        first = run_id == self.reference_run
        summary, health = self.analyse(out_dir, run_id, reference_pl=None if first else self.reference)
        try:
            summary = {**summary, "scan_drift": self._register(pl, run_id)}
        except ValueError as exc:
            summary = {**summary, "scan_drift": {"error": str(exc)}}
        return summary, health

    @staticmethod
    def _pl_image(out_dir: Path, run_id: int) -> np.ndarray:
        run = load_run(out_dir, run_id)
        # An intensity camera's run holds its PL image (MW-off frames); the lock-in's, its signal.
        intensity = (run.metadata.get("sequence") or {}).get("camera") == "intensity"
        images = run.images("reference" if intensity else "signal")
        return np.nanmean(images[: images.shape[0] // 2], axis=0)  # the I-off pass

    def _register(self, pl: np.ndarray, run_id: int) -> dict[str, Any]:
        from instrument.analysis.cw_run import register_passes

        _, drift = register_passes(np.stack([self.reference, pl])[..., None], warn_px=self.warn_px,
                                   correct_above_px=np.inf)
        for message in drift["warnings"]:
            log.warning("run %d against run %d: %s", run_id, self.reference_run, message)
        return {"reference_run": self.reference_run, "shift_px": drift["shifts_px"][1],
                "max_shift_px": drift["max_shift_px"], "exceeded": drift["exceeded"],
                "reliable": drift["reliable"][1], "warnings": drift["warnings"]}


class _RunOpened:
    """A sink that reports the run id to the ledger the moment the run opens."""

    def __init__(self, writer: RunWriter, on_open: Callable[[int], None]) -> None:
        self.writer = writer
        self.on_open = on_open

    def open(self, metadata: Mapping[str, Any], image_shapes: Mapping[str, tuple[int, ...]],
             n_steps: int) -> None:
        if self.writer.run_id is not None:
            self.on_open(self.writer.run_id)

    def write(self, step: Any) -> None:
        pass

    def close(self, status: str, reason: str = "") -> None:
        pass


@dataclass
class EngineMeasurement:
    """Measures one configuration as one engine run stored in ``out_dir``, then analyses it.

    Args:
        make_sequence: the sequence for a vector of coil currents (``CwOdmrSweep`` by default).
        analyse: summary and health from a stored run.
        out_dir: where runs are stored.
        instruments: the station's instruments; ``coils`` is wrapped to check read-backs.
        limits: lab safety limits.
        sample_name: recorded with each run.
        metadata: added to each run's metadata (station snapshot, command, simulated flag).
        on_step: engine progress of the configuration in flight.
        on_engine: receives each configuration's engine before it runs (a GUI adds its live sinks
            and forwards pause and abort to it).
    """

    make_sequence: Callable[[np.ndarray], MeasurementSequence]
    analyse: Analyse
    out_dir: Path
    instruments: Mapping[str, Instrument]
    limits: SafetyLimits
    sample_name: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    on_step: Callable[[Progress], None] | None = None
    on_engine: Callable[[Engine], None] | None = None

    def use_coils(self, coils: CoilDriver) -> None:
        """Run every configuration with ``coils`` in the role ``coils`` (the scan's checked wrapper)."""
        self.instruments = {**self.instruments, "coils": coils}

    def check(self, currents: np.ndarray) -> None:
        self.make_sequence(currents).check(self.limits)

    def measure(self, currents: np.ndarray, info: Mapping[str, Any],
                on_run_open: Callable[[int], None]) -> Measured:
        sequence = self.make_sequence(currents)
        writer = RunWriter(self.out_dir, EXPERIMENT, self.sample_name, sequence.scalars, sequence.setpoints)
        engine = Engine(self.instruments, self.limits, [writer, _RunOpened(writer, on_run_open)],
                        {**self.metadata, "coil_scan": dict(info)}, on_progress=self.on_step)
        if self.on_engine is not None:
            self.on_engine(engine)
        outcome = engine.run(sequence)
        if outcome.status != "completed":
            return Measured(writer.run_id, outcome.status, outcome.reason, error=outcome.error)
        return self.adopt(writer.run_id)

    def adopt(self, run_id: int) -> Measured:
        """Analyse a completed run (also one found completed after a crash).

        An analysis that fails does not lose the measurement nor stop an overnight scan: the run is
        kept, its summary carries ``analysis_error``, and ``acquire analyse RUN`` can redo it later.
        """
        try:
            summary, health = self.analyse(self.out_dir, run_id)
        except Exception as exc:  # noqa: BLE001 - one bad fit must not end a 256-configuration scan
            log.exception("analysis of run %d failed", run_id)
            return Measured(run_id, "completed", summary={"analysis_error": f"{type(exc).__name__}: {exc}"})
        return Measured(run_id, "completed", summary=summary, health=health)

    def run_status(self, run_id: int) -> str:
        """How a stored run ended: ``completed``, ``aborted``, ``failed``, or ``running`` if it died."""
        try:
            return str(load_run(self.out_dir, run_id).metadata.get("status", "running"))
        except CorruptDatabase:
            raise  # not a missing run: every run is unreadable, and re-measuring cannot help
        except StorageError:
            return "missing"


def cw_measurement(
    out_dir: Path,
    instruments: Mapping[str, Instrument],
    limits: SafetyLimits,
    frequencies_hz: np.ndarray,
    power_dbm: float,
    image_shape: tuple[int, int],
    frames_per_point: int,
    sample_name: str,
    metadata: Mapping[str, Any] | None = None,
    on_step: Callable[[Progress], None] | None = None,
    stepping: str = "auto",
) -> EngineMeasurement:
    """The standard per-configuration measurement: a CW-ODMR I-off/I-on sweep and its fit.

    The sweep follows the station's camera: ``CwOdmrSweep`` for a lock-in camera, ``CameraCwSweep``
    (MW-on/MW-off frame pairs, its default exposure and frame period) for an intensity camera.
    ``stepping`` is the sweep's MW stepping: ``auto``, ``list`` or ``software``.
    """
    sweep_type: Any = CameraCwSweep if isinstance(instruments.get("camera"), IntensityCamera) else CwOdmrSweep

    def make(currents: np.ndarray) -> MeasurementSequence:
        return sweep_type(frequencies_hz, power_dbm, currents, image_shape=image_shape,
                          frames_per_point=frames_per_point, stepping=stepping)

    return EngineMeasurement(make, ScanDriftTracker(analyse_cw_config), Path(out_dir), instruments, limits,
                             sample_name, dict(metadata or {}), on_step)
