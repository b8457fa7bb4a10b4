"""Widefield pulsed measurements on an intensity camera: Rabi, Ramsey, Hahn echo, CPMG (CP), T1.

An intensity camera cannot gate a few hundred nanoseconds: it integrates light for its whole
exposure. So each sequence point is one program that exposes one frame over ``repetitions``
shots and a second, reference frame over as many shots again:

    camera readout gap | init laser | [shot] x reps  (camera line high: signal exposure)
    camera readout gap | init laser | [reference shot] x reps  (camera line high: reference exposure)
    (repeated ``pairs`` times)

with ``shot = dark | MW part | gap | readout laser``. The camera runs in trigger-width exposure on
its hardware input (``Line1``): the camera line is high for exactly the shots of one frame, so
the pulse program, not the camera, times the exposure. The reference shot has the signal shot's
timing with the MW off (Rabi, T1, Ramsey: the ms=0 brightness, which normalises laser power and
collection per pixel) or, where the pulse generator allows a phase cycle (echo, CPMG: the last pi/2
replaced by a 3pi/2 pulse of the same phase, see ``sequences.dynamical_decoupling``), the
opposite projection, which doubles the signal and cancels common-mode drifts.

Contrast: the camera collects the whole readout laser pulse, during which the spins repolarise
in ~1 us, not a short gate at its start. The spin-dependent part of the light is diluted by about
``polarization time / laser time``; the sequence keeps the laser short (2 us) and the physics
simulation integrates exactly what the camera sees.

A dark frame (laser off, the same exposure) taken before the sweep removes the camera's black
level. Each step stores the dark-subtracted signal and reference images and their ratio; the
maps are fitted per pixel afterwards (``instrument.analysis.pulsed_maps``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from instrument.protocols import (
    CameraConstraints,
    CameraTrigger,
    Instrument,
    IntensityCamera,
    MicrowaveSource,
    PulseGenerator,
    PulseProgram,
    SafetyLimits,
)
from instrument.storage.runs import Step
from sequences.dynamical_decoupling import Cpmg, Xy8
from sequences.pulsed import HahnEcho, PulsedMeasurement, Rabi, Ramsey, ShotTiming, T1Relaxation
from sequences.pulses import Block, Pulse, PulseSequence, compile_sequence

CAMERA_LINE = "camera_trigger"
"""The pulse generator's channel cabled to the camera's trigger input."""


CAMERA_SHOT = ShotTiming(laser_s=2e-6, gate_s=300e-9, reference_start_s=1.5e-6, dark_after_laser_s=1e-6,
                         gap_before_readout_s=100e-9, repetitions=1)
"""A camera shot: a 2 us readout laser (2.5 polarisation times: repolarised, little dilution). The
gate fields are unused (the camera line gates whole frames); the shots per frame are in FrameTiming."""


class CameraTimingError(ValueError):
    """The camera cannot take the frames the sequence asks for (exposure, frame rate, input)."""


@dataclass(frozen=True)
class FrameTiming:
    """How frames are exposed: shots per frame, frame pairs per point, the camera's dead time.

    ``readout_gap_s`` separates consecutive exposures (the camera reads the sensor out); it must be
    at least the camera's minimum frame period, which ``check_camera`` checks.
    """

    repetitions: int = 4000
    pairs: int = 1
    readout_gap_s: float = 12e-3
    trigger_input: str = "Line1"
    dark_frames: int = 2

    def check(self) -> None:
        if not 1 <= self.repetitions <= 2**20 - 1:
            raise ValueError(f"shots per frame must be 1 .. 1048575, got {self.repetitions}")
        if not 1 <= self.pairs <= 64:
            raise ValueError(f"frame pairs per point must be 1 .. 64, got {self.pairs}")
        if not (math.isfinite(self.readout_gap_s) and self.readout_gap_s > 0):
            raise ValueError(f"the readout gap must be > 0 s, got {self.readout_gap_s!r}")
        if not 1 <= self.dark_frames <= 64:
            raise ValueError(f"dark frames must be 1 .. 64, got {self.dark_frames}")


@dataclass
class CameraPulsed(PulsedMeasurement):
    """Common machinery of the camera measurements; mixed before a ``sequences.pulsed`` class.

    The MW part of a shot and the fit of the pixel-mean curve come from the mixed-in class; the
    detector is an ``IntensityCamera`` at ``camera_role``.
    """

    timing: ShotTiming = field(default_factory=lambda: CAMERA_SHOT)
    frames: FrameTiming = field(default_factory=FrameTiming)
    camera_role: str = "camera"
    readout_cycle: ClassVar[str] = "mw_off"  # or "three_pi_half"

    # ---- what the engine inspects --------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"widefield_{self.kind}"

    @property
    def requires(self) -> dict[str, type]:
        return {"mw": MicrowaveSource, "pulser": PulseGenerator, self.camera_role: IntensityCamera}

    @property
    def scalars(self) -> dict[str, str]:
        return {self.sweep_name: self.sweep_unit, "signal": "DN", "reference": "DN", "ratio": "",
                "ratio_err": "", "exposure_s": "s"}

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        shape = tuple(self.image_shape)
        return {"ratio": shape, "signal": shape, "reference": shape}

    def extra_parameters(self) -> dict[str, Any]:
        return {**super().extra_parameters(), "frames": vars(self.frames), "camera_role": self.camera_role,
                "readout_cycle": self.readout_cycle, "detector": "intensity camera (trigger-width exposure)"}

    # ---- the program ---------------------------------------------------------------------------

    def signal_part(self, x: float) -> tuple[float, list[Pulse]]:
        """The signal shot's MW part: the measurement's own."""
        return self.mw_part(x)

    def reference_mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        """The reference shot's MW part: the signal's length with the MW off."""
        return self.signal_part(x)[0], []

    def _shot(self, length: float, mw: list[Pulse], label: str, camera: bool) -> Block:
        t = self.timing
        t0 = t.dark_after_laser_s
        readout = t0 + length + t.gap_before_readout_s
        pulses = [Pulse(p.channel, p.start_s + t0, p.duration_s, p.name) for p in mw]
        pulses.append(Pulse("laser", readout, t.laser_s, "readout laser"))
        duration = readout + t.laser_s
        if camera:
            # High over the whole shot and so over every repetition: one exposure per frame.
            pulses.append(Pulse(CAMERA_LINE, 0.0, duration, f"{label} exposure"))
        return Block(duration, tuple(pulses), self.frames.repetitions, name=f"{self.kind} {label} shots")

    def shot_s(self, x: float) -> float:
        """Length of one shot at sweep value x."""
        t = self.timing
        return t.dark_after_laser_s + self.signal_part(x)[0] + t.gap_before_readout_s + t.laser_s

    def exposure_s(self, x: float) -> float:
        """The camera's exposure at sweep value x (the camera line's width)."""
        return self.frames.repetitions * self.shot_s(x)

    def sequence(self, x: float) -> PulseSequence:
        t, f = self.timing, self.frames
        init = Block(t.laser_s, (Pulse("laser", 0.0, t.laser_s, "initialising laser"),), name="init")
        gap = Block(f.readout_gap_s, (), name="camera readout")
        sig_len, sig_mw = self.signal_part(x)
        ref_len, ref_mw = self.reference_mw_part(x)
        signal = self._shot(sig_len, sig_mw, "signal", True)
        reference = self._shot(ref_len, ref_mw, f"reference ({self.readout_cycle})", True)
        # Each exposure follows a readout gap, the first one too: the previous program's last frame
        # may have ended just before this program starts, and the camera ignores a trigger that
        # comes sooner than its frame period (an overtrigger).
        blocks = (gap, init, signal, gap, init, reference) * f.pairs
        return PulseSequence(blocks, self.channels,
                             description=f"widefield {self.kind} {self.sweep_name}={x:g}")

    def dark_sequence(self) -> PulseSequence:
        """Dark frames: the camera line high for the longest exposure, laser and MW off."""
        exposure = max(self.exposure_s(float(x)) for x in self.sweep)
        blocks: tuple[Block, ...] = ()
        for _ in range(self.frames.dark_frames):
            blocks += (Block(self.frames.readout_gap_s, (), name="camera readout"),
                       Block(exposure, (Pulse(CAMERA_LINE, 0.0, exposure, "dark exposure"),), name="dark"))
        return PulseSequence(blocks, self.channels, description=f"widefield {self.kind} dark frames")

    def program(self, x: float) -> PulseProgram:
        return compile_sequence(self.sequence(x), self.clock_hz)

    @property
    def estimated_duration_s(self) -> float:
        return float(sum(self.sequence(float(x)).duration_s for x in self.sweep)
                     + self.dark_sequence().duration_s)

    # ---- checks --------------------------------------------------------------------------------

    def check(self, limits: SafetyLimits) -> None:
        self.frames.check()
        if CAMERA_LINE not in self.channels.bits:
            raise ValueError(f"the channel map has no '{CAMERA_LINE}' line for the camera's trigger input")
        super().check(limits)
        compile_sequence(self.dark_sequence(), self.clock_hz)

    def check_camera(self, constraints: CameraConstraints, shape: tuple[int, int],
                     frame_period_s: float | None = None) -> None:
        """Refuse what the camera cannot take, before anything moves: input, exposures, frame rate.

        ``frame_period_s``: the camera's shortest time between frames with its present settings
        (default: from its top frame rate).
        """
        f = self.frames
        if constraints.trigger_inputs and f.trigger_input not in constraints.trigger_inputs:
            raise CameraTimingError(
                f"the camera has no trigger input {f.trigger_input!r} (it has "
                f"{', '.join(constraints.trigger_inputs)}); set the frames' trigger input")
        if tuple(shape) != tuple(self.image_shape):
            raise CameraTimingError(f"the camera gives {tuple(shape)} images but the measurement was "
                                    f"planned for {tuple(self.image_shape)}")
        exposures = [self.exposure_s(float(x)) for x in self.sweep]
        lo, hi = min(exposures), max(exposures)
        if lo < constraints.exposure_min_s or hi > constraints.exposure_max_s:
            raise CameraTimingError(
                f"exposures of {lo * 1e3:.4g} .. {hi * 1e3:.4g} ms ({f.repetitions} shots per frame) lie "
                f"outside the camera's {constraints.exposure_min_s * 1e3:.4g} .. "
                f"{constraints.exposure_max_s * 1e3:.4g} ms; change the shots per frame (repetitions)")
        period = 1.0 / constraints.frame_rate_max_hz if frame_period_s is None else frame_period_s
        if f.readout_gap_s < period:
            raise CameraTimingError(
                f"the {f.readout_gap_s * 1e3:.4g} ms between exposures is shorter than the camera's "
                f"{period * 1e3:.4g} ms frame period ({1 / period:.4g} frame/s); "
                "lengthen the readout gap")

    # ---- running -------------------------------------------------------------------------------

    def _expose(self, pulser: PulseGenerator, camera: IntensityCamera, sequence: PulseSequence,
                exposure_s: float, n_frames: int) -> np.ndarray:
        """Run one program that exposes ``n_frames`` frames on the camera line; the frames (n, H, W)."""
        camera.set_trigger(CameraTrigger(source=self.frames.trigger_input, edge="rising",
                                         exposure="trigger_width", width_s=exposure_s))
        camera.arm(queue_size=max(4, n_frames + 2))
        try:
            pulser.load(compile_sequence(sequence, self.clock_hz))
            pulser.start()
            got = camera.read_frames(n_frames, timeout_s=sequence.duration_s + 5.0)
            pulser.stop()
        finally:
            camera.disarm()
        if got.dropped:
            raise RuntimeError(f"{camera.name}: {got.dropped} frame(s) dropped; a signal/reference pair "
                               "would be mismatched, so the point is not used")
        images = np.asarray(got.images, float)
        if images.shape[0] != n_frames:
            raise RuntimeError(f"{camera.name}: expected {n_frames} frames, got {images.shape[0]}")
        return images

    def run(self, instruments: Mapping[str, Instrument]) -> Iterator[Step]:
        mw: MicrowaveSource = instruments["mw"]  # type: ignore[assignment]
        pulser: PulseGenerator = instruments["pulser"]  # type: ignore[assignment]
        camera: IntensityCamera = instruments[self.camera_role]  # type: ignore[assignment]
        rate = getattr(camera, "resulting_frame_rate_hz", None)
        self.check_camera(camera.constraints, camera.shape, 1.0 / rate if rate else None)
        dark_seq = self.dark_sequence()
        dark = self._expose(pulser, camera, dark_seq, max(self.exposure_s(float(x)) for x in self.sweep),
                            self.frames.dark_frames).mean(axis=0)
        mw.set_power(self.power_dbm)
        mw.set_frequency(self.frequency_hz)
        mw.set_output(True)
        n = 2 * self.frames.pairs
        for i, x in enumerate(self.sweep):
            self.set_point(mw, float(x))
            exposure = self.exposure_s(float(x))
            frames = self._expose(pulser, camera, self.sequence(float(x)), exposure, n) - dark
            signal, reference = frames[0::2].mean(axis=0), frames[1::2].mean(axis=0)
            sig, ref = float(signal.sum()), float(reference.sum())
            if ref <= 0:
                raise RuntimeError(f"{camera.name}: no light in the reference frame; is the laser on?")
            with np.errstate(divide="ignore", invalid="ignore"):
                image = np.where(reference > 0, signal / reference, np.nan)
            # The error of the image-sum ratio from the pixel scatter of the per-pair ratios.
            per_pair = frames[0::2].sum(axis=(1, 2)) / frames[1::2].sum(axis=(1, 2))
            ratio = sig / ref
            err = float(np.std(per_pair, ddof=1) / math.sqrt(len(per_pair))) if len(per_pair) > 1 else float(
                ratio * math.sqrt(np.nanvar(image[np.isfinite(image)]) / max(np.isfinite(image).sum(), 1)))
            yield Step(
                index=i,
                values={self.sweep_name: float(x), "signal": sig, "reference": ref, "ratio": ratio,
                        "ratio_err": err, "exposure_s": exposure},
                images={"ratio": image.astype(np.float32), "signal": signal.astype(np.float32),
                        "reference": reference.astype(np.float32)},
                label=f"widefield {self.kind} {self.sweep_name}={x:.4g}",
            )


@dataclass
class CameraRabi(CameraPulsed, Rabi):
    """Widefield Rabi: a Rabi-frequency map (the MW field amplitude across the field of view)."""

    map_parameter: ClassVar[str] = "rabi_hz"


@dataclass
class CameraRamsey(CameraPulsed, Ramsey):
    """Widefield Ramsey: a T2* map."""

    map_parameter: ClassVar[str] = "t2_star_s"


class _ThreePiHalfReference:
    """Reference frame with the last pi/2 replaced by 3pi/2 (the same phase, three times as long).

    The signal shot waits the 2 pi/2 lengths the reference pulse is longer, so both shots have the
    same timing and the same laser light.
    """

    readout_cycle: ClassVar[str] = "three_pi_half"

    def _with_last(self, x: float, factor: int) -> tuple[float, list[Pulse]]:
        length, pulses = self.mw_part(x)  # type: ignore[attr-defined]
        last = pulses[-1]
        extra = 2 * last.duration_s
        if factor == 3:
            pulses = [*pulses[:-1], Pulse(last.channel, last.start_s, 3 * last.duration_s, "last 3pi/2")]
        return length + extra, pulses

    def signal_part(self, x: float) -> tuple[float, list[Pulse]]:
        return self._with_last(x, 1)

    def reference_mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        return self._with_last(x, 3)


@dataclass
class CameraEcho(_ThreePiHalfReference, CameraPulsed, HahnEcho):
    """Widefield Hahn echo: a T2 map (stretched-exponential decay), 3pi/2 phase-cycled reference."""

    map_parameter: ClassVar[str] = "t2_s"


@dataclass
class CameraCpmg(_ThreePiHalfReference, CameraPulsed, Cpmg):
    """Widefield CPMG-N as the PulseBlaster allows it (CP-N, one MW phase): a T2 (DD) map."""

    map_parameter: ClassVar[str] = "t2_s"


@dataclass
class CameraXy8(CameraPulsed, Xy8):
    """Widefield XY8-N: planned (inspectable), refused by ``check`` on a one-phase MW switch."""

    map_parameter: ClassVar[str] = "t2_s"


@dataclass
class CameraT1(CameraPulsed, T1Relaxation):
    """Widefield T1 relaxometry: a T1 map.

    With no MW, a MW-off reference would equal the signal; the reference shot instead waits only
    the sweep's shortest dark time, so it reads the polarised (ms=0) brightness with the same laser
    pulses, and so the same light budget, as the signal shot.
    """

    map_parameter: ClassVar[str] = "t1_s"
    readout_cycle: ClassVar[str] = "shortest_dark"

    def reference_mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        return float(np.min(self.sweep)), []


CAMERA_MEASUREMENTS: dict[str, type[CameraPulsed]] = {
    "rabi": CameraRabi, "ramsey": CameraRamsey, "echo": CameraEcho, "cpmg": CameraCpmg,
    "xy8": CameraXy8, "t1": CameraT1,
}
"""Widefield measurement classes by the name of their kind (as front ends offer them)."""
