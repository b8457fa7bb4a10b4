"""Does a pulse that is not pi/2 bias the widefield T2* map? A check of one hypothesis (issue 20).

The widefield Ramsey map reads T2* about 35 % short where the Rabi frequency is above ~1.1x the
calibrated one. Hypothesis: the finite, mis-sized pulses distort the fringe envelope. This script
computes the two-pulse Ramsey signal exactly (square pulses of the calibrated pi/2 length at Rabi
scale s, the 15N doublet at 5 MHz +/- 1.5 MHz detuning, a Gaussian detuning spread of the true
T2*, 48 Hermite-Gauss nodes as in sim.spin) and fits it, noiseless, with the map's model
(instrument.analysis.pulsed_maps.fit_ramsey_map's function). Result: a -3.6 to -5.1 % bias over
s = 0.8-1.6 (-3.9 % at s = 1: the model ignores the pulses' length), so pulse area alone does
not explain the map's -35 % (the centre Rabi frequency of 10 MHz is assumed here).

    python benchmarks/ramsey_pulse_area.py
"""
import numpy as np
from scipy.optimize import curve_fit


def rot(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about ``axis`` (..., 3) by ``angle`` (...) (Rodrigues)."""
    a = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    c, s = np.cos(angle)[..., None, None], np.sin(angle)[..., None, None]
    x, y, z = a[..., 0], a[..., 1], a[..., 2]
    K = np.zeros(a.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 0] = -z, y, z
    K[..., 1, 2], K[..., 2, 0], K[..., 2, 1] = -x, -y, x
    I = np.eye(3)
    return I + s * K + (1 - c) * K @ K


def ramsey(t: np.ndarray, rabi: float, tau: float, t2s: float, det: float = 5e6, hf: float = 3.03e6,
           nodes: int = 48) -> np.ndarray:
    """Population change of the two-pulse Ramsey sequence over free times ``t``."""
    sigma = 1 / (np.sqrt(2) * np.pi * t2s)
    xg, wg = np.polynomial.hermite_e.hermegauss(nodes)
    wg = wg / wg.sum()
    out = np.zeros_like(t)
    for line in (det - hf / 2, det + hf / 2):
        d = line + sigma * xg  # (K,)
        w = 2 * np.pi * np.sqrt(rabi**2 + d**2) * tau
        R = rot(np.stack([np.full_like(d, rabi), 0 * d, d], -1), w)  # (K,3,3)
        v = R @ np.array([0, 0, 1.0])  # after first pulse
        for i, ti in enumerate(t):
            Fz = rot(np.stack([0 * d, 0 * d, np.ones_like(d)], -1), 2 * np.pi * d * ti)
            vz = np.einsum("kij,kj->ki", R, np.einsum("kij,kj->ki", Fz, v))[:, 2]
            out[i] += 0.5 * (wg * vz).sum()
    return out

HALF_SPLIT_HZ = 1.515e6  # the 15N doublet's lines at +/- half its 3.03 MHz splitting


def map_model(t: np.ndarray, y0: float, f1: float, t2s: float, p0: float, q0: float, p1: float,
              q1: float) -> np.ndarray:
    """The widefield Ramsey map's fit function: Gaussian envelope, one cos/sin pair per line."""
    env = np.exp(-((t / t2s) ** 2))
    lo, hi = 2 * np.pi * (f1 - HALF_SPLIT_HZ) * t, 2 * np.pi * (f1 + HALF_SPLIT_HZ) * t
    return y0 + env * (p0 * np.cos(lo) + q0 * np.sin(lo) + p1 * np.cos(hi) + q1 * np.sin(hi))


def main() -> None:
    t = np.linspace(0, 1.5e-6, 41)  # the service's default Ramsey sweep
    rabi0, t2s = 10e6, 0.6e-6  # centre Rabi frequency and the sim's default T2*
    tau = 1 / (4 * rabi0)  # the calibrated pi/2 pulse
    for scale in (0.8, 1.0, 1.2, 1.4, 1.6):
        y = ramsey(t, scale * rabi0, tau, t2s)
        p, _ = curve_fit(map_model, t, y, p0=[0, 5e6, 0.6e-6, 0.2, 0, 0.2, 0], maxfev=20000)
        print(f"Rabi x{scale}: fitted T2* {p[2] * 1e6:.3f} us (truth {t2s * 1e6:.3f}), "
              f"bias {100 * (p[2] / t2s - 1):+.1f} %, fringe {p[1] / 1e6:.3f} MHz")


if __name__ == "__main__":
    main()
