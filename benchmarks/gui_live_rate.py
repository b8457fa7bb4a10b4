"""GUI frame-display rate while the simulated camera streams at 208 frames/s, and what the GUI costs it.

The lock-in capture pipeline (issue 5) is not on main yet, so the 208 frame/s source here is the
CW-ODMR sweep on the simulated station in real time (``--realtime``): the simulated heliCam
synthesises every frame and the virtual clock paces it to the wall clock at the camera's frame rate.
The same sweep runs twice in this process, on the same station, with the same sinks (run writer,
live sink, sweep cube):

* baseline: the engine alone, no GUI;
* GUI: the main window, the engine in its worker thread, the live views repainting on their timer.

A camera streaming at 208 frames/s loses frames when its reader falls behind the frame clock by more
than the frames it buffers (one volume of ``frames_per_point`` frames), so the number that matters is
the largest lag of the steps' wall times behind the camera time they acquired (``frames behind`` =
lag x 208), with and without the GUI. The simulated station alone already lags by more than a volume
now and then, so the GUI is charged only for lag beyond the baseline's by more than one volume.

Run: ``python benchmarks/gui_live_rate.py [--image-shape 64x64] [--points 100] [--frames-per-point 8]``
(offscreen unless QT_QPA_PLATFORM says otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from instrument.station import build_station  # noqa: E402


class TimingProbe:
    """Engine sink that notes wall time and camera (simulated) time at every step."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.wall: list[float] = []
        self.camera: list[float] = []

    def open(self, metadata, image_shapes, n_steps) -> None:
        self.wall.clear()
        self.camera.clear()

    def write(self, step) -> None:
        self.wall.append(time.monotonic())
        self.camera.append(self.clock.now())

    def close(self, status, reason="") -> None:
        pass


@dataclass
class Result:
    label: str
    steps: int
    probe: TimingProbe
    frames_per_step: int
    frame_rate_hz: float
    steps_displayed: int = 0
    displayed_s: float = 0.0

    @property
    def wall_s(self) -> float:
        """Wall time from the first step to the last (run set-up left out: the camera is not running)."""
        return self.probe.wall[-1] - self.probe.wall[0]

    @property
    def camera_s(self) -> float:
        return self.probe.camera[-1] - self.probe.camera[0]

    @property
    def frames(self) -> int:
        return (self.steps - 1) * self.frames_per_step

    @property
    def frames_behind(self) -> float:
        """Most camera frames a step was ever behind the camera's frame clock.

        The clock's schedule is taken from the step that was earliest against camera time, so the
        number does not depend on when the clock was anchored.
        """
        delay = np.asarray(self.probe.wall) - np.asarray(self.probe.camera)
        return float((delay.max() - delay.min()) * self.frame_rate_hz)

    def line(self) -> str:
        text = (f"{self.label:9s} {self.steps} steps, {self.wall_s:6.2f} s wall for {self.camera_s:6.2f} s "
                f"of camera time: {self.frames / self.wall_s:6.1f} camera frames/s, "
                f"{self.steps / self.wall_s:5.1f} steps/s, at most {self.frames_behind:5.1f} frames behind")
        if self.steps_displayed:
            text += (f"\n          GUI drew {self.steps_displayed} of {self.steps} steps: "
                     f"{self.steps_displayed / self.displayed_s:5.1f} images/s")
        return text


def make_sweep(station, points: int, frames_per_point: int):
    from sequences.cw_odmr import CwOdmrSweep

    world = station.world
    freqs = world.resonance_estimate_hz() + np.linspace(-6e6, 6e6, points)
    currents = np.zeros(station["coils"].n_channels)
    currents[0] = world.sample.drive_current_a
    return CwOdmrSweep(freqs, 0.0, currents, image_shape=station["camera"].shape,
                       frames_per_point=frames_per_point)


def let_clock_reanchor(station) -> None:
    """Idle past the clock's catch-up window, so each run starts on a fresh real-time schedule.

    Otherwise the clock would count the pause between the runs as lag and let the next run's first
    steps race to catch up, which would blur the lag measurement.
    """
    time.sleep(station.world.clock.max_lag_s + 0.2)


def run_headless(station, sweep, out: Path) -> Result:
    from instrument.gui.live_data import SweepCube
    from instrument.storage.runs import RunWriter
    from sequences.engine import Engine, LiveSink

    writer = RunWriter(out, sweep.name, "bench", sweep.scalars, sweep.setpoints)
    probe = TimingProbe(station.world.clock)
    let_clock_reanchor(station)
    engine = Engine(station.instruments, station.limits, [writer, LiveSink(), SweepCube(), probe], {})
    outcome = engine.run(sweep)
    assert outcome.status == "completed", outcome
    return Result("baseline", outcome.steps_done, probe, sweep.frames_per_point, sweep.frame_rate_hz)


def run_with_gui(station, sweep, out: Path) -> Result:
    from PyQt6.QtWidgets import QApplication

    from instrument.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(station, out)
    window.resize(1400, 820)
    window.show()
    app.processEvents()
    first_draw: list[float] = []
    last_draw: list[float] = []

    def note_draw() -> None:
        if window.frames_displayed and not first_draw:
            first_draw.append(time.monotonic())
        last_draw[:] = [time.monotonic()]

    window.timer.timeout.connect(note_draw)
    probe = TimingProbe(station.world.clock)
    let_clock_reanchor(station)
    window.start_run(sweep, probes=[probe])
    while window.last_outcome is None:
        app.processEvents()
        time.sleep(0.002)
    outcome = window.last_outcome
    assert outcome.status == "completed", outcome
    span = last_draw[0] - first_draw[0]
    result = Result("with GUI", outcome.steps_done, probe, sweep.frames_per_point, sweep.frame_rate_hz,
                    window.frames_displayed, max(span, 1e-9))
    mean = window.cube.mean_spectra().y
    held = sum(int(np.isfinite(y).sum()) for y in mean.values())
    assert held == sweep.n_steps, f"the GUI's sweep cube holds {held} of {sweep.n_steps} steps"
    window.close()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-shape", default="64x64", help="simulated image ROWSxCOLS (default 64x64)")
    p.add_argument("--points", type=int, default=100, help="frequency points per sweep (default 100)")
    p.add_argument("--frames-per-point", type=int, default=8, help="camera frames per step (default 8)")
    p.add_argument("--repeats", type=int, default=3,
                   help="baseline/GUI pairs, run alternately; medians are compared (default 3)")
    args = p.parse_args()
    shape = tuple(int(v) for v in args.image_shape.lower().split("x"))
    with build_station(None, simulated=True, realtime=True, image_shape=shape) as station, \
            tempfile.TemporaryDirectory() as tmp:
        station.world.coil_unit_fields_t()  # the one-off Biot-Savart cost must not land in either run
        sweep = make_sweep(station, args.points, args.frames_per_point)
        fps = sweep.frame_rate_hz
        print(f"CW-ODMR sweep, real-time sim, {shape[0]}x{shape[1]} px, camera at {fps:g} frames/s, "
              f"{sweep.frames_per_point} frames per step, {sweep.n_steps} steps")
        print("(the lock-in capture pipeline of issue 5 is not on main: this uses the CW sweep)")
        bases, guis = [], []
        for k in range(args.repeats):
            bases.append(run_headless(station, sweep, Path(tmp) / f"baseline-{k}"))
            guis.append(run_with_gui(station, sweep, Path(tmp) / f"gui-{k}"))
            print(bases[-1].line())
            print(guis[-1].line())
        median = np.median
        base_lag = float(median([b.frames_behind for b in bases]))
        gui_lag = float(median([g.frames_behind for g in guis]))
        print(f"median   engine rate with GUI / baseline: "
              f"{median([b.wall_s for b in bases]) / median([g.wall_s for g in guis]):.3f}")
        print(f"median   GUI display rate: {median([g.steps_displayed / g.displayed_s for g in guis]):.1f} "
              f"images/s; images drawn / steps produced: "
              f"{median([g.steps_displayed / g.steps for g in guis]):.3f}")
        # The camera holds one volume (frames_per_point frames) in its memory. The simulated station
        # alone already lags by more than that now and then (baseline); the GUI costs frames when it
        # makes the reader later than that by more than one more volume.
        volume = sweep.frames_per_point
        extra = gui_lag - base_lag
        print(f"median   worst lag: GUI {gui_lag:.1f} frames, baseline {base_lag:.1f} frames, "
              f"extra {extra:+.1f} (camera volume {volume} frames)")
        print(f"frames dropped because of the GUI: {'YES' if extra > volume else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
