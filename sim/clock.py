"""Simulation clocks: virtual (faster than real time) or paced to the wall clock."""

from __future__ import annotations

import threading
import time


class VirtualClock:
    """Time that advances only when a simulator says an operation took time.

    Thread-safe; ``realtime=True`` also sleeps the wall clock so GUI demos and soak tests run at
    the speed of the real microscope.
    """

    def __init__(self, realtime: bool = False, start_s: float = 0.0) -> None:
        self.realtime = realtime
        self._now = start_s
        self._lock = threading.Lock()

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (and of wall time when realtime)."""
        if seconds < 0:
            raise ValueError(f"cannot advance a clock by a negative time ({seconds} s)")
        if self.realtime and seconds > 0:
            time.sleep(seconds)
        with self._lock:
            self._now += seconds
