"""Fits of pulsed NV measurements: Rabi, Ramsey (T2*), Hahn echo (T2), T1 and pulsed ODMR.

Every fit takes the sweep variable, the normalised signal (signal gate / reference gate) and its
standard error (``None``: errors are scaled from the scatter about the fit), and returns a
:class:`PulsedFit` with parameters, one-sigma errors and the reduced chi-square. Models follow the
physics of an NV ensemble with a nitrogen hyperfine doublet (15N, 3.03 MHz) or no resolved
structure (``hyperfine_hz=0``):

* Rabi: ``y = y0 - a * mean_h[(R/R_h)^2 (1 - cos(2 pi R_h t) exp(-t/tau)) / 2]`` with
  ``R_h = sqrt(R^2 + d_h^2)``, ``d_h`` the detunings of the hyperfine lines (``d``, ``d + A``);
  ``rabi_hz`` is the drive's Rabi frequency, ``detuning_hz`` the detuning from the nearer line.
* Ramsey: ``y = y0 + exp(-(t/T2*)^2) * sum_h a_h cos(2 pi f_h t + phi_h)`` with ``f_2 = f_1 + A``;
  ``detuning_hz`` = ``|f_1 + A/2|``, the MW's distance from the multiplet centre.
* Hahn echo: ``y = y0 + a exp(-(t/T2)^n)``.
* T1: ``y = y0 + a exp(-t/T1)``.
* Pulsed ODMR: Lorentzian dips at ``f_c`` and ``f_c + A`` with a shared width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import curve_fit

from instrument.physics.constants import HYPERFINE_15N_HZ


class PulsedFitError(ValueError):
    """The data cannot be fitted (too few points, not finite, no convergence)."""


@dataclass
class PulsedFit:
    """A fitted pulsed measurement.

    Attributes:
        kind: "rabi", "ramsey", "echo", "t1" or "odmr".
        params: best-fit parameters by name (SI units).
        errors: one-sigma errors by name.
        reduced_chi2: chi-square per degree of freedom (about 1 when the model and errors fit).
        x, y, sigma: the data that was fitted.
        model: the model as a function of x with the best-fit parameters.
    """

    kind: str
    params: dict[str, float]
    errors: dict[str, float]
    reduced_chi2: float
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    sigma: np.ndarray = field(repr=False)
    model: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def __getitem__(self, name: str) -> float:
        return self.params[name]

    def summary(self) -> str:
        """One line per parameter: value +- error."""
        return "\n".join(f"{k:>14} = {v:.6g} +- {self.errors[k]:.2g}" for k, v in self.params.items())


def _prepare(x: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None,
             n_params: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise PulsedFitError(f"x and y must be 1-d of equal length, got {x.shape} and {y.shape}")
    s = np.full_like(y, np.nan) if sigma is None else np.asarray(sigma, float)
    if s.shape != y.shape:
        raise PulsedFitError(f"sigma must have the shape of y {y.shape}, got {s.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise PulsedFitError("x and y must be finite; drop or re-measure the NaN points")
    if len(x) < n_params + 2:
        raise PulsedFitError(f"{len(x)} points are too few for a {n_params}-parameter fit")
    if sigma is None or not np.all(np.isfinite(s) & (s > 0)):
        s = np.full_like(y, np.nan)  # no usable errors: _fit scales them from the residuals
    return x, y, s


def _fit(kind: str, f: Callable[..., np.ndarray], names: list[str], x: np.ndarray, y: np.ndarray,
         s: np.ndarray, starts: list[list[float]], bounds: tuple[list[float], list[float]]) -> PulsedFit:
    relative = not np.all(np.isfinite(s))
    if relative:
        s = np.ones_like(y)
    best = None
    for p0 in starts:
        p0 = np.clip(np.asarray(p0, float), bounds[0], bounds[1])
        try:
            popt, pcov = curve_fit(f, x, y, p0=p0, sigma=s, absolute_sigma=not relative, bounds=bounds,
                                   max_nfev=20000)
        except (RuntimeError, ValueError):
            continue
        chi2 = float(np.sum(((f(x, *popt) - y) / s) ** 2))
        if best is None or chi2 < best[0]:
            best = (chi2, popt, pcov)
    if best is None:
        raise PulsedFitError(f"the {kind} fit did not converge from any starting point")
    chi2, popt, pcov = best
    dof = max(len(x) - len(popt), 1)
    if relative:
        # Errors come from the scatter about the fit; chi-square per dof is 1 by construction.
        s = s * np.sqrt(chi2 / dof)
        chi2 = float(dof)
    err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    return PulsedFit(
        kind, dict(zip(names, map(float, popt), strict=True)), dict(zip(names, map(float, err), strict=True)),
        chi2 / dof, x, y, s, lambda xx, p=popt: f(np.asarray(xx, float), *p),
    )


def _dominant_frequency(x: np.ndarray, y: np.ndarray) -> float:
    """Strongest frequency of (possibly uneven) samples, from a dense periodogram."""
    span = x.max() - x.min()
    step = np.min(np.diff(np.sort(x))) if len(x) > 1 else span
    freqs = np.linspace(0.5 / span, 0.5 / max(step, 1e-15), 4 * len(x))
    yy = y - y.mean()
    power = np.abs(np.exp(-2j * np.pi * np.outer(freqs, x)) @ yy)
    return float(freqs[np.argmax(power)])


def _lines(hyperfine_hz: float) -> np.ndarray:
    return np.array([0.0, hyperfine_hz]) if hyperfine_hz else np.array([0.0])


def fit_rabi(t_s: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None,
             hyperfine_hz: float = HYPERFINE_15N_HZ, detuning_hz: float | None = 0.0) -> PulsedFit:
    """Rabi oscillation versus pulse length; ``rabi_hz`` is the drive's Rabi frequency.

    Args:
        detuning_hz: detuning of the MW from the driven hyperfine line, held fixed (0: the MW sits
            on a line, the usual set-up after pulsed ODMR); ``None`` fits it too. With a resolved
            doublet and a strong drive the detuning is nearly degenerate with the Rabi frequency,
            so fit it only when the data cover many periods. With ``hyperfine_hz=0`` a detuning
            cannot be told from the amplitude and ``rabi_hz`` is the generalised Rabi frequency.
    """
    free = detuning_hz is None and bool(hyperfine_hz)
    x, yv, s = _prepare(t_s, y, sigma, 5 if free else 4)
    lines = _lines(hyperfine_hz)
    fixed = 0.0 if detuning_hz is None else float(detuning_hz)

    def model(t, y0, a, rabi, tau, detuning=fixed):
        out = np.zeros_like(t)
        for off in lines:
            r_h = np.sqrt(rabi**2 + (detuning + off) ** 2)
            out += (rabi / r_h) ** 2 * (1 - np.cos(2 * np.pi * r_h * t) * np.exp(-t / tau)) / 2
        return y0 - a * out / len(lines)

    f0 = _dominant_frequency(x, yv)
    a0 = 2 * (yv.max() - yv.min())
    span = x.max() - x.min()
    names = ["offset", "amplitude", "rabi_hz", "decay_s"]
    lo = [-np.inf, 0.0, 0.1 / span, span / 100]
    hi = [np.inf, np.inf, 0.5 / np.min(np.diff(np.sort(x))), 1e3 * span]
    starts = [[yv.max(), a0, f, 3 * span] for f in (f0, 0.8 * f0, 1.2 * f0)]
    if free:
        big = 10 * (abs(hyperfine_hz) + f0)
        names.append("detuning_hz")
        lo.append(-big)
        hi.append(big)
        # Not at -A/2: there both lines are equally detuned and the gradient in d vanishes.
        starts = [[*p, d] for p in starts for d in (0.0, -0.3 * hyperfine_hz)]
    fit = _fit("rabi", model, names, x, yv, s, starts, (lo, hi))
    if not free:
        fit.params["detuning_hz"], fit.errors["detuning_hz"] = fixed, 0.0
    d = fit.params["detuning_hz"]
    if hyperfine_hz and abs(d + hyperfine_hz) < abs(d):
        # Report the detuning from the nearer line: the model is symmetric under d -> -d - A.
        fit.params["detuning_hz"] = -d - hyperfine_hz
    return fit


def rabi_pi_time_s(fit: PulsedFit) -> float:
    """Length of a pi pulse on the driven (nearer) hyperfine line from a Rabi fit."""
    r = np.hypot(fit.params["rabi_hz"], fit.params["detuning_hz"])
    return float(0.5 / r)


def fit_ramsey(t_s: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None,
               hyperfine_hz: float = HYPERFINE_15N_HZ) -> PulsedFit:
    """Ramsey fringes versus free evolution time: ``t2_star_s`` and ``detuning_hz``.

    ``detuning_hz`` is the distance of the MW from the centre of the hyperfine multiplet (from the
    line itself with ``hyperfine_hz=0``); a Ramsey measurement cannot tell its sign, and the model
    has two equivalent solutions (``frequency_hz`` = -d - A/2 or d - A/2) that give the same value.
    """
    x, yv, s = _prepare(t_s, y, sigma, 7 if hyperfine_hz else 5)
    lines = _lines(hyperfine_hz)

    def model(t, y0, f1, t2s, *amp_phase):
        env = np.exp(-((t / t2s) ** 2))
        out = np.full_like(t, y0)
        for i, off in enumerate(lines):
            out += env * amp_phase[2 * i] * np.cos(2 * np.pi * (f1 + off) * t + amp_phase[2 * i + 1])
        return out

    starts = _ramsey_starts(x, yv, s if np.all(np.isfinite(s)) else np.ones_like(yv), lines)
    span = x.max() - x.min()
    nyq = 0.5 / np.min(np.diff(np.sort(x)))
    lo = [-np.inf, -nyq - abs(hyperfine_hz), span / 200] + [0.0, -4 * np.pi] * len(lines)
    hi = [np.inf, nyq, 100 * span] + [np.inf, 4 * np.pi] * len(lines)
    names = ["offset", "frequency_hz", "t2_star_s"]
    for i in range(len(lines)):
        names += [f"amplitude_{i}", f"phase_{i}"]
    fit = _fit("ramsey", model, names, x, yv, s, starts, (lo, hi))
    fit.params["detuning_hz"] = abs(fit.params["frequency_hz"] + hyperfine_hz / 2)
    fit.errors["detuning_hz"] = fit.errors["frequency_hz"]
    return fit


def _ramsey_starts(x: np.ndarray, y: np.ndarray, s: np.ndarray, lines: np.ndarray) -> list[list[float]]:
    """Starting points from a grid over (f1, T2*): the rest of the model is linear in them."""
    span = x.max() - x.min()
    nyq = 0.5 / np.min(np.diff(np.sort(x)))
    f_grid = np.arange(-nyq - lines[-1], nyq, 1 / (3 * span))
    f_grid = f_grid[np.all(np.abs(f_grid[:, None] + lines[None, :]) <= nyq, axis=1)]
    w = 1.0 / s
    b = y * w
    # Oscillating columns for every grid frequency (the trigonometry does not depend on T2*).
    waves = []
    for off in lines:
        ph = 2 * np.pi * (f_grid[:, None] + off) * x[None, :]
        waves += [np.cos(ph) * w, -np.sin(ph) * w]
    osc = np.stack(waves, axis=2)  # (n_f, n_x, 2 n_lines)
    results = []
    for t2s in span * np.array([0.05, 0.1, 0.2, 0.4, 0.8]):
        env = np.exp(-((x / t2s) ** 2))
        a = np.concatenate([np.broadcast_to(w[None, :, None], (len(f_grid), len(x), 1)),
                            osc * env[None, :, None]], axis=2)
        ata = np.einsum("fxp,fxq->fpq", a, a)
        # Columns vanish where the envelope is gone: a small ridge keeps every system solvable.
        ata += 1e-9 * np.trace(ata, axis1=1, axis2=2)[:, None, None] * np.eye(a.shape[2])
        atb = np.einsum("fxp,x->fp", a, b)
        coef = np.linalg.solve(ata, atb[..., None])[..., 0]
        chi2 = np.sum((np.einsum("fxp,fp->fx", a, coef) - b) ** 2, axis=1)
        for i in np.argsort(chi2)[:4]:
            results.append((float(chi2[i]), float(f_grid[i]), t2s, coef[i]))
    results.sort(key=lambda r: r[0])
    starts = []
    for _, f1, t2s, coef in results[:4]:
        p = [coef[0], f1, t2s]
        for i in range(len(lines)):
            c, sn = coef[1 + 2 * i], coef[2 + 2 * i]
            p += [float(np.hypot(c, sn)), float(np.arctan2(sn, c))]
        starts.append(p)
    return starts


def fit_echo(t_s: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None) -> PulsedFit:
    """Hahn-echo decay versus total free evolution time: ``t2_s`` and the stretch exponent."""
    x, yv, s = _prepare(t_s, y, sigma, 4)

    def model(t, y0, a, t2, n):
        return y0 + a * np.exp(-((t / t2) ** n))

    a0 = yv[np.argmin(x)] - yv[np.argmax(x)]
    half = x[np.argmin(np.abs(yv - (yv.max() + yv.min()) / 2))]
    starts = [[yv[np.argmax(x)], a0, max(half, x.min() + 1e-12), n] for n in (1.0, 2.0, 3.0)]
    span = x.max()
    return _fit("echo", model, ["offset", "amplitude", "t2_s", "stretch"], x, yv, s, starts,
                ([-np.inf, -np.inf, span / 1000, 0.3], [np.inf, np.inf, 1000 * span, 6.0]))


def fit_t1(t_s: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None) -> PulsedFit:
    """Longitudinal relaxation versus dark time: ``t1_s``."""
    x, yv, s = _prepare(t_s, y, sigma, 3)

    def model(t, y0, a, t1):
        return y0 + a * np.exp(-t / t1)

    a0 = yv[np.argmin(x)] - yv[np.argmax(x)]
    half = x[np.argmin(np.abs(yv - (yv.max() + yv.min()) / 2))]
    span = x.max()
    starts = [[yv[np.argmax(x)], a0, max(half, span / 50)], [yv[np.argmax(x)], a0, span / 3]]
    return _fit("t1", model, ["offset", "amplitude", "t1_s"], x, yv, s, starts,
                ([-np.inf, -np.inf, span / 1000], [np.inf, np.inf, 1000 * span]))


def fit_pulsed_odmr(f_hz: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None,
                    hyperfine_hz: float = HYPERFINE_15N_HZ) -> PulsedFit:
    """Pulsed-ODMR dips versus MW frequency: ``center_hz`` is the lower hyperfine line."""
    x, yv, s = _prepare(f_hz, y, sigma, 4)
    lines = _lines(hyperfine_hz)

    def model(f, y0, depth, center, fwhm):
        half = fwhm / 2
        out = np.full_like(f, y0)
        for off in lines:
            out -= depth * half**2 / ((f - center - off) ** 2 + half**2)
        return out

    span = x.max() - x.min()
    step = np.min(np.diff(np.sort(x)))
    lowest = x[np.argmin(yv)]
    depth = yv.max() - yv.min()
    starts = [[yv.max(), depth, c, w] for c in (lowest, lowest - hyperfine_hz) for w in (span / 10, 4 * step)]
    return _fit("odmr", model, ["offset", "depth", "center_hz", "fwhm_hz"], x, yv, s, starts,
                ([-np.inf, 0.0, x.min() - span, step / 4], [np.inf, np.inf, x.max() + span, 2 * span]))
