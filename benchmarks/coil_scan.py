"""Software overhead of a combinatorial coil scan per configuration, simulated at 300x300 pixels.

Side by side in one process on the simulated station (virtual clock, coil board on a pty), paired
configuration by configuration:

* baseline: what ``acquire odmr`` does for one configuration: a CW-ODMR I-off/I-on engine run
  stored with ``RunWriter``, then the per-pixel fit (``analyse_cw_config``);
* scan: the same configuration through ``CoilScan`` (ledger, read-back checks, coil probe, health
  checks, resume bookkeeping, results export).

Printed: wall seconds per configuration for both, the scan's extra seconds per configuration (the
target is < 1 s) with its spread and ratio, and the projected wall time of a 256-configuration scan.
Run:
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
    from instrument.services import coil_scan_runner as runner
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

        # ---- baseline: one engine run + fit, as 'acquire odmr' does it --------------------------
        base_out = Path(tmp) / "baseline"
        plain = runner.cw_measurement(base_out, station.instruments, station.limits, freqs, 0.0, shape,
                                  a.frames_per_point, "bench")

        def baseline_config(currents: np.ndarray) -> tuple[float, float]:
            """(engine run s, fit s) of one plain CW-ODMR run of ``currents``."""
            sweep = plain.make_sequence(currents)
            writer = RunWriter(base_out, "cw_odmr", "bench", sweep.scalars, sweep.setpoints)
            t0 = time.perf_counter()
            outcome = Engine(station.instruments, station.limits, [writer]).run(sweep)
            t1 = time.perf_counter()
            assert outcome.status == "completed", outcome.reason
            runner.analyse_cw_config(base_out, writer.run_id)
            return t1 - t0, time.perf_counter() - t1

        baseline_config(cs.mask_currents(masks[-1], channels, station["coils"].n_channels, drive))  # warm-up

        # ---- the scan, with a baseline run of the same configuration just before each of its own -----
        # Pairing them cancels the drift of a shared machine; the baseline's time is taken out of the
        # scan's intervals.
        scan_out = Path(tmp) / "scan"
        measurement = runner.cw_measurement(scan_out, station.instruments, station.limits, freqs, 0.0, shape,
                                        a.frames_per_point, "bench")
        base_run: list[float] = []
        base_fit: list[float] = []
        scan_measure: list[float] = []
        embedded = [0.0]
        inner_measure = measurement.measure

        def paired_measure(currents, info, on_run_open):
            run_s, fit_s = baseline_config(currents)
            base_run.append(run_s)
            base_fit.append(fit_s)
            embedded[0] += run_s + fit_s
            t = time.perf_counter()
            try:
                return inner_measure(currents, info, on_run_open)
            finally:
                scan_measure.append(time.perf_counter() - t)

        marks: list[tuple[float, float]] = []
        measurement.measure = paired_measure
        scan = cs.CoilScan(station["coils"], channels, names, masks, drive, measurement,
                           on_config=lambda _: marks.append((time.perf_counter(), embedded[0])))
        v_embedded = world.clock.now()
        t_start = time.perf_counter()
        ledger = scan.open_ledger()
        outcome = scan.run(ledger)
        ledger.close()
        cs.export_results(scan_out, scan.scanned_names)
        marks[-1] = (time.perf_counter(), embedded[0])  # the export belongs to the last configuration
        assert outcome.status == "completed", outcome.reason
        virtual = (world.clock.now() - v_embedded) / 2  # the baseline runs took as much virtual time

    edges = [(t_start, 0.0), *marks]
    scan_config = [(t1 - t0) - (e1 - e0) for (t0, e0), (t1, e1) in zip(edges, edges[1:], strict=False)]
    baseline = [r + f for r, f in zip(base_run, base_fit, strict=True)]
    extra = [sc - b for sc, b in zip(scan_config, baseline, strict=True)]
    bookkeeping = [sc - m for sc, m in zip(scan_config, scan_measure, strict=True)]
    mean, n = statistics.mean, len(masks)
    spread = statistics.stdev(extra) if n > 1 else 0.0
    print(f"  baseline (run + fit)  {mean(baseline):8.3f} s/config  (engine run {mean(base_run):.3f}, "
          f"fit {mean(base_fit):.3f})")
    print(f"  coil scan             {mean(scan_config):8.3f} s/config  (outside the CW run and its fit: "
          f"{mean(bookkeeping):.3f})")
    print(f"  scan overhead         {mean(extra):+8.3f} s/config  (+/- {spread:.3f} over {n} paired "
          f"configurations; ratio {mean(scan_config) / mean(baseline):.3f}; target < 1 s)")
    print("  per configuration     " + "  ".join(f"{x:+.2f}" for x in extra) + "  s (scan minus baseline)")
    print(f"  256 configurations    {256 * mean(scan_config) / 60:8.1f} min of wall time in simulation")
    print(f"  instrument time       {virtual / n:8.3f} s/config virtual (camera, MW settling, coil ramps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
