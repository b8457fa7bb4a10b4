"""Pulsed NV measurements: Rabi, pulsed ODMR, Ramsey, Hahn echo and T1 relaxometry.

Each measurement is an engine sequence (see ``sequences.engine``): inspectable before it runs,
checked against the lab limits (every point's pulse program is compiled in ``check``, so a bad
timing is refused naming the pulse before any hardware moves), and run as a generator of steps.

Every point runs one program on the pulse generator: an initialising laser pulse, then
``repetitions`` shots of

    dark (metastable decay) | MW part (depends on the point) | gap | laser readout
                                                                    [signal gate]...[reference gate]

The signal gate opens with the readout laser, while the spins still carry the MW's effect; the
reference gate closes the laser pulse, after repolarisation, and normalises laser power and
collection. The counter returns both windows per pixel (a SPAD array or a gated camera); the
step stores the per-pixel ratio image and the mean ratio with its shot-noise error.

The pi pulse the Ramsey, echo and pulsed-ODMR sequences use comes from a Rabi fit
(:func:`pi_pulse_from_rabi`), rounded to the pulse generator's clock.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from instrument.analysis.pulsed import (
    PulsedFit,
    fit_echo,
    fit_pulsed_odmr,
    fit_rabi,
    fit_ramsey,
    fit_t1,
    rabi_pi_time_s,
)
from instrument.physics.constants import HYPERFINE_15N_HZ
from instrument.protocols import (
    Instrument,
    MicrowaveSource,
    PulseGenerator,
    PulseProgram,
    SafetyLimits,
)
from instrument.storage.runs import Step
from sequences.engine import make_safe
from sequences.pulses import (
    Block,
    ChannelMap,
    Pulse,
    PulseSequence,
    PulseSequenceError,
    compile_sequence,
)


@runtime_checkable
class GatedCounter(Instrument, Protocol):
    """A detector gated by the pulse generator (SPAD array, gated camera).

    ``count_gates`` runs the loaded program once and returns the photons of every gate window,
    shape (n_windows, rows, cols); windows inside a LOOP are summed over its repetitions.
    """

    @property
    def shape(self) -> tuple[int, int]: ...

    def count_gates(self) -> np.ndarray: ...


@dataclass(frozen=True)
class ShotTiming:
    """Timing of one shot (s) and how many shots make a point."""

    laser_s: float = 3e-6
    gate_s: float = 300e-9
    reference_start_s: float = 2.4e-6
    dark_after_laser_s: float = 1e-6
    gap_before_readout_s: float = 100e-9
    repetitions: int = 2000

    def check(self) -> None:
        if not all(math.isfinite(v) and v > 0 for v in
                   (self.laser_s, self.gate_s, self.dark_after_laser_s, self.gap_before_readout_s)):
            raise ValueError(f"shot timing must be finite and positive: {self}")
        if self.reference_start_s < self.gate_s or self.reference_start_s + self.gate_s > self.laser_s:
            raise ValueError(
                f"the reference gate ({self.reference_start_s * 1e9:g} ns + {self.gate_s * 1e9:g} ns) "
                f"must follow the signal gate inside the {self.laser_s * 1e9:g} ns readout laser"
            )
        if not 1 <= self.repetitions <= 2**20 - 1:
            raise ValueError(f"repetitions must be 1 .. 1048575, got {self.repetitions}")


@dataclass(frozen=True)
class PiPulse:
    """A calibrated pi pulse: valid at this MW frequency and power only."""

    pi_s: float
    frequency_hz: float
    power_dbm: float
    rabi_hz: float = float("nan")

    def pi_half_s(self, clock_hz: float) -> float:
        """Half the pi pulse, rounded to the clock grid."""
        return round(self.pi_s * clock_hz / 2) / clock_hz


def on_grid(value_s: float, clock_hz: float) -> float:
    """Nearest time on the clock grid."""
    return round(value_s * clock_hz) / clock_hz


def pi_pulse_from_rabi(fit: PulsedFit, frequency_hz: float, power_dbm: float,
                       clock_hz: float = 500e6) -> PiPulse:
    """The pi-pulse calibration from a Rabi fit, rounded to the pulse generator's clock."""
    pi = on_grid(rabi_pi_time_s(fit), clock_hz)
    if pi * clock_hz < 10:
        raise ValueError(
            f"the fitted pi pulse ({pi * 1e9:g} ns) is shorter than two minimum instructions; "
            "lower the MW power"
        )
    return PiPulse(pi, frequency_hz, power_dbm, fit.params["rabi_hz"])


@dataclass
class PulsedMeasurement(ABC):
    """Common machinery of the pulsed measurements; subclasses define the MW part of a shot.

    Args:
        sweep: the swept values (s, or Hz for pulsed ODMR).
        frequency_hz: MW frequency of the pulses.
        power_dbm: MW power (checked against the lab ceiling).
        image_shape: pixel shape of the counter.
        timing: shot timing and repetitions.
        channels: channel map of the pulse generator.
        clock_hz: pulse generator clock used to compile in ``check``.
        counter_role: the station role of the gated counter.
    """

    sweep: np.ndarray
    frequency_hz: float
    power_dbm: float
    image_shape: tuple[int, int]
    timing: ShotTiming = field(default_factory=ShotTiming)
    channels: ChannelMap = field(default_factory=ChannelMap)
    clock_hz: float = 500e6
    counter_role: str = "counter"
    gate_channel: str = "spad_gate"

    kind: ClassVar[str] = "pulsed"
    sweep_name: ClassVar[str] = "tau_s"
    sweep_unit: ClassVar[str] = "s"
    hyperfine_hz: ClassVar[float] = HYPERFINE_15N_HZ

    def __post_init__(self) -> None:
        self.sweep = np.asarray(self.sweep, dtype=float)

    # ---- what the engine inspects --------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.kind

    @property
    def requires(self) -> dict[str, type]:
        """Roles and capabilities the measurement needs; the engine checks them before anything moves."""
        return {"mw": MicrowaveSource, "pulser": PulseGenerator, self.counter_role: GatedCounter}

    @property
    def scalars(self) -> dict[str, str]:
        return {self.sweep_name: self.sweep_unit, "signal": "counts", "reference": "counts",
                "ratio": "", "ratio_err": ""}

    @property
    def setpoints(self) -> tuple[str, ...]:
        return (self.sweep_name,)

    @property
    def n_steps(self) -> int:
        return len(self.sweep)

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"ratio": tuple(self.image_shape)}

    @property
    def estimated_duration_s(self) -> float:
        """Pulse-program time alone (loading and readout add to it)."""
        return float(sum(self.sequence(x).duration_s for x in self.sweep))

    def parameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind, self.sweep_name: self.sweep, "frequency_hz": self.frequency_hz,
            "power_dbm": self.power_dbm, "timing": vars(self.timing), "channels": dict(self.channels.bits),
            "channel_delays_s": dict(self.channels.delays_s), "clock_hz": self.clock_hz,
            **self.extra_parameters(),
        }

    def extra_parameters(self) -> dict[str, Any]:
        return {}

    # ---- the pulse program ---------------------------------------------------------------------

    @abstractmethod
    def mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        """Length and pulses (relative to its start) of the MW part of a shot at sweep value x."""

    def sequence(self, x: float) -> PulseSequence:
        """The pulse sequence of one point."""
        t = self.timing
        length, mw = self.mw_part(x)
        t0 = t.dark_after_laser_s
        readout = t0 + length + t.gap_before_readout_s
        pulses = [Pulse(p.channel, p.start_s + t0, p.duration_s, p.name) for p in mw]
        pulses += [
            Pulse("laser", readout, t.laser_s, "readout laser"),
            Pulse(self.gate_channel, readout, t.gate_s, "signal gate"),
            Pulse(self.gate_channel, readout + t.reference_start_s, t.gate_s, "reference gate"),
        ]
        init = Block(t.laser_s, (Pulse("laser", 0.0, t.laser_s, "initialising laser"),), name="init")
        shot = Block(readout + t.laser_s, tuple(pulses), t.repetitions, name=f"{self.kind} shot")
        return PulseSequence((init, shot), self.channels,
                             description=f"{self.kind} {self.sweep_name}={x:g}")

    def program(self, x: float) -> PulseProgram:
        return compile_sequence(self.sequence(x), self.clock_hz)

    # ---- checks and running --------------------------------------------------------------------

    def check(self, limits: SafetyLimits) -> None:
        """Refuse what cannot or must not run, before any hardware moves."""
        if self.sweep.ndim != 1 or len(self.sweep) < 5:
            raise ValueError(f"a {self.kind} sweep needs at least 5 points, got {self.sweep.size}")
        if not np.all(np.isfinite(self.sweep)):
            raise ValueError(f"the {self.kind} sweep holds non-finite values")
        if not math.isfinite(self.frequency_hz) or self.frequency_hz <= 0:
            raise ValueError(f"MW frequency must be a positive number of Hz, got {self.frequency_hz!r}")
        limits.check_mw_power(self.power_dbm)
        self.timing.check()
        for x in self.sweep:
            try:
                self.program(float(x))
            except PulseSequenceError as exc:
                raise ValueError(f"{self.kind} point {self.sweep_name}={x:g}: {exc}") from exc
            for p in self.mw_part(float(x))[1]:
                if p.duration_s < limits.pulse_min_s:
                    raise ValueError(
                        f"{p.label} at {self.sweep_name}={x:g} lasts {p.duration_s * 1e9:g} ns, below the "
                        f"lab limit pulse_min_s = {limits.pulse_min_s * 1e9:g} ns"
                    )

    def set_point(self, mw: MicrowaveSource, x: float) -> None:  # noqa: B027 - optional hook
        """Per-point MW setting; only pulsed ODMR changes anything (the frequency)."""

    def run(self, instruments: Mapping[str, Instrument]) -> Iterator[Step]:
        mw: MicrowaveSource = instruments["mw"]  # type: ignore[assignment]
        pulser: PulseGenerator = instruments["pulser"]  # type: ignore[assignment]
        counter: GatedCounter = instruments[self.counter_role]  # type: ignore[assignment]
        mw.set_power(self.power_dbm)
        mw.set_frequency(self.frequency_hz)
        mw.set_output(True)
        for i, x in enumerate(self.sweep):
            self.set_point(mw, float(x))
            pulser.load(self.program(float(x)))
            pulser.start()
            counts = np.asarray(counter.count_gates(), dtype=float)
            pulser.stop()
            if counts.ndim != 3 or counts.shape[0] != 2:
                raise RuntimeError(
                    f"{counter.name}: expected counts of 2 gate windows (signal, reference), got shape "
                    f"{counts.shape}; check the gate channel wiring"
                )
            signal, reference = counts.sum(axis=(1, 2))
            if reference <= 0:
                raise RuntimeError(f"{counter.name}: no photons in the reference gate; is the laser on?")
            ratio = signal / reference
            ratio_err = ratio * math.sqrt(1 / max(signal, 1) + 1 / reference)
            with np.errstate(divide="ignore", invalid="ignore"):
                image = np.where(counts[1] > 0, counts[0] / counts[1], np.nan).astype(np.float32)
            yield Step(
                index=i,
                values={self.sweep_name: float(x), "signal": float(signal), "reference": float(reference),
                        "ratio": float(ratio), "ratio_err": float(ratio_err)},
                images={"ratio": image},
                label=f"{self.kind} {self.sweep_name}={x:.4g}",
            )

    # ---- analysis ------------------------------------------------------------------------------

    def fit_x(self, x: np.ndarray) -> np.ndarray:
        """The sweep values as the fit model wants them (effective free evolution time)."""
        return np.asarray(x, float)

    @abstractmethod
    def fit(self, x: np.ndarray, ratio: np.ndarray, ratio_err: np.ndarray) -> PulsedFit:
        """Fit the measured ratio versus the sweep."""


@dataclass
class Rabi(PulsedMeasurement):
    """Rabi oscillation: MW pulse of length ``tau`` (0 = no pulse)."""

    kind: ClassVar[str] = "rabi"

    def mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        return x, ([Pulse("mw_switch", 0.0, x, "MW pulse")] if x > 0 else [])

    def fit(self, x: np.ndarray, ratio: np.ndarray, ratio_err: np.ndarray) -> PulsedFit:
        return fit_rabi(self.fit_x(x), ratio, ratio_err, self.hyperfine_hz)


@dataclass
class _WithPiPulse(PulsedMeasurement):
    pi_pulse: PiPulse | None = None

    def extra_parameters(self) -> dict[str, Any]:
        return {"pi_pulse": vars(self.pi_pulse) if self.pi_pulse else None}

    def _pi(self) -> PiPulse:
        if self.pi_pulse is None:
            raise ValueError(
                f"{self.kind} needs a pi-pulse calibration; run Rabi and pi_pulse_from_rabi first"
            )
        return self.pi_pulse

    def check(self, limits: SafetyLimits) -> None:
        pi = self._pi()
        if not math.isclose(pi.power_dbm, self.power_dbm, abs_tol=1e-6):
            raise ValueError(
                f"the pi pulse was calibrated at {pi.power_dbm:g} dBm but {self.kind} runs at "
                f"{self.power_dbm:g} dBm; recalibrate or use the calibration's power"
            )
        super().check(limits)


@dataclass
class Ramsey(_WithPiPulse):
    """Ramsey: pi/2 - free evolution ``tau`` - pi/2; detune the MW to see fringes."""

    kind: ClassVar[str] = "ramsey"

    def mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        h = self._pi().pi_half_s(self.clock_hz)
        return 2 * h + x, [
            Pulse("mw_switch", 0.0, h, "first pi/2"),
            Pulse("mw_switch", h + x, h, "second pi/2"),
        ]

    def fit_x(self, x: np.ndarray) -> np.ndarray:
        # Dephasing also acts during the pulses: each pi/2 adds about 2/pi of its length.
        return np.asarray(x, float) + 4 / math.pi * self._pi().pi_half_s(self.clock_hz)

    def fit(self, x: np.ndarray, ratio: np.ndarray, ratio_err: np.ndarray) -> PulsedFit:
        return fit_ramsey(self.fit_x(x), ratio, ratio_err, self.hyperfine_hz)


@dataclass
class HahnEcho(_WithPiPulse):
    """Hahn echo: pi/2 - tau/2 - pi - tau/2 - pi/2; ``tau`` is the total free evolution."""

    kind: ClassVar[str] = "echo"

    def mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        pi = self._pi().pi_s
        h = self._pi().pi_half_s(self.clock_hz)
        half = on_grid(x / 2, self.clock_hz)
        if not math.isclose(2 * half, x, abs_tol=0.01 / self.clock_hz):
            raise ValueError(
                f"echo free evolution {x * 1e9:g} ns must split into two halves on the clock grid"
            )
        return 2 * h + pi + 2 * half, [
            Pulse("mw_switch", 0.0, h, "first pi/2"),
            Pulse("mw_switch", h + half, pi, "pi"),
            Pulse("mw_switch", h + half + pi + half, h, "last pi/2"),
        ]

    def fit_x(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, float) + self._pi().pi_s + 2 * self._pi().pi_half_s(self.clock_hz)

    def fit(self, x: np.ndarray, ratio: np.ndarray, ratio_err: np.ndarray) -> PulsedFit:
        return fit_echo(self.fit_x(x), ratio, ratio_err)


@dataclass
class T1Relaxation(PulsedMeasurement):
    """T1 relaxometry: polarise, wait ``tau`` in the dark, read out (the measurement of seed 001)."""

    kind: ClassVar[str] = "t1"

    def mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        return x, []

    def fit(self, x: np.ndarray, ratio: np.ndarray, ratio_err: np.ndarray) -> PulsedFit:
        return fit_t1(self.fit_x(x), ratio, ratio_err)


@dataclass
class PulsedOdmr(_WithPiPulse):
    """Pulsed ODMR: a pi pulse at each MW frequency of ``sweep`` (Hz); narrow lines at low power."""

    kind: ClassVar[str] = "pulsed_odmr"
    sweep_name: ClassVar[str] = "frequency_hz"
    sweep_unit: ClassVar[str] = "Hz"

    def mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        pi = self._pi().pi_s
        return pi, [Pulse("mw_switch", 0.0, pi, "pi")]

    def set_point(self, mw: MicrowaveSource, x: float) -> None:
        mw.set_frequency(x)

    def check(self, limits: SafetyLimits) -> None:
        super().check(limits)
        if np.any(self.sweep <= 0):
            raise ValueError("pulsed-ODMR frequencies must be positive")

    def fit(self, x: np.ndarray, ratio: np.ndarray, ratio_err: np.ndarray) -> PulsedFit:
        return fit_pulsed_odmr(self.fit_x(x), ratio, ratio_err, self.hyperfine_hz)


MEASUREMENTS: dict[str, type[PulsedMeasurement]] = {
    "rabi": Rabi, "ramsey": Ramsey, "echo": HahnEcho, "t1": T1Relaxation, "odmr": PulsedOdmr,
}
"""Measurement classes by the name ``acquire pulsed`` uses."""


def run_points(measurement: PulsedMeasurement, instruments: Mapping[str, Instrument]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run a measurement without the engine (calibrations, tests): (sweep, ratio, ratio_err).

    The instruments are made safe afterwards whatever happens.
    """
    xs, ys, es = [], [], []
    try:
        for step in measurement.run(instruments):
            xs.append(step.values[measurement.sweep_name])
            ys.append(step.values["ratio"])
            es.append(step.values["ratio_err"])
    finally:
        make_safe(instruments)
    return np.asarray(xs), np.asarray(ys), np.asarray(es)
