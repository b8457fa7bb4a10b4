"""Combinatorial coil scans: every on/off configuration of N coils, each a CW-ODMR I-off/I-on run.

Seed 000 measured all 2^8 = 256 configurations of its eight working micro-coils overnight. A scan
here is a list of configurations (bit k of a mask = coil k on) measured one after the other; each
configuration is one ordinary CW-ODMR run (``CwOdmrSweep``: its own I-off reference, then I-on)
stored and analysed like any other, so its B_NV map, fit quality and figure are where every tool
expects them. The single-coil configurations are the measured dictionary of the reconstruction.

This module is the scan's definition (configurations, coil read-back checks, the ledger loop and
its health checks); each configuration is measured by a runner of the service layer
(``instrument.services.coil_scan_runner``: engine, run writer, analysis) and the results file is
written by ``instrument.storage.scan_results``.

Crash safety comes from the ledger (``instrument.storage.scan_ledger``): each configuration's state
is one atomic row, the run id of the attempt in flight is recorded as soon as its run opens, and a
re-run of the same scan reconciles every row with the runs on disk before it measures anything:
a run that completed but was not yet analysed is adopted, an interrupted one is marked abandoned and
measured again. Nothing finished is measured twice, nothing completed is lost.

Between configurations the scan checks its health against the first configuration (ODMR contrast,
count rate, bias field of the I-off reference) and warns, re-references or pauses. The coil read-back
is checked every time currents are set: an open coil is flagged and its configurations marked, never
silently measured as if it carried current.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from instrument.protocols import CoilDriver, InstrumentError
from instrument.signals import Terminated
from instrument.storage.runs import StorageError
from instrument.storage.scan_ledger import FINISHED, ScanLedger, mark_run
from instrument.storage.scan_results import (  # noqa: F401 - the scan's results file, importable here
    RESULTS_NAME,
    export_results,
    measured_dictionary,
)
from sequences.engine import make_safe
from sequences.scan_health import HealthLimits, HealthSample

log = logging.getLogger(__name__)


# ---- configurations -------------------------------------------------------------------------------


def all_masks(n_coils: int) -> list[int]:
    """Every on/off configuration of ``n_coils`` coils, in binary counting order (all off first)."""
    if not 1 <= n_coils <= 16:
        raise ValueError(f"a combinatorial scan takes 1 to 16 coils (2^N runs), got {n_coils}")
    return list(range(1 << n_coils))


def parse_configs(text: str, names: Sequence[str]) -> list[int]:
    """Configurations from text, in the given order: ``L1C1+L2C3,L1C2,off`` or masks ``5,3,0``.

    Raises:
        ValueError: an unknown coil name, a mask out of range, or a configuration given twice.
    """
    masks: list[int] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        if item.lower() in ("off", "none", "0"):
            mask = 0
        elif item.isdigit():
            mask = int(item)
            if mask >= 1 << len(names):
                raise ValueError(f"configuration mask {mask} names coils beyond the {len(names)} scanned")
        else:
            mask = 0
            for name in item.split("+"):
                if name not in names:
                    raise ValueError(f"unknown coil {name!r} in configuration {item!r}; "
                                     f"the scanned coils are {', '.join(names)}")
                mask |= 1 << names.index(name)
        if mask in masks:
            raise ValueError(f"configuration {item!r} is listed twice; each is measured exactly once")
        masks.append(mask)
    if not masks:
        raise ValueError("no configurations given")
    return masks


def config_label(mask: int, names: Sequence[str]) -> str:
    on = [name for k, name in enumerate(names) if mask >> k & 1]
    return "+".join(on) if on else "all off"


def mask_currents(mask: int, channels: Sequence[int], n_channels: int, drive_a: float) -> np.ndarray:
    """Current of every driver channel for ``mask`` over the scanned ``channels``."""
    currents = np.zeros(n_channels)
    for k, channel in enumerate(channels):
        if mask >> k & 1:
            currents[channel] = drive_a
    return currents


# ---- open coils -----------------------------------------------------------------------------------


class OpenCoilError(InstrumentError):
    """A coil's measured current disagrees with its setpoint (an open or shorted coil)."""

    def __init__(self, instrument: str, channels: Sequence[int], detail: str) -> None:
        self.channels = tuple(int(c) for c in channels)
        super().__init__(instrument, "set_currents", detail)


class VerifiedCoils:
    """Wraps a ``CoilDriver`` so every ``set_currents`` is followed by a read-back check.

    Args:
        coils: the coil driver.
        names: coil name per channel, for messages.
        abs_tolerance_a: allowed read-back error in A.
        rel_tolerance: allowed read-back error relative to the setpoint.
    """

    def __init__(self, coils: CoilDriver, names: Sequence[str], abs_tolerance_a: float = 10e-6,
                 rel_tolerance: float = 0.1) -> None:
        self.inner = coils
        self.name = coils.name
        self.names = list(names)
        self.abs_tolerance_a = abs_tolerance_a
        self.rel_tolerance = rel_tolerance

    @property
    def n_channels(self) -> int:
        return self.inner.n_channels

    def set_currents(self, currents_a: Sequence[float]) -> None:
        target = np.asarray(currents_a, dtype=float)
        self.inner.set_currents(target)
        measured = self.inner.read_currents()
        allowed = self.abs_tolerance_a + self.rel_tolerance * np.abs(target)
        bad = np.flatnonzero(np.abs(measured - target) > allowed)
        if bad.size:
            detail = "; ".join(f"{self.names[k]} reads {measured[k] * 1e6:.1f} uA for a setpoint of "
                               f"{target[k] * 1e6:.1f} uA" for k in bad)
            raise OpenCoilError(self.name, bad, f"read-back disagrees with setpoint (open coil?): {detail}")

    def read_currents(self) -> np.ndarray:
        return self.inner.read_currents()

    def snapshot(self) -> dict[str, Any]:
        take = getattr(self.inner, "snapshot", None)
        return take() if take else {"name": self.name}

    def safe_state(self) -> None:
        self.inner.safe_state()

    def close(self) -> None:
        self.inner.close()


# ---- one configuration ----------------------------------------------------------------------------


@dataclass
class Measured:
    """Outcome of measuring (or adopting) one configuration."""

    run_id: int | None
    status: str  # "completed", "aborted" or "failed"
    reason: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    health: HealthSample | None = None
    error: BaseException | None = None


class ConfigMeasurement(Protocol):
    """Measures one configuration: the scan's runner (``instrument.services.coil_scan_runner``)."""

    out_dir: Path

    def use_coils(self, coils: CoilDriver) -> None:
        """Drive the coils through ``coils`` (the scan's read-back-checking wrapper) from now on."""

    def check(self, currents: np.ndarray) -> None: ...

    def measure(self, currents: np.ndarray, info: Mapping[str, Any],
                on_run_open: Callable[[int], None]) -> Measured: ...

    def adopt(self, run_id: int) -> Measured: ...

    def run_status(self, run_id: int) -> str: ...


# ---- the scan -------------------------------------------------------------------------------------


@dataclass
class ScanProgress:
    """Reported after each configuration."""

    position: int
    total: int
    finished: int
    label: str
    status: str
    summary: dict[str, Any]
    messages: list[str]
    eta_s: float


@dataclass
class ScanOutcome:
    status: str  # "completed" or "paused"
    reason: str
    counts: dict[str, int]
    next_position: int | None


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan: the microscope is safe and the ledger says where to resume."""

    def __init__(self, position: int, label: str) -> None:
        self.position = position
        self.label = label
        super().__init__(f"interrupted at configuration {position} ({label})")


@dataclass
class CoilScan:
    """A combinatorial scan over ``channels`` of the station's coil driver.

    Args:
        coils: the coil driver (the engine sees it wrapped in ``VerifiedCoils``).
        channels: driver channels scanned; bit k of a mask is ``channels[k]``.
        names: coil name per driver channel.
        masks: configurations in scan order.
        drive_current_a: current of every coil that is on.
        measurement: measures one configuration (``cw_measurement``).
        health: drift limits and the action when one is exceeded.
        plan_extra: settings that identify the scan besides the configurations (sweep settings).
    """

    coils: CoilDriver
    channels: Sequence[int]
    names: Sequence[str]
    masks: Sequence[int]
    drive_current_a: float
    measurement: ConfigMeasurement
    health: HealthLimits = field(default_factory=HealthLimits)
    plan_extra: Mapping[str, Any] = field(default_factory=dict)
    on_config: Callable[[ScanProgress], None] | None = None

    def __post_init__(self) -> None:
        self.channels = [int(c) for c in self.channels]
        self.scanned_names = [self.names[c] for c in self.channels]
        self.verified = VerifiedCoils(self.coils, self.names)
        self.measurement.use_coils(self.verified)

    # ---- inspection ------------------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return [config_label(m, self.scanned_names) for m in self.masks]

    def currents(self, mask: int) -> np.ndarray:
        return mask_currents(mask, self.channels, self.coils.n_channels, self.drive_current_a)

    def plan(self) -> dict[str, Any]:
        return {"coils": self.scanned_names, "channels": self.channels, "masks": list(self.masks),
                "drive_current_a": self.drive_current_a, **self.plan_extra}

    def check(self) -> None:
        """Refuse before anything moves: every configuration passes the safety limits."""
        if len(set(self.masks)) != len(self.masks):
            raise ValueError("a configuration appears twice in the scan")
        if any(not 0 <= c < self.coils.n_channels for c in self.channels):
            raise ValueError(f"scanned channels {self.channels} exceed the driver's {self.coils.n_channels}")
        largest = self.currents(max(self.masks, key=lambda m: bin(m).count("1")))
        self.measurement.check(largest)
        driver_check = getattr(self.coils, "check", None)  # per-coil ceilings the driver knows
        if driver_check is not None:
            driver_check(largest)

    def open_ledger(self) -> ScanLedger:
        return ScanLedger(self.measurement.out_dir, self.plan(), self.masks, self.labels)

    # ---- running ---------------------------------------------------------------------------------

    def run(self, ledger: ScanLedger) -> ScanOutcome:
        """Measure every unfinished configuration in order; safe hardware on any exit.

        Raises:
            ScanInterrupted: on Ctrl-C, after the microscope was made safe.
        """
        self.check()
        ledger.event("resumed" if not ledger.created else "started",
                     f"{len(self.masks)} configurations; {ledger.counts()}")
        position, label = -1, ""
        try:
            self._reconcile(ledger)
            self._probe_coils(ledger)
            durations: list[float] = []
            for row in ledger.rows():
                if row.status in FINISHED:
                    continue
                position, label = row.position, row.label
                if self._has_open_coil(ledger, row.mask):
                    note = self._mark_open(ledger, row.position, row.mask)
                    self._report(ledger, row.position, row.label, "open_coil", {}, [note], durations)
                    continue
                t0 = time.monotonic()
                stop = self._measure(ledger, row.position, row.mask, row.label, durations)
                durations.append(time.monotonic() - t0)
                if stop:
                    return self._outcome(ledger, "paused", stop)
            return self._outcome(ledger, "completed", "")
        except InstrumentError as exc:  # outside a run: the coil probe or the zeroing between runs
            ledger.event("paused", f"instrument error: {exc}; the microscope was made safe", position)
            return self._outcome(ledger, "paused", f"instrument error: {exc}")
        except KeyboardInterrupt:
            ledger.event("paused", f"interrupted by Ctrl-C at configuration {position} ({label})", position)
            raise ScanInterrupted(position, label) from None
        except Terminated:
            ledger.event("paused", f"terminated by SIGTERM at configuration {position} ({label})", position)
            raise
        except StorageError as exc:
            # A full disk or a damaged database is no instrument error: a retry tonight fails the
            # same way, so the scan stops (not pauses) and says what to fix.
            with contextlib.suppress(Exception):
                ledger.event("stopped", f"storage failed at configuration {position} ({label}): {exc}",
                             position)
            raise
        finally:
            make_safe({"coils": self.coils})

    def _reconcile(self, ledger: ScanLedger) -> None:
        """Settle attempts left 'running' by a crash: adopt completed runs, abandon the others."""
        for row in ledger.rows():
            if row.status != "running":
                continue
            status = self.measurement.run_status(row.run_id) if row.run_id is not None else "missing"
            if status == "completed":
                try:
                    result = self.measurement.adopt(row.run_id)
                except (ValueError, OSError, KeyError) as exc:
                    status = f"completed but unreadable ({exc})"
                else:
                    ledger.event("adopted", f"run {row.run_id} completed before the interruption; "
                                 "analysed it", row.position)
                    self._finish(ledger, row.position, row.label, result)
                    continue
            if row.run_id is not None and status != "missing":
                mark_run(self.measurement.out_dir, row.run_id, coil_scan_outcome="abandoned",
                         **({"status": "abandoned"} if status == "running" else {}))
            note = f"run {row.run_id} was {status}; the configuration will be re-measured"
            ledger.finish(row.position, "pending", note=note)
            ledger.event("abandoned", note, row.position)

    def _probe_coils(self, ledger: ScanLedger) -> None:
        """Drive each scanned coil alone once and check its read-back before measuring anything."""
        known = set(ledger.get_meta("open_coils", []))
        for k, channel in enumerate(self.channels):
            if channel in known:
                continue
            try:
                self.verified.set_currents(self.currents(1 << k))
            except OpenCoilError as exc:
                self._flag_open(ledger, exc)
            finally:
                self.coils.set_currents(np.zeros(self.coils.n_channels))

    def _flag_open(self, ledger: ScanLedger, exc: OpenCoilError) -> None:
        known = set(ledger.get_meta("open_coils", []))
        new = [c for c in exc.channels if c not in known]
        ledger.set_meta("open_coils", sorted(known | set(exc.channels)))
        for channel in new:
            ledger.event("open_coil", f"coil {self.names[channel]} flagged open: {exc.detail}")
            log.warning("coil %s flagged open: %s", self.names[channel], exc.detail)

    def _has_open_coil(self, ledger: ScanLedger, mask: int) -> bool:
        open_channels = set(ledger.get_meta("open_coils", []))
        return any(mask >> k & 1 and c in open_channels for k, c in enumerate(self.channels))

    def _mark_open(self, ledger: ScanLedger, position: int, mask: int) -> str:
        open_channels = set(ledger.get_meta("open_coils", []))
        coils = [self.names[c] for k, c in enumerate(self.channels) if mask >> k & 1 and c in open_channels]
        note = f"not measured: open coil {', '.join(coils)}"
        ledger.finish(position, "open_coil", note=note)
        return note

    def _measure(self, ledger: ScanLedger, position: int, mask: int, label: str,
                 durations: list[float]) -> str:
        """Measure one configuration; returns why the scan must pause, or '' to go on."""
        ledger.start(position)
        info = {"position": position, "mask": mask, "label": label, "coils": self.scanned_names,
                "total": len(self.masks)}
        result = self.measurement.measure(self.currents(mask), info,
                                          lambda run_id: ledger.attach_run(position, run_id))
        if result.status == "completed":
            messages = self._finish(ledger, position, label, result)
            self._report(ledger, position, label, "done", result.summary, messages, durations)
            if messages and self.health.action == "pause":
                return f"health check failed after configuration {position} ({label}): " + "; ".join(messages)
            return ""
        if result.run_id is not None and not isinstance(result.error, StorageError):
            mark_run(self.measurement.out_dir, result.run_id, coil_scan_outcome=result.status)
        if isinstance(result.error, OpenCoilError):
            self._flag_open(ledger, result.error)
            self._mark_open(ledger, position, mask)
            self._report(ledger, position, label, "open_coil", {}, [result.reason], durations)
            return ""
        if isinstance(result.error, StorageError):
            with contextlib.suppress(Exception):
                ledger.finish(position, "pending", run_id=result.run_id, note=result.reason)
            raise result.error
        if result.status == "aborted":
            ledger.finish(position, "pending", run_id=result.run_id, note=result.reason)
            ledger.event("paused", f"configuration {position} ({label}) aborted: {result.reason}", position)
            return f"aborted: {result.reason}"
        ledger.finish(position, "failed", run_id=result.run_id, note=result.reason)
        ledger.event("paused", f"instrument error at configuration {position} ({label}): {result.reason}; "
                     "the microscope was made safe", position)
        self._report(ledger, position, label, "failed", {}, [result.reason], durations)
        return f"instrument error at configuration {position} ({label}): {result.reason}"

    def _finish(self, ledger: ScanLedger, position: int, label: str, result: Measured) -> list[str]:
        """Record a completed configuration and run the health checks on it."""
        messages: list[str] = []
        if result.health is not None:
            ref = ledger.get_meta("health_reference")
            if ref is None:
                ledger.set_meta("health_reference", {**result.health.as_dict(), "position": position})
            else:
                messages = self.health.problems(HealthSample.from_dict(ref), result.health)
        summary = {**result.summary, "health_problems": messages}
        ledger.finish(position, "done", run_id=result.run_id, summary=summary)
        if "analysis_error" in summary:
            ledger.event("analysis_failed", f"{label}: run {result.run_id} kept, analysis failed: "
                         f"{summary['analysis_error']}; redo it with `acquire analyse {result.run_id}`",
                         position)
        for message in messages:
            ledger.event(f"health_{self.health.action}", f"{label}: {message}", position)
            log.warning("configuration %d (%s): %s", position, label, message)
        if messages and self.health.action == "re-reference":
            ledger.set_meta("health_reference", {**result.health.as_dict(), "position": position})
            ledger.event("re-referenced", f"health reference is now configuration {position} ({label})",
                         position)
        return messages

    def _report(self, ledger: ScanLedger, position: int, label: str, status: str, summary: dict[str, Any],
                messages: list[str], durations: list[float]) -> None:
        if self.on_config is None:
            return
        counts = ledger.counts()
        finished = sum(counts[s] for s in FINISHED)
        remaining = len(self.masks) - finished
        eta = float(np.mean(durations)) * remaining if durations else float("nan")
        self.on_config(ScanProgress(position, len(self.masks), finished, label, status, summary, messages,
                                    eta))

    def _outcome(self, ledger: ScanLedger, status: str, reason: str) -> ScanOutcome:
        counts = ledger.counts()
        nxt = next((r.position for r in ledger.rows() if r.status not in FINISHED), None)
        if status == "completed" and nxt is not None:
            status, reason = "paused", "configurations left unfinished"
        ledger.event(status, reason or f"all configurations finished: {counts}")
        return ScanOutcome(status, reason, counts, nxt)


# ---- results --------------------------------------------------------------------------------------
