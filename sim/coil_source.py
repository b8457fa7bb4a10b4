"""A simple simulated multi-channel coil current source (a ``CoilDriver`` without a wire protocol).

It stands in for the coil current board until a station names a real one. Currents ramp in small
steps at the lab ramp rate (a burnt micro-coil is not recoverable, so nothing jumps), the lab
ceiling is enforced per channel, and the World sees every intermediate current.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from instrument.protocols import SafetyLimits
from sim.world import World

RAMP_STEPS_MAX = 20


class SimCoilSource:
    """Simulated coil current source driving ``world.coil_currents_a``."""

    def __init__(self, world: World, limits: SafetyLimits, name: str = "coils") -> None:
        self.name = name
        self.world = world
        self.limits = limits

    @property
    def n_channels(self) -> int:
        return len(self.world.sample.coils)

    def set_currents(self, currents_a: Sequence[float]) -> None:
        """Ramp every channel to ``currents_a``; refuses the whole request if one value is unsafe."""
        target = np.asarray(currents_a, dtype=float)
        if target.shape != (self.n_channels,):
            raise ValueError(
                f"{self.name}: expected {self.n_channels} channel currents, got shape {target.shape}"
            )
        for channel, current in enumerate(target):
            self.limits.check_coil_current(channel, float(current))
        with self.world.lock:
            start = np.array(self.world.coil_currents_a, dtype=float)
        largest = float(np.max(np.abs(target - start)))
        if largest == 0:
            return
        ramp_s = largest / self.limits.coil_ramp_rate_a_per_s
        steps = max(1, min(RAMP_STEPS_MAX, int(np.ceil(largest / 1e-4))))
        for k in range(1, steps + 1):
            self.world.clock.advance(ramp_s / steps)
            with self.world.lock:
                self.world.coil_currents_a = start + (target - start) * k / steps

    def read_currents(self) -> np.ndarray:
        """Measured currents: an open (dead) coil draws none, whatever its setpoint."""
        alive = np.array([not c.dead for c in self.world.sample.coils])
        with self.world.lock:
            return np.array(self.world.coil_currents_a, dtype=float) * alive

    def snapshot(self) -> dict:
        return {"name": self.name, "kind": "simulated coil source", "currents_a": self.read_currents()}

    def safe_state(self) -> None:
        try:
            self.set_currents(np.zeros(self.n_channels))
        except Exception:  # noqa: BLE001 - the simulated board can always be zeroed directly
            with self.world.lock:
                self.world.coil_currents_a = np.zeros(self.n_channels)

    def close(self) -> None:
        self.safe_state()
