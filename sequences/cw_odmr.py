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
import time
from collections.abc import Callable, Iterator, Mapping
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
from sequences.sweep_order import (
    VISIT_COLUMNS,
    Pass,
    SweepPlan,
    SweepRunner,
    check_order,
    new_seed,
    plan_sweeps,
    sweeps_within,
)

log = logging.getLogger(__name__)

CONFIG_LABELS = ("I-off", "I-on")
CW_REQUIRES: dict[str, type] = {"mw": MicrowaveSource, "pulser": PulseGenerator, "camera": LockInCamera,
                                "coils": CoilDriver}


@dataclass
class CwOdmrSweep:
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
        repeats: sweeps to run (each an I-off and an I-on pass).
        order: visiting order of the sweeps (``sequences.sweep_order.ORDERS``).
        order_seed: seed of a ``random`` order (None: drawn once, recorded in the parameters).
        max_runtime_s: run only the whole sweeps that fit in this time (None: no limit).
        clock: the clock the runtime limit is measured on: the wall clock by default; the service
            passes the station's (simulated time in simulation); tests give a fake one.
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
    repeats: int = 1
    order: str = "sequential"
    order_seed: int | None = None
    max_runtime_s: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    name: str = "cw_odmr"
    scalars: Mapping[str, str] = field(
        default_factory=lambda: {"config": "", "frequency_hz": "Hz", "mean_signal": "counts",
                                 "sweep": "", "frequency_index": ""}
    )
    setpoints: tuple[str, ...] = ("config", "frequency_hz")

    requires: Mapping[str, type] = field(default_factory=lambda: dict(CW_REQUIRES))
    """Roles and capabilities the sweep needs; the engine checks them before anything moves."""

    _ramp_rate_a_per_s: float = field(default=float("inf"), init=False, repr=False, compare=False)
    """The lab's coil ramp rate, learnt in ``check`` (coil ramps count in ``sweep_duration_s``)."""
    end_note: str = field(default="", init=False, compare=False)
    """After a run: how many sweeps ran and why it stopped (the engine stores it as the end reason)."""

    def __post_init__(self) -> None:
        self.frequencies_hz = np.asarray(self.frequencies_hz, dtype=float)
        self.coil_currents_a = np.asarray(self.coil_currents_a, dtype=float)
        if self.order == "random" and self.order_seed is None:
            self.order_seed = new_seed()  # drawn once, so plan, parameters and run agree

    @property
    def sweep_duration_s(self) -> float:
        """Estimated time of one sweep: camera time and step settling of every point, and two coil
        ramps at the lab's ramp rate once ``check`` has seen the limits (list arming and bus latency
        add to it; the runtime limit also checks the measured pace)."""
        point_s = self.frames_per_point / self.frame_rate_hz + self.step_settle_s
        largest_a = float(np.max(np.abs(self.coil_currents_a), initial=0.0))
        return len(CONFIG_LABELS) * (len(self.frequencies_hz) * point_s + largest_a / self._ramp_rate_a_per_s)

    @property
    def planned_sweeps(self) -> int:
        """The sweeps that will run: ``repeats``, or fewer when ``max_runtime_s`` holds fewer."""
        return sweeps_within(self.max_runtime_s, self.sweep_duration_s, self.repeats)

    @property
    def sweep_plan(self) -> SweepPlan:
        """The visits of the planned sweeps (``sequences.sweep_order``)."""
        return plan_sweeps(self.order, self.planned_sweeps, len(CONFIG_LABELS), len(self.frequencies_hz),
                           self.order_seed)

    @property
    def n_steps(self) -> int:
        return self.planned_sweeps * len(CONFIG_LABELS) * len(self.frequencies_hz)

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"signal": tuple(self.image_shape)}

    @property
    def estimated_duration_s(self) -> float:
        """The planned sweeps' ``sweep_duration_s``; list arming and bus latency add to it."""
        return self.planned_sweeps * self.sweep_duration_s

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
            "configs": list(CONFIG_LABELS),
            **self.sweep_plan.metadata(),  # order, planned repeats, order_seed: rebuilds the visits
            "repeats_requested": self.repeats,
            "max_runtime_s": self.max_runtime_s,
            "sweep_duration_s": self.sweep_duration_s,
            "step_columns": list(VISIT_COLUMNS),
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
        rate = float(getattr(limits, "coil_ramp_rate_a_per_s", 0.0) or 0.0)
        self._ramp_rate_a_per_s = rate if np.isfinite(rate) and rate > 0 else float("inf")
        check_order(self.order, self.repeats)
        sweeps_within(self.max_runtime_s, self.sweep_duration_s, self.repeats)  # refuses a too-short limit
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
        self.end_note = ""
        if plan.mode == "list":
            assert isinstance(mw, ListSweepSource) and isinstance(camera, TriggerableCamera)
            yield from self._run_list(mw, pulser, camera, coils, plan)
        else:
            yield from self._run_software(mw, pulser, camera, coils)

    def _step(self, visit: Pass, position: int, image: np.ndarray) -> Step:
        i = visit.frequency_indices[position]
        frequency = float(self.frequencies_hz[i])
        label = f"{CONFIG_LABELS[visit.config]} {frequency / 1e9:.6f} GHz"
        if self.repeats > 1:
            label = f"sweep {visit.sweep + 1} {label}"
        return Step(
            index=visit.first_step + position,
            values={"config": visit.config, "frequency_hz": frequency, "mean_signal": float(image.mean()),
                    "sweep": visit.sweep, "frequency_index": i},
            images={"signal": image.astype(np.float32)},
            label=label,
        )

    def _passes(self, coils: CoilDriver) -> Iterator[Pass]:
        """The planned passes, each configuration's coil currents set as its pass starts, within the
        runtime limit (``SweepRunner``); ``end_note`` says how many sweeps ran and why."""
        currents = (np.zeros(coils.n_channels), self.coil_currents_a)
        runner = SweepRunner(self.sweep_plan, self.repeats, self.sweep_duration_s, self.max_runtime_s,
                             self.clock)
        yield from runner.passes(lambda config: coils.set_currents(currents[config]))
        self.end_note = runner.note

    def _run_software(self, mw: MicrowaveSource, pulser: PulseGenerator, camera: LockInCamera,
                      coils: CoilDriver) -> Iterator[Step]:
        pulser.load(lockin_modulation_program(self.modulation_hz, clock_hz=pulser.clock_hz))
        pulser.start()
        camera.configure(self.modulation_hz, self.frame_rate_hz, self.frames_per_point)
        mw.set_power(self.power_dbm)
        mw.set_frequency(float(self.frequencies_hz[0]))
        mw.set_output(True)
        for visit in self._passes(coils):
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
            for visit in self._passes(coils):
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
