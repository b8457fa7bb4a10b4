"""``acquire pulsed KIND``: Rabi, Ramsey, Hahn echo, T1 or pulsed ODMR with its fit (on an
intensity camera: widefield maps, ``instrument.commands.widefield``).

Ramsey, echo and pulsed ODMR need a pi pulse: unless ``--pi-ns`` is given, a Rabi measurement at
the same frequency and power runs first (stored as its own run) and its fit calibrates the pulse.
The station needs a gated photon counter (role ``counter`` by default: the SPAD array, or a gated
camera) wired to the pulse generator's ``spad_gate`` channel.
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
    UsageError,
    command_line,
    failed_run,
    open_station,
    pi_from_calibration,
    prepare_out,
)
from instrument.services.pulsed import (  # noqa: F401 - the pulsed names, as they were importable here
    DEFAULT_REPETITIONS,
    DEFAULT_SWEEPS,
    KINDS,
    NEEDS_PI,
    lowest_line_hz,
)

WIDEFIELD_ONLY = ("cpmg", "xy8")
ALL_KINDS = (*KINDS, *WIDEFIELD_ONLY)

# What the fit reports for each kind, and the spin parameter of a simulated sample it measures.
RESULTS = {
    "rabi": [("rabi_hz", "Rabi frequency", 1e6, "MHz", None), ("detuning_hz", "detuning", 1e6, "MHz", None)],
    "ramsey": [("t2_star_s", "T2*", 1e-6, "us", "t2_star_s"), ("detuning_hz", "detuning", 1e6, "MHz", None)],
    "echo": [("t2_s", "T2", 1e-6, "us", "t2_s"), ("stretch", "stretch exponent", 1.0, "", "t2_stretch")],
    "t1": [("t1_s", "T1", 1e-3, "ms", "t1_s")],
    "odmr": [("center_hz", "line centre", 1e6, "MHz", None), ("fwhm_hz", "line width", 1e6, "MHz", None)],
}


def add_parser(sub: Any) -> None:
    o = sub.add_parser(
        "pulsed", help="pulsed measurement (rabi, ramsey, echo, t1, odmr) with its fit",
        description="Pulsed NV measurement on the gated counter: Rabi (Rabi frequency, pi pulse), "
        "Ramsey (T2*), Hahn echo (T2), T1 relaxometry (T1) or pulsed ODMR (line centre). On an "
        "intensity camera (--camera, or a station whose detector is one): widefield maps of the Rabi "
        "frequency, T2*, T2 (echo, cpmg as CP-N) and T1, one signal/reference frame pair per point; "
        "xy8 and --phase-cycled cpmg need MW phase control and are refused on a PulseBlaster.")
    o.add_argument("kind", choices=ALL_KINDS,
                   help="which measurement (cpmg, xy8: widefield on a camera only)")
    o.add_argument("--frequency-hz", type=float, default=None,
                   help="MW frequency of the pulses (default in sim: the sample's lower 15N line)")
    o.add_argument("--power-dbm", type=float, default=None,
                   help="MW power in dBm (default: 10, or 0 for pulsed ODMR)")
    o.add_argument("--start", type=float, default=None, help="first sweep value (s; Hz offset for odmr)")
    o.add_argument("--stop", type=float, default=None, help="last sweep value (s; Hz offset for odmr)")
    o.add_argument("--points", type=int, default=None, help="sweep points")
    o.add_argument("--repetitions", type=int, default=None, help="shots per point")
    o.add_argument("--detuning-hz", type=float, default=5e6,
                   help="Ramsey only: MW detuning from the line, so fringes show (default: 5 MHz)")
    o.add_argument("--pi-ns", type=float, default=None,
                   help="pi-pulse length in ns; skips the Rabi calibration (ramsey, echo, odmr)")
    o.add_argument("--counter", default="counter", metavar="ROLE",
                   help="station role of the gated photon counter (default: counter)")
    o.add_argument("--camera", default=None, metavar="ROLE",
                   help="run widefield on this intensity camera: one frame pair per point, per-pixel maps "
                   "(default: the station's camera when it has no gated counter)")
    o.add_argument("--pairs", type=int, default=1, help="camera: signal/reference frame pairs per point")
    o.add_argument("--bin", type=int, default=10, help="camera: pixels per map bin side (default: 10)")
    o.add_argument("--n-pulses", type=int, default=8,
                   help="cpmg: pi pulses (CPMG-N); xy8: XY8 cycles (XY8-N) (default: 8)")
    o.add_argument("--phase-cycled", action="store_true",
                   help="cpmg: true CPMG (pi pulses 90 deg from the pi/2); needs MW phase control")
    o.add_argument("--no-figure", action="store_true", help="do not write the PNG figures")
    o.set_defaults(handler=run)


def _sweep(args: argparse.Namespace, kind: str, clock_hz: float) -> Any:
    from instrument.services.pulsed import pulsed_sweep

    return pulsed_sweep(kind, clock_hz, args.start, args.stop, args.points)


def _request(kind: str, sweep: Any, frequency: float, power: float, args: argparse.Namespace) -> Any:
    from instrument.services.pulsed import PulsedRequest

    return PulsedRequest(kind, frequency, power, sweep, args.repetitions, args.detuning_hz, args.counter)


def _run_one(station: Any, out: Any, measurement: Any, desc: str) -> Any:
    """Run a measurement through the service into storage, with a progress bar; returns the result."""
    from instrument.services.pulsed import run_pulsed

    with ProgressBar(measurement.n_steps, desc) as bar:
        return run_pulsed(station, measurement, out, command_line(), on_progress=bar)


def _report(station: Any, kind: str, fit: Any, counter: str, power_dbm: float) -> list[str]:
    # A simulated counter knows the sample's spin parameters: show them beside the fit.
    spins = getattr(station.instruments.get(counter), "spins", None)
    params = getattr(spins, "params", None)
    lines = []
    for key, label, scale, unit, truth in RESULTS[kind]:
        if fit.errors[key] == 0:
            lines.append(f"  {label:<16} {fit.params[key] / scale:.5g} {unit} (held fixed)")
            continue
        digits = 9 if key == "center_hz" else 5  # a line centre needs kHz resolution in MHz
        text = f"  {label:<16} {fit.params[key] / scale:.{digits}g} +- {fit.errors[key] / scale:.2g} {unit}"
        if params is not None and truth is not None:
            text += f"   (simulated sample: {getattr(params, truth) / scale:.5g} {unit})"
        lines.append(text)
    line_hz = station.sample.lowest_line_hz
    if kind == "odmr" and params is not None and line_hz is not None:
        lines[0] += f"   (simulated sample: {line_hz / 1e6:.9g} MHz)"
    if kind == "rabi":
        from instrument.analysis.pulsed import rabi_pi_time_s

        if params is not None:
            expected = params.rabi_hz(power_dbm)
            lines[0] += f"   (simulated drive: {expected / 1e6:.5g} MHz)"
        lines.append(f"  {'pi pulse':<16} {rabi_pi_time_s(fit) * 1e9:.1f} ns")
    return lines


def run(args: argparse.Namespace) -> int:
    from instrument.protocols import SafetyLimitError
    from instrument.services.pulsed import build_pulsed
    from instrument.services.report import plot_pulsed_fit
    from instrument.station import read_limits
    from sequences.pulsed import PiPulse

    t0 = time.monotonic()
    kind = args.kind
    power = args.power_dbm if args.power_dbm is not None else (0.0 if kind == "odmr" else 10.0)
    try:
        read_limits(args.station).check_mw_power(power)
    except SafetyLimitError as exc:
        raise UsageError(str(exc)) from exc
    out = prepare_out(args)
    with open_station(args) as station:
        if args.counter not in station.instruments and args.camera is None and not _has_camera(station):
            raise UsageError(
                f"station {station.name!r} has no gated photon counter with role {args.counter!r}; add one "
                f"under 'instruments:' in {station.source} or name it with --counter"
            )
        frequency = args.frequency_hz
        if frequency is None:
            frequency = lowest_line_hz(station.sample)
        if frequency is None:
            raise UsageError("give the MW frequency with --frequency-hz (the station's sample gives no "
                             "expected resonance)")
        from instrument.commands import widefield

        role = widefield.camera_role(args, station)
        if role is not None:
            return widefield.run(args, station, out, role, frequency, power, t0)
        if kind in WIDEFIELD_ONLY:
            raise UsageError(f"{kind} runs widefield on an intensity camera here; name it with --camera")
        clock_hz = station["pulser"].clock_hz
        shape = station[args.counter].shape
        sweep = _sweep(args, kind, clock_hz)

        pi = None
        if kind in NEEDS_PI:
            if args.pi_ns is not None:
                pi = PiPulse(round(args.pi_ns * 1e-9 * clock_hz) / clock_hz, frequency, power)
            else:
                rabi_request = _request("rabi", _sweep(argparse.Namespace(start=None, stop=None, points=None),
                                                       "rabi", clock_hz), frequency, power, args)
                rabi = build_pulsed(rabi_request, shape, clock_hz)
                _check(rabi, station)
                calibration = _run_one(station, out, rabi, "pi calibration")
                if calibration.data is None:
                    return failed_run(calibration.run, rabi)
                pi = pi_from_calibration(calibration, clock_hz)
                if pi is None:
                    return EXIT_FAILED
                print(f"pi pulse {pi.pi_s * 1e9:.0f} ns from Rabi run {calibration.run.run_id} "
                      f"(Rabi frequency {pi.rabi_hz / 1e6:.4g} MHz)")
        measurement = build_pulsed(_request(kind, sweep, frequency, power, args), shape, clock_hz, pi)
        _check(measurement, station)
        result = _run_one(station, out, measurement, kind)
        if result.data is None:
            return failed_run(result.run, measurement)
        if result.fit is None:
            print(f"acquire: run {result.run.run_id} stored, but the {kind} fit failed: {result.fit_error}",
                  file=sys.stderr)
            return EXIT_FAILED
        fit = result.fit
        report = _report(station, kind, fit, args.counter, power)
        simulated = station.simulated
    writer = result.run.writer
    figure = None
    if not args.no_figure:
        from sequences.plot import plot_sequence

        figure = plot_pulsed_fit(fit, writer.run_dir / "figure.png", title=f"run {writer.run_id}: {kind}")
        plot_sequence(measurement.sequence(float(measurement.sweep[len(measurement.sweep) // 2])),
                      writer.run_dir / "sequence.png")
    print(f"run {writer.run_id} completed{' (simulated)' if simulated else ''}: pulsed {kind}, "
          f"{measurement.n_steps} points x {measurement.timing.repetitions} shots")
    print("\n".join(report))
    print(f"  fit        reduced chi-square {fit.reduced_chi2:.2f}")
    print(f"  time       {time.monotonic() - t0:.1f} s")
    print(f"  data       {out / 'runs.db'} (dataset {writer.run_id}), {writer.run_dir}")
    if figure:
        print(f"  figure     {figure}")
    return EXIT_OK


def _has_camera(station: Any) -> bool:
    from instrument.protocols import IntensityCamera

    return any(isinstance(inst, IntensityCamera) for inst in station.instruments.values())


def _check(measurement: Any, station: Any) -> None:
    from instrument.protocols import SafetyLimitError

    try:
        measurement.check(station.limits)
    except (SafetyLimitError, ValueError) as exc:
        raise UsageError(str(exc)) from exc

