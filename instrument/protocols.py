"""Capability protocols, typed errors and safety limits: the only view sequences have of hardware.

Sequences never import a driver. They ask for a ``MicrowaveSource``, a ``PulseGenerator``, a
``LockInCamera`` or a ``CoilDriver`` and use only what is declared here, so real and simulated
stations are interchangeable.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class InstrumentError(RuntimeError):
    """An instrument refused or failed a command.

    Attributes name the instrument, the command that failed and the value involved, so that a
    log line alone tells an operator what went wrong.
    """

    def __init__(self, instrument: str, command: str, detail: str, value: Any = None) -> None:
        self.instrument = instrument
        self.command = command
        self.value = value
        self.detail = detail
        where = f"{instrument}: {command}"
        if value is not None:
            where += f" (value {value!r})"
        super().__init__(f"{where}: {detail}")


class InstrumentTimeout(InstrumentError):
    """The instrument did not answer in time."""


class InstrumentDisconnected(InstrumentError):
    """The connection to the instrument was lost."""


class SafetyLimitError(ValueError):
    """A setting would exceed a lab safety limit; nothing was sent to the hardware."""

    def __init__(self, setting: str, value: float, limit: float, unit: str, fix: str = "") -> None:
        self.setting = setting
        self.value = value
        self.limit = limit
        self.unit = unit
        hint = fix or "lower the value or raise the limit in the station file if the lab allows it"
        super().__init__(
            f"{setting} = {value:g} {unit} exceeds the lab safety limit of {limit:g} {unit}; {hint}"
        )


# --------------------------------------------------------------------------------------------
# Safety limits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafetyLimits:
    """Lab safety limits from the station file. Device ranges are not safety limits."""

    mw_power_max_dbm: float = 10.0
    coil_current_max_a: float = 1e-3
    coil_ramp_rate_a_per_s: float = 1e-2
    pulse_min_s: float = 10e-9

    def check_mw_power(self, power_dbm: float) -> None:
        if not np.isfinite(power_dbm) or power_dbm > self.mw_power_max_dbm:
            raise SafetyLimitError(
                "MW power", power_dbm, self.mw_power_max_dbm, "dBm",
                "lower `power_dbm` or raise limits.mw_power_max_dbm in the station file",
            )

    def check_coil_current(self, channel: int, current_a: float) -> None:
        if not np.isfinite(current_a) or abs(current_a) > self.coil_current_max_a:
            raise SafetyLimitError(
                f"coil {channel} current", current_a, self.coil_current_max_a, "A",
                "lower the drive current or raise limits.coil_current_max_a in the station file",
            )


# --------------------------------------------------------------------------------------------
# PulseBlaster program representation (produced by sequences, consumed by drivers)
# --------------------------------------------------------------------------------------------


class Opcode(enum.IntEnum):
    """SpinCore PulseBlaster instruction opcodes (spinapi numbering)."""

    CONTINUE = 0
    STOP = 1
    LOOP = 2
    END_LOOP = 3
    JSR = 4
    RTS = 5
    BRANCH = 6
    LONG_DELAY = 7
    WAIT = 8


@dataclass(frozen=True)
class PulseInstruction:
    """One PulseBlaster instruction: output flags held for ``duration_s``, then ``opcode``."""

    flags: int
    opcode: Opcode
    data: int
    duration_s: float


@dataclass(frozen=True)
class PulseProgram:
    """A compiled pulse program with the channel map that gave the flags their meaning."""

    instructions: tuple[PulseInstruction, ...]
    channels: dict[str, int] = field(default_factory=dict)
    description: str = ""


# --------------------------------------------------------------------------------------------
# Capability protocols
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Instrument(Protocol):
    """What every instrument offers the engine."""

    name: str

    def safe_state(self) -> None:
        """Put the hardware in its safe state (RF off, currents zero, stopped).

        Tries every output even when one step fails, then raises ``InstrumentError`` naming what may
        still be unsafe: a failure must reach the run record, never vanish. Callers that make several
        instruments safe (the engine's ``make_safe``) catch it and carry on with the others.
        """

    def close(self) -> None:
        """Release the connection after making the hardware safe."""


@dataclass(frozen=True)
class MicrowaveConstraints:
    frequency_min_hz: float
    frequency_max_hz: float
    power_min_dbm: float
    power_max_dbm: float
    list_max_points: int = 0  # 0: no hardware list mode


@runtime_checkable
class MicrowaveSource(Instrument, Protocol):
    """A CW microwave source. List sweeps are optional (``constraints.list_max_points``)."""

    @property
    def constraints(self) -> MicrowaveConstraints: ...

    def set_frequency(self, frequency_hz: float) -> None: ...

    def set_power(self, power_dbm: float) -> None: ...

    def set_output(self, on: bool) -> None: ...


# Optional capability of a MicrowaveSource: a hardware frequency list stepped by a trigger input.
@runtime_checkable
class ListSweepSource(MicrowaveSource, Protocol):
    """A ``MicrowaveSource`` that steps through a frequency list on an external trigger edge.

    The contract is the same for every source, whatever its own first-point quirks:

    * ``arm_list(frequencies_hz, power_dbm)`` checks the power against the lab limit, every
      frequency against the model's range and the length against
      ``constraints.list_max_points`` before anything is sent, then loads and arms the list. On
      return the output is at ``frequencies_hz[0]`` (RF on/off unchanged) and ``list_index()``
      is 0.
    * Each trigger edge moves to the next point. A sweep of n points therefore needs n - 1 edges
      after arming. What an edge after the last point does is the source's own (the SG384 wraps
      to 0, the SMB100A with an external trigger runs its list once and stays): the engine never
      relies on it and calls ``restart_list()`` for the next pass.
    * ``list_index()`` reads back the point on the output now, from the instrument.
    * ``restart_list()`` goes back to point 0 of the armed list without loading it again (the
      next pass of a sweep); afterwards the contract is as after ``arm_list``.
    * ``abort_list()`` leaves list mode; the source is back in CW mode.

    The engine uses it when ``isinstance(source, ListSweepSource)`` and the list fits
    (``0 < n <= source.constraints.list_max_points``); otherwise it steps in software with
    ``set_frequency`` per point, which every ``MicrowaveSource`` supports.
    """

    def arm_list(self, frequencies_hz: Sequence[float], power_dbm: float) -> None: ...

    def list_index(self) -> int: ...

    def restart_list(self) -> None: ...

    def abort_list(self) -> None: ...


@dataclass(frozen=True)
class PulseGeneratorConstraints:
    """What a pulse generator can run; the driver reports its board's, the compiler obeys them.

    ``output_bits``: outputs are bits 0 to ``output_bits - 1``; ``min_cycles``/``max_cycles``: the
    length of one instruction in clock cycles; ``max_data``: the largest data field (loop count,
    jump address, LONG_DELAY multiplier); ``memory_words``: instructions the board holds.
    """

    clock_hz: float
    output_bits: int
    min_cycles: int
    max_cycles: int
    max_data: int
    memory_words: int


ESR_PRO_500 = PulseGeneratorConstraints(
    clock_hz=500e6, output_bits=21, min_cycles=5, max_cycles=2**32 - 1, max_data=2**20 - 1,
    memory_words=4096,
)
"""The SpinCore PulseBlaster ESR-PRO 500 (docs/hardware/pulseblaster.md): the one place these
numbers are written. Sequences compiled without a board in hand (plots, plans) use it."""


@runtime_checkable
class PulseGenerator(Instrument, Protocol):
    """A TTL pulse generator that runs a compiled ``PulseProgram`` within its ``constraints``."""

    @property
    def clock_hz(self) -> float: ...

    @property
    def constraints(self) -> PulseGeneratorConstraints: ...

    def load(self, program: PulseProgram) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class LockInSettings:
    """Physical settings a lock-in camera actually runs with, after register quantisation."""

    modulation_frequency_hz: float
    frame_rate_hz: float
    frames_per_volume: int
    cycles_per_frame: int


@runtime_checkable
class PhotonCountingArray(Instrument, Protocol):
    """A photon-counting detector array (the seed-003 16x16 SPAD array): counts per pixel per frame."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def discard_pending(self) -> int:
        """Drop frames already read ahead (stale after a setting changed); returns how many."""

    def read_counts(self, n: int, timeout_s: float | None = None) -> np.ndarray:
        """Photon counts of the next ``n`` frames, int64, shape (n, H, W)."""


@runtime_checkable
class LockInCamera(Instrument, Protocol):
    """A lock-in camera returning raw I/Q frames of shape (n, H, W, 2), int16."""

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def pixel_size_m(self) -> float: ...

    def configure(
        self, modulation_frequency_hz: float, frame_rate_hz: float, frames_per_volume: int
    ) -> LockInSettings: ...

    def acquire(self, n_frames: int) -> np.ndarray: ...

    def demodulate(self, raw: np.ndarray) -> np.ndarray:
        """In-phase signal per pixel (offset removed), float32, shape (n, H, W)."""
        ...


@runtime_checkable
class TriggerableCamera(LockInCamera, Protocol):
    """A ``LockInCamera`` whose volumes can start on an external trigger edge (optional capability).

    ``trigger`` is ``"internal"`` (free running) or ``"external"`` (one volume per trigger pulse);
    ``set_trigger`` takes effect at the next ``configure``.
    """

    trigger: str

    def set_trigger(self, trigger: str) -> None: ...


@runtime_checkable
class CoilDriver(Instrument, Protocol):
    """A multi-channel coil current source. Currents ramp, never jump; zero on any exit."""

    @property
    def n_channels(self) -> int: ...

    def set_currents(self, currents_a: Sequence[float]) -> None: ...

    def read_currents(self) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Intensity cameras (sCMOS and machine-vision cameras: Basler, Andor, pco, Hamamatsu)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraConstraints:
    """What an intensity camera accepts, as the camera itself reports it when opened.

    Exposure in s, gain in dB, frame rate in Hz; ``trigger_inputs`` names the hardware inputs the
    frame-start trigger can take (``"Line1"`` ...), ``pixel_formats`` the formats the sensor offers.
    """

    exposure_min_s: float
    exposure_max_s: float
    gain_min_db: float
    gain_max_db: float
    frame_rate_min_hz: float
    frame_rate_max_hz: float
    width_max: int
    height_max: int
    pixel_formats: tuple[str, ...] = ()
    trigger_inputs: tuple[str, ...] = ()
    max_frames_per_trigger: int = 1  # > 1: the camera has a burst (frames per trigger) mode


@dataclass(frozen=True)
class CameraTrigger:
    """How frames start.

    ``source`` is ``"free"`` (free running at the frame rate), ``"software"`` (``trigger()``) or
    the name of a hardware input (``"Line1"``). ``edge`` is ``"rising"`` or ``"falling"``.
    ``exposure`` is ``"timed"`` (the camera's exposure time) or ``"trigger_width"`` (the sensor
    integrates while the trigger pulse is active: the pulse program gates the exposure, and
    ``width_s`` is that pulse's length, for checks and the record).
    """

    source: str = "free"
    edge: str = "rising"
    exposure: str = "timed"
    width_s: float = 0.0
    frames_per_trigger: int = 1


@dataclass(frozen=True)
class CameraFrames:
    """Frames read from an intensity camera's queue, in arrival order.

    ``images`` has shape (n, H, W) in the camera's raw units (uint8 or uint16, ``bit_depth``
    significant bits). ``frame_numbers`` are the camera's own frame counters (a gap is a lost
    frame), ``timestamps_s`` the time each frame was triggered, from ``timestamp_source``
    (``"camera"`` clock or a ``"host"``/``"simulation"`` stand-in where the camera has none).
    ``dropped`` counts frames lost (queue overflow or transport) before and among these frames.
    """

    images: np.ndarray
    frame_numbers: np.ndarray
    timestamps_s: np.ndarray
    dropped: int = 0
    timestamp_source: str = "camera"


@runtime_checkable
class IntensityCamera(Instrument, Protocol):
    """A camera that returns light intensity per pixel per frame (no on-chip demodulation).

    Use: ``set_exposure``, ``set_gain``, ``set_trigger``, then ``arm(queue_size)``; frames then
    start on triggers (``trigger()`` for a software trigger, edges on the hardware input otherwise)
    and wait in a queue of ``queue_size`` frames: when it is full the oldest frame is dropped and
    counted in ``dropped_frames``. ``read_frames(n)`` takes the next ``n`` frames; ``disarm()``
    stops. Settings refuse values outside ``constraints`` before anything is sent.
    """

    @property
    def constraints(self) -> CameraConstraints: ...

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def pixel_format(self) -> str: ...

    @property
    def bit_depth(self) -> int: ...

    @property
    def exposure_s(self) -> float: ...

    @property
    def gain_db(self) -> float: ...

    @property
    def dropped_frames(self) -> int: ...

    def set_exposure(self, exposure_s: float) -> float:
        """Set the exposure time; returns the value the camera runs with (after its increment)."""

    def set_gain(self, gain_db: float) -> float:
        """Set the analogue gain; returns the value the camera runs with."""

    def set_trigger(self, trigger: CameraTrigger) -> None: ...

    def arm(self, queue_size: int = 16) -> None:
        """Start acquiring: from now on each trigger makes frames that wait in the queue."""

    def trigger(self) -> None:
        """Issue one software trigger (only with ``CameraTrigger(source="software")``)."""

    def read_frames(self, n: int, timeout_s: float = 5.0) -> CameraFrames:
        """The next ``n`` frames from the queue; raises ``InstrumentTimeout`` if they do not come."""

    def disarm(self) -> None: ...
