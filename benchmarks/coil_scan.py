"""Software overhead of a combinatorial coil scan per configuration, simulated at 300x300 pixels.

Side by side in one process on the simulated station (virtual clock, coil board on a pty):

* baseline: what ``acquire odmr`` does for one configuration: a CW-ODMR I-off/I-on engine run
  stored with ``RunWriter``, then the per-pixel fit (``analyse_cw_config``);
* scan: the same configurations through ``CoilScan`` (ledger, read-back checks, coil probe, health
  checks, resume bookkeeping, results export).

Printed: wall seconds per configuration for both, the scan's extra seconds per configuration (the
target is < 1 s), their ratio, the split of a scan configuration into acquisition / fit / scan
bookkeeping, and the projected wall time of a 256-configuration scan. Run:
``python benchmarks/coil_scan.py [--shape 300x300] [--points 31] [--configs 8]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STATION = Path(__file__).resolve().parents[1] / "instrument" / "stations" / "sim_coil_board.yaml"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="300x300")
    p.add_argument("--points", type=int, default=31)
    p.add_argument("--frames-per-point", type=int, default=4)
    p.add_argument("--configs", type=int, default=8, help="configurations timed (2^k of the first k coils)")
    a = p.parse_args()
    from instrument.station import build_station
    from instrument.storage.runs import RunWriter
    from sequences import coil_scan as cs
    from sequences.engine import Engine

    rows, cols = (int(v) for v in a.shape.split("x"))
    n_coils = max(1, int(np.log2(a.configs)))
    masks = cs.all_masks(n_coils)
    print(f"coil-scan benchmark: {rows}x{cols} px, {a.points} points x {a.frames_per_point} frames, "
          f"{len(masks)} configurations of {n_coils} coils, virtual clock")

    with tempfile.TemporaryDirectory() as tmp, build_station(STATION, simulated=True,
                                                             image_shape=(rows, cols)) as station:
        world = station.world
        names = [c.name for c in world.sample.coils]
        freqs = world.resonance_estimate_hz() + np.linspace(-6e6, 6e6, a.points)
        shape = station["camera"].shape
        drive = world.sample.drive_current_a
        channels = list(range(n_coils))
        world.coil_unit_fields_t()  # the Biot-Savart cache is a one-off cost of the simulator, not the scan

        # ---- baseline: one engine run + fit per configuration, as 'acquire odmr' does -----------
        base_out = Path(tmp) / "baseline"
        measurement = cs.cw_measurement(base_out, station.instruments, station.limits, freqs, 0.0, shape,
                                        a.frames_per_point, "bench")
        base_acq: list[float] = []
        base_fit: list[float] = []

        def baseline_round(round_masks: list[int], record: bool) -> None:
            for mask in round_masks:
                currents = cs.mask_currents(mask, channels, station["coils"].n_channels, drive)
                sweep = measurement.make_sequence(currents)
                writer = RunWriter(base_out, "cw_odmr", "bench", sweep.scalars, sweep.setpoints)
                t0 = time.perf_counter()
                outcome = Engine(station.instruments, station.limits, [writer]).run(sweep)
                t1 = time.perf_counter()
                assert outcome.status == "completed", outcome.reason
                cs.analyse_cw_config(base_out, writer.run_id)
                if record:
                    base_acq.append(t1 - t0)
                    base_fit.append(time.perf_counter() - t1)

        baseline_round(masks[-1:], record=False)  # warms caches and lazy imports
        baseline_round(masks, record=True)  # before the scan; once more after it, so drift cancels

        # ---- the scan ------------------------------------------------------------------------------
        scan_out = Path(tmp) / "scan"
        parts = {"acquisition": [], "fit": []}
        measurement = cs.cw_measurement(scan_out, station.instruments, station.limits, freqs, 0.0, shape,
                                        a.frames_per_point, "bench")
        inner_measure, inner_analyse = measurement.measure, measurement.analyse

        def timed_analyse(out, run_id):
            t = time.perf_counter()
            try:
                return inner_analyse(out, run_id)
            finally:
                parts["fit"].append(time.perf_counter() - t)

        def timed_measure(*args, **kw):
            t = time.perf_counter()
            n_fit = len(parts["fit"])
            try:
                return inner_measure(*args, **kw)
            finally:
                fit = sum(parts["fit"][n_fit:])
                parts["acquisition"].append(time.perf_counter() - t - fit)

        measurement.analyse, measurement.measure = timed_analyse, timed_measure
        scan = cs.CoilScan(station["coils"], channels, names, masks, drive, measurement)
        v0 = world.clock.now()
        t0 = time.perf_counter()
        ledger = scan.open_ledger()
        outcome = scan.run(ledger)
        ledger.close()
        cs.export_results(scan_out, scan.scanned_names)
        total = time.perf_counter() - t0
        virtual = world.clock.now() - v0
        assert outcome.status == "completed", outcome.reason
        baseline_round(masks, record=True)
        baseline = [x + y for x, y in zip(base_acq, base_fit, strict=True)]

    n = len(masks)
    per_config = total / n
    base = statistics.mean(baseline)
    acq, fit = statistics.mean(parts["acquisition"]), statistics.mean(parts["fit"])
    bookkeeping = per_config - acq - fit
    print(f"  baseline (engine run + fit)   {base:8.3f} s/config  (acquisition "
          f"{statistics.mean(base_acq):.3f}, fit {statistics.mean(base_fit):.3f})")
    print(f"  coil scan                     {per_config:8.3f} s/config  (acquisition {acq:.3f}, "
          f"fit {fit:.3f}, scan bookkeeping {bookkeeping:.3f})")
    print(f"  scan overhead vs baseline     {per_config - base:+8.3f} s/config  (ratio scan/baseline "
          f"{per_config / base:.3f}; target < 1 s)")
    print(f"  whole software time           {per_config:8.3f} s/config  -> 256 configurations in "
          f"{256 * per_config / 60:.1f} min of wall time")
    print(f"  instrument time (virtual)     {virtual / n:8.3f} s/config  (camera, MW settling, coil ramps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
