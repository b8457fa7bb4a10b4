"""Pulsed NV measurements (Rabi, Ramsey, Hahn echo, T1, pulsed ODMR) as a service: sweep values on the
pulse generator's clock grid, the measurement built and checked, run into a stored run, fitted.

``acquire pulsed`` and the GUI's pulsed panel build their measurements here, so both agree on
defaults, clock-grid rounding and refusals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrument.services.errors import RequestError
from instrument.services.runs import SequenceRun, add_run_metadata, prepare_run
from instrument.settings import setting

KINDS = ("rabi", "ramsey", "echo", "t1", "odmr")
NEEDS_PI = ("ramsey", "echo", "odmr")  # measurements built on a calibrated pi pulse
PULSED_ROLES = ("mw", "pulser")
"""Roles every pulsed measurement needs besides its gated photon counter."""
# Default sweeps (start, stop, points) in s, or Hz around the line for pulsed ODMR.
DEFAULT_SWEEPS = {
    "rabi": (12e-9, 600e-9, 99),
    "ramsey": (0.0, 1.8e-6, 151),
    "echo": (1e-6, 24e-6, 58),
    "t1": (1e-6, 10e-3, 41),  # log-spaced (see pulsed_sweep)
    "odmr": (-4e6, 6e6, 81),
}
DEFAULT_REPETITIONS = {"rabi": 1000, "ramsey": 1000, "echo": 1000, "t1": 300, "odmr": 1000}
MIN_POINTS = 5


def lowest_line_hz(sample: Any) -> float | None:
    """The sample's lowest hyperfine line at its bias field (where pulsed measurements drive), or None."""
    return sample.lowest_line_hz


def pulsed_sweep(kind: str, clock_hz: float, start: float | None = None, stop: float | None = None,
                 points: int | None = None) -> Any:
    """The sweep values of ``kind`` (s; Hz offsets for pulsed ODMR), rounded to the clock grid.

    ``None`` takes the kind's default. T1 sweeps are log-spaced (relaxometry spans decades).

    Raises:
        RequestError: too few points, stop not above start, or points closer than the clock allows.
    """
    start, stop, values = sweep_values(DEFAULT_SWEEPS[kind], kind, start, stop, points)
    if kind == "odmr":
        return values
    grid = 4 if kind == "echo" else 1  # echo splits its free evolution into two halves
    return on_clock_grid(values, clock_hz, grid, start, stop)


def sweep_values(defaults: tuple[float, float, int], kind: str, start: float | None, stop: float | None,
                 points: int | None) -> tuple[float, float, Any]:
    """``(start, stop, values)`` of a sweep, ``None`` taking ``defaults`` (start, stop, points).

    T1 sweeps with a positive start are log-spaced (relaxometry spans decades). Shared by the
    single-point and the widefield pulsed services.

    Raises:
        RequestError: too few points, or stop not above start.
    """
    import numpy as np

    d_start, d_stop, d_points = defaults
    start = d_start if start is None else start
    stop = d_stop if stop is None else stop
    points = d_points if points is None else points
    if points < MIN_POINTS:
        raise RequestError(f"{setting('points')} must be at least {MIN_POINTS}, got {points}")
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        raise RequestError(f"{setting('start')}/{setting('stop')} must be finite with stop > start, "
                           f"got {start:g} .. {stop:g}")
    if kind == "t1" and start > 0:
        return start, stop, np.geomspace(start, stop, points)
    return start, stop, np.linspace(start, stop, points)


def on_clock_grid(values: Any, clock_hz: float, grid: int, start: float, stop: float) -> Any:
    """``values`` (s) rounded to multiples of ``grid`` clock cycles.

    Raises:
        RequestError: two points round to the same cycle count (closer than the clock allows).
    """
    import numpy as np

    cycles = np.round(values * clock_hz / grid) * grid
    if len(np.unique(cycles)) < len(cycles):
        raise RequestError(
            f"{len(values)} points between {start:g} s and {stop:g} s are closer than the clock allows; "
            f"lower {setting('points')}"
        )
    return cycles / clock_hz


@dataclass(frozen=True)
class PulsedRequest:
    """What the operator asks of one pulsed measurement (SI units; sweep values as ``pulsed_sweep``)."""

    kind: str
    frequency_hz: float
    power_dbm: float
    sweep: Any
    repetitions: int | None = None
    detuning_hz: float = 5e6
    counter_role: str = "counter"


def build_pulsed(request: PulsedRequest, shape: tuple[int, int], clock_hz: float, pi: Any = None) -> Any:
    """The measurement of ``request`` (``sequences.pulsed``), not yet checked against the limits."""
    from sequences.pulsed import MEASUREMENTS, ShotTiming

    kind, frequency, power = request.kind, request.frequency_hz, request.power_dbm
    reps = DEFAULT_REPETITIONS[kind] if request.repetitions is None else request.repetitions  # 0 is refused
    timing = ShotTiming(repetitions=reps)
    cls = MEASUREMENTS[kind]
    common = dict(image_shape=shape, timing=timing, clock_hz=clock_hz, counter_role=request.counter_role)
    if kind in ("rabi", "t1"):
        return cls(request.sweep, frequency, power, **common)
    if kind == "ramsey":
        return cls(request.sweep, frequency + request.detuning_hz, power, pi_pulse=pi, **common)
    if kind == "odmr":
        return cls(frequency + request.sweep, frequency, power, pi_pulse=pi, **common)
    return cls(request.sweep, frequency, power, pi_pulse=pi, **common)


def stored_data(out: Path, run_id: int, measurement: Any) -> tuple[Any, Any, Any]:
    """(sweep, ratio, ratio error) of a stored pulsed run, in sweep order."""
    import numpy as np

    from instrument.storage.runs import load_run

    stored = load_run(out, run_id)
    order = np.argsort(stored.scalars[measurement.sweep_name])
    return tuple(stored.scalars[k][order] for k in (measurement.sweep_name, "ratio", "ratio_err"))


@dataclass
class PulsedResult:
    """How a pulsed run ended; its data and fit when it completed (``fit_error`` if the fit failed)."""

    run: SequenceRun
    measurement: Any
    data: Any = None
    fit: Any = None
    fit_error: str = ""


def prepare_pulsed(station: Any, measurement: Any, out: Path, command: str, *, sinks: Any = (),
                   on_progress: Callable[[Any], None] | None = None) -> SequenceRun:
    """Wire a pulsed measurement to the engine and a run ``pulsed_KIND``; nothing moves yet."""
    return prepare_run(station, measurement, out, command, sinks=sinks, on_progress=on_progress,
                       run_name=f"pulsed_{measurement.kind}")


def finish_pulsed(out: Path, prepared: SequenceRun, measurement: Any) -> PulsedResult:
    """Load a finished pulsed run, fit it and store the fit in its dataset."""
    from instrument.analysis.pulsed import PulsedFitError

    result = PulsedResult(prepared, measurement)
    if prepared.outcome is None or prepared.outcome.status != "completed":
        return result
    result.data = stored_data(out, prepared.run_id, measurement)
    try:
        result.fit = measurement.fit(*result.data)
    except PulsedFitError as exc:
        result.fit_error = str(exc)
        return result
    fit = result.fit
    add_run_metadata(out, prepared.run_id, {"fit": {"params": fit.params, "errors": fit.errors,
                                                    "reduced_chi2": fit.reduced_chi2}})
    return result


def run_pulsed(station: Any, measurement: Any, out: Path, command: str, **options: Any) -> PulsedResult:
    """Run a checked pulsed measurement into a stored run and fit it."""
    from sequences.engine import LiveSink

    prepared = prepare_pulsed(station, measurement, out, command, sinks=[LiveSink()], **options)
    prepared.run()
    return finish_pulsed(out, prepared, measurement)


def pi_pulse_from_run(result: PulsedResult, clock_hz: float) -> Any:
    """The pi pulse a completed Rabi run calibrates, stored with the run.

    Raises:
        RequestError: the run did not complete or its fit failed; names the fix.
    """
    from instrument.analysis.pulsed import PulsedFitError
    from sequences.pulsed import pi_pulse_from_rabi

    m = result.measurement
    if result.fit is None:
        why = result.fit_error or "the Rabi run did not complete"
        raise RequestError(f"pi-pulse calibration failed: {why}; give {setting('pi_ns')}")
    try:
        pi = pi_pulse_from_rabi(result.fit, m.frequency_hz, m.power_dbm, clock_hz)
    except (PulsedFitError, ValueError) as exc:
        raise RequestError(f"pi-pulse calibration failed: {exc}; give {setting('pi_ns')}") from exc
    add_run_metadata(result.run.writer.out_dir, result.run.run_id, {"pi_pulse": vars(pi)})
    return pi
