"""CW ODMR on the seed-003 SPAD array: a MW frequency sweep read as photon counts per pixel.

The laser and the MW stay on (continuous wave); at each frequency the sweep waits for the frames in
flight to pass, then sums ``frames_per_point`` frames of counts. A resonance shows as a dip in the
counts. The per-point 16x16 count image is the live view and what the analysis fits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instrument.protocols import Instrument, MicrowaveSource, PhotonCountingArray, SafetyLimits
from instrument.storage.runs import Step


@dataclass
class SpadOdmrSweep:
    """CW-ODMR sweep of the SPAD array over ``frequencies_hz``.

    Args:
        frequencies_hz: MW frequencies of the sweep.
        power_dbm: MW output power (checked against the lab ceiling before anything moves).
        frames_per_point: SPAD frames summed at each frequency.
        settle_frames: frames dropped after each frequency step: they were counting, at least in
            part, at the previous frequency, or were still in flight in the reader (at least 1).
        image_shape: SPAD array shape (rows, cols).
        timeout_s: longest wait for the frames of one point.
    """

    frequencies_hz: np.ndarray
    power_dbm: float
    frames_per_point: int = 20
    settle_frames: int = 2
    image_shape: tuple[int, int] = (16, 16)
    timeout_s: float = 10.0
    name: str = "spad_odmr"
    requires: Mapping[str, type] = field(
        default_factory=lambda: {"mw": MicrowaveSource, "spad": PhotonCountingArray})
    """Roles and capabilities the sweep needs; the engine checks them before anything moves."""
    scalars: Mapping[str, str] = field(
        default_factory=lambda: {"frequency_hz": "Hz", "mean_counts": "counts", "total_counts": "counts"}
    )
    setpoints: tuple[str, ...] = ("frequency_hz",)

    def __post_init__(self) -> None:
        self.frequencies_hz = np.asarray(self.frequencies_hz, dtype=float)

    @property
    def n_steps(self) -> int:
        return len(self.frequencies_hz)

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"counts": tuple(self.image_shape)}

    def parameters(self) -> dict[str, Any]:
        return {
            "frequencies_hz": self.frequencies_hz,
            "power_dbm": self.power_dbm,
            "frames_per_point": self.frames_per_point,
            "settle_frames": self.settle_frames,
        }

    def check(self, limits: SafetyLimits) -> None:
        """Refuse what cannot or must not run, before any hardware moves."""
        if self.frequencies_hz.ndim != 1 or len(self.frequencies_hz) < 5:
            raise ValueError("a SPAD ODMR sweep needs at least 5 frequency points; raise `points`")
        if not np.all(np.isfinite(self.frequencies_hz)) or np.any(self.frequencies_hz <= 0):
            raise ValueError("sweep frequencies must be finite and positive; check `center_hz` and `span_hz`")
        if self.frames_per_point < 1:
            raise ValueError(f"frames per point must be at least 1, got {self.frames_per_point}")
        if self.settle_frames < 1:
            # A frame parsed from bytes already on the wire can arrive after discard_pending().
            raise ValueError(f"settle frames must be at least 1, got {self.settle_frames}")
        limits.check_mw_power(self.power_dbm)

    def run(self, instruments: Mapping[str, Instrument]) -> Iterator[Step]:
        mw: MicrowaveSource = instruments["mw"]  # type: ignore[assignment]
        spad: PhotonCountingArray = instruments["spad"]  # type: ignore[assignment]
        if tuple(spad.shape) != tuple(self.image_shape):
            raise ValueError(f"the SPAD array is {spad.shape}, the sweep was planned for {self.image_shape}")
        mw.set_power(self.power_dbm)
        mw.set_frequency(float(self.frequencies_hz[0]))
        mw.set_output(True)
        for i, frequency in enumerate(self.frequencies_hz):
            mw.set_frequency(float(frequency))
            spad.discard_pending()
            if self.settle_frames:
                spad.read_counts(self.settle_frames, self.timeout_s)
            counts = spad.read_counts(self.frames_per_point, self.timeout_s).sum(axis=0)
            yield Step(
                index=i,
                values={"frequency_hz": float(frequency), "mean_counts": float(counts.mean()),
                        "total_counts": float(counts.sum())},
                images={"counts": counts.astype(np.float32)},
                label=f"SPAD {frequency / 1e9:.6f} GHz",
            )
