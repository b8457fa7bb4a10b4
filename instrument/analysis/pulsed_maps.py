"""Per-pixel fits of widefield pulsed measurements: Rabi-frequency, T2*, T2 and T1 maps.

Every pixel (or bin of pixels) of a camera sweep is its own small least-squares problem with the
model of the matching scalar fit in ``instrument.analysis.pulsed``; all of them advance together
through the batched Levenberg-Marquardt of ``instrument.analysis._batched_lm`` (the ODMR maps'
solver). The Jacobian is taken by forward differences over the batch, so every model here is one
vectorised function of (parameters, x).

Starting values come from the pixel-mean curve's scalar fit (which the run reports anyway) and,
where a parameter varies strongly across the field (the Rabi frequency), from each pixel's own
periodogram. Errors are the covariance scaled by each pixel's residual variance (the camera gives
no per-point error that would be better), so ``reduced_chi2`` is 1 by construction and is not
reported; ``converged`` and finite errors mark the pixels to trust.

Models (t: the sweep as the scalar fit takes it, ``fit_x``):

* Rabi: ``y0 - a * mean_h[(R/R_h)^2 (1 - cos(2 pi R_h t) exp(-g t)) / 2]``, ``R_h = sqrt(R^2 + d_h^2)``,
  the decay as a rate g (``decay_s`` = 1/g is derived);
* Ramsey: ``y0 + exp(-(t/T2*)^2) * sum_h [p_h cos(2 pi f_h t) + q_h sin(2 pi f_h t)]``, ``f_2 = f_1 + A``
  (the Gaussian decay of a Gaussian spread of detunings, a stretched exponential with n = 2);
* echo and dynamical decoupling: ``y0 + a exp(-(t/T2)^n)`` (n free per pixel, held at the mean
  curve's, or held at the median of the pixels' own);
* T1: ``y0 + a exp(-t/T1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from instrument.analysis._batched_lm import levenberg_marquardt
from instrument.analysis.pulsed import PulsedFit, PulsedFitError

Model = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(theta (P, N, 1), x (F,)) -> model (N, F); theta[0] is an additive baseline."""


@dataclass
class PulsedMap:
    """Fitted maps of one pulsed measurement.

    Attributes:
        kind: the measurement ("rabi", "ramsey", "echo", "cpmg", "t1").
        params: best-fit parameter maps by name (SI units), each of the map's shape.
        errors: one-sigma error maps by name (0 where a parameter was held).
        converged: where the fit converged with finite errors.
        held: parameters held fixed, with their value.
    """

    kind: str
    params: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    converged: np.ndarray
    held: dict[str, float] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.converged.shape


class _DifferenceModel:
    """A vectorised model with a forward-difference Jacobian, as ``BatchModel`` wants it."""

    dtype = np.dtype(np.float64)

    def __init__(self, f: Model, x: np.ndarray, n_params: int, typical: np.ndarray) -> None:
        self.f, self.x, self.n_params = f, x, n_params
        self.typical = typical  # (P,) magnitudes that set the difference steps

    def evaluate(self, theta: np.ndarray, out_model: np.ndarray, out_jac: np.ndarray) -> np.ndarray:
        base = self.f(theta[:, :, None], self.x)
        out_model[...] = base
        for p in range(1, self.n_params):
            step = 1e-6 * np.maximum(np.abs(theta[p]), self.typical[p])
            moved = theta.copy()
            moved[p] += step
            out_jac[p - 1] = (self.f(moved[:, :, None], self.x) - base) / step[:, None]
        return np.ones_like(theta)


def bin_images(images: np.ndarray, block: int) -> np.ndarray:
    """Mean over ``block`` x ``block`` pixel bins of (n, H, W) images; edges that do not fill a bin go."""
    a = np.asarray(images, float)
    if block < 1:
        raise ValueError(f"the bin must be >= 1 pixel, got {block}")
    n, h, w = a.shape
    rows, cols = h // block, w // block
    if rows == 0 or cols == 0:
        raise ValueError(f"a {block}-pixel bin is larger than the {h} x {w} image")
    a = a[:, : rows * block, : cols * block]
    return a.reshape(n, rows, block, cols, block).mean(axis=(2, 4))


def fit_map(kind: str, f: Model, names: list[str], x: np.ndarray, stack: np.ndarray, theta0: np.ndarray,
            lower: np.ndarray, upper: np.ndarray, starts: list[np.ndarray] | None = None,
            max_iter: int = 300) -> PulsedMap:
    """Fit model ``f`` to every pixel of ``stack`` (F, rows, cols) from one or several starts.

    ``theta0`` (and each of ``starts``) is (P, N) with N = rows * cols; the best start per pixel wins.
    """
    x = np.asarray(x, float)
    f_points, rows, cols = stack.shape
    if f_points != len(x):
        raise PulsedFitError(f"{len(x)} sweep values but {f_points} images")
    if f_points < len(names) + 2:
        raise PulsedFitError(f"{f_points} points are too few for a {len(names)}-parameter map fit")
    y = stack.reshape(f_points, -1).T.copy()  # (N, F)
    good = np.all(np.isfinite(y), axis=1)
    y[~good] = 0.0
    typical = np.nanmedian(np.abs(theta0), axis=1) + 1e-300
    model = _DifferenceModel(f, x, len(names), typical)
    best = None
    for start in [theta0, *(starts or [])]:
        res = levenberg_marquardt(model, y, np.asarray(start, float), lower, upper, max_iter=max_iter)
        if best is None:
            best = res
            continue
        better = res.cost < best.cost
        best.theta[:, better] = res.theta[:, better]
        best.covariance[:, :, better] = res.covariance[:, :, better]
        best.cost[better] = res.cost[better]
        best.converged[better] = res.converged[better]
    assert best is not None
    err = np.sqrt(np.clip(np.einsum("ppn->pn", best.covariance), 0, None))
    ok = good & best.converged & np.all(np.isfinite(err), axis=0)
    shape = (rows, cols)
    params = {n: np.where(ok, best.theta[i], np.nan).reshape(shape) for i, n in enumerate(names)}
    errors = {n: np.where(ok, err[i], np.nan).reshape(shape) for i, n in enumerate(names)}
    return PulsedMap(kind, params, errors, ok.reshape(shape))


def _per_pixel(value: float, n: int) -> np.ndarray:
    return np.full(n, float(value))


def _lines(hyperfine_hz: float) -> np.ndarray:
    return np.array([0.0, hyperfine_hz]) if hyperfine_hz else np.array([0.0])


def periodogram_peak(x: np.ndarray, y: np.ndarray, f_min: float, f_max: float) -> np.ndarray:
    """Strongest frequency in [f_min, f_max] of every row of y (N, F), on a dense grid."""
    span = x.max() - x.min()
    freqs = np.arange(f_min, f_max, 0.1 / span)
    yy = y - y.mean(axis=1, keepdims=True)
    phase = 2 * np.pi * np.outer(x, freqs)
    power = (yy @ np.cos(phase)) ** 2 + (yy @ np.sin(phase)) ** 2
    return freqs[np.argmax(power, axis=1)]


def fit_rabi_map(t_s: np.ndarray, stack: np.ndarray, mean_fit: PulsedFit, hyperfine_hz: float) -> PulsedMap:
    """Rabi-frequency map (``rabi_hz``) with the MW on the lower line (detuning held at the mean fit's)."""
    x = np.asarray(t_s, float)
    lines = _lines(hyperfine_hz) + mean_fit.params["detuning_hz"]

    def f(th: np.ndarray, t: np.ndarray) -> np.ndarray:
        y0, a, rabi, rate = th
        out = 0.0
        for d in lines:
            r_h = np.sqrt(rabi**2 + d**2)
            out = out + (rabi / r_h) ** 2 * (1 - np.cos(2 * np.pi * r_h * t) * np.exp(-t * rate)) / 2
        return y0 - a * out / len(lines)

    n = stack.shape[1] * stack.shape[2]
    y = stack.reshape(len(x), -1).T
    span = x.max() - x.min()
    nyq = 0.5 / np.min(np.diff(np.sort(x)))
    r0 = mean_fit.params["rabi_hz"]
    peak = periodogram_peak(x, np.nan_to_num(y), max(0.25 * r0, 1.5 / span), min(4 * r0, nyq))
    # The decay enters as a rate: a pixel whose oscillation barely decays over the sweep sits near
    # rate 0, where the fit is well behaved, instead of wandering off towards an infinite time.
    # The mean curve decays faster than any pixel (it averages different Rabi frequencies): start at
    # half its rate.
    rate0 = 0.5 / mean_fit.params["decay_s"]
    names = ["offset", "amplitude", "rabi_hz", "decay_rate_hz"]
    amp = np.nanmax(y, axis=1) - np.nanmin(y, axis=1)
    theta0 = np.stack([np.nanmax(y, axis=1), 2 * amp, peak, _per_pixel(rate0, n)])
    lower = np.array([-np.inf, 0.0, 0.1 / span, 0.0])[:, None]
    upper = np.array([np.inf, np.inf, nyq, 100 / span])[:, None]
    starts = [np.stack([theta0[0], theta0[1], theta0[2] * k, theta0[3]]) for k in (0.9, 1.1)]
    out = fit_map("rabi", f, names, x, stack, theta0, lower, upper, starts)
    rate, rate_err = out.params["decay_rate_hz"], out.errors["decay_rate_hz"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out.params["decay_s"] = 1.0 / rate
        out.errors["decay_s"] = rate_err / rate**2
    return out


def fit_ramsey_map(t_s: np.ndarray, stack: np.ndarray, mean_fit: PulsedFit, hyperfine_hz: float) -> PulsedMap:
    """T2* map (``t2_star_s``), with each pixel's fringe frequency free around the mean fit's."""
    x = np.asarray(t_s, float)
    offs = _lines(hyperfine_hz)

    def f(th: np.ndarray, t: np.ndarray) -> np.ndarray:
        y0, f1, t2s, *pq = th
        env = np.exp(-((t / t2s) ** 2))
        osc = 0.0
        for i, off in enumerate(offs):
            ph = 2 * np.pi * (f1 + off) * t
            osc = osc + pq[2 * i] * np.cos(ph) + pq[2 * i + 1] * np.sin(ph)
        return y0 + env * osc

    p = mean_fit.params
    n = stack.shape[1] * stack.shape[2]
    names = ["offset", "frequency_hz", "t2_star_s"]
    start = [_per_pixel(p["offset"], n), _per_pixel(p["frequency_hz"], n), _per_pixel(p["t2_star_s"], n)]
    for i in range(len(offs)):
        a, phi = p[f"amplitude_{i}"], p[f"phase_{i}"]
        names += [f"cos_{i}", f"sin_{i}"]
        # a cos(w t + phi) = a cos(phi) cos(w t) - a sin(phi) sin(w t)
        start += [_per_pixel(a * np.cos(phi), n), _per_pixel(-a * np.sin(phi), n)]
    theta0 = np.stack(start)
    span = x.max() - x.min()
    df = 0.5 / span
    lower = np.array([-np.inf, p["frequency_hz"] - df, span / 200] + [-np.inf] * 2 * len(offs))[:, None]
    upper = np.array([np.inf, p["frequency_hz"] + df, 100 * span] + [np.inf] * 2 * len(offs))[:, None]
    return fit_map("ramsey", f, names, x, stack, theta0, lower, upper)


def fit_decay_map(kind: str, t_s: np.ndarray, stack: np.ndarray, mean_fit: PulsedFit, time_name: str,
                  stretch: str = "free") -> PulsedMap:
    """A (stretched) exponential decay map: ``y0 + a exp(-(t/T)^n)``.

    Args:
        time_name: the decay time's name in ``mean_fit`` and in the map (``t2_s``, ``t1_s``).
        stretch: ``"free"`` (n per pixel), ``"mean"`` (n held at the mean fit's ``stretch``),
            ``"pixels"`` (n free per pixel first, then held at the median over pixels and refitted:
            one exponent for the material, without the bias of the mean curve, which averages
            different decay times into a smaller n) or ``"none"`` (n = 1: T1).
    """
    if stretch == "pixels":
        free = fit_decay_map(kind, t_s, stack, mean_fit, time_name, "free")
        n = float(np.nanmedian(free.params["stretch"]))
        if not np.isfinite(n):
            raise PulsedFitError(f"no pixel of the {kind} map fitted a stretch exponent")
        held = PulsedFit(mean_fit.kind, {**mean_fit.params, "stretch": n}, mean_fit.errors,
                         mean_fit.reduced_chi2, mean_fit.x, mean_fit.y, mean_fit.sigma, mean_fit.model)
        out = fit_decay_map(kind, t_s, stack, held, time_name, "mean")
        out.held = {"stretch": n}
        return out
    x = np.asarray(t_s, float)
    p = mean_fit.params
    n = stack.shape[1] * stack.shape[2]
    span = x.max()
    names = ["offset", "amplitude", time_name]
    start = [_per_pixel(p["offset"], n), _per_pixel(p["amplitude"], n), _per_pixel(p[time_name], n)]
    lower = [-np.inf, -np.inf, span / 1000]
    upper = [np.inf, np.inf, 1000 * span]
    held: dict[str, float] = {}
    if stretch == "free":
        names.append("stretch")
        start.append(_per_pixel(p["stretch"], n))
        lower.append(0.3)
        upper.append(6.0)
        fixed = None
    elif stretch == "mean":
        fixed = float(p["stretch"])
        held["stretch"] = fixed
    elif stretch == "none":
        fixed = 1.0
    else:
        raise ValueError(f"stretch must be free, mean, pixels or none, got {stretch!r}")

    def f(th: np.ndarray, t: np.ndarray) -> np.ndarray:
        y0, a, tt = th[0], th[1], th[2]
        m = th[3] if fixed is None else fixed
        return y0 + a * np.exp(-((t / tt) ** m))

    out = fit_map(kind, f, names, x, stack, np.stack(start), np.array(lower)[:, None],
                  np.array(upper)[:, None])
    out.held = held
    return out


def compare_with_truth(fitted: np.ndarray, error: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How a fitted map agrees with the truth, per pixel, in units of the fit's own error.

    Returns the fraction of pixels within 2 and 3 sigma, the median |normalised error| (0.67 for
    errors that are right and Gaussian), the mean squared normalised error (1 for right errors; a
    map that misses a feature of the truth, such as a flat baseline, scores far above 1 there even
    when most pixels agree), the median relative error and the number of pixels used.
    """
    fitted, error, truth = (np.asarray(a, float) for a in (fitted, error, truth))
    if fitted.shape != truth.shape or error.shape != truth.shape:
        raise ValueError(f"map {fitted.shape}, error {error.shape} and truth {truth.shape} differ in shape")
    ok = np.isfinite(fitted) & np.isfinite(error) & (error > 0) & np.isfinite(truth)
    if not np.any(ok):
        raise ValueError("no pixel has a finite fit and error to compare")
    z = np.abs(fitted[ok] - truth[ok]) / error[ok]
    return {
        "within_2_sigma": float(np.mean(z < 2)),
        "within_3_sigma": float(np.mean(z < 3)),
        "median_abs_z": float(np.median(z)),
        "mean_z2": float(np.mean(z**2)),
        "median_rel_error": float(np.median(np.abs(fitted[ok] - truth[ok]) / np.abs(truth[ok]))),
        "median_rel_sigma": float(np.median(error[ok] / np.abs(truth[ok]))),
        "pixels": int(ok.sum()),
        "of": int(truth.size),
    }
