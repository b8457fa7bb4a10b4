"""Coil waveforms played frame by frame in the simulated microscope.

In the lab an arbitrary waveform generator (or the coil board's waveform memory) plays the coil
currents, started in step with the camera. Here the simulated camera calls this stimulus at the
start of every frame it synthesises, and the stimulus sets ``world.coil_currents_a`` to the
waveform's value at that time, so each frame sees the currents of its own moment.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from instrument.protocols import SafetyLimits
from sim.helicam import SimLibHeLIC
from sim.world import World


class SimCoilStimulus:
    """Plays ``waveforms(t)`` (currents of every coil at ``t`` s after the first frame).

    Args:
        world: the shared physics.
        camera: the simulated camera library whose frames clock the waveform.
        limits: lab safety limits; every current is checked before it reaches the World.
    """

    def __init__(self, world: World, camera: SimLibHeLIC, limits: SafetyLimits | None = None,
                 name: str = "stimulus") -> None:
        self.name = name
        self.world = world
        self.camera = camera
        self.limits = limits or SafetyLimits()
        self._waveforms: Callable[[float], np.ndarray] | None = None
        self._t0: float | None = None
        self._previous_hook: Callable[[float], None] | None = None

    @property
    def n_channels(self) -> int:
        return len(self.world.sample.coils)

    @property
    def playing(self) -> bool:
        return self._waveforms is not None

    def start(self, waveforms: Callable[[float], np.ndarray]) -> None:
        """Arm the waveforms; they start with the next camera frame."""
        self.stop()
        self._waveforms, self._t0 = waveforms, None
        self._previous_hook = self.camera.frame_hook
        self.camera.frame_hook = self._on_frame

    def _on_frame(self, t_s: float) -> None:
        if self._previous_hook is not None:
            self._previous_hook(t_s)
        if self._waveforms is None:
            return
        if self._t0 is None:
            self._t0 = t_s
        currents = np.asarray(self._waveforms(t_s - self._t0), float)
        if currents.shape != (self.n_channels,):
            raise ValueError(f"{self.name}: waveform gave {currents.shape}, expected ({self.n_channels},)")
        for channel, current in enumerate(currents):
            self.limits.check_coil_current(channel, float(current))
        with self.world.lock:
            self.world.coil_currents_a = currents

    def stop(self) -> None:
        """Stop playing and set every current to zero."""
        if self.camera.frame_hook == self._on_frame:
            self.camera.frame_hook = self._previous_hook
        self._waveforms, self._previous_hook = None, None
        with self.world.lock:
            self.world.coil_currents_a = np.zeros(self.n_channels)

    def snapshot(self) -> dict:
        return {"name": self.name, "kind": "simulated coil waveform stimulus", "playing": self.playing}

    def safe_state(self) -> None:
        """Currents to zero (in the World directly if the playback thread cannot be stopped)."""
        try:
            self.stop()
        except Exception:  # noqa: BLE001
            self.world.coil_currents_a = np.zeros(self.n_channels)

    def close(self) -> None:
        self.safe_state()
