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

The second table is the engine's CW-ODMR sweep itself (``CwOdmrSweep`` run by ``Engine``) on the
bundled sim station with each source chosen by its station-file line, stepping in software against
the hardware-timed list mode (per point one start of a PulseBlaster program that steps the list on
``mw_trigger``, settles, starts the camera on ``camera_start`` and stops; the list index read back
after each point). Its overhead per point is the run's wall time less the CPU the simulated camera
and PulseBlaster spend on work the real ones do in hardware (frame synthesis, program execution and
its TTL edges), over the points. The simulated time per point is the instrument time the run took:
the camera's frames plus, in list mode, the program's settle time (bus round trips do not advance
simulated time).

Run: ``python benchmarks/mw_sweep.py [--points 100] [--passes 10] [--repeats 5] [--cw-points 100]``
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
from timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tempfile  # noqa: E402
from importlib import resources  # noqa: E402

from drivers.rohde_schwarz import RohdeSchwarzSource  # noqa: E402
from drivers.sg384 import SG384Source  # noqa: E402
from drivers.synthhd import SynthHDSource  # noqa: E402
from instrument.protocols import SafetyLimits  # noqa: E402
from instrument.station import build_station  # noqa: E402
from sequences.cw_odmr import CwOdmrSweep  # noqa: E402
from sequences.engine import Engine  # noqa: E402
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
        "software": median_seconds(software, repeats) / n_points,
        "list": median_seconds(listed, repeats) / n_points,
        "list_checked": median_seconds(listed_checked, repeats) / n_points,
        "arm": median_seconds(lambda: source.arm_list(freqs, -10.0), repeats),
    }
    source.abort_list()
    return result


BUNDLED_MW = 'mw: {driver: sg384, address: "TCPIP0::192.168.1.20::5025::SOCKET"}'
STATION_MW = {
    "SG384": BUNDLED_MW,
    "SMB100A": 'mw: {driver: smb100a, address: "TCPIP0::10.0.0.2::inst0::INSTR"}',
    "SGS100A": 'mw: {driver: sgs100a, address: "TCPIP0::10.0.0.3::inst0::INSTR"}',
    "SynthHD": "mw: {driver: synthhd, port: /dev/ttyACM0}",
}
CW_IMAGE_SHAPE = (16, 16)


class _Discard:
    """A sink that keeps nothing: the benchmark times the sweep, not storage."""

    def open(self, metadata, image_shapes, n_steps) -> None:
        self.plan = metadata["sequence"].get("plan", {})

    def write(self, step) -> None:
        pass

    def close(self, status: str, reason: str = "") -> None:
        self.status, self.reason = status, reason


def engine_sweep(station_file: Path, stepping: str, n_points: int, repeats: int) -> dict[str, float]:
    """Median overhead and simulated time per point of the engine's CW sweep with ``stepping``."""
    overheads, sim_times = [], []
    with build_station(station_file, simulated=True, image_shape=CW_IMAGE_SHAPE, seed=1) as station:
        camera = station.sim_parts["camera"]
        board = station["pulser"].library
        center = station.world.resonance_estimate_hz()
        freqs = center + np.linspace(-15e6, 15e6, n_points)
        for _ in range(repeats):
            sweep = CwOdmrSweep(freqs, -10.0, np.zeros(station["coils"].n_channels), CW_IMAGE_SHAPE,
                                frames_per_point=2, stepping=stepping)
            sink = _Discard()
            def simulators_cpu_s() -> float:  # work the real camera and PulseBlaster do in hardware
                return camera.synthesis_cpu_s + board.simulation_cpu_s

            cpu0, sim0, t0 = simulators_cpu_s(), station.world.clock.now(), time.perf_counter()
            outcome = Engine(station.instruments, station.limits, [sink]).run(sweep)
            wall = time.perf_counter() - t0
            if outcome.status != "completed" or sink.plan.get("mw_stepping_mode") != stepping:
                raise RuntimeError(f"{stepping} sweep did not run as asked: {outcome.reason or sink.plan}")
            steps = sweep.n_steps
            overheads.append((wall - (simulators_cpu_s() - cpu0)) / steps)
            sim_times.append((station.world.clock.now() - sim0) / steps)
    return {"overhead": statistics.median(overheads), "sim": statistics.median(sim_times)}


def engine_table(n_points: int, repeats: int) -> None:
    print()
    print(f"Engine CW-ODMR sweep per point: {n_points} points x I-off/I-on, {CW_IMAGE_SHAPE[0]}x"
          f"{CW_IMAGE_SHAPE[1]} px, 2 frames/point, median of {repeats} runs (sim)")
    print(f"{'source':8s} {'software':>12s} {'list':>12s} {'ratio':>7s}   {'sim time/pt software':>21s} "
          f"{'list':>9s}")
    bundled = resources.files("instrument.stations").joinpath("sim.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        for label, line in STATION_MW.items():
            path = Path(tmp) / f"{label}.yaml"
            path.write_text(bundled.replace(BUNDLED_MW, line))
            sw = engine_sweep(path, "software", n_points, repeats)
            hw = engine_sweep(path, "list", n_points, repeats)
            ratio = sw["overhead"] / hw["overhead"]
            print(f"{label:8s} {sw['overhead'] * 1e3:9.3f} ms {hw['overhead'] * 1e3:9.3f} ms {ratio:6.2f}x   "
                  f"{sw['sim'] * 1e3:18.2f} ms {hw['sim'] * 1e3:6.2f} ms")
    print(
        "software / list: wall time per point (engine, sequence, bus traffic) less the CPU the simulated "
        "camera and PulseBlaster spend on what the real ones do in hardware (frame synthesis, program "
        "execution, TTL edges). Software pays set_frequency per point; list pays one PulseBlaster start "
        "and one index read-back per point plus arming the list and loading the two point programs, "
        "spread over the points. ratio: software / list. sim time/pt: simulated instrument time per "
        "point; list mode's includes its settle time, while software stepping's bus round trip and "
        "source settling, which a real station spends between the frames, are not simulated time."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100, help="points per sweep (SynthHD holds 100)")
    parser.add_argument("--passes", type=int, default=10, help="sweeps averaged per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cw-points", type=int, default=100, help="points of the engine CW sweep")
    args = parser.parse_args()
    logging.getLogger("qcodes").setLevel(logging.WARNING)
    logging.getLogger("sequences").setLevel(logging.WARNING)

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
    engine_table(args.cw_points, args.repeats)


if __name__ == "__main__":
    main()
