"""Simulation clocks: virtual (faster than real time) or paced to the wall clock."""

from __future__ import annotations

import threading
import time


class VirtualClock:
    """Time that advances only when a simulator says an operation took time.

    Thread-safe; ``realtime=True`` also sleeps the wall clock so GUI demos and soak tests run at
    the speed of the real microscope.
    """

    max_lag_s = 1.0
    """Realtime: how far simulated time may lag the wall clock before pacing re-anchors."""

    def __init__(self, realtime: bool = False, start_s: float = 0.0) -> None:
        self.realtime = realtime
        self._now = start_s
        self._lock = threading.Lock()
        # Realtime pacing is absolute (sleep until the wall time that matches the simulated
        # time), so the computing time of a simulator does not add to the simulated durations.
        self._wall_origin = time.monotonic() - start_s

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (and of wall time when realtime)."""
        if seconds < 0:
            raise ValueError(f"cannot advance a clock by a negative time ({seconds} s)")
        with self._lock:
            self._now += seconds
            wall = time.monotonic()
            if self._wall_origin + self._now < wall - self.max_lag_s:
                # Idle for long (nobody advanced the clock): re-anchor instead of racing to catch up.
                self._wall_origin = wall - (self._now - seconds)
            target = self._wall_origin + self._now
        if self.realtime and seconds > 0:
            time.sleep(max(0.0, target - wall))
