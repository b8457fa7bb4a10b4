"""Widefield pulsed maps on the Basler emulator against the simulated truth, with a trivial baseline.

Runs Rabi, Ramsey, Hahn echo, CP-8 (CPMG without phase) and T1 through the service layer on the
bundled Basler station (300 x 300 px, 10 px bins: 30 x 30 maps), exactly as ``acquire pulsed``
does, and compares every map bin with the sample's truth in units of the fit's own error. The
baseline puts the pixel-mean fit's value in every bin: a map that only matches as well as that has
not measured anything. ``--repeats`` reruns with other noise seeds for the spread.

    python benchmarks/widefield_pulsed_maps.py                  # all kinds, one seed (~3 min)
    python benchmarks/widefield_pulsed_maps.py --kinds rabi --repeats 3
    python benchmarks/widefield_pulsed_maps.py --kinds rabi --figure docs/images/widefield_rabi_map.png

The figure option writes the README's Rabi-map figure from the first Rabi run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from instrument.analysis.pulsed_maps import compare_with_truth
from instrument.services.pulsed import pi_pulse_from_run
from instrument.services.report import plot_pulsed_map
from instrument.services.widefield_pulsed import (
    WidefieldRequest,
    build_widefield,
    check_widefield,
    run_widefield,
    widefield_sweep,
)
from instrument.station import build_station, bundled_station

POWER_DBM = 10.0


def run_kind(station, out, kind, pi=None, n_pulses=8, pairs=1):
    clock = station["pulser"].clock_hz
    frequency = station.sample.lowest_line_hz
    request = WidefieldRequest(kind, frequency, POWER_DBM, widefield_sweep(kind, clock, n_pulses=n_pulses),
                               n_pulses=n_pulses, pairs=pairs)
    measurement = build_widefield(request, station["camera"], clock, pi)
    check_widefield(measurement, station)
    t0 = time.perf_counter()
    result = run_widefield(station, measurement, out, f"benchmark {kind}")
    return result, time.perf_counter() - t0


def line(kind, seed, result, seconds):
    name = result.parameter
    a = result.agreement
    mean = result.fit.params[name]
    flat = np.full(result.maps.shape, mean)
    base = compare_with_truth(flat, result.maps.errors[name], result.truth[name])
    return (f"{kind:<7} {seed:>4} {a['within_2_sigma']:>7.0%} {a['within_3_sigma']:>7.0%} "
            f"{a['median_abs_z']:>8.2f} {a['mean_z2']:>7.2f} "
            f"{a['median_rel_error']:>9.1%} {a['median_rel_sigma']:>9.1%} {a['pixels']:>4}/{a['of']:<4} "
            f"{base['within_3_sigma']:>9.0%} {base['median_abs_z']:>8.1f} {base['mean_z2']:>8.1f} "
            f"{seconds:>6.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=["rabi", "ramsey", "echo", "cpmg", "t1"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--pairs", type=int, default=1, help="frame pairs per point for the kinds after Rabi")
    p.add_argument("--figure", type=Path, default=None, help="write the first Rabi map figure here")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    print("kind    seed  in 2sig  in 3sig  med|z|  mean z2  med rel err  med rel sig  bins   "
          "baseline: in 3sig  med|z|  mean z2  time s")
    for seed in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp, \
                build_station(bundled_station("basler.yaml"), simulated=True, seed=seed) as station:
            out = Path(tmp)
            rabi, seconds = run_kind(station, out, "rabi")
            if "rabi" in args.kinds:
                print(line("rabi", seed, rabi, seconds), flush=True)
            if args.figure is not None and seed == 0:
                plot_pulsed_map(rabi, args.figure, truth=rabi.truth["rabi_hz"],
                                title="widefield Rabi, Basler emulator")
                print(f"figure: {args.figure}")
            pi = pi_pulse_from_run(rabi, station["pulser"].clock_hz)
            for kind in args.kinds:
                if kind == "rabi":
                    continue
                result, seconds = run_kind(station, out, kind, pi if kind != "t1" else None,
                                           pairs=args.pairs)
                print(line(kind, seed, result, seconds), flush=True)


if __name__ == "__main__":
    main()
