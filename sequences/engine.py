"""The sequence engine: runs an inspectable sequence, feeds sinks, and always leaves hardware safe.

A sequence is a plain object with ``name``, ``parameters()``, ``n_steps``, ``image_shapes``,
``scalars``/``setpoints``, ``check(limits)`` (raises before any hardware moves) and ``run(instruments)``,
a generator of ``Step``s; optionally ``plan(instruments)``, the decisions it takes from the
instruments it was given (stored in the run metadata as ``sequence.plan``), and ``end_note``, read
when it completes and stored as the run's end reason. The engine owns the
instruments while it runs: nothing else may talk to them until it returns. On any exit (normal,
exception, Ctrl-C, SIGTERM, abort from the GUI) every instrument's ``safe_state()`` is called and
every sink is closed with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from instrument.protocols import Instrument, SafetyLimits
from instrument.signals import RunAborted, Terminated
from instrument.storage.errors import StorageError
from instrument.storage.runs import Step

log = logging.getLogger(__name__)

__all__ = ["Engine", "LiveSink", "Progress", "RunAborted", "RunOutcome", "Sink", "Terminated",
           "TerminationGuard", "make_safe"]


class MissingInstrument(ValueError):
    """The station lacks a role a sequence requires, or the instrument there lacks the capability."""


def missing_requirements(instruments: Mapping[str, Instrument], requires: Mapping[str, type]) -> list[str]:
    """What the instruments lack of a sequence's ``requires`` (role -> protocol), one line each."""
    problems = []
    for role, protocol in requires.items():
        inst = instruments.get(role)
        if inst is None:
            problems.append(f"no instrument with role {role!r} ({protocol.__name__})")
        elif not isinstance(inst, protocol):
            article = "an" if protocol.__name__[0] in "AEIOU" else "a"
            problems.append(f"{role!r} ({type(inst).__name__}) is not {article} {protocol.__name__}")
    return problems


def check_requirements(instruments: Mapping[str, Instrument], sequence: Any) -> None:
    """Raise ``MissingInstrument`` naming every role or capability ``sequence.requires`` the station lacks."""
    problems = missing_requirements(instruments, getattr(sequence, "requires", None) or {})
    if problems:
        raise MissingInstrument(f"{getattr(sequence, 'name', 'the sequence')} cannot run on this station: "
                                + "; ".join(problems) + "; add them under 'instruments:' in the station file")


class MeasurementSequence(Protocol):
    """What the engine needs from a sequence; see the module docstring."""

    name: str
    scalars: Mapping[str, str]
    setpoints: tuple[str, ...]

    @property
    def n_steps(self) -> int: ...

    @property
    def image_shapes(self) -> Mapping[str, tuple[int, ...]]: ...

    def parameters(self) -> dict[str, Any]: ...

    def check(self, limits: SafetyLimits) -> None: ...

    def run(self, instruments: Mapping[str, Instrument]) -> Iterator[Step]: ...
    """Optional: ``requires`` (role -> protocol: checked before anything moves) and a pure
    ``plan(instruments)`` whose value the engine stores and passes on as ``run(instruments, plan)``."""


class Sink(Protocol):
    """Receives the steps of a run (storage writer, live view)."""

    def open(self, metadata: Mapping[str, Any], image_shapes: Mapping[str, tuple[int, ...]],
             n_steps: int) -> Any: ...

    def write(self, step: Step) -> None: ...

    def close(self, status: str, reason: str = "") -> None: ...


@dataclass
class Progress:
    """Progress of a run as the engine reports it after each step."""

    done: int
    total: int
    elapsed_s: float
    label: str = ""

    @property
    def eta_s(self) -> float:
        if self.done == 0:
            return float("nan")
        return self.elapsed_s / self.done * (self.total - self.done)


@dataclass
class RunOutcome:
    status: str  # "completed", "aborted" or "failed"
    reason: str
    steps_done: int
    elapsed_s: float
    error: BaseException | None = field(default=None, repr=False)


class LiveSink:
    """Keeps the latest step for viewers (GUI, CLI); reading never blocks the engine for long."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Step | None = None
        self.status = "idle"
        self.counter = 0

    def open(self, metadata: Mapping[str, Any], image_shapes: Mapping[str, tuple[int, ...]],
             n_steps: int) -> None:
        with self._lock:
            self._latest, self.status, self.counter = None, "running", 0

    def write(self, step: Step) -> None:
        with self._lock:
            self._latest = step
            self.counter += 1

    def close(self, status: str, reason: str = "") -> None:
        self.status = status

    def latest(self) -> tuple[int, Step | None]:
        """(counter, step): the counter tells a viewer whether it has seen this step already."""
        with self._lock:
            return self.counter, self._latest


class TerminationGuard:
    """Turns SIGTERM into ``Terminated`` while a run works, defers signals while a step is stored, and
    holds them off while the microscope is made safe.

    A signal that arrives while a step is being stored (``atomic()``) is only recorded and acted on
    once the step is in all its places, so a step is stored completely or not at all. A supervisor
    that escalates (a second SIGTERM) or an operator pressing Ctrl-C twice must not kill the process
    half-way through ramping the coils down, so during ``shielding()`` the signals are only recorded.
    ``requested`` stays set once a SIGTERM came, so a stop that some catch-all swallowed is still
    honoured at the next step. Signal handlers can only be installed from the main thread; elsewhere
    (the GUI's worker thread) the guard does nothing and the app aborts the engine instead.
    """

    def __init__(self) -> None:
        self.held_off: list[str] = []
        self.requested: str | None = None  # "SIGTERM" once one arrived
        self._shielding = False
        self._deferring = False
        self._deferred: list[str] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> TerminationGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @property
    def _main(self) -> bool:
        return threading.current_thread() is threading.main_thread()

    def raise_if_requested(self) -> None:
        """Act on a SIGTERM that arrived earlier (and may have been swallowed on its way)."""
        if self.requested:
            raise Terminated(f"terminated by {self.requested}")

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Defer SIGTERM and SIGINT inside the block (a step is being stored); act on them after it."""
        if not self._main:
            yield
            return
        self._deferring = True
        previous_int = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous_int)
            self._deferring = False
        deferred, self._deferred = self._deferred, []
        if "SIGTERM" in deferred:
            raise Terminated("terminated by SIGTERM")
        if "SIGINT" in deferred:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielding(self) -> Iterator[None]:
        """Record, do not act on, SIGTERM and SIGINT inside the block (hardware is being made safe)."""
        if not self._main:
            yield
            return
        self._shielding = True
        previous_int = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous_int)
            self._shielding = False
        if self.held_off:
            log.warning("held off %s while making the microscope safe", ", ".join(self.held_off))

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.requested = "SIGTERM"
        if self._shielding:
            self.held_off.append("SIGTERM")
            return
        if self._deferring:
            self._deferred.append("SIGTERM")
            return
        raise Terminated("terminated by SIGTERM")

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._deferring and not self._shielding:
            self._deferred.append("SIGINT")
            return
        self.held_off.append("SIGINT")


def make_safe(instruments: Mapping[str, Instrument]) -> list[str]:
    """Call ``safe_state`` on every instrument; a failure on one never skips the others."""
    problems = []
    for name, inst in instruments.items():
        try:
            inst.safe_state()
        except Exception as exc:  # noqa: BLE001 - keep going: the other instruments must be made safe
            problems.append(f"{name}: {exc}")
            log.error("could not make %s safe: %s", name, exc)
    return problems


class Engine:
    """Runs sequences on a set of instruments.

    Args:
        instruments: the instruments by role (``mw``, ``pulser``, ``camera``, ``coils``, ...).
        limits: lab safety limits every sequence is checked against before it starts.
        sinks: receivers of each step (storage writer, live sink).
        metadata: run metadata written when the run opens (station snapshot, simulated flag, ...).
        on_progress: called after each step.
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        limits: SafetyLimits,
        sinks: Sequence[Sink] = (),
        metadata: Mapping[str, Any] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.instruments = dict(instruments)
        self.limits = limits
        self.sinks = list(sinks)
        self.metadata = dict(metadata or {})
        self.on_progress = on_progress
        self._abort = threading.Event()
        self._resume = threading.Event()
        self._resume.set()

    # ---- control from other threads (GUI) -------------------------------------------------------

    def abort(self) -> None:
        self._abort.set()
        self._resume.set()

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    # ---- running ---------------------------------------------------------------------------------

    def run(self, sequence: MeasurementSequence) -> RunOutcome:
        """Run ``sequence`` to the end, or until aborted or failed; hardware is safe afterwards.

        Safety-limit violations and missing roles or capabilities (``sequence.requires``) raise before
        any sink opens or any instrument is touched. A sequence with a ``plan(instruments)`` gets it
        computed (without moving anything), stored in the run's metadata and passed to
        ``run(instruments, plan)``. Ctrl-C (``KeyboardInterrupt``) and SIGTERM (``Terminated``) are
        re-raised after the run is closed as aborted, carrying the ``outcome``, so callers can exit
        with 130 and 143. A ``StorageError`` that keeps the run from opening at all (a damaged
        database, a folder too small) is raised too, after making safe: there is no run to report.
        """
        sequence.check(self.limits)
        check_requirements(self.instruments, sequence)
        metadata = {**self.metadata, "sequence": {"name": sequence.name, **sequence.parameters()}}
        opened: list[Sink] = []
        start = time.monotonic()
        done = 0
        status, reason, error = "failed", "", None
        interrupted: BaseException | None = None
        refused: StorageError | None = None
        with TerminationGuard() as guard:
            steps: Iterator[Step] = iter(())
            try:
                planner = getattr(sequence, "plan", None)
                if callable(planner):
                    plan = planner(self.instruments)
                    metadata["sequence"]["plan"] = plan.metadata() if hasattr(plan, "metadata") else plan
                    steps = sequence.run(self.instruments, plan)  # type: ignore[call-arg]
                else:
                    steps = sequence.run(self.instruments)
                for sink in self.sinks:
                    sink.open(metadata, sequence.image_shapes, sequence.n_steps)
                    opened.append(sink)
                while True:
                    # Checked before each step, so an abort requested before the run started
                    # stops it before any hardware moves.
                    guard.raise_if_requested()
                    if self._abort.is_set():
                        raise RunAborted("aborted by operator")
                    step = next(steps, None)
                    if step is None:
                        break
                    with guard.atomic():  # a signal here waits until the step is stored everywhere
                        for sink in opened:
                            sink.write(step)
                        done += 1
                    if self.on_progress:
                        self.on_progress(
                            Progress(done, sequence.n_steps, time.monotonic() - start, step.label)
                        )
                    self._wait_if_paused()
                # A sequence may say how it ended (a runtime limit kept fewer sweeps): the run's end reason.
                status, reason = "completed", str(getattr(sequence, "end_note", "") or "")
            except KeyboardInterrupt as exc:
                status, reason, interrupted = "aborted", "interrupted by Ctrl-C", exc
            except Terminated as exc:
                status, reason, interrupted = "aborted", str(exc), exc
            except RunAborted as exc:
                status, reason = "aborted", str(exc)
            except StorageError as exc:  # a full disk, a damaged database: the message says it all
                status, reason, error = "failed", str(exc), exc
                log.error("run failed: %s", exc)
                if not opened and len(self.sinks) > 0:
                    refused = exc  # no run was opened: nothing to report but the refusal itself
            except Exception as exc:  # noqa: BLE001 - recorded in the run and returned to the caller
                status, reason, error = "failed", f"{type(exc).__name__}: {exc}", exc
                log.exception("run failed")
            finally:
                with guard.shielding():
                    reason = self._finish(steps, opened, status, reason)
        # Once the run is over an abort request is spent and the next run starts clean.
        self._abort.clear()
        outcome = RunOutcome(status, reason, done, time.monotonic() - start, error)
        if refused is not None:
            raise refused
        if interrupted is not None:
            interrupted.outcome = outcome  # type: ignore[union-attr] - callers report what was kept
            raise interrupted
        return outcome

    def _finish(self, steps: Iterator[Step], opened: list[Sink], status: str, reason: str) -> str:
        """Close the sequence, make every instrument safe and close the sinks; return the final reason."""
        try:
            close = getattr(steps, "close", None)  # a generator: run its finally blocks before making safe
            if close is not None:
                close()
        except Exception as exc:  # noqa: BLE001 - making safe comes first
            log.error("sequence cleanup failed: %s", exc)
        problems = make_safe(self.instruments)
        if problems:
            reason = (reason + "; " if reason else "") + "not made safe: " + "; ".join(problems)
        for sink in opened:
            try:
                sink.close(status, reason)
            except Exception as exc:  # noqa: BLE001 - other sinks must still close
                log.error("could not close sink %r: %s", sink, exc)
        return reason

    def _wait_if_paused(self) -> None:
        while not self._resume.wait(timeout=0.1):
            pass
