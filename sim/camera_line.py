"""The PulseBlaster's camera line into a Basler camera's Line1, in simulation.

pylon's camera emulator cannot see a hardware input (docs/hardware/basler.md, EM-12), so the cable
is simulated here, from the simulated board's timeline (``sim.spinapi``):

* :func:`exposure_windows` finds the exposures the camera line starts, as the camera's manual
  says the line starts them (docs.baslerweb.com "Exposure Mode", BA-3): ``timed`` exposures begin
  at the chosen edge and last ``ExposureTime``; ``trigger_width`` exposures last while the line is
  active (high for a rising-edge activation, low for a falling one). A pulse that comes sooner
  than ``1 / ResultingFrameRate`` after the previous accepted one is ignored, as the camera ignores
  it (a Frame Start Overtrigger).
* :class:`ExposureRenderer` integrates the World's PL over one window with the laser and MW-switch
  levels the program had during it (the public piece for pulsed sequences: one frame's expected
  photons for one program window).
* :class:`CameraLineLink` joins the two for the driver (``BaslerCamera(line_source=...)``): when
  frames are awaited, it hands the driver the windows the line carried since the last ones, the
  driver renders each (``before_trigger(window=...)``) and fires the emulator's software trigger,
  so the image still comes through Basler's code. No pulse on the line, no frame: a missing cable
  ends in the driver's read timeout, as in the lab.

The PL during a window is the steady-state CW rate for each (laser, MW switch) level
(``World.pl_rate_hz``): spin dynamics within a pulse sequence (Rabi, Ramsey) are not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from instrument.protocols import CameraTrigger
from sim.basler_images import EmulatorImageFeed
from sim.spinapi import SimSpinAPI
from sim.world import World

CAMERA_LINE = "camera_trigger"
"""The board output cabled to the intensity camera's Line1 (``sequences.pulses.DEFAULT_CHANNELS``)."""


@dataclass(frozen=True)
class ExposureWindow:
    """One exposure on the World's clock, ``[start_s, end_s)``."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _intervals(board: SimSpinAPI, line: str, after_s: float, until_s: float) -> np.ndarray:
    """(n, 2) (rise, fall) of the pulses on ``line`` rising in ``(after_s, until_s]``."""
    rises = board.rising_edges_s(line, after_s, until_s)
    if not len(rises):
        return np.zeros((0, 2))
    # pulses_s selects on the fall; look far enough past the last rise to see its fall.
    tl = board.timeline
    assert tl is not None  # edges were found, so a program runs
    horizon = until_s + (tl.period_s or tl.duration_s) + 1e-9
    pulses = board.pulses_s(line, after_s, horizon)
    keep = (pulses[:, 0] > after_s) & (pulses[:, 0] <= until_s)
    return pulses[keep]


def exposure_windows(board: SimSpinAPI, line: str, trigger: CameraTrigger, exposure_s: float,
                     after_s: float, until_s: float, min_period_s: float = 0.0,
                     max_windows: int | None = None,
                     previous_start_s: float = -np.inf) -> tuple[list[ExposureWindow], int, float]:
    """Exposures the running program's ``line`` starts after ``after_s`` (its edges up to ``until_s``).

    Returns the windows, how many pulses were ignored as overtriggers (closer than
    ``min_period_s`` to the previous accepted start), and the time up to which edges were examined
    (the next call continues from there). At most ``max_windows`` windows are returned;
    ``previous_start_s`` is the start of the last exposure accepted before (overtrigger check).
    """
    pulses = _intervals(board, line, after_s, until_s)
    falling = trigger.edge == "falling"
    windows: list[ExposureWindow] = []
    ignored = 0
    last_start = previous_start_s
    seen_until = until_s
    for rise, fall in pulses:
        if trigger.exposure == "trigger_width":
            if falling:  # active low: from this fall to the next rise
                nxt = board.rising_edges_s(line, fall, fall + (until_s - after_s) + 1.0)
                if not len(nxt):
                    seen_until = rise - 1e-12  # the window is not closed yet: look again later
                    break
                start, end = fall, float(nxt[0])
            else:
                start, end = rise, fall
        else:
            start = fall if falling else rise
            end = start + exposure_s
        if start - last_start < min_period_s:
            ignored += 1
            continue
        if max_windows is not None and len(windows) >= max_windows:
            seen_until = float(rise) - 1e-12  # this pulse is the next call's first
            break
        windows.append(ExposureWindow(float(start), float(end)))
        last_start = start
    return windows, ignored, seen_until


class ExposureRenderer:
    """The World's PL integrated over an exposure window, with the program's laser and MW state in it.

    Args:
        world: the shared physics.
        board: the simulated pulse generator whose timeline gates laser and MW.
        laser_line, mw_line: the board outputs driving the laser (AOM) and the MW switch.
    """

    def __init__(self, world: World, board: SimSpinAPI, laser_line: str = "laser",
                 mw_line: str = "mw_switch") -> None:
        self.world = world
        self.board = board
        self.laser_line = laser_line
        self.mw_line = mw_line
        self._cache_key: tuple | None = None
        self._rates: tuple[np.ndarray, np.ndarray] | None = None

    def state_times_s(self, window: ExposureWindow) -> dict[tuple[bool, bool], float]:
        """Seconds of ``window`` spent in each (laser, MW switch) level of the running program.

        Outside the program (before its start, or while the board is stopped) every output is low.
        """
        board, tl, t0 = self.board, self.board.timeline, self.board.started_at_s
        out: dict[tuple[bool, bool], float] = {}
        if tl is None or t0 is None or not board.running or window.duration_s <= 0:
            return {(False, False): max(window.duration_s, 0.0)}
        clock = tl.clock_hz
        a = (window.start_s - t0) * clock
        b = (window.end_s - t0) * clock
        starts, outs = tl.segments()
        ends = np.append(starts[1:], tl.end_cycles).astype(float)
        starts = starts.astype(float)
        weights = np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None)
        levels = [(outs, weights)]
        if a < 0:
            levels.append((np.array([0]), np.array([min(b, 0.0) - a])))
        rest_a, rest_b = max(a, float(tl.end_cycles)), b
        if rest_b > rest_a:
            if tl.periodic:
                ps = float(tl.period_start_cycles)
                period = float(tl.end_cycles) - ps
                inside = ends > ps
                s = np.maximum(starts[inside], ps) - ps
                e = ends[inside] - ps

                def spent(x: float) -> np.ndarray:  # time in each segment within [0, x) of the repeats
                    whole, part = divmod(x, period)
                    return whole * (e - s) + np.clip(np.minimum(e, part) - s, 0, None)

                r0, r1 = rest_a - tl.end_cycles, rest_b - tl.end_cycles
                levels.append((outs[inside], spent(r1) - spent(r0)))
            else:
                levels.append((np.array([tl.final_outputs]), np.array([rest_b - rest_a])))
        lb, mb = board.wiring[self.laser_line], board.wiring[self.mw_line]
        for o, w in levels:
            o = np.asarray(o, np.int64)
            for laser in (False, True):
                for mw in (False, True):
                    sel = (((o >> lb) & 1) == laser) & (((o >> mb) & 1) == mw)
                    t = float(np.sum(w[sel])) / clock
                    if t > 0:
                        out[(laser, mw)] = out.get((laser, mw), 0.0) + t
        return out

    def _pl_rates(self) -> tuple[np.ndarray, np.ndarray]:
        """(MW switch off, on) PL rates with the laser on, recomputed only when the World changed."""
        w = self.world
        key = (w.mw_output, w.mw_frequency_hz, w.mw_power_dbm, w.coil_currents_a.tobytes())
        if self._rates is None or self._cache_key != key:
            with w.lock:
                # The program, not the World's summary flag, says when the laser is on in a window.
                laser, w.laser_on = w.laser_on, True
                try:
                    self._rates = (w.pl_rate_hz(mw_on=False), w.pl_rate_hz(mw_on=True))
                finally:
                    w.laser_on = laser
            self._cache_key = key
        return self._rates

    def photons(self, window: ExposureWindow) -> np.ndarray:
        """Expected detected photons per pixel (World units) over ``window`` (rows, cols)."""
        off, on = self._pl_rates()
        total = np.zeros(self.world.shape)
        for (laser, mw), t in self.state_times_s(window).items():
            if laser:
                total += t * (on if mw else off)
        return total


class CameraLineLink:
    """The simulated cable from the board's camera line to the emulated camera's Line1.

    The driver calls it twice: ``link(trigger, exposure_s, max_frames, min_period_s)`` for the
    exposure windows the line carried since the last call (``line_source``), and, as its
    ``before_trigger``, ``link.render(...)`` for each, which writes the frame into the emulator's
    folder and moves the World's clock to the window's end. ``connected = False`` unplugs it.

    Args:
        world: the shared physics (its clock).
        board: the simulated pulse generator.
        feed: the emulator's image folder and camera noise model.
        line: the board output cabled to Line1.
    """

    def __init__(self, world: World, board: SimSpinAPI, feed: EmulatorImageFeed,
                 line: str = CAMERA_LINE) -> None:
        if line not in board.wiring:
            raise ValueError(f"the simulated PulseBlaster has no output {line!r}; "
                             f"its outputs are {', '.join(sorted(board.wiring))}")
        self.world = world
        self.board = board
        self.feed = feed
        self.line = line
        self.renderer = ExposureRenderer(world, board)
        self.connected = True
        self.overtriggers = 0
        """Pulses the camera ignored: they came sooner than its frame period after the previous."""
        self.windows: list[ExposureWindow] = []
        """Every exposure delivered, for tests and the record."""
        self._run = -1
        self._seen_until = 0.0

    @property
    def description(self) -> str:
        return (f"the emulator cannot see Line1: the simulation reads the simulated PulseBlaster's "
                f"{self.line} output (bit {self.board.wiring[self.line]}) from its timeline, renders "
                "the PL integrated over each pulse's exposure window with the program's laser and MW "
                "levels, and fires one software trigger per pulse")

    def __call__(self, trigger: CameraTrigger, exposure_s: float, max_frames: int,
                 min_period_s: float = 0.0) -> list[ExposureWindow]:
        """The exposures the line started since the last call, at most ``max_frames`` of them."""
        board = self.board
        if not self.connected or not board.running or board.started_at_s is None:
            return []
        if board.start_count != self._run:  # a new program run: its pulses count from its start
            self._run = board.start_count
            self._seen_until = board.started_at_s - 1e-12
        tl = board.timeline
        assert tl is not None
        if tl.periodic:
            # A program that loops forever: look ahead far enough for the frames asked for.
            span = max(tl.period_s or 0.0, 1e-9) * (max_frames + 1)
            until = max(self._seen_until, self.world.clock.now()) + span
        else:
            until = board.started_at_s + tl.duration_s
        previous = self.windows[-1].start_s if self.windows else -np.inf
        windows, ignored, seen = exposure_windows(board, self.line, trigger, exposure_s,
                                                  self._seen_until, until, min_period_s, max_frames,
                                                  previous)
        self.overtriggers += ignored
        self._seen_until = seen
        return windows

    def render(self, *, window: ExposureWindow | None = None, exposure_s: float, gain_db: float,
               shape: tuple[int, int], bit_depth: int, **_: Any) -> None:
        """The driver's ``before_trigger``: a window's frame, or (software trigger) the present state's."""
        if window is None:
            self.feed(exposure_s=exposure_s, gain_db=gain_db, shape=shape, bit_depth=bit_depth)
            return
        self.feed.check_shape(shape)
        electrons = self.renderer.photons(window) * self.feed.collection
        self.feed.write(self.feed.digitise(electrons, gain_db, bit_depth), bit_depth)
        self.feed.mw_frequencies_hz.append(float(self.world.mw_frequency_hz))
        self.feed.frames_rendered += 1
        self.windows.append(window)
        ahead = window.end_s - self.world.clock.now()
        if ahead > 0:
            self.world.clock.advance(ahead)  # the camera has the frame once its exposure ended
