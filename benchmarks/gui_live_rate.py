"""GUI frame-display rate while a 208 frame/s simulated lock-in capture runs in real time, and whether
the GUI makes the capture drop frames.

The capture is the GUI's own: ``record_lockin`` (what the 'Lock-in' panel and ``acquire lockin``
run), on the simulated station paced to the wall clock (``--realtime``), so the simulated heliCam
delivers 208 frames/s in volumes of ``--frames-per-volume`` frames and the capture drops (and
counts) whatever its ring buffer cannot hold. The same capture runs alternately in this process:

* baseline: ``record_lockin`` alone, no GUI;
* GUI: the main window's Start button, the capture in its worker thread, the lock-in movie view
  polling the capture's ``latest()`` on its timer and repainting.

Per run it prints the frames captured and dropped (ring overflow), how far the camera reads fell
behind the camera's frame clock (a real camera buffers a few volumes on board, so a read later than
that would lose frames: the lag is measured on every volume), and with the GUI the display rate
(movie frames drawn per second of capture) and the cost of one update. The verdict compares drops
and lag with and without the GUI. ``os.getloadavg()`` (what ``uptime`` shows) is printed before and
after: the machine may be shared.

Frames missing from the frame periods are the camera's read-out dead time between volumes (1 ms in
the simulator), not drops. The simulator synthesises every frame in Python; ``--image-shape`` is
kept small (64x64) so that the simulator itself keeps up with 208 frames/s on two cores: the
question here is the GUI's cost.

Run: ``python benchmarks/gui_live_rate.py [--seconds 10] [--repeats 2] [--image-shape 64x64]``
(offscreen unless QT_QPA_PLATFORM says otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from instrument.services.lockin import LockInRequest, plan_lockin, record_lockin  # noqa: E402
from instrument.station import build_station  # noqa: E402


class CameraProbe:
    """Stands in for the station's camera and notes, per volume read, the wall time and the camera's
    (simulated) time; everything else goes to the camera."""

    def __init__(self, camera: Any, clock: Any) -> None:
        self._camera = camera
        self._clock = clock
        self.wall: list[float] = []
        self.camera_s: list[float] = []

    def acquire_volume(self) -> np.ndarray:
        raw = self._camera.acquire_volume()
        self.wall.append(time.monotonic())
        self.camera_s.append(self._clock.now())
        return raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._camera, name)

    def reset(self) -> None:
        self.wall.clear()
        self.camera_s.clear()

    def frames_behind(self, frame_rate_hz: float) -> float:
        """Most frames a volume read was ever behind the camera's frame clock.

        The schedule of each read is the earliest one seen so far against camera time: a simulated
        camera that starts late (the slope calibration before the capture ran slow) races to catch
        up, which is not a stall; a read that comes later than the best schedule so far is.
        """
        if len(self.wall) < 2:
            return 0.0
        delay = np.asarray(self.wall) - np.asarray(self.camera_s)
        late = delay - np.minimum.accumulate(delay)
        return float(late.max() * frame_rate_hz)


@dataclass
class Result:
    label: str
    status: str
    captured: int
    dropped: int
    expected: int
    wall_s: float
    camera_s: float
    frames_behind: float
    displayed: int = 0
    update_ms: list[float] = field(default_factory=list)

    @property
    def display_fps(self) -> float:
        return self.displayed / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        text = (f"{self.label:9s} {self.status}: {self.captured} frames captured in {self.expected} frame "
                f"periods, {self.dropped} dropped; {self.camera_s:5.2f} s camera in {self.wall_s:5.2f} s "
                "wall; "
                f"reads at most {self.frames_behind:5.1f} frames behind the frame clock")
        if self.displayed:
            text += (f"\n          GUI drew {self.displayed} movie frames: {self.display_fps:5.1f} frames/s; "
                     f"update median {np.median(self.update_ms):.1f} ms, max {np.max(self.update_ms):.1f} ms")
        return text


def let_clock_reanchor(station: Any) -> None:
    """Idle past the clock's catch-up window, so each run starts on a fresh real-time schedule."""
    time.sleep(station.world.clock.max_lag_s + 0.2)


def summarise(label: str, outcome: Any, plan: Any, probe: CameraProbe) -> Result:
    c = outcome.result.capture
    return Result(label, outcome.status, c.frames_written, c.frames_dropped, plan.n_frames, c.wall_time_s,
                  c.camera_time_s, probe.frames_behind(plan.request.frame_rate_hz))


def run_headless(station: Any, plan: Any, out: Path, probe: CameraProbe) -> Result:
    let_clock_reanchor(station)
    probe.reset()
    outcome = record_lockin(station, out, plan, "benchmark baseline")
    return summarise("baseline", outcome, plan, probe)


def run_with_gui(station: Any, plan: Any, out: Path, probe: CameraProbe) -> Result:
    from PyQt6.QtWidgets import QApplication

    from instrument.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(station, out)
    window.resize(1400, 820)
    window.show()
    panel, view = window.lockin_panel, window.movie_view
    r = plan.request
    panel.seconds.setValue(r.seconds)
    panel.volume.setValue(r.frames_per_volume)
    panel.frame_rate.setValue(r.frame_rate_hz)
    app.processEvents()
    costs: list[float] = []
    view.timer.timeout.connect(lambda: costs.append(view.last_update_cost_ms))  # the previous tick's
    let_clock_reanchor(station)
    probe.reset()
    if not panel.start_button.isEnabled():
        raise SystemExit(f"the lock-in panel refuses the capture: {panel.message.text()}")
    panel.start_button.click()
    deadline = time.monotonic() + r.seconds * 20 + 120
    while window.capture.last_outcome is None:
        if time.monotonic() > deadline or window.statusBar().currentMessage().startswith("run failed"):
            raise SystemExit(f"the capture with the GUI did not complete: "
                             f"{window.statusBar().currentMessage()}")
        app.processEvents()
        time.sleep(0.002)
    result = summarise("with GUI", window.capture.last_outcome, plan, probe)
    result.displayed = view.frames_displayed
    result.update_ms = [c for c in costs if np.isfinite(c)] or [float("nan")]
    window.close()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-shape", default="64x64", help="simulated image ROWSxCOLS (default 64x64)")
    p.add_argument("--seconds", type=float, default=10.0, help="capture length per run (default 10)")
    p.add_argument("--frames-per-volume", type=int, default=8,
                   help="frames per camera volume; the movie shows one per volume (default 8, the GUI's)")
    p.add_argument("--repeats", type=int, default=2, help="baseline/GUI pairs, run alternately (default 2)")
    args = p.parse_args()
    shape = tuple(int(v) for v in args.image_shape.lower().split("x"))
    print(f"load average before (uptime): {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores")
    cpu0, wall0 = time.process_time(), time.monotonic()
    with build_station(None, simulated=True, realtime=True, image_shape=shape) as station, \
            tempfile.TemporaryDirectory() as tmp:
        station.world.coil_unit_fields_t()  # the one-off Biot-Savart cost must not land in either run
        probe = CameraProbe(station.instruments["camera"], station.world.clock)
        station.instruments["camera"] = probe
        plan = plan_lockin(station, LockInRequest(args.seconds, frames_per_volume=args.frames_per_volume))
        rate = plan.request.frame_rate_hz
        print(f"lock-in capture, real-time sim, {shape[0]}x{shape[1]} px, {rate:g} frames/s in volumes of "
              f"{args.frames_per_volume} frames, {args.seconds:g} s per run")
        bases, guis = [], []
        for k in range(args.repeats):
            bases.append(run_headless(station, plan, Path(tmp) / f"baseline-{k}", probe))
            print(bases[-1].line(), flush=True)
            guis.append(run_with_gui(station, plan, Path(tmp) / f"gui-{k}", probe))
            print(guis[-1].line(), flush=True)
    median = np.median
    base_drop, gui_drop = (int(sum(r.dropped for r in rs)) for rs in (bases, guis))
    base_lag, gui_lag = (float(median([r.frames_behind for r in rs])) for rs in (bases, guis))
    print(f"dropped frames, all runs: baseline {base_drop}, with GUI {gui_drop}")
    print(f"median worst read lag: baseline {base_lag:.1f} frames, with GUI {gui_lag:.1f} frames "
          f"(one volume = {args.frames_per_volume} frames)")
    print(f"median GUI display rate: {median([g.display_fps for g in guis]):.1f} movie frames/s "
          f"(at most {rate / args.frames_per_volume:.1f}: one new frame per volume); "
          f"median update {median([median(g.update_ms) for g in guis]):.1f} ms")
    extra_lag = gui_lag - base_lag
    lost = gui_drop > base_drop or extra_lag > args.frames_per_volume
    print(f"frames dropped because of the GUI: {'YES' if lost else 'none'} "
          f"(extra drops {gui_drop - base_drop:+d}, extra lag {extra_lag:+.1f} frames)")
    print(f"process CPU {time.process_time() - cpu0:.1f} s in {time.monotonic() - wall0:.1f} s wall")
    print(f"load average after (uptime): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
