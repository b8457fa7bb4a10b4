"""Widefield CW ODMR with the lock-in camera: an I-off and an I-on frequency sweep.

The PulseBlaster gates the MW at the lock-in modulation frequency and clocks the camera, so each
camera frame holds the per-pixel PL change caused by the MW: a peak at every resonance. The sweep
first measures with all coils off (the reference), then with the chosen coils on; the difference
of the fitted resonances is the coils' field projected on the NV axis.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instrument.protocols import (
    CoilDriver,
    Instrument,
    LockInCamera,
    MicrowaveSource,
    PulseGenerator,
    SafetyLimits,
)
from instrument.storage.runs import Step
from sequences.pulses import lockin_modulation_program

CONFIG_LABELS = ("I-off", "I-on")


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
    """

    frequencies_hz: np.ndarray
    power_dbm: float
    coil_currents_a: np.ndarray
    image_shape: tuple[int, int]
    frames_per_point: int = 4
    modulation_hz: float = 6250.0
    frame_rate_hz: float = 208.0
    name: str = "cw_odmr"
    scalars: Mapping[str, str] = field(
        default_factory=lambda: {"config": "", "frequency_hz": "Hz", "mean_signal": "counts"}
    )
    setpoints: tuple[str, ...] = ("config", "frequency_hz")

    def __post_init__(self) -> None:
        self.frequencies_hz = np.asarray(self.frequencies_hz, dtype=float)
        self.coil_currents_a = np.asarray(self.coil_currents_a, dtype=float)

    @property
    def n_steps(self) -> int:
        return len(CONFIG_LABELS) * len(self.frequencies_hz)

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"signal": tuple(self.image_shape)}

    @property
    def estimated_duration_s(self) -> float:
        """Camera time alone; MW settling and coil ramps add to it."""
        return self.n_steps * self.frames_per_point / self.frame_rate_hz

    def parameters(self) -> dict[str, Any]:
        return {
            "frequencies_hz": self.frequencies_hz,
            "power_dbm": self.power_dbm,
            "coil_currents_a": self.coil_currents_a,
            "frames_per_point": self.frames_per_point,
            "modulation_hz": self.modulation_hz,
            "frame_rate_hz": self.frame_rate_hz,
            "configs": list(CONFIG_LABELS),
        }

    def check(self, limits: SafetyLimits) -> None:
        """Refuse what cannot or must not run, before any hardware moves."""
        if self.frequencies_hz.ndim != 1 or len(self.frequencies_hz) < 5:
            raise ValueError("a CW-ODMR sweep needs at least 5 frequency points; raise --points")
        if not np.all(np.isfinite(self.frequencies_hz)) or np.any(self.frequencies_hz <= 0):
            raise ValueError("sweep frequencies must be finite and positive; check --center-hz/--span-hz")
        if self.frames_per_point < 1:
            raise ValueError(f"frames per point must be at least 1, got {self.frames_per_point}")
        limits.check_mw_power(self.power_dbm)
        for channel, current in enumerate(self.coil_currents_a):
            limits.check_coil_current(channel, float(current))

    def run(self, instruments: Mapping[str, Instrument]) -> Iterator[Step]:
        mw: MicrowaveSource = instruments["mw"]  # type: ignore[assignment]
        pulser: PulseGenerator = instruments["pulser"]  # type: ignore[assignment]
        camera: LockInCamera = instruments["camera"]  # type: ignore[assignment]
        coils: CoilDriver = instruments["coils"]  # type: ignore[assignment]

        pulser.load(lockin_modulation_program(self.modulation_hz))
        pulser.start()
        camera.configure(self.modulation_hz, self.frame_rate_hz, self.frames_per_point)
        mw.set_power(self.power_dbm)
        mw.set_frequency(float(self.frequencies_hz[0]))
        mw.set_output(True)
        off = np.zeros(coils.n_channels)
        n = len(self.frequencies_hz)
        configs = zip(CONFIG_LABELS, (off, self.coil_currents_a), strict=True)
        for config, (label, currents) in enumerate(configs):
            coils.set_currents(currents)
            for i, frequency in enumerate(self.frequencies_hz):
                mw.set_frequency(float(frequency))
                image = camera.demodulate(camera.acquire(self.frames_per_point)).mean(axis=0)
                yield Step(
                    index=config * n + i,
                    values={"config": config, "frequency_hz": float(frequency),
                            "mean_signal": float(image.mean())},
                    images={"signal": image.astype(np.float32)},
                    label=f"{label} {frequency / 1e9:.6f} GHz",
                )
