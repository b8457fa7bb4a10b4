"""A fast stand-in for the CW-ODMR sweep, for coil-scan tests: the real engine, storage, ledger and
coil board (driver on the simulated pty board) run; only the optics are replaced by the World's
true field map. Run as a script it performs one scan, so a test can kill -9 it and run it again."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drivers.coil_board import CoilBoard, open_serial
from instrument.protocols import SafetyLimits
from instrument.services.coil_scan_runner import EngineMeasurement
from instrument.storage.runs import Step, load_run
from sequences.coil_scan import CoilScan, all_masks
from sequences.scan_health import HealthLimits, HealthSample
from sim.coil_board import SimCoilBoard
from sim.world import World

LIMITS = SafetyLimits(coil_current_max_a=1e-3, coil_ramp_rate_a_per_s=1e-2)
DRIVE_A = 6e-4


@dataclass
class FakeSweep:
    """I-off then I-on, ``points`` steps each, images = true B_NV of the coils that are on."""

    world: World
    currents: np.ndarray
    points: int = 3
    step_s: float = 0.0
    fail: object = None  # callable(step_index) that may raise
    name: str = "fake_cw"
    scalars: Mapping[str, str] = field(default_factory=lambda: {"config": "", "point": ""})
    setpoints: tuple = ("config", "point")

    @property
    def n_steps(self) -> int:
        return 2 * self.points

    @property
    def image_shapes(self):
        return {"signal": self.world.shape}

    def parameters(self):
        return {"currents_a": self.currents}

    def check(self, limits):
        for k, current in enumerate(self.currents):
            limits.check_coil_current(k, float(current))

    def run(self, instruments) -> Iterator[Step]:
        coils = instruments["coils"]
        for config, currents in enumerate((np.zeros_like(self.currents), self.currents)):
            coils.set_currents(currents)
            for i in range(self.points):
                index = config * self.points + i
                if self.fail:
                    self.fail(index)
                if self.step_s:
                    time.sleep(self.step_s)
                image = self.world.true_b_nv_t(blurred=False).astype(np.float32)
                yield Step(index, {"config": config, "point": i}, {"signal": image})


class StoppingBoard:
    """The simulated board plus the driver's serial port: ``stop()`` closes both."""

    def __init__(self, board: SimCoilBoard, coils: CoilBoard) -> None:
        self.board, self.coils = board, coils

    def stop(self) -> None:
        self.coils.close()
        self.board.stop()


class HealthScript:
    """Analysis stand-in: B_NV range from the stored images, health samples from a list."""

    def __init__(self, samples=None):
        self.samples = list(samples or [])
        self.calls = []

    def __call__(self, out_dir: Path, run_id: int):
        run = load_run(out_dir, run_id)
        images = run.images("signal")
        if np.isnan(images).any():
            raise ValueError(f"run {run_id} is incomplete")
        b_on = images[images.shape[0] // 2:].mean(axis=0)
        self.calls.append(run_id)
        health = self.samples.pop(0) if self.samples else HealthSample(1.0, 1.0, 2.8e9)
        summary = {"b_nv_range_t": [float(b_on.min()), float(b_on.max())], "converged_fraction": 1.0,
                   "health": health.as_dict()}
        return summary, health


def make_scan(out: Path, channels=(0, 1, 3), shape=(12, 12), step_s=0.0, fail=None, analyse=None,
              health=None, masks=None, on_config=None):
    """A scan over ``channels`` of the seed-000 sample (channel 3 = L1C4 is a dead coil)."""
    world = World(shape=shape)
    board = SimCoilBoard(world)
    names = [c.name for c in world.sample.coils]
    coils = CoilBoard("coils", open_serial(board.start()), LIMITS, channel_names=names,
                      sleep=world.clock.advance)

    def sequence(currents):
        return FakeSweep(world, currents, step_s=step_s, fail=fail)

    measurement = EngineMeasurement(sequence, analyse or HealthScript(), out, {"coils": coils}, LIMITS,
                                    "test sample", {"simulated": True})
    scan = CoilScan(coils, list(channels), names, masks or all_masks(len(channels)), DRIVE_A, measurement,
                    health or HealthLimits(), {"points": 3}, on_config)
    return scan, world, StoppingBoard(board, coils)


def main(out: str, step_s: str) -> int:
    scan, _, board = make_scan(Path(out), step_s=float(step_s))
    ledger = scan.open_ledger()
    outcome = scan.run(ledger)
    print(outcome.status, outcome.counts, flush=True)
    board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
