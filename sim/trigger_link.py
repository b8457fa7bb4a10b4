"""TTL cables of the simulated microscope: PulseBlaster outputs into instruments' trigger inputs.

In the lab, coax cables carry the PulseBlaster's ``mw_trigger`` line to the MW source's trigger
input and its ``camera_start`` line to the camera's external trigger. Here simulated time only
moves while the camera produces frames, so the camera carries the cables: before each frame it
synthesises, every rising edge the board's timeline put on a linked line since the last frame is
delivered (the source steps its list at the edge's time, not when software asks), and in
external-trigger mode a volume waits for the falling edge of the next ``camera_start`` pulse.
The camera also tells the board how far time has come, so a program that runs once (a
hardware-timed sweep point) leaves the World without laser and MW gating after its STOP. A line with
no cable attached delivers nothing, which is how a missing trigger cable looks in the lab.
Code that lets simulated time pass outside a frame (a test charging a bus round trip)
calls ``camera.frame_hook(now)`` to deliver what is due.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.helicam import SimLibHeLIC
from sim.spinapi import SimSpinAPI

CAMERA_START_LINE = "camera_start"


class PulseTriggerLink:
    """Cables from one simulated PulseBlaster to trigger inputs, clocked by the simulated camera.

    Args:
        board: the simulated spinapi library of the pulse generator.
        camera: the simulated camera library whose frames move simulated time.
        camera_start_line: the board output wired to the camera's external trigger input.
    """

    def __init__(self, board: SimSpinAPI, camera: SimLibHeLIC,
                 camera_start_line: str = CAMERA_START_LINE) -> None:
        self.board = board
        self.camera = camera
        self.camera_start_line = camera_start_line
        self._inputs: list[tuple[str, Callable[[], None]]] = []
        self._delivered_until: dict[str, float] = {}
        self._run = -1
        self._previous_hook = camera.frame_hook
        camera.frame_hook = self._on_frame
        camera.volume_trigger = self.next_volume_start

    def connect(self, line: str, trigger_input: Callable[[], None]) -> None:
        """Wire board output ``line`` (e.g. ``"mw_trigger"``) to ``trigger_input`` (a rising edge)."""
        if line not in self.board.wiring:
            raise ValueError(f"the simulated PulseBlaster has no output {line!r}; "
                             f"its outputs are {', '.join(sorted(self.board.wiring))}")
        self._inputs.append((line, trigger_input))

    def deliver_until(self, t_s: float) -> int:
        """Deliver every edge up to and including ``t_s`` on the connected lines; returns how many."""
        run = self.board.start_count
        if run != self._run:  # a new program run: its edges start from its own start
            self._run = run
            self._delivered_until.clear()
        if not self.board.running or self.board.started_at_s is None:
            return 0
        delivered = 0
        start = self.board.started_at_s - 1e-12  # an edge at the very first cycle counts
        for line, trigger_input in self._inputs:
            after = self._delivered_until.get(line, start)
            for _ in self.board.rising_edges_s(line, after, t_s):
                trigger_input()
                delivered += 1
            self._delivered_until[line] = max(after, t_s)
        return delivered

    def next_volume_start(self, ready_s: float) -> np.ndarray | None:
        """``camera_start`` pulses (rise, fall) whose falling edge comes at or after ``ready_s``.

        ``None`` when the running program never raises the line (the camera follows its reference
        as before); an empty array when the board is stopped or no further pulse will come within
        the camera's timeout. The camera decides which pulse starts it (falling edge, width).
        """
        self.board.follow_to(ready_s)
        if not self.board.drives(self.camera_start_line):
            return None if self.board.running else np.zeros((0, 2))
        horizon = ready_s + min(max(self.camera.timeout_s, 1e-3), 10.0)
        return self.board.pulses_s(self.camera_start_line, ready_s - 1e-12, horizon)

    def _on_frame(self, t_s: float) -> None:
        if self._previous_hook is not None:
            self._previous_hook(t_s)
        self.deliver_until(t_s)
        self.board.follow_to(t_s)
