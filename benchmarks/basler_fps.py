"""Frames per second the simulated Basler path sustains, software-triggered, frame by frame.

Side by side in one process on pylon's camera emulator (pypylon, ``PYLON_CAMEMU``):

* baseline: the emulator's own test pattern (no image files, nothing rendered): pylon's overhead;
* sim path: the bundled ``basler.yaml`` station in simulation: each frame rendered from the World
  into the emulator's image folder (PNG write), read and converted by pylon, read by the driver.

Printed: frames per second of each (median of repeats with the spread), their ratio, and the ratio
against a rated rate when one is given (``--rated-fps``, from the camera model's data sheet; none is
assumed here). Run: ``python benchmarks/basler_fps.py [--shape 300x300] [--frames 50] [--repeats 3]``.
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


def _rate(camera: BaslerCamera, frames: int) -> float:
    camera.set_trigger(CameraTrigger(source="software"))
    camera.arm(8)
    camera.acquire(2)  # warm up
    t0 = time.perf_counter()
    camera.acquire(frames)
    rate = frames / (time.perf_counter() - t0)
    camera.disarm()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="300x300")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rated-fps", type=float, default=None)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    base, sim = [], []
    for _ in range(args.repeats):
        cam = BaslerCamera("baseline", device_class="BaslerCamEmu", shape=shape, pixel_format="Mono12")
        try:
            base.append(_rate(cam, args.frames))
        finally:
            cam.close()
        with build_station(bundled_station("basler.yaml"), simulated=True, image_shape=shape) as st:
            sim.append(_rate(st["camera"], args.frames))
    for name, values in (("emulator test pattern", base), ("sim path (World -> PNG -> pylon)", sim)):
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        print(f"{name:34s} {statistics.median(values):8.1f} frames/s  (spread {spread:.1f}, n={len(values)})")
    print(f"sim path / baseline: {statistics.median(sim) / statistics.median(base):.2f}")
    if args.rated_fps:
        print(f"sim path / rated {args.rated_fps:g} frames/s: {statistics.median(sim) / args.rated_fps:.2f}")


if __name__ == "__main__":
    main()
