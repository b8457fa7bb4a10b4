"""Dynamical decoupling: CPMG-N (as the pulse generator allows it) and XY8-N (refused without MW phase).

Both filter the spin's noise with N pi pulses spread over the free evolution ``tau`` (the sweep
value, total free time): pi/2 - [tau/2N - pi - tau/2N] x N - pi/2, pulse centres at
``tau (2k - 1) / 2N`` after the first pi/2.

MW phase: the PulseBlaster gates the MW with a TTL switch and cannot shift its phase
(docs/hardware/pulseblaster.md), so every pulse has the phase of the source. What that allows:

* CPMG-N without its 90-degree phase shift between the pi/2 and pi pulses is the Carr-Purcell
  sequence CP-N: it runs, with the caveat (kept in the parameters) that pulse-length errors add up
  over N instead of cancelling, so long trains need a well-calibrated pi pulse;
* the readout's phase cycle (last pulse pi/2 or 3pi/2, i.e. +x or -x) is a pulse three times as long
  of the same phase, which the switch can do: the widefield measurements use it for the reference
  frame (``readout_cycle``);
* XY8-N (pulses about x and y) and phase-cycled CPMG need pulses of 0 and 90 degrees: refused,
  naming the hardware that can (an IQ-modulated MW source or an AWG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from instrument.analysis.pulsed import PulsedFit, fit_echo
from instrument.protocols import SafetyLimits
from sequences.pulsed import _WithPiPulse, on_grid
from sequences.pulses import Pulse

MW_PHASE_HARDWARE = (
    "an IQ-modulated MW source (its I and Q inputs driven by an AWG, or TTL-switched I/Q levels per "
    "phase) or an AWG that synthesises the MW pulses"
)
"""What a sequence with pulses of several MW phases needs; the PulseBlaster's MW switch has one phase."""

XY8_PHASES_DEG = (0, 90, 0, 90, 90, 0, 90, 0)
"""Phases of one XY8 cycle: X Y X Y Y X Y X."""


class MwPhaseUnavailable(ValueError):
    """The sequence needs MW pulses of different phases, which this pulse generator cannot make."""


def refuse_phases(kind: str, phases_deg: tuple[float, ...]) -> None:
    """Refuse a sequence whose pulses need more than one MW phase, naming the hardware that can."""
    distinct = sorted({float(p) % 360 for p in phases_deg})
    if len(distinct) > 1:
        raise MwPhaseUnavailable(
            f"{kind} needs MW pulses of phase {', '.join(f'{p:g}' for p in distinct)} degrees; the "
            f"PulseBlaster only switches the MW on and off (one phase). It needs {MW_PHASE_HARDWARE}. "
            "Without one, run cpmg (Carr-Purcell, all pulses of one phase) instead"
        )


def decoupling_pulses(tau_s: float, n_pulses: int, pi_s: float, half_s: float, clock_hz: float,
                      phases_deg: tuple[float, ...]) -> tuple[float, list[Pulse]]:
    """pi/2 - [tau/2N - pi - tau/2N] x N - pi/2 with ``tau`` the total free time; (length, pulses)."""
    if n_pulses < 1:
        raise ValueError(f"dynamical decoupling needs at least 1 pi pulse, got {n_pulses}")
    slot = on_grid(tau_s / (2 * n_pulses), clock_hz)
    if not math.isclose(2 * n_pulses * slot, tau_s, abs_tol=0.01 / clock_hz):
        raise ValueError(
            f"free evolution {tau_s * 1e9:g} ns must split into {2 * n_pulses} equal slots on the clock "
            f"grid (a multiple of {2 * n_pulses / clock_hz * 1e9:g} ns)"
        )
    if slot <= 0:
        raise ValueError(f"free evolution {tau_s * 1e9:g} ns leaves no time between the pi pulses")
    pulses = [Pulse("mw_switch", 0.0, half_s, "first pi/2")]
    t = half_s + slot
    for k in range(n_pulses):
        phase = phases_deg[k % len(phases_deg)]
        pulses.append(Pulse("mw_switch", t, pi_s, f"pi {k + 1} ({phase:g} deg)"))
        t += pi_s + 2 * slot
    t -= slot
    pulses.append(Pulse("mw_switch", t, half_s, "last pi/2"))
    return t + half_s, pulses


@dataclass
class Cpmg(_WithPiPulse):
    """CPMG-N on a one-phase MW switch, i.e. Carr-Purcell CP-N; ``phase_cycled`` asks for true CPMG.

    ``n_pulses`` pi pulses; the sweep is the total free evolution time. ``phase_cycled=True`` (pi
    pulses 90 degrees from the pi/2 pulses, robust to pulse errors) is refused on this hardware.
    """

    n_pulses: int = 8
    phase_cycled: bool = False

    kind: ClassVar[str] = "cpmg"

    def phases_deg(self) -> tuple[float, ...]:
        return (90.0,) if self.phase_cycled else (0.0,)

    def extra_parameters(self) -> dict[str, Any]:
        return {**super().extra_parameters(), "n_pulses": self.n_pulses, "phase_cycled": self.phase_cycled,
                "pulse_phases_deg": list(self.phases_deg()), "pi2_phase_deg": 0.0,
                "variant": "CPMG (90 deg pi pulses)" if self.phase_cycled else "CP (one MW phase)"}

    def check(self, limits: SafetyLimits) -> None:
        refuse_phases(f"{self.kind}-{self.n_pulses}", (0.0, *self.phases_deg()))
        super().check(limits)

    def mw_part(self, x: float) -> tuple[float, list[Pulse]]:
        pi = self._pi()
        return decoupling_pulses(x, self.n_pulses, pi.pi_s, pi.pi_half_s(self.clock_hz), self.clock_hz,
                                 self.phases_deg())

    def fit_x(self, x: np.ndarray) -> np.ndarray:
        # Coherence lives from the first pi/2 to the last: the pulses' time adds to the free time.
        pi = self._pi()
        return np.asarray(x, float) + self.n_pulses * pi.pi_s + 2 * pi.pi_half_s(self.clock_hz)

    def fit(self, x: np.ndarray, ratio: np.ndarray, ratio_err: np.ndarray) -> PulsedFit:
        return fit_echo(self.fit_x(x), ratio, ratio_err)


@dataclass
class Xy8(Cpmg):
    """XY8-N: N cycles of X Y X Y Y X Y X pi pulses (8N pulses). Needs MW phase control: refused here."""

    kind: ClassVar[str] = "xy8"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.n_cycles = self.n_pulses
        self.n_pulses = 8 * self.n_cycles

    def phases_deg(self) -> tuple[float, ...]:
        return tuple(float(p) for p in XY8_PHASES_DEG)

    def check(self, limits: SafetyLimits) -> None:
        refuse_phases(f"xy8-{self.n_cycles}", self.phases_deg())
        super().check(limits)
