"""``acquire pulsed KIND``: Rabi, Ramsey, Hahn echo, T1 or pulsed ODMR with its fit.

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
    add_run_metadata,
    check_points,
    command_line,
    open_station,
    prepare_out,
    run_metadata,
    sample_name,
)

KINDS = ("rabi", "ramsey", "echo", "t1", "odmr")
NEEDS_PI = ("ramsey", "echo", "odmr")  # measurements built on a calibrated pi pulse
# Default sweeps (start, stop, points) in s, or Hz around the line for pulsed ODMR.
DEFAULT_SWEEPS = {
    "rabi": (12e-9, 600e-9, 99),
    "ramsey": (0.0, 1.8e-6, 151),
    "echo": (1e-6, 24e-6, 58),
    "t1": (1e-6, 10e-3, 41),  # log-spaced (see _sweep)
    "odmr": (-4e6, 6e6, 81),
}
DEFAULT_REPETITIONS = {"rabi": 1000, "ramsey": 1000, "echo": 1000, "t1": 300, "odmr": 1000}
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
        "Ramsey (T2*), Hahn echo (T2), T1 relaxometry (T1) or pulsed ODMR (line centre).")
    o.add_argument("kind", choices=KINDS, help="which measurement")
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
    o.add_argument("--no-figure", action="store_true", help="do not write the PNG figures")
    o.set_defaults(handler=run)


def lowest_line_hz(world: Any) -> float:
    """The simulated sample's lowest hyperfine line at its bias field: where pulsed measurements drive."""
    from instrument.physics.nv import HYPERFINE_OFFSETS_HZ

    return world.resonance_estimate_hz() + float(min(HYPERFINE_OFFSETS_HZ[world.sample.isotope]))


def _sweep(args: argparse.Namespace, kind: str, clock_hz: float) -> Any:
    import numpy as np

    start, stop, points = DEFAULT_SWEEPS[kind]
    start = start if args.start is None else args.start
    stop = stop if args.stop is None else args.stop
    points = points if args.points is None else args.points
    check_points(points)
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        raise UsageError(f"--start/--stop must be finite with stop > start, got {start:g} .. {stop:g}")
    if kind == "t1" and start > 0:
        values = np.geomspace(start, stop, points)  # relaxometry spans decades: log spacing
    else:
        values = np.linspace(start, stop, points)
    if kind == "odmr":
        return values
    grid = 4 if kind == "echo" else 1  # echo splits its free evolution into two halves
    cycles = np.round(values * clock_hz / grid) * grid
    if len(np.unique(cycles)) < len(cycles):
        raise UsageError(
            f"{points} points between {start:g} s and {stop:g} s are closer than the clock allows"
        )
    return cycles / clock_hz


def _measurement(kind: str, sweep: Any, frequency: float, power: float, args: argparse.Namespace,
                 shape: tuple[int, int], pi: Any, clock_hz: float) -> Any:
    from sequences.pulsed import MEASUREMENTS, ShotTiming

    reps = DEFAULT_REPETITIONS[kind] if args.repetitions is None else args.repetitions
    timing = ShotTiming(repetitions=reps)
    cls = MEASUREMENTS[kind]
    common = dict(image_shape=shape, timing=timing, clock_hz=clock_hz, counter_role=args.counter)
    if kind == "rabi" or kind == "t1":
        return cls(sweep, frequency, power, **common)
    if kind == "ramsey":
        return cls(sweep, frequency + args.detuning_hz, power, pi_pulse=pi, **common)
    if kind == "odmr":
        return cls(frequency + sweep, frequency, power, pi_pulse=pi, **common)
    return cls(sweep, frequency, power, pi_pulse=pi, **common)


def _run_one(station: Any, out: Any, measurement: Any, desc: str) -> tuple[Any, Any, Any]:
    """Run a measurement through the engine into storage; returns (writer, outcome, data)."""
    import numpy as np

    from instrument.storage.runs import RunWriter, load_run
    from sequences.engine import Engine, LiveSink

    writer = RunWriter(out, f"pulsed_{measurement.kind}", sample_name(station), measurement.scalars,
                       measurement.setpoints)
    metadata = run_metadata(station, command_line())
    with ProgressBar(measurement.n_steps, desc) as bar:
        engine = Engine(station.instruments, station.limits, [writer, LiveSink()], metadata,
                        on_progress=bar)
        outcome = engine.run(measurement)
    if outcome.status != "completed":
        return writer, outcome, None
    stored = load_run(out, writer.run_id)
    order = np.argsort(stored.scalars[measurement.sweep_name])
    data = tuple(stored.scalars[k][order] for k in (measurement.sweep_name, "ratio", "ratio_err"))
    return writer, outcome, data


def _report(station: Any, kind: str, fit: Any, counter: str) -> list[str]:
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
    if kind == "odmr" and params is not None and station.world is not None:
        lines[0] += f"   (simulated sample: {lowest_line_hz(station.world) / 1e6:.9g} MHz)"
    if kind == "rabi":
        from instrument.analysis.pulsed import rabi_pi_time_s

        if params is not None and station.world is not None:
            expected = params.rabi_hz(station.world.mw_power_dbm)
            lines[0] += f"   (simulated drive: {expected / 1e6:.5g} MHz)"
        lines.append(f"  {'pi pulse':<16} {rabi_pi_time_s(fit) * 1e9:.1f} ns")
    return lines


def run(args: argparse.Namespace) -> int:
    from instrument.analysis.pulsed import PulsedFitError, plot_pulsed_fit
    from instrument.protocols import SafetyLimitError
    from instrument.station import read_limits
    from sequences.pulsed import PiPulse, pi_pulse_from_rabi

    t0 = time.monotonic()
    kind = args.kind
    power = args.power_dbm if args.power_dbm is not None else (0.0 if kind == "odmr" else 10.0)
    try:
        read_limits(args.station).check_mw_power(power)
    except SafetyLimitError as exc:
        raise UsageError(str(exc)) from exc
    out = prepare_out(args)
    with open_station(args) as station:
        if args.counter not in station.instruments:
            raise UsageError(
                f"station {station.name!r} has no gated photon counter with role {args.counter!r}; add one "
                f"under 'instruments:' in {station.source} or name it with --counter"
            )
        clock_hz = station["pulser"].clock_hz
        frequency = args.frequency_hz
        if frequency is None:
            if station.world is None:
                raise UsageError("give the MW frequency with --frequency-hz (no simulated sample to ask)")
            frequency = lowest_line_hz(station.world)
        shape = station[args.counter].shape
        sweep = _sweep(args, kind, clock_hz)

        pi = None
        runs: list[int] = []
        if kind in NEEDS_PI:
            if args.pi_ns is not None:
                pi = PiPulse(round(args.pi_ns * 1e-9 * clock_hz) / clock_hz, frequency, power)
            else:
                rabi = _measurement("rabi", _sweep(argparse.Namespace(start=None, stop=None, points=None),
                                                   "rabi", clock_hz), frequency, power, args, shape, None,
                                    clock_hz)
                _check(rabi, station)
                writer, outcome, data = _run_one(station, out, rabi, "pi calibration")
                if data is None:
                    return _failed(writer, outcome, rabi)
                try:
                    pi = pi_pulse_from_rabi(rabi.fit(*data), frequency, power, clock_hz)
                except (PulsedFitError, ValueError) as exc:
                    print(f"acquire: pi-pulse calibration failed: {exc}; give --pi-ns", file=sys.stderr)
                    return EXIT_FAILED
                add_run_metadata(out, writer.run_id, {"pi_pulse": vars(pi)})
                runs.append(writer.run_id)
                print(f"pi pulse {pi.pi_s * 1e9:.0f} ns from Rabi run {writer.run_id} "
                      f"(Rabi frequency {pi.rabi_hz / 1e6:.4g} MHz)")
        measurement = _measurement(kind, sweep, frequency, power, args, shape, pi, clock_hz)
        _check(measurement, station)
        writer, outcome, data = _run_one(station, out, measurement, kind)
        if data is None:
            return _failed(writer, outcome, measurement)
        try:
            fit = measurement.fit(*data)
        except PulsedFitError as exc:
            print(f"acquire: run {writer.run_id} stored, but the {kind} fit failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        add_run_metadata(out, writer.run_id, {"fit": {"params": fit.params, "errors": fit.errors,
                                                      "reduced_chi2": fit.reduced_chi2}})
        report = _report(station, kind, fit, args.counter)
        simulated = station.simulated
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


def _check(measurement: Any, station: Any) -> None:
    from instrument.protocols import SafetyLimitError

    try:
        measurement.check(station.limits)
    except (SafetyLimitError, ValueError) as exc:
        raise UsageError(str(exc)) from exc


def _failed(writer: Any, outcome: Any, measurement: Any) -> int:
    print(f"acquire: run {writer.run_id} {outcome.status}: {outcome.reason}", file=sys.stderr)
    print(f"acquire: {outcome.steps_done} of {measurement.n_steps} steps are stored in {writer.run_dir}",
          file=sys.stderr)
    return EXIT_FAILED
