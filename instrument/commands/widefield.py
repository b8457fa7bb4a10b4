"""``acquire pulsed KIND`` on an intensity camera: widefield Rabi, Ramsey, echo, CPMG (CP), T1 maps.

Chosen by ``acquire pulsed`` when the station's detector for the run is an intensity camera (the
``--camera`` role, or a station whose only detector is one, such as ``instrument/stations/basler.yaml``).
Ramsey, echo and CPMG need a pi pulse: unless ``--pi-ns`` is given, a widefield Rabi at the same
frequency and power runs first (its own run) and its pixel-mean fit calibrates the pulse.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from instrument.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    ProgressBar,
    RequestError,
    UsageError,
    cli_words,
    command_line,
    failed_run,
    pi_from_calibration,
)

UNITS = {"rabi_hz": (1e6, "MHz", "Rabi frequency"), "t2_star_s": (1e-6, "us", "T2*"),
         "t2_s": (1e-6, "us", "T2"), "t1_s": (1e-3, "ms", "T1")}


def camera_role(args: argparse.Namespace, station: Any) -> str | None:
    """The intensity camera this run uses, or None for the gated-counter path."""
    from instrument.protocols import IntensityCamera

    if args.camera is not None:
        if not isinstance(station.instruments.get(args.camera), IntensityCamera):
            raise UsageError(f"station {station.name!r} has no intensity camera with role {args.camera!r}; "
                             f"add one under 'instruments:' in {station.source} or name it with --camera")
        return str(args.camera)
    if args.counter in station.instruments:
        return None
    cameras = [r for r, inst in station.instruments.items() if isinstance(inst, IntensityCamera)]
    return cameras[0] if len(cameras) == 1 else None


def _sweep(args: argparse.Namespace, kind: str, clock_hz: float, defaults: bool = False) -> Any:
    from instrument.services.widefield_pulsed import widefield_sweep

    if defaults:
        return widefield_sweep(kind, clock_hz, n_pulses=args.n_pulses)
    return widefield_sweep(kind, clock_hz, args.start, args.stop, args.points, args.n_pulses)


def _build(kind: str, sweep: Any, frequency: float, power: float, args: argparse.Namespace, station: Any,
           role: str, clock_hz: float, pi: Any = None) -> Any:
    from instrument.services.widefield_pulsed import WidefieldRequest, build_widefield, check_widefield

    request = WidefieldRequest(kind, frequency, power, sweep, args.repetitions, args.pairs, args.detuning_hz,
                               role, args.n_pulses, args.phase_cycled)
    try:
        measurement = build_widefield(request, station[role], clock_hz, pi)
        check_widefield(measurement, station)
    except (RequestError, ValueError) as exc:
        raise UsageError(cli_words(str(exc))) from exc
    return measurement


def _run_one(station: Any, out: Any, measurement: Any, desc: str, bin_px: int) -> Any:
    from instrument.services.widefield_pulsed import run_widefield

    with ProgressBar(measurement.n_steps, desc) as bar:
        return run_widefield(station, measurement, out, command_line(), bin_px=bin_px, on_progress=bar)


def run(args: argparse.Namespace, station: Any, out: Any, role: str, frequency: float, power: float,
        t0: float) -> int:
    """The widefield path of ``acquire pulsed`` (the station is open)."""
    import numpy as np

    from instrument.services.widefield_pulsed import NEEDS_PI
    from sequences.pulsed import PiPulse

    kind = args.kind
    if kind == "odmr":
        raise UsageError("pulsed ODMR runs on a gated photon counter; on a camera use `acquire odmr`")
    clock_hz = station["pulser"].clock_hz
    bin_px = args.bin
    pi = None
    if kind in NEEDS_PI:
        if args.pi_ns is not None:
            pi = PiPulse(round(args.pi_ns * 1e-9 * clock_hz) / clock_hz, frequency, power)
        else:
            rabi = _build("rabi", _sweep(args, "rabi", clock_hz, defaults=True), frequency, power, args,
                          station, role, clock_hz)
            calibration = _run_one(station, out, rabi, "pi calibration", bin_px)
            if calibration.data is None:
                return failed_run(calibration.run, rabi)
            pi = pi_from_calibration(calibration, clock_hz)
            if pi is None:
                return EXIT_FAILED
            print(f"pi pulse {pi.pi_s * 1e9:.0f} ns from widefield Rabi run {calibration.run.run_id} "
                  f"(pixel-mean Rabi frequency {pi.rabi_hz / 1e6:.4g} MHz)")
    measurement = _build(kind, _sweep(args, kind, clock_hz), frequency, power, args, station, role, clock_hz,
                         pi)
    result = _run_one(station, out, measurement, f"widefield {kind}", bin_px)
    if result.data is None:
        return failed_run(result.run, measurement)
    writer = result.run.writer
    if result.maps is None:
        print(f"acquire: run {writer.run_id} stored, but the {kind} fit failed: {result.fit_error}",
              file=sys.stderr)
        return EXIT_FAILED
    name = result.parameter
    scale, unit, label = UNITS[name]
    values = result.maps.params[name]
    errors = result.maps.errors[name]
    ok = np.isfinite(values)
    print(f"run {writer.run_id} completed{' (simulated)' if station.simulated else ''}: widefield {kind}, "
          f"{measurement.n_steps} points x {2 * measurement.frames.pairs} frames of "
          f"{measurement.frames.repetitions} shots, camera {role}")
    mean = result.fit
    print(f"  pixel mean       {label} {mean.params[name] / scale:.5g} +- "
          f"{mean.errors[name] / scale:.2g} {unit}")
    print(f"  map              {values.shape[0]} x {values.shape[1]} bins of {bin_px} px, "
          f"{ok.mean():.0%} fitted; "
          f"{label} {np.nanpercentile(values, 5) / scale:.4g} .. {np.nanpercentile(values, 95) / scale:.4g} "
          f"{unit} (5-95 %), median error {np.nanmedian(errors) / scale:.2g} {unit}")
    if result.agreement:
        a = result.agreement
        print(f"  vs simulated truth  {a['within_2_sigma']:.0%} of bins within 2 sigma, "
              f"{a['within_3_sigma']:.0%} within 3, median |error|/sigma {a['median_abs_z']:.2f} "
              f"(0.67 expected), median relative error {a['median_rel_error']:.2%}")
    figure = None
    if not args.no_figure:
        from instrument.services.report import plot_pulsed_map

        truth = result.truth.get(name)
        figure = plot_pulsed_map(result, writer.run_dir / "map.png", truth=truth,
                                 title=f"run {writer.run_id}: widefield {kind}")
    print(f"  time             {time.monotonic() - t0:.1f} s")
    print(f"  data             {out / 'runs.db'} (dataset {writer.run_id}), {writer.run_dir} (maps.npz)")
    if figure:
        print(f"  figure           {figure}")
    return EXIT_OK

