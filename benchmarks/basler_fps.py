"""Frames per second the simulated Basler path sustains, against the camera's rated rate.

Side by side in one process on pylon's camera emulator (pypylon, ``PYLON_CAMEMU``):

* sim path: the bundled ``basler.yaml`` station in simulation, frames started by the simulated
  PulseBlaster's camera line (``sim/camera_line.py``): a program of ``--frames`` pulses at the
  camera's rated frame period, each exposure rendered from the World into the emulator's image
  folder (PNG write), read and converted by pylon, read by the driver (``read_frames``);
* baseline: the emulator's own test pattern, software-triggered frame by frame (nothing rendered,
  no pulse program): pylon's own overhead.

The rated rate is the camera's own: ``ResultingFrameRate`` with the benchmark's exposure and ROI
applied (the rate the camera says it can be triggered at; BA-12 in docs/hardware/basler.md), next
to the maximum of its ``AcquisitionFrameRate`` node. A data-sheet rate of a real model can be given
with ``--rated-fps``. Printed: frames per second of each (median of repeats, with the spread) and
the ratios. Run: ``python benchmarks/basler_fps.py [--shape 300x300] [--frames 50] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYLON_CAMEMU", "1")

from drivers.basler import BaslerCamera  # noqa: E402
from instrument.protocols import CameraTrigger  # noqa: E402
from instrument.station import build_station, bundled_station  # noqa: E402
from sequences.pulses import Block, ChannelMap, Pulse, PulseSequence, compile_sequence  # noqa: E402

EXPOSURE_S = 100e-6


def _baseline_rate(shape: tuple[int, int], frames: int) -> float:
    camera = BaslerCamera("baseline", device_class="BaslerCamEmu", shape=shape, pixel_format="Mono12")
    try:
        camera.set_exposure(EXPOSURE_S)
        camera.set_trigger(CameraTrigger(source="software"))
        camera.arm(8)
        camera.acquire(2)  # warm up
        t0 = time.perf_counter()
        camera.acquire(frames)
        return frames / (time.perf_counter() - t0)
    finally:
        camera.close()


def _sim_rate(shape: tuple[int, int], frames: int) -> tuple[float, float, float]:
    """(frames/s through the line-triggered sim path, ResultingFrameRate, AcquisitionFrameRate max)."""
    with build_station(bundled_station("basler.yaml"), simulated=True, image_shape=shape) as st:
        camera, pulser = st["camera"], st["pulser"]
        camera.set_exposure(EXPOSURE_S)
        camera.set_frame_rate(camera.constraints.frame_rate_max_hz)
        camera.set_trigger(CameraTrigger("Line1", exposure="trigger_width", width_s=EXPOSURE_S))
        rated = camera.resulting_frame_rate_hz
        period = max(1.0 / rated, 2 * EXPOSURE_S)
        block = Block(period, (Pulse("laser", 0.0, period), Pulse("camera_trigger", 0.0, EXPOSURE_S)), frames)
        pulser.load(compile_sequence(PulseSequence((block,), ChannelMap()), constraints=pulser.constraints))
        camera.arm(min(1024, frames + 2))
        t0 = time.perf_counter()
        pulser.start()
        got = camera.read_frames(frames, timeout_s=5.0)
        rate = len(got.images) / (time.perf_counter() - t0)
        camera.disarm()
        pulser.stop()
        return rate, rated, camera.constraints.frame_rate_max_hz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="300x300")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rated-fps", type=float, default=None, help="a real model's data-sheet rate")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    base, sim = [], []
    rated = top = 0.0
    for _ in range(args.repeats):
        base.append(_baseline_rate(shape, args.frames))
        rate, rated, top = _sim_rate(shape, args.frames)
        sim.append(rate)
    print(f"image {shape[0]}x{shape[1]} Mono12, {args.frames} frames, exposure {EXPOSURE_S * 1e6:g} us")
    for name, values in (("emulator test pattern (sw trigger)", base),
                         ("sim path (pulser line -> World -> pylon)", sim)):
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        print(f"{name:42s} {statistics.median(values):8.1f} frames/s  (spread {spread:.1f}, n={len(values)})")
    s = statistics.median(sim)
    print(f"camera's rated rate (ResultingFrameRate)   {rated:8.1f} frames/s  "
          f"(AcquisitionFrameRate max {top:g})")
    print(f"sim path / rated:    {s / rated:.4f}")
    print(f"sim path / baseline: {s / statistics.median(base):.2f}")
    if args.rated_fps:
        print(f"sim path / data-sheet {args.rated_fps:g} frames/s: {s / args.rated_fps:.3f}")


if __name__ == "__main__":
    main()
