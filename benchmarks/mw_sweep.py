"""Sweep overhead per point: software stepping against hardware list mode, every source, in sim.

Software stepping is the baseline: one ``set_frequency`` per point, which costs a bus round trip
(a write and its error check or read-back). List mode arms the whole list once and then each point
is one trigger edge from the pulse generator, modelled here by ``sim.trigger()``; its per-point cost
is the arming time spread over the points plus the edge. A third column reads the index back at
every point, the most cautious use of list mode. Both sides run in this process, on the same
simulators, over the same transports a real station uses (TCP for SCPI, a pseudo-terminal for the
SynthHD). Settling times of real synthesizers are not simulated: these are software overheads.

A CW-ODMR run repeats the sweep (``--passes``) and arms the list once, so arming is spread over
every point of the run.

Run: ``python benchmarks/mw_sweep.py [--points 100] [--passes 10] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.rohde_schwarz import RohdeSchwarzSource  # noqa: E402
from drivers.sg384 import SG384Source  # noqa: E402
from drivers.synthhd import SynthHDSource  # noqa: E402
from instrument.protocols import SafetyLimits  # noqa: E402
from sim.rohde_schwarz import SimRohdeSchwarz  # noqa: E402
from sim.sg384 import SimSG384  # noqa: E402
from sim.synthhd import SimSynthHD  # noqa: E402
from sim.world import World  # noqa: E402

LIMITS = SafetyLimits(mw_power_max_dbm=10.0)


def _sources(world: World) -> list[tuple[str, Callable[[], tuple[object, object]]]]:
    def sg384():
        sim = SimSG384(world)
        return sim, SG384Source("bench_sg384", sim.start(), LIMITS)

    def rs(model: str):
        def make():
            sim = SimRohdeSchwarz(world, model)
            return sim, RohdeSchwarzSource(f"bench_{model}", sim.start(), LIMITS)

        return make

    def synthhd():
        sim = SimSynthHD(world)
        return sim, SynthHDSource("bench_synthhd", sim.start(), LIMITS)

    return [("SG384", sg384), ("SMB100A", rs("SMB100A")), ("SGS100A", rs("SGS100A")), ("SynthHD", synthhd)]


def _time(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(sim, source, freqs: np.ndarray, passes: int, repeats: int) -> dict[str, float]:
    """Seconds per point for each way of sweeping ``passes`` times, and the arming time."""
    source.set_power(-10.0)
    n_points = passes * len(freqs)

    def software():
        for _ in range(passes):
            for f in freqs:
                source.set_frequency(f)

    def listed():
        source.arm_list(freqs, -10.0)
        for _ in range(n_points - 1):
            sim.trigger()

    def listed_checked():
        source.arm_list(freqs, -10.0)
        for i in range(1, n_points):
            sim.trigger()
            if source.list_index() != i % len(freqs):
                raise RuntimeError(f"{source.name}: list at {source.list_index()} after {i} triggers")

    result = {
        "software": _time(software, repeats) / n_points,
        "list": _time(listed, repeats) / n_points,
        "list_checked": _time(listed_checked, repeats) / n_points,
        "arm": _time(lambda: source.arm_list(freqs, -10.0), repeats),
    }
    source.abort_list()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100, help="points per sweep (SynthHD holds 100)")
    parser.add_argument("--passes", type=int, default=10, help="sweeps averaged per run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("qcodes").setLevel(logging.WARNING)

    world = World(shape=(8, 8))
    freqs = np.linspace(2.84e9, 2.90e9, args.points)
    print(
        f"MW sweep overhead per point: {args.points} points x {args.passes} passes, median of "
        f"{args.repeats} runs (sim, wall clock)"
    )
    header = f"{'source':8s} {'software':>12s} {'list':>12s} {'list+index':>12s} {'arm':>10s} {'ratio':>8s}"
    print(header)
    for label, make in _sources(world):
        sim, source = make()
        try:
            r = measure(sim, source, freqs, args.passes, args.repeats)
        finally:
            source.close()
            sim.stop()
        print(
            f"{label:8s} {r['software'] * 1e3:9.4f} ms {r['list'] * 1e3:9.4f} ms "
            f"{r['list_checked'] * 1e3:9.4f} ms {r['arm'] * 1e3:7.2f} ms {r['software'] / r['list']:7.1f}x"
        )
    print(
        "software: one set_frequency per point (write + error check or read-back). "
        "list: arm once per run, then one trigger edge per point (arming included). "
        "list+index: as list, reading the index back at every point. arm: arming alone. "
        "ratio: software / list."
    )


if __name__ == "__main__":
    main()
