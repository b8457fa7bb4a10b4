"""Widefield CW ODMR with an intensity camera (sCMOS, machine vision): MW-on / MW-off frame pairs.

At each frequency the PulseBlaster runs a short program once and stops: the laser on throughout,
and ``frames_per_point`` pairs of frames, each frame one pulse on the camera line (cabled to the
camera's trigger input). The MW switch is on during the first frame of a pair (signal) and off
during the second (reference), so laser drift slower than a frame pair cancels. With
``exposure = "trigger_width"`` the pulse's width is the exposure (the program gates it); with
``"timed"`` a short pulse starts an exposure of the camera's ``ExposureTime``. The frequency steps
in software between points (``set_frequency``): hardware list stepping with an intensity camera is
not built (``sequences.mw_stepping`` times it for the lock-in camera's volumes).

Stored per point, as the lock-in sweep stores its demodulated signal: ``signal`` = mean reference
minus mean MW-on frame (grey levels), a peak at every resonance as the lock-in's (MW off) - (MW on),
so ``instrument.analysis.cw_run`` fits it unchanged; and ``reference``, the MW-off PL image. The
contrast 1 - on/off is ``signal / (reference - black level)``.

Before anything moves the camera's exposure range, frame rate, queue and bit depth are checked
against the sweep (``sequences.camera_checks``), and again with the frame rate the camera reports
once the exposure is set. A point whose frames do not come (no pulse reached the camera) stops
the run with the points measured so far kept.

Repeats, visiting order and the runtime limit are the lock-in sweep's (``RepeatedSweeps``,
``sequences.sweep_order``): every step stores its sweep, configuration and frequency index, and the
analysis averages the complete sweeps, registering each pass's drift on its MW-off frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instrument.protocols import (
    CameraTrigger,
    CoilDriver,
    Instrument,
    InstrumentTimeout,
    IntensityCamera,
    MicrowaveSource,
    PulseGenerator,
    PulseProgram,
    SafetyLimits,
)
from instrument.settings import setting
from instrument.storage.runs import Step
from sequences.camera_checks import (
    MAX_QUEUE,
    CameraSettingsError,
    CameraTiming,
    check_intensity_camera,
    check_saturation,
)
from sequences.mw_stepping import SteppingPlan, SteppingUnavailable
from sequences.pulses import Block, ChannelMap, Pulse, PulseSequence, PulseSequenceError, compile_sequence
from sequences.repeated_sweeps import CONFIG_LABELS, RepeatedSweeps
from sequences.sweep_order import Pass

log = logging.getLogger(__name__)

CAMERA_LINE = "camera_trigger"
"""The pulse generator's line cabled to the intensity camera's trigger input (Line1 on a Basler)."""
EXPOSURE_MODES = ("trigger_width", "timed")
TIMED_TRIGGER_PULSE_S = 10e-6
"""Width of the pulse that starts a timed exposure (well above a Basler opto input's minimum)."""
CAMERA_CW_STEPPING = ("auto", "software")
CAMERA_CW_REQUIRES: dict[str, type] = {"mw": MicrowaveSource, "pulser": PulseGenerator,
                                       "camera": IntensityCamera, "coils": CoilDriver}


@dataclass(frozen=True)
class CameraCwPlan:
    """What the sweep will run: the MW stepping, the point program and the camera trigger."""

    stepping: SteppingPlan
    program: PulseProgram
    trigger: CameraTrigger
    timing: CameraTiming

    def metadata(self) -> dict[str, Any]:
        t = self.trigger
        return {**self.stepping.metadata(), "camera_trigger_source": t.source,
                "camera_exposure_mode": t.exposure, "camera_trigger_width_s": t.width_s,
                "frames_per_read": self.timing.frames_per_read,
                "frame_period_s": self.timing.frame_period_s, "exposure_s": self.timing.exposure_s,
                "program": self.program.description}


def pair_sequence(exposure_s: float, frame_period_s: float, pairs: int, exposure: str = "trigger_width",
                  guard_s: float = 10e-6, channels: ChannelMap | None = None) -> PulseSequence:
    """``pairs`` frame pairs: laser on; MW switch on for the first frame's period; one camera pulse per frame.

    Each camera pulse starts ``guard_s`` into its frame period, once the MW switch has settled; it
    lasts the exposure (``trigger_width``) or ``TIMED_TRIGGER_PULSE_S`` (``timed``).
    """
    if exposure not in EXPOSURE_MODES:
        raise PulseSequenceError(
            f"camera exposure must be one of {', '.join(EXPOSURE_MODES)}, got {exposure!r}")
    p = frame_period_s
    width = exposure_s if exposure == "trigger_width" else TIMED_TRIGGER_PULSE_S
    pulses = (Pulse("laser", 0.0, 2 * p, "laser"), Pulse("mw_switch", 0.0, p, "MW on (signal frame)"),
              Pulse(CAMERA_LINE, guard_s, width, "signal frame"),
              Pulse(CAMERA_LINE, p + guard_s, width, "reference frame"))
    return PulseSequence((Block(2 * p, pulses, pairs, "frame pair"),), channels or ChannelMap(),
                         description=f"{pairs} MW-on/MW-off frame pairs, {frame_period_s * 1e3:g} ms apart, "
                                     f"{exposure_s * 1e3:g} ms exposure ({exposure})")


@dataclass
class CameraCwSweep(RepeatedSweeps):
    """CW-ODMR sweep of an intensity camera over ``frequencies_hz``, coils off then on.

    Args:
        frequencies_hz: MW frequencies of the sweep.
        power_dbm: MW output power (checked against the lab ceiling before anything moves).
        coil_currents_a: current of every coil channel for the I-on sweep.
        image_shape: camera image shape (rows, cols).
        frames_per_point: MW-on / MW-off frame pairs averaged at each frequency.
        exposure_s: exposure of every frame.
        frame_period_s: time from one camera pulse to the next (the MW switch toggles with it).
        exposure: ``"trigger_width"`` (the program's pulse is the exposure) or ``"timed"``.
        trigger_input: the camera input the pulse generator's camera line is cabled to (None: the
            camera's first trigger input, Line1 on a Basler ace).
        gain_db: analogue gain (None: as the camera is).
        queue_size: the camera's frame queue (None: a point's frames and two spare, at least 16).
        gate_guard_s: MW switch settling before each exposure.
        frame_timeout_s: how long to wait for each frame before calling the trigger missing (None:
            five frame periods, at least 2 s).
        stepping: ``"auto"`` or ``"software"`` (both step in software).
        channels: the pulse generator's channel map.

    Keyword-only: ``repeats``, ``order``, ``order_seed``, ``max_runtime_s`` and ``clock``
    (``sequences.repeated_sweeps.RepeatedSweeps``), as for the lock-in camera's ``CwOdmrSweep``.
    """

    frequencies_hz: np.ndarray
    power_dbm: float
    coil_currents_a: np.ndarray
    image_shape: tuple[int, int]
    frames_per_point: int = 4
    exposure_s: float = 10e-3
    frame_period_s: float = 12e-3
    exposure: str = "trigger_width"
    trigger_input: str | None = None
    gain_db: float | None = None
    queue_size: int | None = None
    gate_guard_s: float = 10e-6
    frame_timeout_s: float | None = None
    stepping: str = "auto"
    channels: ChannelMap = field(default_factory=ChannelMap)
    name: str = "cw_odmr"
    scalars: Mapping[str, str] = field(
        default_factory=lambda: {"config": "", "frequency_hz": "Hz", "mean_signal": "DN",
                                 "mean_reference": "DN", "sweep": "", "frequency_index": ""})
    setpoints: tuple[str, ...] = ("config", "frequency_hz")
    requires: Mapping[str, type] = field(default_factory=lambda: dict(CAMERA_CW_REQUIRES))
    """Roles and capabilities the sweep needs; the engine checks them before anything moves."""

    @property
    def point_duration_s(self) -> float:
        """Camera time of one point's frame pairs (MW settling and frame reads add to it)."""
        return 2 * self.frames_per_point * self.frame_period_s

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"signal": tuple(self.image_shape), "reference": tuple(self.image_shape)}

    @property
    def timing(self) -> CameraTiming:
        return CameraTiming(self.exposure_s, self.frame_period_s, self.gate_guard_s,
                            2 * self.frames_per_point, self.queue)

    @property
    def timeout_s(self) -> float:
        """How long to wait for each frame."""
        if self.frame_timeout_s is not None:
            return float(self.frame_timeout_s)
        return max(2.0, 5 * self.frame_period_s)

    @property
    def queue(self) -> int:
        """The frame queue the camera is armed with."""
        return self.queue_size if self.queue_size is not None else max(16, 2 * self.frames_per_point + 2)

    def parameters(self) -> dict[str, Any]:
        return {
            "frequencies_hz": self.frequencies_hz,
            "power_dbm": self.power_dbm,
            "coil_currents_a": self.coil_currents_a,
            "frames_per_point": self.frames_per_point,
            "exposure_s": self.exposure_s,
            "frame_period_s": self.frame_period_s,
            "exposure": self.exposure,
            "trigger_input": self.trigger_input,
            "gain_db": self.gain_db,
            "queue_size": self.queue,
            "stepping": self.stepping,
            "camera": "intensity",
            "signal": "mean MW-off frame minus mean MW-on frame (DN)",
            **self.repeat_parameters(),
        }

    def check(self, limits: SafetyLimits) -> None:
        """Refuse what cannot or must not run, before any hardware moves (the camera: ``plan``)."""
        f = self.frequencies_hz
        if f.ndim != 1 or len(f) < 5:
            raise ValueError(f"a CW-ODMR sweep needs at least 5 frequency points; raise {setting('points')}")
        if not np.all(np.isfinite(f)) or np.any(f <= 0):
            raise ValueError(f"sweep frequencies must be finite and positive; check {setting('center_hz')} "
                             f"and {setting('span_hz')}")
        if np.any(np.diff(f) <= 0):
            raise ValueError(f"sweep frequencies must increase point by point ({setting('span_hz')} > 0)")
        if self.frames_per_point < 1:
            raise ValueError(f"{setting('frames_per_point')} must be at least 1, got {self.frames_per_point}")
        for name in ("exposure_s", "frame_period_s", "frame_timeout_s"):
            value = getattr(self, name)
            if value is None and name == "frame_timeout_s":
                continue
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{setting(name)} must be > 0 s, got {value!r}")
        if self.exposure not in EXPOSURE_MODES:
            raise ValueError(
                f"camera exposure must be one of {', '.join(EXPOSURE_MODES)}, got {self.exposure!r}")
        if self.stepping == "list":
            raise SteppingUnavailable("hardware list stepping is not built for an intensity camera (the "
                                      "PulseBlaster times it for the lock-in camera's volumes); use "
                                      f"software stepping (set {setting('mw_stepping')} to software)")
        if self.stepping not in CAMERA_CW_STEPPING:
            raise ValueError(
                f"MW stepping must be one of {', '.join(CAMERA_CW_STEPPING)}, got {self.stepping!r}")
        self.check_repeats(limits)
        limits.check_mw_power(self.power_dbm)
        for channel, current in enumerate(self.coil_currents_a):
            limits.check_coil_current(channel, float(current))

    def plan(self, instruments: Mapping[str, Instrument]) -> CameraCwPlan:
        """The point program and camera trigger, checked against the camera's and board's limits.

        Pure: reads the camera's constraints and pixel format and compiles the program; writes
        nothing. Raises ``CameraSettingsError`` (a ``ValueError``) naming the setting to change.
        """
        camera = instruments["camera"]
        pulser: PulseGenerator = instruments["pulser"]  # type: ignore[assignment]
        inputs = tuple(camera.constraints.trigger_inputs)  # type: ignore[attr-defined]
        line = self.trigger_input or (inputs[0] if inputs else None)
        if line is None or line not in inputs:
            raise CameraSettingsError(
                f"the camera has no trigger input {line!r}; its inputs are {', '.join(inputs) or 'none'}; "
                "it cannot take frames from the pulse generator's camera line")
        check_intensity_camera(camera, self.timing)
        try:
            sequence = pair_sequence(self.exposure_s, self.frame_period_s, self.frames_per_point,
                                     self.exposure, self.gate_guard_s, self.channels)
            program = compile_sequence(sequence, constraints=pulser.constraints)
        except PulseSequenceError as exc:
            raise CameraSettingsError(
                f"the frame-pair program cannot run on the pulse generator: {exc}") from exc
        width = self.exposure_s if self.exposure == "trigger_width" else 0.0
        trigger = CameraTrigger(line, "rising", self.exposure, width)
        reason = ("one set_frequency per point (hardware list stepping is built for the lock-in camera "
                  "only)" if self.stepping == "auto" else "software stepping requested")
        return CameraCwPlan(SteppingPlan("software", reason), program, trigger, self.timing)

    def run(self, instruments: Mapping[str, Instrument],
            plan: CameraCwPlan | None = None) -> Iterator[Step]:
        mw: MicrowaveSource = instruments["mw"]  # type: ignore[assignment]
        pulser: PulseGenerator = instruments["pulser"]  # type: ignore[assignment]
        camera: Any = instruments["camera"]
        coils: CoilDriver = instruments["coils"]  # type: ignore[assignment]
        if plan is None:
            plan = self.plan(instruments)
        log.info("CW ODMR (intensity camera): %s MW stepping (%s)", plan.stepping.mode,
                 plan.stepping.reason)
        self._configure_camera(camera, plan)
        try:
            pulser.load(plan.program)
            mw.set_power(self.power_dbm)
            mw.set_frequency(float(self.frequencies_hz[0]))
            mw.set_output(True)
            for visit in self.passes(coils):
                for position, i in enumerate(visit.frequency_indices):
                    mw.set_frequency(float(self.frequencies_hz[i]))
                    pulser.start()  # runs this point's frame pairs once and stops
                    on, off = self._pairs(camera, plan.trigger.source, visit, position)
                    pulser.stop()
                    yield self._step(visit, position, on, off)
        finally:
            camera.disarm()

    def _configure_camera(self, camera: Any, plan: CameraCwPlan) -> None:
        """Exposure, gain, full frame rate, trigger; then the rate the camera reports, checked again."""
        camera.disarm()
        camera.set_exposure(self.exposure_s)  # also in trigger-width mode: the camera's rate follows it
        if self.gain_db is not None:
            camera.set_gain(self.gain_db)
        set_rate = getattr(camera, "set_frame_rate", None)
        if callable(set_rate):  # as fast as the camera can: the program, not the camera, paces frames
            set_rate(camera.constraints.frame_rate_max_hz)
        camera.set_trigger(plan.trigger)
        resulting = getattr(camera, "resulting_frame_rate_hz", None)
        check_intensity_camera(camera, plan.timing, resulting if isinstance(resulting, int | float) else None)
        camera.arm(min(self.queue, MAX_QUEUE))

    def _pairs(self, camera: Any, line: str, visit: Pass, position: int) -> tuple[np.ndarray, np.ndarray]:
        """The point's (MW-on, MW-off) frames; a clear error when frames do not come or were lost."""
        wanted = 2 * self.frames_per_point
        sweep = f"sweep {visit.sweep + 1} " if self.repeats > 1 else ""
        point = f"{sweep}{CONFIG_LABELS[visit.config]} point {position + 1} of {len(visit.frequency_indices)}"
        try:
            frames = camera.read_frames(wanted, timeout_s=self.timeout_s)
        except InstrumentTimeout as exc:
            got = getattr(getattr(exc, "frames", None), "images", np.zeros(0))
            bit = self.channels.bits.get(CAMERA_LINE)
            raise InstrumentTimeout(
                exc.instrument, exc.command,
                f"{point}: {len(got)} of {wanted} frames came within "
                f"{self.timeout_s:g} s each: the pulse generator's {CAMERA_LINE} pulses (bit {bit}) "
                f"did not reach the camera's {line}. Check that cable and the camera's "
                f"trigger input (station check), or raise {setting('frame_period_s')} if the camera "
                "ignores pulses",
                exc.value) from exc
        if frames.dropped or (len(frames.frame_numbers) > 1 and np.any(np.diff(frames.frame_numbers) != 1)):
            raise CameraSettingsError(
                f"{point}: the camera lost {frames.dropped} "
                f"frame(s), so MW-on and MW-off frames no longer pair up; lower "
                f"{setting('frames_per_point')} or read the camera from a faster computer")
        check_saturation(frames.images, camera.bit_depth, point)
        images = frames.images.astype(np.float32)
        return images[0::2], images[1::2]

    def _step(self, visit: Pass, position: int, on: np.ndarray, off: np.ndarray) -> Step:
        frequency = float(self.frequencies_hz[visit.frequency_indices[position]])
        reference = off.mean(axis=0)
        signal = reference - on.mean(axis=0)
        return Step(
            index=visit.first_step + position,
            values={**self.visit_values(visit, position), "frequency_hz": frequency,
                    "mean_signal": float(signal.mean()), "mean_reference": float(reference.mean())},
            images={"signal": signal.astype(np.float32), "reference": reference.astype(np.float32)},
            label=self.visit_label(visit, position),
        )
