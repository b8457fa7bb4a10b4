"""Widefield pulsed measurements on an intensity camera as a service: the measurement built from the
camera's own limits, run into a stored run, the pixel-mean curve fitted, the per-pixel maps fitted
and stored (``maps.npz`` in the run folder), and in simulation compared with the sample's truth.

``acquire pulsed KIND --camera ROLE`` and the GUI's pulsed panel (camera mode) build here, so both
agree on defaults, clock-grid rounding, the camera checks and the refusals (XY8 and phase-cycled
CPMG need MW phase control that a PulseBlaster does not have).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrument.services.errors import RequestError
from instrument.services.runs import SequenceRun, add_run_metadata, prepare_run

CAMERA_KINDS = ("rabi", "ramsey", "echo", "cpmg", "xy8", "t1")
NEEDS_PI = ("ramsey", "echo", "cpmg", "xy8")
# Default sweeps (start, stop, points) in s: fewer points than the photon counter's, each a frame pair.
DEFAULT_SWEEPS = {
    "rabi": (12e-9, 212e-9, 41),
    "ramsey": (0.0, 1.5e-6, 41),
    "echo": (2e-6, 24e-6, 31),
    "cpmg": (2e-6, 24e-6, 31),
    "xy8": (2e-6, 24e-6, 31),
    "t1": (10e-6, 8e-3, 25),  # log-spaced
}
DEFAULT_REPETITIONS = {"rabi": 4000, "ramsey": 4000, "echo": 4000, "cpmg": 2000, "xy8": 2000, "t1": 1000}
"""Shots per frame: a frame collects ~4 photo-electrons per pixel and shot at the spot centre in the
simulation (2 us of laser per shot), so 4000 shots stay well inside a 30 ke- full well."""
DEFAULT_BIN = 10
"""Pixels per map bin side: 300 x 300 images give 30 x 30 maps."""
MAP_PARAMETER = {"rabi": "rabi_hz", "ramsey": "t2_star_s", "echo": "t2_s", "cpmg": "t2_s", "xy8": "t2_s",
                 "t1": "t1_s"}


def widefield_sweep(kind: str, clock_hz: float, start: float | None = None, stop: float | None = None,
                    points: int | None = None, n_pulses: int = 8) -> Any:
    """Sweep values of ``kind`` on the clock grid (echo: halves, CPMG: 2N slots on the grid)."""
    from instrument.services.pulsed import on_clock_grid, sweep_values

    start, stop, values = sweep_values(DEFAULT_SWEEPS[kind], kind, start, stop, points)
    grid = {"echo": 2, "cpmg": 2 * n_pulses, "xy8": 16 * n_pulses}.get(kind, 1)
    return on_clock_grid(values, clock_hz, grid, start, stop)


@dataclass(frozen=True)
class WidefieldRequest:
    """What the operator asks of one widefield pulsed measurement (SI units)."""

    kind: str
    frequency_hz: float
    power_dbm: float
    sweep: Any
    repetitions: int | None = None
    pairs: int = 1
    detuning_hz: float = 5e6
    camera_role: str = "camera"
    n_pulses: int = 8
    phase_cycled: bool = False
    trigger_input: str = "Line1"


def frame_period_s(camera: Any) -> float:
    """The camera's shortest time between frame starts: its resulting rate where it reports one."""
    rate = getattr(camera, "resulting_frame_rate_hz", None) or camera.constraints.frame_rate_max_hz
    return 1.0 / float(rate)


def build_widefield(request: WidefieldRequest, camera: Any, clock_hz: float, pi: Any = None) -> Any:
    """The measurement of ``request`` for ``camera`` (``sequences.widefield_pulsed``), not yet checked."""
    from sequences.widefield_pulsed import CAMERA_MEASUREMENTS, FrameTiming

    if request.kind not in CAMERA_KINDS:
        raise RequestError(f"unknown widefield measurement {request.kind!r}; "
                           f"choose {', '.join(CAMERA_KINDS)}")
    reps = DEFAULT_REPETITIONS[request.kind] if request.repetitions is None else request.repetitions
    frames = FrameTiming(repetitions=reps, pairs=request.pairs, trigger_input=request.trigger_input,
                         readout_gap_s=1.2 * frame_period_s(camera))
    cls = CAMERA_MEASUREMENTS[request.kind]
    common: dict[str, Any] = dict(image_shape=tuple(camera.shape), frames=frames, clock_hz=clock_hz,
                                  camera_role=request.camera_role)
    frequency = request.frequency_hz + (request.detuning_hz if request.kind == "ramsey" else 0.0)
    if request.kind in NEEDS_PI:
        common["pi_pulse"] = pi
    if request.kind in ("cpmg", "xy8"):
        common.update(n_pulses=request.n_pulses, phase_cycled=request.phase_cycled)
    return cls(request.sweep, frequency, request.power_dbm, **common)


def check_widefield(measurement: Any, station: Any) -> None:
    """Every refusal before anything moves: lab limits, pulse timing, MW phase, the camera's limits.

    Raises:
        RequestError: naming what is wrong and the fix.
    """
    from instrument.protocols import SafetyLimitError
    from sequences.widefield_pulsed import CameraTimingError

    camera = station[measurement.camera_role]
    try:
        measurement.check(station.limits)
        measurement.check_camera(camera.constraints, camera.shape, frame_period_s(camera))
    except (SafetyLimitError, CameraTimingError, ValueError) as exc:
        raise RequestError(str(exc)) from exc


@dataclass
class WidefieldResult:
    """How a widefield run ended; the mean curve's fit and the maps when it completed."""

    run: SequenceRun
    measurement: Any
    data: Any = None
    fit: Any = None
    maps: Any = None
    bin: int = DEFAULT_BIN
    fit_error: str = ""
    truth: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)

    @property
    def parameter(self) -> str:
        return MAP_PARAMETER[self.measurement.kind]


def prepare_widefield(station: Any, measurement: Any, out: Path, command: str, *, sinks: Any = (),
                      on_progress: Callable[[Any], None] | None = None) -> SequenceRun:
    """Wire a widefield measurement to the engine and a run ``widefield_KIND``; nothing moves yet."""
    return prepare_run(station, measurement, out, command, sinks=sinks, on_progress=on_progress,
                       run_name=measurement.name)


def fit_maps(measurement: Any, x: Any, stack: Any, mean_fit: Any) -> Any:
    """The per-pixel maps of a widefield measurement from its binned ratio stack (F, rows, cols)."""
    from instrument.analysis import pulsed_maps as pm

    kind, fx = measurement.kind, measurement.fit_x(x)
    if kind == "rabi":
        return pm.fit_rabi_map(fx, stack, mean_fit, measurement.hyperfine_hz)
    if kind == "ramsey":
        return pm.fit_ramsey_map(fx, stack, mean_fit, measurement.hyperfine_hz)
    if kind in ("echo", "cpmg", "xy8"):
        # The echo decay is stretched (spectral diffusion, n ~ 3): one n for the material, the
        # median of the pixels' own (the mean curve's n is biased low by the spread of T2).
        return pm.fit_decay_map(kind, fx, stack, mean_fit, "t2_s", "pixels")
    return pm.fit_decay_map(kind, fx, stack, mean_fit, "t1_s", "none")


def simulated_truth(station: Any, power_dbm: float) -> dict[str, Any]:
    """The simulated sample's spin truth maps (empty on a real station)."""
    part = getattr(station, "sim_parts", {}).get("spin_truth")
    return part.truth_maps(power_dbm) if part is not None else {}


def truth_on_map(truth: Any, cell_px: int, bin_px: int, shape: tuple[int, int]) -> Any:
    """A truth map (one value per cell of ``cell_px`` pixels) on the map grid (bins of ``bin_px``)."""
    import numpy as np

    t = np.asarray(truth, float)
    full = np.repeat(np.repeat(t, cell_px, axis=0), cell_px, axis=1)
    rows, cols = shape
    return full[: rows * bin_px, : cols * bin_px].reshape(rows, bin_px, cols, bin_px).mean(axis=(1, 3))


def finish_widefield(station: Any, out: Path, prepared: SequenceRun, measurement: Any,
                     bin_px: int = DEFAULT_BIN) -> WidefieldResult:
    """Load a finished run, fit the mean curve and the maps, store them (and the truth comparison)."""
    import numpy as np

    from instrument.analysis.pulsed import PulsedFitError
    from instrument.analysis.pulsed_maps import bin_images, compare_with_truth
    from instrument.storage.runs import load_run

    result = WidefieldResult(prepared, measurement, bin=bin_px)
    if prepared.outcome is None or prepared.outcome.status != "completed":
        return result
    stored = load_run(out, prepared.run_id)
    order = np.argsort(stored.scalars[measurement.sweep_name])
    x = stored.scalars[measurement.sweep_name][order]
    result.data = (x, stored.scalars["ratio"][order], stored.scalars["ratio_err"][order])
    stack = bin_images(stored.images("ratio")[order], bin_px)
    try:
        result.fit = measurement.fit(*result.data)
        result.maps = fit_maps(measurement, x, stack, result.fit)
    except (PulsedFitError, ValueError) as exc:
        result.fit_error = str(exc)
        return result
    maps = result.maps
    arrays = {f"{k}": v for k, v in maps.params.items()}
    arrays.update({f"{k}_err": v for k, v in maps.errors.items()})
    arrays["converged"] = maps.converged
    summary: dict[str, Any] = {
        "fit": {"params": result.fit.params, "errors": result.fit.errors,
                "reduced_chi2": result.fit.reduced_chi2},
        "maps": {"file": "maps.npz", "bin_px": bin_px, "shape": list(maps.shape), "held": maps.held,
                 "converged_fraction": float(maps.converged.mean())},
    }
    truth = simulated_truth(station, measurement.power_dbm)
    name = result.parameter
    if name in truth:
        true_map = truth_on_map(truth[name], int(truth["block"]), bin_px, maps.shape)
        arrays[f"{name}_truth"] = true_map
        result.truth = {name: true_map}
        result.agreement = compare_with_truth(maps.params[name], maps.errors[name], true_map)
        summary["maps"]["truth_agreement"] = {name: result.agreement}
    np.savez(prepared.run_dir / "maps.npz", **arrays)
    add_run_metadata(out, prepared.run_id, summary)
    return result


def run_widefield(station: Any, measurement: Any, out: Path, command: str, bin_px: int = DEFAULT_BIN,
                  **options: Any) -> WidefieldResult:
    """Run a checked widefield measurement into a stored run, fit it and map it."""
    from sequences.engine import LiveSink

    prepared = prepare_widefield(station, measurement, out, command, sinks=[LiveSink()], **options)
    prepared.run()
    return finish_widefield(station, out, prepared, measurement, bin_px)
