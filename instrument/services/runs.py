"""Run one sequence through the engine into a stored run: the wiring every measurement shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrument.services.errors import RequestError
from instrument.settings import setting


def run_metadata(station: Any, command: str, **extra: Any) -> dict[str, Any]:
    """What every stored run records besides its data: the station snapshot, simulated or not, and the
    command that made it (plus ``extra``)."""
    return {"station_snapshot": station.snapshot(), "simulated": station.simulated, "command": command,
            **extra}


def sample_name(station: Any) -> str:
    """The name runs are stored under: the station's sample's (the station's own name by default)."""
    return station.sample.name


def drive_current_a(station: Any, current_a: float | None) -> float:
    """``current_a``, or else the sample's reference coil drive current."""
    if current_a is not None:
        return current_a
    if station.sample.drive_current_a is None:
        raise RequestError(f"give the coil drive current ({setting('current_a')}): the station's sample "
                           "names no reference current")
    return station.sample.drive_current_a


def channel_names(station: Any, role: str) -> list[str]:
    """Coil name per channel of the instrument ``role`` (``coils``, ``stimulus``).

    The sample's coils where it names one per channel; else the names the driver was given; else C1..Cn.
    """
    inst = station[role]
    n = inst.n_channels
    if len(station.sample.coil_names) == n:
        return list(station.sample.coil_names)
    names = getattr(inst, "channel_names", None)
    return list(names) if names else [f"C{k + 1}" for k in range(n)]


def add_run_metadata(out: Path, run_id: int, summary: dict[str, Any]) -> None:
    """Attach analysis results to a stored (already closed) run's dataset."""
    from instrument.storage import runs  # lazily: h5py and qcodes slow down `acquire --help`

    runs.add_run_metadata(out, run_id, summary)


@dataclass
class SequenceRun:
    """One sequence wired to the engine and a run writer; ``run()`` measures and stores it."""

    sequence: Any
    writer: Any  # instrument.storage.runs.RunWriter
    engine: Any  # sequences.engine.Engine
    outcome: Any = None  # sequences.engine.RunOutcome, once run

    @property
    def run_id(self) -> int:
        return self.writer.run_id

    @property
    def run_dir(self) -> Path:
        return self.writer.run_dir

    def run(self) -> Any:
        """Run the sequence (blocking; the GUI calls it from a worker thread); returns the outcome."""
        self.outcome = self.engine.run(self.sequence)
        return self.outcome


def prepare_run(station: Any, sequence: Any, out: Path, command: str, *, sinks: Sequence[Any] = (),
                on_progress: Callable[[Any], None] | None = None, run_name: str | None = None,
                sample: str | None = None, **metadata: Any) -> SequenceRun:
    """Wire ``sequence`` to the station's engine and a run writer in ``out``; nothing moves yet.

    Args:
        sinks: more engine sinks (live views, timing probes) after the writer.
        run_name: the run's experiment name (default: the sequence's name).
        sample: the sample name stored with the run (default: the station's sample).
        metadata: more entries of the run's metadata (besides station snapshot and command).
    """
    from instrument.storage.runs import RunWriter
    from sequences.engine import Engine

    writer = RunWriter(out, run_name or sequence.name, sample or sample_name(station), sequence.scalars,
                       sequence.setpoints)
    engine = Engine(station.instruments, station.limits, [writer, *sinks],
                    run_metadata(station, command, **metadata), on_progress=on_progress)
    return SequenceRun(sequence, writer, engine)


def run_sequence(station: Any, sequence: Any, out: Path, command: str, **options: Any) -> SequenceRun:
    """``prepare_run`` and run it; returns the run with its outcome (completed, aborted or failed)."""
    prepared = prepare_run(station, sequence, out, command, **options)
    prepared.run()
    return prepared
