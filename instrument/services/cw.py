"""CW-ODMR I-off/I-on field maps: request in, sweep built and checked, run, stored, fitted, map out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrument.services.errors import RequestError
from instrument.services.runs import SequenceRun, add_run_metadata, drive_current_a, prepare_run
from instrument.settings import setting

CW_ROLES = ("mw", "pulser", "camera", "coils")
"""The station roles a CW-ODMR field map needs (``CwOdmrSweep.requires``, ``CameraCwSweep.requires``)."""
CAMERA_ONLY = ("exposure_s", "frame_period_s")
"""Request settings that only an intensity camera's sweep has."""


@dataclass(frozen=True)
class CwOdmrRequest:
    """What the operator asks of a CW-ODMR field map (SI units).

    Args:
        frequencies_hz: the sweep's frequencies.
        power_dbm: MW power.
        coils: comma-separated names of the coils driven in the I-on sweep.
        current_a: drive current of each of them (None: the sample's reference current).
        frames_per_point: lock-in frames (intensity camera: MW-on/MW-off frame pairs) averaged per
            frequency.
        stepping: how the MW frequency steps (``auto``, ``list`` or ``software``).
        exposure_s: intensity camera only: exposure of each frame (None: the sweep's default, 10 ms).
        frame_period_s: intensity camera only: time between frames (None: the sweep's default, 12 ms).
        repeats: sweeps to run and average (each an I-off and an I-on pass).
        order: visiting order of the sweeps (``sequences.sweep_order.ORDERS``).
        order_seed: seed of a ``random`` order (None: drawn and recorded in the run).
        max_runtime_s: run only the whole sweeps that fit in this time (None: no limit).
    """

    frequencies_hz: Sequence[float]
    power_dbm: float
    coils: str = "L1C1"
    current_a: float | None = None
    frames_per_point: int = 4
    stepping: str = "auto"
    exposure_s: float | None = None
    frame_period_s: float | None = None
    repeats: int = 1
    order: str = "sequential"
    order_seed: int | None = None
    max_runtime_s: float | None = None


def coil_currents(station: Any, names: str, current_a: float | None) -> Any:
    """Current vector for the station's coil channels with ``names`` driven at ``current_a``."""
    import numpy as np

    n = station["coils"].n_channels
    labels = list(station.sample.coil_names) or [f"C{i + 1}" for i in range(n)]
    drive = drive_current_a(station, current_a)
    currents = np.zeros(n)
    for name in filter(None, (s.strip() for s in names.split(","))):
        if name not in labels:
            raise RequestError(f"{setting('coils')}: unknown coil {name!r}; the station's coils are "
                               f"{', '.join(labels)}")
        currents[labels.index(name)] = drive
    return currents


def repeat_options(request: CwOdmrRequest, station: Any) -> dict[str, Any]:
    """The request's repeat settings for either sweep (``RepeatedSweeps``), on the station's clock
    (simulated time in simulation: the runtime limit means the same there)."""
    return {"repeats": request.repeats, "order": request.order, "order_seed": request.order_seed,
            "max_runtime_s": request.max_runtime_s, "clock": station.now}


def build_cw_sweep(station: Any, request: CwOdmrRequest) -> Any:
    """The CW sweep of ``request`` for the station's camera, checked; nothing moves.

    A lock-in camera gets a ``CwOdmrSweep``, an intensity camera a ``CameraCwSweep`` (MW-on/MW-off
    frame pairs); the camera's frame rate and exposure are checked against the sweep here.

    Raises:
        RequestError: an unknown coil, no current to drive it with, or a camera setting the
            station's camera does not have.
        ValueError: the sweep cannot run (too few points, bad frequencies, a camera timing the
            camera cannot follow); names the setting.
        SafetyLimitError: a setting exceeds a lab limit.
    """
    from instrument.protocols import IntensityCamera
    from sequences.camera_checks import check_lockin_camera

    camera = station["camera"]
    currents = coil_currents(station, request.coils, request.current_a)
    if isinstance(camera, IntensityCamera):
        from sequences.camera_cw import CameraCwSweep

        timing = {k: getattr(request, k) for k in CAMERA_ONLY if getattr(request, k) is not None}
        sweep = CameraCwSweep(request.frequencies_hz, request.power_dbm, currents, image_shape=camera.shape,
                              frames_per_point=request.frames_per_point, stepping=request.stepping,
                              **repeat_options(request, station), **timing)
        sweep.check(station.limits)
        sweep.plan(station.instruments)  # pure: the camera's and the board's limits against the sweep
        return sweep
    from sequences.cw_odmr import CwOdmrSweep

    given = [setting(k) for k in CAMERA_ONLY if getattr(request, k) is not None]
    if given:
        raise RequestError(f"{' and '.join(given)} set the frames of an intensity camera; the station's "
                           f"camera {camera.name!r} is a lock-in camera (its frames follow the frame rate)")
    sweep = CwOdmrSweep(request.frequencies_hz, request.power_dbm, currents,
                        image_shape=camera.shape, frames_per_point=request.frames_per_point,
                        stepping=request.stepping, **repeat_options(request, station))
    sweep.check(station.limits)
    check_lockin_camera(camera, sweep.modulation_hz, sweep.frame_rate_hz, sweep.frames_per_point)
    return sweep


def analyse_cw(out: Path, run_id: int, **fit_options: Any) -> Any:
    """Fit a stored CW-ODMR run, store the maps beside it and its summary in its dataset.

    Returns the ``CwFieldMap``; ``fit_options`` go to ``analyse_cw_run``.
    """
    from instrument.analysis.cw_run import analyse_cw_run, save_analysis
    from instrument.storage.runs import load_run

    stored = load_run(out, run_id)
    result = analyse_cw_run(stored, **fit_options)
    save_analysis(result, stored.run_dir)
    lo, hi = result.field_range_t
    add_run_metadata(out, run_id, {"b_nv_range_t": [lo, hi], "converged_fraction": result.converged_fraction,
                                  "fit_options": result.fit_off.options, "drift": result.drift,
                                  **({"sweeps": result.sweeps} if result.sweeps is not None else {})})
    return result


@dataclass
class CwOdmrResult:
    """How a CW-ODMR run ended, and its field map when it completed."""

    run: SequenceRun
    field_map: Any = None  # instrument.analysis.cw_run.CwFieldMap

    @property
    def outcome(self) -> Any:
        return self.run.outcome

    @property
    def plan(self) -> dict[str, Any]:
        """The MW stepping plan the run recorded (mode and why)."""
        from instrument.storage.runs import load_run

        stored = load_run(self.run.writer.out_dir, self.run.run_id)
        return (stored.metadata.get("sequence") or {}).get("plan") or {}


def run_cw_odmr(station: Any, request: CwOdmrRequest, out: Path, command: str, *,
                sinks: Sequence[Any] = (), on_progress: Callable[[Any], None] | None = None) -> CwOdmrResult:
    """Build, check, run, store and fit one CW-ODMR field map (the ``acquire odmr`` measurement)."""
    from sequences.engine import LiveSink

    sweep = build_cw_sweep(station, request)
    prepared = prepare_run(station, sweep, out, command, sinks=[LiveSink(), *sinks], on_progress=on_progress)
    prepared.run()
    if prepared.outcome.status != "completed":
        return CwOdmrResult(prepared)
    return CwOdmrResult(prepared, analyse_cw(out, prepared.run_id))
