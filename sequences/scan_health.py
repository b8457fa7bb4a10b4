"""Health of a long scan: ODMR contrast, count rate and bias field against the start of the scan.

Checked between configurations of a coil scan; each configuration's I-off sweep gives one sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from instrument.physics.constants import GAMMA_E_HZ_PER_T

HEALTH_ACTIONS = ("warn", "re-reference", "pause")


@dataclass(frozen=True)
class HealthSample:
    """Health figures of one configuration's I-off sweep.

    A lock-in camera sees only the MW-modulated part of the light, so contrast and count rate are
    inferred: the off-resonance shot-noise variance grows with the count rate, and the resonance
    peak over that variance grows with the ODMR contrast. Both are compared as ratios to the start.
    """

    contrast: float
    count_rate: float
    bias_hz: float  # median fitted I-off resonance

    def as_dict(self) -> dict[str, float]:
        return {"contrast": self.contrast, "count_rate": self.count_rate, "bias_hz": self.bias_hz}

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> HealthSample:
        return cls(float(d["contrast"]), float(d["count_rate"]), float(d["bias_hz"]))


@dataclass(frozen=True)
class HealthLimits:
    """Allowed drift from the reference: relative for contrast and count rate, in T for the bias."""

    contrast_drift: float = 0.2
    count_rate_drift: float = 0.2
    bias_drift_t: float = 2e-6
    action: str = "warn"

    def __post_init__(self) -> None:
        if self.action not in HEALTH_ACTIONS:
            raise ValueError(f"health action must be one of {', '.join(HEALTH_ACTIONS)}, got {self.action!r}")
        # the settings as the front ends name them (`max_bias_drift_ut` is the bias limit in uT)
        for option, value in (("`max_contrast_drift`", self.contrast_drift),
                              ("`max_rate_drift`", self.count_rate_drift),
                              ("`max_bias_drift_ut`", self.bias_drift_t * 1e6)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{option} must be a positive number, got {value:g}")

    def problems(self, reference: HealthSample, sample: HealthSample) -> list[str]:
        """What drifted beyond its limit, one readable line each."""
        found = []
        for what, limit in (("contrast", self.contrast_drift), ("count_rate", self.count_rate_drift)):
            ref, now = getattr(reference, what), getattr(sample, what)
            drift = now / ref - 1 if ref > 0 else float("inf")
            if not abs(drift) <= limit:
                found.append(f"{what.replace('_', ' ')} drifted {drift:+.0%} from the reference "
                             f"(limit {limit:.0%})")
        bias_t = abs(sample.bias_hz - reference.bias_hz) / GAMMA_E_HZ_PER_T
        if not bias_t <= self.bias_drift_t:
            found.append(f"bias field drifted {bias_t * 1e6:.2f} uT from the I-off reference "
                         f"(limit {self.bias_drift_t * 1e6:.2f} uT)")
        return found


def health_from_spectra(spectra_off: np.ndarray, centers_off_hz: np.ndarray) -> HealthSample:
    """Health of one I-off sweep: spectra (rows, cols, F), fitted centres (rows, cols)."""
    flat = spectra_off.reshape(-1, spectra_off.shape[-1])
    edge = max(2, flat.shape[1] // 8)
    wings = np.concatenate([flat[:, :edge], flat[:, -edge:]], axis=1)
    variance = float(np.median(np.var(wings, axis=1)))
    peak = float(np.median(np.abs(flat - np.median(wings, axis=1, keepdims=True)).max(axis=1)))
    centers = np.asarray(centers_off_hz, dtype=float)
    centers = centers[np.isfinite(centers)]
    bias = float(np.median(centers)) if centers.size else float("nan")
    return HealthSample(contrast=peak / variance if variance > 0 else 0.0, count_rate=variance, bias_hz=bias)
