"""Commissioning of a station: the checks behind ``acquire station check``, callable from the GUI.

For every instrument of the station: its identity (from its snapshot), its driver's own
``station_checks()`` where it offers them, and the behaviours that depend on cabling or that the
facts files (``docs/hardware``) mark unconfirmed, exercised at safe settings:

* pulse generator: the safe-state program runs and is reported (its driver's checks);
* camera + pulse generator: a volume started by a ``camera_start`` pulse arrives, with the frame
  period the camera was configured for (the camera starts on the pulse's falling edge);
* list-capable MW source + pulse generator + camera: with RF off, a 3-point list is armed at the
  lowest power the lab allows, two ``mw_trigger`` pulses are sent and the index is read back;
* coil driver: set to zero current and read back.

Nothing exceeds the lab limits: RF stays off, the list power is clipped to ``mw_power_max_dbm``,
coils are only set to zero. Every instrument is left in its safe state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from instrument.checks import CheckResult
from instrument.protocols import (
    CoilDriver,
    Instrument,
    InstrumentTimeout,
    ListSweepSource,
    MicrowaveSource,
    PulseGenerator,
    TriggerableCamera,
)
from sequences.pulses import DEFAULT_CHANNELS, ChannelMap, stepped_point_program, stepped_point_timing

MODULATION_HZ = 6250.0
FRAME_RATE_HZ = 208.0
CHECK_FRAMES = 4
SETTLE_S = 2e-3
LIST_POINTS = 3
LIST_SPACING_HZ = 1e6
LIST_POWER_DBM = -20.0
"""Power of the check list: low, and never above the lab ceiling (RF is off anyway)."""
COIL_ZERO_TOLERANCE_A = 1e-6
FRAME_PERIOD_TOLERANCE = 0.01
REPORT_NAME = "station-check-{stamp}.json"
LATEST_NAME = "station-check-latest.json"


def _first(instruments: Mapping[str, Instrument], kind: type) -> tuple[str, Any] | None:
    return next(((role, inst) for role, inst in instruments.items() if isinstance(inst, kind)), None)


def _fails(role: str, check: str, fix: str) -> Callable[[Exception], CheckResult]:
    return lambda exc: CheckResult(role, check, False, f"{type(exc).__name__}: {exc}", fix)


def identity(role: str, instrument: Instrument) -> CheckResult:
    """Model, options and firmware as the instrument's snapshot reports them."""
    take = getattr(instrument, "snapshot", None)
    try:
        snap = take(update=False) if _is_qcodes(instrument) else (take() if take else {})
    except Exception as exc:  # noqa: BLE001 - a commissioning check reports, it does not stop
        return CheckResult(role, "snapshot", False, str(exc), "check the connection and the address")
    keys = ("model", "idn", "IDN", "firmware", "options", "serial", "hardware_version", "board")
    found = {k: snap[k] for k in keys if k in snap and snap[k] not in (None, "", {})}
    detail = ", ".join(f"{k} {v}" for k, v in found.items()) or f"{type(instrument).__name__} answered"
    return CheckResult(role, "snapshot", True, detail)


def _is_qcodes(inst: object) -> bool:
    return any(c.__module__.startswith("qcodes") for c in type(inst).__mro__)


def driver_checks(role: str, instrument: Instrument) -> list[CheckResult]:
    """The driver's own ``station_checks()`` (identity, options, read-back), when it has them."""
    checks = getattr(instrument, "station_checks", None)
    if not callable(checks):
        return []
    try:
        return [_as_role(role, r) for r in checks()]
    except Exception as exc:  # noqa: BLE001
        return [CheckResult(role, "driver checks", False, f"{type(exc).__name__}: {exc}",
                            "the driver's own checks failed; read the message and the driver's facts file")]


def _as_role(role: str, result: CheckResult) -> CheckResult:
    """Report under the station role, whatever name the driver gave itself."""
    return CheckResult(role, result.check, result.ok, result.detail, result.fix)


class _Bench:
    """The pulse generator and camera that time the cabling checks."""

    def __init__(self, pulser: tuple[str, PulseGenerator], camera: tuple[str, TriggerableCamera],
                 channels: ChannelMap) -> None:
        self.pulser_role, self.pulser = pulser
        self.camera_role, self.camera = camera
        self.channels = channels
        settings = self.camera.configure(MODULATION_HZ, FRAME_RATE_HZ, CHECK_FRAMES)
        volume_s = settings.frames_per_volume / settings.frame_rate_hz
        c = self.pulser.constraints
        self.timing = stepped_point_timing(MODULATION_HZ, volume_s, SETTLE_S, c.clock_hz)
        self.programs = {step: stepped_point_program(self.timing, step, MODULATION_HZ, channels,
                                                     c.clock_hz, c.memory_words) for step in (False, True)}
        self.settings = settings

    def triggered_volume(self, step: bool) -> np.ndarray:
        """Run one hardware-timed point (with or without the ``mw_trigger`` step) and read its volume."""
        self.pulser.load(self.programs[step])
        self.pulser.start()
        return self.camera.acquire(CHECK_FRAMES)


def camera_trigger_check(bench: _Bench) -> CheckResult:
    """A ``camera_start`` pulse starts one volume with the configured frame period."""
    check = "volume on camera_start"
    bit = bench.channels.bits.get("camera_start")
    fix = (f"check the cable from the pulse generator's camera_start output (bit {bit}) to the camera's "
           "external trigger input; the camera starts on the falling edge of a pulse wider than 10 us")
    try:
        raw = bench.triggered_volume(step=False)
    except InstrumentTimeout as exc:
        return CheckResult(bench.camera_role, check, False, str(exc), fix)
    info = getattr(bench.camera, "last_volume", None)
    period = getattr(info, "frame_period_s", None)
    expected = 1.0 / bench.settings.frame_rate_hz
    period_ok = period is None or abs(period / expected - 1) < FRAME_PERIOD_TOLERANCE
    ok = raw.shape[0] == CHECK_FRAMES and period_ok
    detail = f"{raw.shape[0]} frames started by camera_start (bit {bit})"
    if period is not None:
        detail += f", frame period {period * 1e3:.4g} ms (configured {expected * 1e3:.4g} ms)"
    measure = getattr(bench.camera, "measure_phase", None)
    if callable(measure):
        phase, _ = measure(raw)
        detail += f", lock-in phase {phase:+.2f} rad (RF off: noise only)"
    return CheckResult(bench.camera_role, check, ok, detail, "" if ok else
                       "the camera runs at another frame rate than configured: read its registers back")


def list_trigger_check(role: str, mw: ListSweepSource, bench: _Bench,
                       limit_dbm: float) -> list[CheckResult]:
    """With RF off: arm a 3-point list, send two mw_trigger pulses, read the index after each."""
    c = mw.constraints
    bit = bench.channels.bits.get("mw_trigger")
    start = min(max(c.frequency_min_hz, 2.87e9), c.frequency_max_hz - LIST_POINTS * LIST_SPACING_HZ)
    freqs = [start + k * LIST_SPACING_HZ for k in range(LIST_POINTS)]
    power = min(limit_dbm, max(c.power_min_dbm, LIST_POWER_DBM))
    check = "list steps on mw_trigger"
    fix = (f"no mw_trigger edge reached the source: check the cable from the pulse generator's mw_trigger "
           f"output (bit {bit}) to {role}'s trigger input ('trigger_from' in the station file) and the "
           "source's trigger settings; until then sweep with --mw-stepping software")
    results = []
    try:
        mw.set_output(False)
        mw.arm_list(freqs, power)
        seen = [mw.list_index()]
        for _ in range(LIST_POINTS - 1):
            bench.triggered_volume(step=True)
            seen.append(mw.list_index())
    except Exception as exc:  # noqa: BLE001
        return [_fails(role, check, fix)(exc)]
    finally:
        with contextlib.suppress(Exception):
            mw.abort_list()
        with contextlib.suppress(Exception):
            mw.set_output(False)
    ok = seen == list(range(LIST_POINTS))
    results.append(CheckResult(
        role, check, ok,
        f"RF off, {LIST_POINTS} points from {freqs[0] / 1e9:.6f} GHz at {power:g} dBm; index after 0, 1, 2 "
        f"pulses: {seen}", "" if ok else (fix if seen[-1] < LIST_POINTS - 1 else
                                          "the source counted more edges than were sent: check the "
                                          "mw_trigger cable for reflections and the trigger slope")))
    return results


def coil_zero_check(role: str, coils: CoilDriver) -> CheckResult:
    """Coils set to zero current and read back."""
    check = "zero current read-back"
    try:
        coils.set_currents(np.zeros(coils.n_channels))
        read = np.asarray(coils.read_currents(), float)
    except Exception as exc:  # noqa: BLE001
        return _fails(role, check, "check the coil driver's connection and interlock")(exc)
    worst = float(np.max(np.abs(read))) if read.size else 0.0
    ok = worst <= COIL_ZERO_TOLERANCE_A
    return CheckResult(role, check, ok,
                       f"{coils.n_channels} channels at 0 A; largest read-back {worst:.3g} A",
                       "" if ok else "a channel does not read zero: check its sense resistor and wiring")


def run_checks(instruments: Mapping[str, Instrument], limits: Any,
               channels: ChannelMap | Mapping[str, int] = DEFAULT_CHANNELS) -> list[CheckResult]:
    """Every check for these instruments (by station role), in station order; all left safe."""
    cmap = ChannelMap.of(channels)
    results: list[CheckResult] = []
    for role, inst in instruments.items():
        results.append(identity(role, inst))
        results += driver_checks(role, inst)
        if isinstance(inst, CoilDriver):
            results.append(coil_zero_check(role, inst))
    pulser = _first(instruments, PulseGenerator)
    camera = _first(instruments, TriggerableCamera)
    sources = [(r, i) for r, i in instruments.items() if isinstance(i, MicrowaveSource)]
    bench = None
    if pulser and camera:
        previous = camera[1].trigger
        camera[1].set_trigger("external")
        try:
            bench = _Bench(pulser, camera, cmap)
            results.append(camera_trigger_check(bench))
            for role, mw in sources:
                if isinstance(mw, ListSweepSource) and mw.constraints.list_max_points >= LIST_POINTS:
                    results += list_trigger_check(role, mw, bench, limits.mw_power_max_dbm)
                else:
                    results.append(CheckResult(role, "list steps on mw_trigger", None,
                                               "no hardware list mode: sweeps step in software"))
        except Exception as exc:  # noqa: BLE001
            results.append(_fails(camera[0], "cabling checks", "read the message; fix and run again")(exc))
        finally:
            camera[1].set_trigger(previous)
    else:
        missing = "pulse generator" if not pulser else "camera with an external trigger"
        for role, _ in sources:
            results.append(CheckResult(role, "list steps on mw_trigger", None,
                                       f"skipped: the station has no {missing} to time it"))
    for role, inst in instruments.items():
        try:
            inst.safe_state()
        except Exception as exc:  # noqa: BLE001
            results.append(CheckResult(role, "safe state", False, str(exc),
                                       "make the instrument safe by hand (RF off, outputs low, coils 0 A)"))
    return results


def failed(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.ok is False]


def format_table(results: list[CheckResult]) -> str:
    """A plain-text table: instrument, check, result, and what was seen or what to do."""
    rows = [("INSTRUMENT", "CHECK", "RESULT", "DETAIL / WHAT TO DO")]
    for r in results:
        word = {True: "ok", False: "FAIL", None: "skip"}[r.ok]
        rows.append((r.instrument, r.check, word, r.fix if r.ok is False else r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True))
        lines.append(cells + "  " + row[3])
        if row is not rows[0] and row[2] == "FAIL":
            detail = next(r.detail for r in results if (r.instrument, r.check) == row[:2])
            lines.append(" " * (sum(widths) + 6) + "seen: " + detail)
    return "\n".join(lines)


def report(results: list[CheckResult], snapshot: dict[str, Any]) -> dict[str, Any]:
    """The stored report: the results and the station snapshot they were taken on."""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "passed": not failed(results),
            "results": [dataclasses.asdict(r) for r in results],
            "station": snapshot}


def save_report(out_dir: Path, data: dict[str, Any]) -> Path:
    """Write the report next to the runs store (a dated file and ``station-check-latest.json``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_NAME.format(stamp=time.strftime("%Y%m%d-%H%M%S"))
    text = json.dumps(data, indent=2, default=str)
    path.write_text(text)
    (out_dir / LATEST_NAME).write_text(text)
    return path
