"""CW-ODMR magnetic sensitivity: the seed-003 model (section VIII, eq. 1-8).

Shot-noise-limited sensitivity of a Lorentzian CW-ODMR line (eq. 1, after Barry et al.),

    eta_B = 4 / (3 sqrt 3) * 1 / gamma_NV * linewidth / (contrast * sqrt(R)),

with contrast (eq. 7) and linewidth (eq. 8) from the Rabi frequency Omega_R and the optical
saturation s (after Dreau et al. 2011), and the count rate R = eta * N_NV * r_NV(s) with
r_NV(s) = r_inf * s / (1 + s) (eq. 3-6).

Two readings of the paper are ours and documented on ``NVDiamond``: the inhomogeneous dephasing
rate is Gamma_2* = 2 / T2*, so that the unbroadened line width is 1 / (pi T2*) as the paper states;
and the count-rate scale is fixed by the paper's operating point (500 NV centres per SPAD give
1 Mcps at s = 7e-3), since it does not list eta and r_inf separately. With T2* = 10 us this
reproduces the paper's optimum: about 85 nT/sqrt(Hz) at a 0.14 MHz line width (paper: about
90 nT/sqrt(Hz), 0.15 MHz). The other reading, Gamma_2* = 1 / T2* (``dephasing="1/T2*"``), gives
about 65 nT/sqrt(Hz).

The paper's model drives every NV centre. In an ensemble of the four NV orientations a bias field
along one NV axis splits the families, and the MW addresses one: the other three only add
background photons, which divides the contrast by four (``orientation_fraction=0.25``) and makes
the sensitivity four times worse. A bias along [100] keeps all four degenerate (fraction 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instrument.physics.constants import GAMMA_E_HZ_PER_T

LORENTZ_SLOPE_FACTOR = 4 / (3 * np.sqrt(3))  # steepest slope of a Lorentzian, eq. 1


@dataclass(frozen=True)
class NVDiamond:
    """Spin and optical constants of the sensor (seed 003, Table I); rates in 1/s.

    Attributes:
        alpha, beta: brightness of the m_s = 0 and m_s = +-1 states.
        gamma1: spin-lattice relaxation rate Gamma_1.
        gamma_p_inf: optical polarisation rate at saturation, Gamma_p^inf.
        gamma_c_inf: optical-cycle relaxation rate of the coherences at saturation, Gamma_c^inf.
        t2_star_s: inhomogeneous dephasing time T2*.
        dephasing: reading of Gamma_2*: ``"2/T2*"`` (default, line width 1 / (pi T2*) as the paper
            states) or ``"1/T2*"``.
        orientation_fraction: fraction of the detected NV centres on resonance (1: the paper's
            model; 0.25: one of four orientation families, the rest background).
        saturated_count_rate_hz: count rate per pixel for s -> infinity,
            eta_optics * eta_PDP * N_NV * r_inf (eq. 4-6).
    """

    alpha: float = 1.0
    beta: float = 0.8
    gamma1: float = 1e3
    gamma_p_inf: float = 5e6
    gamma_c_inf: float = 8e7
    t2_star_s: float = 10e-6
    saturated_count_rate_hz: float = 1e6 * (1 + 7e-3) / 7e-3  # 1 Mcps at s = 7e-3
    dephasing: str = "2/T2*"
    orientation_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.dephasing not in ("2/T2*", "1/T2*"):
            raise ValueError(f"dephasing must be '2/T2*' or '1/T2*', got {self.dephasing!r}")
        if not 0 < self.orientation_fraction <= 1:
            raise ValueError(f"orientation_fraction must lie in (0, 1], got {self.orientation_fraction}")

    @property
    def gamma2_star(self) -> float:
        return (2.0 if self.dephasing == "2/T2*" else 1.0) / self.t2_star_s


def _rates(saturation: np.ndarray, nv: NVDiamond) -> tuple[np.ndarray, np.ndarray]:
    """(Gamma_p, Gamma_2) at optical saturation s."""
    frac = saturation / (1 + saturation)
    return nv.gamma_p_inf * frac, nv.gamma2_star + nv.gamma_c_inf * frac


def _check_positive(**values: float | np.ndarray) -> None:
    for name, value in values.items():
        if np.any(~np.isfinite(value)) or np.any(np.asarray(value) <= 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")


def contrast(rabi_rad_s: float | np.ndarray, saturation: float | np.ndarray,
             nv: NVDiamond = NVDiamond()) -> np.ndarray:
    """ODMR contrast, eq. 7, for Rabi frequency Omega_R (rad/s) and optical saturation s.

    Times ``nv.orientation_fraction``: off-resonant NV families dilute the dip with their light.
    """
    om2 = np.square(rabi_rad_s)
    s = np.asarray(saturation, dtype=float)
    _check_positive(saturation=s)
    gamma_p, gamma2 = _rates(s, nv)
    optical = (nv.alpha - nv.beta) * gamma_p / ((nv.alpha + nv.beta) * nv.gamma1 + nv.alpha * gamma_p)
    return nv.orientation_fraction * 0.5 * optical * om2 / (om2 + gamma2 * (2 * nv.gamma1 + gamma_p))


def linewidth_hz(rabi_rad_s: float | np.ndarray, saturation: float | np.ndarray,
                 nv: NVDiamond = NVDiamond()) -> np.ndarray:
    """Full width at half maximum of the ODMR line, eq. 8 (Hz)."""
    s = np.asarray(saturation, dtype=float)
    _check_positive(saturation=s)
    gamma_p, gamma2 = _rates(s, nv)
    return np.sqrt(gamma2**2 + np.square(rabi_rad_s) * gamma2 / (2 * nv.gamma1 + gamma_p)) / (2 * np.pi)


def count_rate_hz(saturation: float | np.ndarray, nv: NVDiamond = NVDiamond()) -> np.ndarray:
    """Detected photon rate per pixel, eq. 4-6."""
    s = np.asarray(saturation, dtype=float)
    _check_positive(saturation=s)
    return nv.saturated_count_rate_hz * s / (1 + s)


def sensitivity_t_per_sqrt_hz(contrast: float | np.ndarray, linewidth_hz: float | np.ndarray,
                              count_rate_hz: float | np.ndarray) -> np.ndarray:
    """Shot-noise-limited CW-ODMR sensitivity (T/sqrt(Hz)) from measured line parameters, eq. 1.

    Args:
        contrast: fractional dip depth, 0 < C < 1 (e.g. from an ODMR fit).
        linewidth_hz: full width at half maximum of the line.
        count_rate_hz: detected photons per second in the pixel (off resonance).

    Multiply by 1e9 for nT/sqrt(Hz).
    """
    c = np.asarray(contrast, dtype=float)
    _check_positive(contrast=c, linewidth_hz=linewidth_hz, count_rate_hz=count_rate_hz)
    if np.any(c >= 1):
        raise ValueError(f"contrast is a fraction of the off-resonance signal, below 1; got {contrast!r}")
    return LORENTZ_SLOPE_FACTOR / GAMMA_E_HZ_PER_T * np.asarray(linewidth_hz) / (c * np.sqrt(count_rate_hz))


def model_sensitivity_t_per_sqrt_hz(rabi_rad_s: float | np.ndarray, saturation: float | np.ndarray,
                                    nv: NVDiamond = NVDiamond()) -> np.ndarray:
    """Sensitivity predicted by eq. 1 with eq. 5, 7 and 8 substituted (T/sqrt(Hz))."""
    _check_positive(rabi_rad_s=rabi_rad_s)
    return sensitivity_t_per_sqrt_hz(contrast(rabi_rad_s, saturation, nv),
                                     linewidth_hz(rabi_rad_s, saturation, nv),
                                     count_rate_hz(saturation, nv))


@dataclass(frozen=True)
class Optimum:
    """Best operating point of a (Rabi frequency, saturation) sweep, as in seed 003 Fig. 17."""

    sensitivity_t_per_sqrt_hz: float
    rabi_rad_s: float
    saturation: float
    contrast: float
    linewidth_hz: float
    count_rate_hz: float


def optimum(nv: NVDiamond = NVDiamond(), rabi_rad_s: np.ndarray | None = None,
            saturation: np.ndarray | None = None) -> Optimum:
    """Minimum of the model sensitivity over a grid (default: Omega_R/2pi up to 1 MHz, s 1e-5..1)."""
    rabi = 2 * np.pi * np.linspace(1e2, 1e6, 2000) if rabi_rad_s is None else np.asarray(rabi_rad_s)
    sat = np.logspace(-5, 0, 500) if saturation is None else np.asarray(saturation)
    grid = model_sensitivity_t_per_sqrt_hz(rabi[None, :], sat[:, None], nv)
    i, j = np.unravel_index(np.argmin(grid), grid.shape)
    om, s = float(rabi[j]), float(sat[i])
    return Optimum(float(grid[i, j]), om, s, float(contrast(om, s, nv)), float(linewidth_hz(om, s, nv)),
                   float(count_rate_hz(s, nv)))
