"""Widefield CW ODMR with the lock-in camera: an I-off and an I-on frequency sweep.

The PulseBlaster gates the MW at the lock-in modulation frequency and clocks the camera, so each
camera frame holds the per-pixel PL change caused by the MW: a peak at every resonance. The sweep
first measures with all coils off (the reference), then with the chosen coils on; the difference
of the fitted resonances is the coils' field projected on the NV axis.

The MW frequency steps in hardware when the station allows it (``sequences.mw_stepping``): for
each point software starts a short PulseBlaster program that runs once and stops: the
``mw_trigger`` pulse that steps the source's list (not before a list's first point), the settle
time, the ``camera_start`` pulse that starts the camera's volume, and the modulation through the
volume. Then it reads the volume and the list index back, so a missing trigger stops the run with
the points measured so far kept. Between points the board is stopped: bus latency, storage and
pauses cannot shift anything. Otherwise it steps in software, one ``set_frequency`` per point.
Which mode ran, and why, is logged and stored in the run's metadata (``sequence.plan``).

Repeats: ``repeats`` sweeps, each an I-off and an I-on pass, visited in the ``order`` of
``sequences.sweep_order`` (sequential, random or interleaved). Every step stores its sweep,
configuration and frequency index, so the analysis averages complete sweeps per frequency. In list
mode each pass arms the source's list in the pass's visiting order (sources step their list in list
order on each trigger, with no random access by trigger; a list equal to the one armed is restarted
instead). ``max_runtime_s`` keeps the sweeps that fit: the planned number comes from the estimated
sweep time before anything moves, and before each further sweep the measured pace is checked again;
the run then ends ``completed`` after its last whole sweep with ``end_note`` saying why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instrument.protocols import (
    CoilDriver,
    Instrument,
    InstrumentTimeout,
    ListSweepSource,
    LockInCamera,
    MicrowaveSource,
    PulseGenerator,
    SafetyLimits,
    TriggerableCamera,
)
from instrument.storage.runs import Step
from sequences.mw_stepping import (
    SOFTWARE_FIX,
    STEPPING_MODES,
    SteppingPlan,
    check_list_index,
    plan_stepping,
)
from sequences.pulses import (
    ChannelMap,
    SteppedPointTiming,
    lockin_modulation_program,
    stepped_point_timing,
)
from sequences.repeated_sweeps import CONFIG_LABELS, RepeatedSweeps
from sequences.sweep_order import Pass

log = logging.getLogger(__name__)

__all__ = ["CONFIG_LABELS", "CW_REQUIRES", "CwOdmrSweep"]

CW_REQUIRES: dict[str, type] = {"mw": MicrowaveSource, "pulser": PulseGenerator, "camera": LockInCamera,
                                "coils": CoilDriver}


@dataclass
class CwOdmrSweep(RepeatedSweeps):
    """CW-ODMR sweep of the lock-in camera over ``frequencies_hz``, coils off then on.

    Args:
        frequencies_hz: MW frequencies of the sweep.
        power_dbm: MW output power (checked against the lab ceiling before anything moves).
        coil_currents_a: current of every coil channel for the I-on sweep.
        image_shape: camera image shape (rows, cols).
        frames_per_point: lock-in frames averaged at each frequency.
        modulation_hz: MW gating frequency, also the camera's demodulation frequency.
        frame_rate_hz: camera frame rate.
        stepping: ``"auto"`` (list mode where the station allows it), ``"list"`` or ``"software"``.
        step_settle_s: list mode: time from a point's program start (and list step) to its camera
            volume: the source settles and the camera must be ready for ``camera_start``.
        channels: the pulse generator's channel map.

    Keyword-only: ``repeats``, ``order``, ``order_seed``, ``max_runtime_s`` and ``clock``
    (``sequences.repeated_sweeps.RepeatedSweeps``).
    """

    frequencies_hz: np.ndarray
    power_dbm: float
    coil_currents_a: np.ndarray
    image_shape: tuple[int, int]
    frames_per_point: int = 4
    modulation_hz: float = 6250.0
    frame_rate_hz: float = 208.0
    stepping: str = "auto"
    step_settle_s: float = 2e-3
    channels: ChannelMap = field(default_factory=ChannelMap)
    name: str = "cw_odmr"
    scalars: Mapping[str, str] = field(
        default_factory=lambda: {"config": "", "frequency_hz": "Hz", "mean_signal": "counts",
                                 "sweep": "", "frequency_index": ""}
    )
    setpoints: tuple[str, ...] = ("config", "frequency_hz")

    requires: Mapping[str, type] = field(default_factory=lambda: dict(CW_REQUIRES))
    """Roles and capabilities the sweep needs; the engine checks them before anything moves."""

    @property
    def point_duration_s(self) -> float:
        """Camera time and step settling of one point (list arming and bus latency add to it)."""
        return self.frames_per_point / self.frame_rate_hz + self.step_settle_s

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"signal": tuple(self.image_shape)}

    def parameters(self) -> dict[str, Any]:
        return {
            "frequencies_hz": self.frequencies_hz,
            "power_dbm": self.power_dbm,
            "coil_currents_a": self.coil_currents_a,
            "frames_per_point": self.frames_per_point,
            "modulation_hz": self.modulation_hz,
            "frame_rate_hz": self.frame_rate_hz,
            "stepping": self.stepping,
            "step_settle_s": self.step_settle_s,
            **self.repeat_parameters(),
        }

    def check(self, limits: SafetyLimits) -> None:
        """Refuse what cannot or must not run, before any hardware moves."""
        if self.frequencies_hz.ndim != 1 or len(self.frequencies_hz) < 5:
            raise ValueError("a CW-ODMR sweep needs at least 5 frequency points; raise `points`")
        if not np.all(np.isfinite(self.frequencies_hz)) or np.any(self.frequencies_hz <= 0):
            raise ValueError("sweep frequencies must be finite and positive; check `center_hz` and `span_hz`")
        if np.any(np.diff(self.frequencies_hz) <= 0):
            raise ValueError("sweep frequencies must increase point by point (`span_hz` > 0)")
        if self.frames_per_point < 1:
            raise ValueError(f"frames per point must be at least 1, got {self.frames_per_point}")
        if self.stepping not in STEPPING_MODES:
            raise ValueError(f"MW stepping must be one of {', '.join(STEPPING_MODES)}, got {self.stepping!r}")
        if not np.isfinite(self.step_settle_s) or self.step_settle_s <= 0:
            raise ValueError(f"the step settle time must be > 0 s, got {self.step_settle_s!r}")
        self.check_repeats(limits)
        limits.check_mw_power(self.power_dbm)
        for channel, current in enumerate(self.coil_currents_a):
            limits.check_coil_current(channel, float(current))

    def plan(self, instruments: Mapping[str, Instrument]) -> SteppingPlan:
        """How the MW frequency will step on these instruments: a value, computed without moving or
        configuring anything (inspecting a plan is safe at any time). The engine stores its
        ``metadata()`` with the run and hands it to ``run``."""
        plan = plan_stepping(instruments, len(self.frequencies_hz), self.stepping, self.channels,
                             self._point_timing, self.modulation_hz)
        if plan.mode == "list" and self.order != "sequential":
            rearm = (f"; the list is armed for every pass in its {self.order} visiting order "
                     "(the source steps its list in list order)")
            plan = dataclasses.replace(plan, reason=plan.reason + rearm)
        return plan

    def _point_timing(self, pulser: PulseGenerator, camera: TriggerableCamera) -> SteppedPointTiming:
        """Periods of one hardware-timed point on this board's clock, for the frame rate the camera
        will really run at (its pure register solver, ``settings_for``; else the requested rate)."""
        settings_for = getattr(camera, "settings_for", None)
        if callable(settings_for):
            settings = settings_for(self.modulation_hz, self.frame_rate_hz, self.frames_per_point)
            volume_s = settings.frames_per_volume / settings.frame_rate_hz
        else:
            volume_s = self.frames_per_point / self.frame_rate_hz
        return stepped_point_timing(self.modulation_hz, volume_s, self.step_settle_s, pulser.clock_hz)

    def run(self, instruments: Mapping[str, Instrument], plan: SteppingPlan | None = None) -> Iterator[Step]:
        """The sweep's steps on ``instruments``, stepping as ``plan`` says (None: planned here)."""
        mw: MicrowaveSource = instruments["mw"]  # type: ignore[assignment]
        pulser: PulseGenerator = instruments["pulser"]  # type: ignore[assignment]
        camera: LockInCamera = instruments["camera"]  # type: ignore[assignment]
        coils: CoilDriver = instruments["coils"]  # type: ignore[assignment]
        if plan is None:
            plan = self.plan(instruments)
        log.info("CW ODMR: %s MW stepping (%s)", plan.mode, plan.reason)
        if plan.mode == "list":
            assert isinstance(mw, ListSweepSource) and isinstance(camera, TriggerableCamera)
            yield from self._run_list(mw, pulser, camera, coils, plan)
        else:
            yield from self._run_software(mw, pulser, camera, coils)

    def _step(self, visit: Pass, position: int, image: np.ndarray) -> Step:
        frequency = float(self.frequencies_hz[visit.frequency_indices[position]])
        return Step(
            index=visit.first_step + position,
            values={**self.visit_values(visit, position), "frequency_hz": frequency,
                    "mean_signal": float(image.mean())},
            images={"signal": image.astype(np.float32)},
            label=self.visit_label(visit, position),
        )

    def _run_software(self, mw: MicrowaveSource, pulser: PulseGenerator, camera: LockInCamera,
                      coils: CoilDriver) -> Iterator[Step]:
        pulser.load(lockin_modulation_program(self.modulation_hz, clock_hz=pulser.clock_hz))
        pulser.start()
        camera.configure(self.modulation_hz, self.frame_rate_hz, self.frames_per_point)
        mw.set_power(self.power_dbm)
        mw.set_frequency(float(self.frequencies_hz[0]))
        mw.set_output(True)
        for visit in self.passes(coils):
            for position, i in enumerate(visit.frequency_indices):
                mw.set_frequency(float(self.frequencies_hz[i]))
                image = camera.demodulate(camera.acquire(self.frames_per_point)).mean(axis=0)
                yield self._step(visit, position, image)

    def _run_list(self, mw: ListSweepSource, pulser: PulseGenerator, camera: TriggerableCamera,
                  coils: CoilDriver, plan: SteppingPlan) -> Iterator[Step]:
        assert plan.programs is not None
        first_point, next_point = plan.programs  # a list's first point is on the output once armed
        previous_trigger = camera.trigger
        camera.set_trigger("external")  # one volume per camera_start pulse
        try:
            camera.configure(self.modulation_hz, self.frame_rate_hz, self.frames_per_point)
            mw.set_power(self.power_dbm)
            mw.set_output(True)
            n = len(self.frequencies_hz)
            loaded = None
            armed: tuple[int, ...] | None = None  # frequency indices of the list on the source
            for visit in self.passes(coils):
                order = visit.frequency_indices
                for first in range(0, n, plan.segment_points):
                    segment = order[first:first + plan.segment_points]
                    if segment == armed:
                        mw.restart_list()  # the same list again: no need to load it
                    else:
                        # The source steps its list in list order: arm it in this pass's visiting order.
                        mw.arm_list(self.frequencies_hz[list(segment)], self.power_dbm)
                        armed = segment
                    for j in range(len(segment)):
                        program = next_point if j else first_point
                        if loaded is not program:
                            pulser.load(program)
                            loaded = program
                        pulser.start()  # runs this point once and stops: nothing waits on software
                        image = camera.demodulate(self._triggered_volume(camera, first + j, n)).mean(axis=0)
                        check_list_index(mw, mw.list_index(), j, len(segment), self.channels)
                        yield self._step(visit, first + j, image)
            pulser.stop()
        finally:
            camera.set_trigger(previous_trigger)
            with contextlib.suppress(Exception):  # the run's own error, if any, is the one to report
                mw.abort_list()

    def _triggered_volume(self, camera: TriggerableCamera, i: int, n: int) -> np.ndarray:
        """The volume the point's ``camera_start`` pulse started; a clear error if none came."""
        try:
            return camera.acquire(self.frames_per_point)
        except InstrumentTimeout as exc:
            bit = self.channels.bits.get("camera_start")
            raise InstrumentTimeout(
                exc.instrument, exc.command,
                f"no volume at point {i + 1} of {n}: the camera missed the PulseBlaster's camera_start pulse "
                f"(bit {bit}). Check the cable to the camera's trigger input and that the step settle time "
                f"({self.step_settle_s * 1e3:g} ms) covers the camera's readout, or {SOFTWARE_FIX}",
                exc.value) from exc
