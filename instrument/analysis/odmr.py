"""Per-pixel ODMR fits of whole spectral cubes: one vectorised Levenberg-Marquardt for all pixels.

``fit_odmr(freqs, spectra)`` fits every spectrum along the last axis of ``spectra`` with a baseline
plus ``n_peaks`` lines (Lorentzian or Gaussian, optionally hyperfine multiplets with a shared width and
fixed splitting). Dips (PL) and peaks (lock-in) both work; the sign is found from the data.

Pixels that cannot give a trustworthy answer (non-finite or saturated samples, flat spectra, no
significant resonance, a resonance at or beyond the sweep edge, no convergence) come back with
``converged`` False, NaN parameters and a ``FitReason`` code saying why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

import numpy as np

from instrument.analysis._batched_lm import levenberg_marquardt
from instrument.analysis.lineshapes import LINE_SHAPES, line, line_with_derivatives, multiplet_offsets_hz

MAX_PEAKS = 8
DEFAULT_CHUNK_PIXELS = 2048


class FitReason(enum.IntEnum):
    """Why a pixel's fit is (not) trusted; stored per pixel in ``OdmrFit.reason``."""

    OK = 0
    NON_FINITE = 1
    """The spectrum holds NaN or infinity."""
    SATURATED = 2
    """At least one sample reached the saturation level."""
    FLAT = 3
    """The spectrum has no variation at all."""
    NO_RESONANCE = 4
    """The fitted amplitude of some line is not significant against the noise."""
    OUTSIDE_SWEEP = 5
    """A line's half-maximum interval is not inside the sweep: the sweep misses (part of) it."""
    WIDTH_OUT_OF_RANGE = 6
    """A fitted width is below the sample spacing or above the sweep span."""
    NOT_CONVERGED = 7
    """The iteration limit was reached."""
    SINGULAR = 8
    """The parameters are not determined by the data (singular normal equations)."""


@dataclass
class OdmrFit:
    """Per-pixel fit results; every array has the pixel shape ``spectra.shape[:-1]``.

    Peak-wise quantities (``center``, ``fwhm``, ``amplitude``, ``contrast`` and their errors) carry a
    trailing axis of length ``n_peaks`` when ``n_peaks > 1``. Frequencies are in Hz; ``amplitude`` and
    ``baseline`` in the units of the data (``amplitude`` negative for dips); ``contrast`` is the
    fractional dip depth ``-amplitude / baseline``, NaN where the baseline is too close to zero for it
    to mean anything (lock-in data, whose baseline is ~0). Parameters and errors are NaN wherever
    ``converged`` is False.
    """

    center: np.ndarray
    fwhm: np.ndarray
    amplitude: np.ndarray
    contrast: np.ndarray
    baseline: np.ndarray
    center_err: np.ndarray
    fwhm_err: np.ndarray
    amplitude_err: np.ndarray
    contrast_err: np.ndarray
    baseline_err: np.ndarray
    converged: np.ndarray
    reason: np.ndarray
    """FitReason codes (uint8)."""
    model: str = "lorentzian"
    n_peaks: int = 1
    hyperfine: str | None = None

    def reason_counts(self) -> dict[str, int]:
        """Number of pixels per FitReason name, for summaries."""
        codes, counts = np.unique(self.reason, return_counts=True)
        return {FitReason(int(c)).name: int(k) for c, k in zip(codes, counts, strict=True)}

    def arrays(self) -> dict[str, np.ndarray]:
        """All per-pixel arrays by name (for storage)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }


_PEAK_FIELDS = ("center", "fwhm", "amplitude", "contrast")
_PIXEL_FIELDS = ("baseline", "baseline_err")


@dataclass(frozen=True)
class _Setup:
    """Everything about a fit that is shared by all pixels, in normalised units."""

    x: np.ndarray  # (F,) frequencies mapped onto [-1, 1]
    f_mid: float
    half_span: float
    dx: float  # smallest sample spacing (normalised)
    offsets: np.ndarray  # multiplet offsets (normalised)
    shape: str
    n_peaks: int
    min_snr: float
    max_iter: int


def fit_odmr(
    freqs: np.ndarray,
    spectra,
    *,
    model: str = "lorentzian",
    n_peaks: int = 1,
    hyperfine: str | None = None,
    min_snr: float = 5.0,
    saturation_level: float | None = None,
    max_iter: int = 50,
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
) -> OdmrFit:
    """Fit every spectrum in a cube with a baseline plus ``n_peaks`` lines.

    Args:
        freqs: (F,) sweep frequencies in Hz, strictly monotonic.
        spectra: (..., F) numpy or dask array (float32/float64/integer); dips or peaks.
        model: "lorentzian" or "gaussian".
        n_peaks: 1 to 8 lines (multiplets when ``hyperfine`` is set).
        hyperfine: None, "15N" (doublet, 3.03 MHz) or "14N" (triplet, 2.16 MHz); each peak becomes a
            multiplet with shared width and fixed splitting, and ``center`` is its centre.
        min_snr: a line whose amplitude is below ``min_snr`` standard errors is rejected (NO_RESONANCE).
        saturation_level: samples at or above it mark the pixel SATURATED; defaults to the integer
            dtype's maximum for integer data and to no check for float data.
        max_iter: Levenberg-Marquardt iteration limit per pixel.
        chunk_pixels: pixels fitted together; bounds the working memory.

    Returns:
        OdmrFit with arrays of shape ``spectra.shape[:-1]`` (plus a peak axis when n_peaks > 1).
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    setup = _make_setup(freqs, spectra.shape, model, n_peaks, hyperfine, min_snr, max_iter)
    if saturation_level is None and np.issubdtype(spectra.dtype, np.integer):
        saturation_level = float(np.iinfo(spectra.dtype).max)
    if type(spectra).__module__.startswith("dask"):
        packed = _fit_dask(setup, spectra, saturation_level, chunk_pixels)
    else:
        spectra = np.asarray(spectra)
        packed = _fit_packed(setup, spectra.reshape(-1, spectra.shape[-1]), saturation_level, chunk_pixels)
        packed = packed.reshape(*spectra.shape[:-1], packed.shape[-1])
    return unpack(packed, setup.n_peaks, model, hyperfine)


def _make_setup(freqs, shape, model, n_peaks, hyperfine, min_snr, max_iter) -> _Setup:
    if model not in LINE_SHAPES:
        raise ValueError(f"unknown model {model!r}; choose one of {LINE_SHAPES}")
    if not 1 <= int(n_peaks) <= MAX_PEAKS:
        raise ValueError(f"n_peaks must be 1..{MAX_PEAKS}, got {n_peaks}")
    offsets_hz = multiplet_offsets_hz(hyperfine)
    if freqs.ndim != 1 or freqs.size < 3:
        raise ValueError(f"freqs must be a 1-D sweep of at least 3 points, got shape {freqs.shape}")
    if len(shape) < 1 or shape[-1] != freqs.size:
        raise ValueError(
            f"spectra must have the sweep on the last axis: shape {tuple(shape)} vs {freqs.size} frequencies"
        )
    if not np.all(np.isfinite(freqs)):
        raise ValueError("freqs holds NaN or infinity")
    steps = np.diff(freqs)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError("freqs must be strictly increasing or strictly decreasing")
    n_params = 1 + 3 * int(n_peaks)
    if freqs.size <= n_params:
        raise ValueError(
            f"{freqs.size} frequencies cannot determine {n_params} parameters; sweep more points"
        )
    f_mid = 0.5 * (freqs.max() + freqs.min())
    half_span = 0.5 * (freqs.max() - freqs.min())
    return _Setup(
        x=(freqs - f_mid) / half_span,
        f_mid=float(f_mid),
        half_span=float(half_span),
        dx=float(np.abs(steps).min() / half_span),
        offsets=offsets_hz / half_span,
        shape=model,
        n_peaks=int(n_peaks),
        min_snr=float(min_snr),
        max_iter=int(max_iter),
    )


def _packed_width(n_peaks: int) -> int:
    # per peak: center, fwhm, amplitude, contrast and their errors; baseline and its error; converged; reason
    return 8 * n_peaks + 4


def _fit_dask(setup: _Setup, spectra, saturation_level, chunk_pixels) -> np.ndarray:
    """Fit a dask array block by block (pixels stay chunked, the sweep axis becomes one chunk)."""
    import dask.array as da

    spectra = spectra.rechunk({spectra.ndim - 1: -1})
    width = _packed_width(setup.n_peaks)

    def block(b: np.ndarray) -> np.ndarray:
        out = _fit_packed(setup, b.reshape(-1, b.shape[-1]), saturation_level, chunk_pixels)
        return out.reshape(*b.shape[:-1], width)

    packed = da.map_blocks(block, spectra, dtype=np.float64, chunks=(*spectra.chunks[:-1], (width,)))
    return np.asarray(packed.compute())


def _fit_packed(setup: _Setup, flat: np.ndarray, saturation_level, chunk_pixels) -> np.ndarray:
    """Fit (N, F) spectra chunk by chunk; returns (N, width) packed results."""
    out = np.empty((flat.shape[0], _packed_width(setup.n_peaks)))
    step = max(1, int(chunk_pixels))
    for start in range(0, flat.shape[0], step):
        out[start : start + step] = _fit_chunk(setup, flat[start : start + step], saturation_level)
    return out


def _fit_chunk(setup: _Setup, raw: np.ndarray, saturation_level) -> np.ndarray:
    """Screen, guess, fit and check one chunk of (N, F) spectra."""
    n, _ = raw.shape
    k = setup.n_peaks
    reason = np.zeros(n, dtype=np.uint8)
    y = raw.astype(np.float64)
    finite = np.all(np.isfinite(y), axis=1)
    reason[~finite] = FitReason.NON_FINITE
    if saturation_level is not None:
        saturated = finite & np.any(y >= saturation_level, axis=1)
        reason[saturated] = FitReason.SATURATED
    y[~finite] = 0.0
    # Normalise each spectrum to zero mean and unit spread so that one set of tolerances fits all data.
    offset = y.mean(axis=1)
    scale = y.std(axis=1)
    flat_spec = scale <= 1e-12 * np.maximum(np.abs(offset), np.finfo(np.float64).tiny)
    reason[(reason == 0) & flat_spec] = FitReason.FLAT
    todo = np.flatnonzero(reason == 0)

    theta = np.full((1 + 3 * k, n), np.nan)
    cov = np.full((1 + 3 * k, 1 + 3 * k, n), np.nan)
    if todo.size:
        yn = (y[todo] - offset[todo, None]) / scale[todo, None]
        theta0, sign = _initial_guess(setup, yn)
        lower, upper = _bounds(setup, sign)
        res = levenberg_marquardt(
            lambda th: _model_and_jacobian(setup, th), yn, theta0, lower, upper, max_iter=setup.max_iter
        )
        theta[:, todo] = res.theta
        cov[:, :, todo] = res.covariance
        reason[todo] = _judge(setup, res.theta, res.covariance, res.converged)
    return _to_physical(setup, theta, cov, offset, scale, reason)


def _model_and_jacobian(setup: _Setup, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baseline plus multiplets for parameters (P, N) = [baseline, centers, widths, amplitudes]."""
    k = setup.n_peaks
    x = setup.x[None, :]
    n = theta.shape[1]
    jac = np.empty((theta.shape[0], n, x.shape[1]))
    jac[0] = 1.0
    model = np.repeat(theta[0][:, None], x.shape[1], axis=1)
    inv_lines = 1.0 / len(setup.offsets)
    for p in range(k):
        c = theta[1 + p][:, None]
        w = theta[1 + k + p][:, None]
        a = theta[1 + 2 * k + p][:, None]
        g = dg_dc = dg_dw = 0.0
        for off in setup.offsets:
            gi, ci, wi = line_with_derivatives(setup.shape, x, c + off, w)
            g, dg_dc, dg_dw = g + gi, dg_dc + ci, dg_dw + wi
        if len(setup.offsets) > 1:
            g, dg_dc, dg_dw = g * inv_lines, dg_dc * inv_lines, dg_dw * inv_lines
        model += a * g
        jac[1 + p] = a * dg_dc
        jac[1 + k + p] = a * dg_dw
        jac[1 + 2 * k + p] = g
    return model, jac


def _templates(setup: _Setup) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Zero-mean, unit-norm multiplet templates on a grid of centres and widths.

    Returns the templates (M, F), their norms and means before normalising, and their centre and width.
    """
    x = setup.x
    # Centres every sample (every other one for long sweeps) keep the start within half a step of truth.
    stride = 1 if x.size <= 128 else 2
    xs = np.sort(x)
    centers = xs[::stride]
    widths = []
    w = 2.0 * setup.dx
    while w < 1.0:
        widths.append(w)
        w *= 2.0
    widths.append(1.0)
    cc, ww = (a.ravel() for a in np.meshgrid(centers, np.asarray(widths), indexing="ij"))
    t = sum(line(setup.shape, x[None, :], cc[:, None] + off, ww[:, None]) for off in setup.offsets)
    t = t / len(setup.offsets)
    mean = t.mean(axis=1)
    centred = t - mean[:, None]
    norm = np.linalg.norm(centred, axis=1)
    keep = norm > 1e-6
    return centred[keep] / norm[keep, None], norm[keep], mean[keep], cc[keep], ww[keep]


def _initial_guess(setup: _Setup, yn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matched-filter start: the best template, subtract it, the next best, ...

    For one line this is the least-squares optimum over the template grid, so the start is global and
    the Levenberg-Marquardt refinement only has to polish it.
    """
    t_hat, norm, mean, cc, ww = _templates(setup)
    scores = yn.astype(np.float32) @ t_hat.T.astype(np.float32)
    n = yn.shape[0]
    k = setup.n_peaks
    rows = np.arange(n)
    first = np.argmax(np.abs(scores), axis=1)
    sign = np.sign(scores[rows, first]).astype(np.float64)
    sign[sign == 0] = -1.0
    gram = (t_hat @ t_hat.T).astype(np.float32) if k > 1 else None
    theta = np.empty((1 + 3 * k, n))
    baseline = np.zeros(n)
    for p in range(k):
        best = first if p == 0 else np.argmax(sign[:, None] * scores, axis=1)
        s = scores[rows, best].astype(np.float64)
        amp = s / norm[best]
        theta[1 + p] = cc[best]
        theta[1 + k + p] = ww[best]
        theta[1 + 2 * k + p] = np.where(sign * amp > 0, amp, sign * 1e-3)
        baseline -= amp * mean[best]
        if p < k - 1:
            scores -= s[:, None].astype(np.float32) * gram[best]
    theta[0] = baseline
    return theta, sign


def _bounds(setup: _Setup, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box bounds (P, N): centres within half a span beyond the sweep, widths from half a step to two
    spans, amplitudes keep the sign of the strongest feature (all dips or all peaks)."""
    k = setup.n_peaks
    n = sign.size
    lower = np.empty((1 + 3 * k, n))
    upper = np.empty((1 + 3 * k, n))
    lower[0], upper[0] = -np.inf, np.inf
    lower[1 : 1 + k], upper[1 : 1 + k] = -2.0, 2.0
    lower[1 + k : 1 + 2 * k], upper[1 + k : 1 + 2 * k] = 0.5 * setup.dx, 4.0
    lower[1 + 2 * k :] = np.where(sign > 0, 0.0, -np.inf)
    upper[1 + 2 * k :] = np.where(sign > 0, np.inf, 0.0)
    return lower, upper


def _judge(setup: _Setup, theta: np.ndarray, cov: np.ndarray, converged: np.ndarray) -> np.ndarray:
    """Reason codes for fitted pixels, the most fundamental failure first."""
    k = setup.n_peaks
    reason = np.zeros(theta.shape[1], dtype=np.uint8)
    var = np.stack([cov[i, i] for i in range(cov.shape[0])])
    centers, widths, amps = theta[1 : 1 + k], theta[1 + k : 1 + 2 * k], theta[1 + 2 * k :]
    amp_err = np.sqrt(np.abs(var[1 + 2 * k :]))
    reason[~converged] = FitReason.NOT_CONVERGED
    singular = ~np.all(np.isfinite(var) & (var >= 0), axis=0)
    reason[(reason == 0) & singular] = FitReason.SINGULAR
    # A centre beyond the sweep is a sweep that misses the resonance, whatever the amplitude says.
    beyond = np.any((centers < setup.x.min()) | (centers > setup.x.max()), axis=0)
    reason[(reason == 0) & beyond] = FitReason.OUTSIDE_SWEEP
    weak = np.any(~(np.abs(amps) >= setup.min_snr * amp_err), axis=0)
    reason[(reason == 0) & weak] = FitReason.NO_RESONANCE
    bad_width = np.any((widths < setup.dx) | (widths > 2.0), axis=0)
    reason[(reason == 0) & bad_width] = FitReason.WIDTH_OUT_OF_RANGE
    lowest = centers + setup.offsets.min() - 0.5 * widths
    highest = centers + setup.offsets.max() + 0.5 * widths
    outside = np.any((lowest < setup.x.min()) | (highest > setup.x.max()), axis=0)
    reason[(reason == 0) & outside] = FitReason.OUTSIDE_SWEEP
    return reason


def _to_physical(
    setup: _Setup,
    theta: np.ndarray,
    cov: np.ndarray,
    offset: np.ndarray,
    scale: np.ndarray,
    reason: np.ndarray,
) -> np.ndarray:
    """Packed (N, width) results in physical units; NaN wherever the fit is rejected."""
    k = setup.n_peaks
    good = reason == 0
    err = np.sqrt(np.abs(np.stack([cov[i, i] for i in range(cov.shape[0])])))
    hs = setup.half_span
    center = setup.f_mid + hs * theta[1 : 1 + k]
    center_err = hs * err[1 : 1 + k]
    fwhm, fwhm_err = hs * theta[1 + k : 1 + 2 * k], hs * err[1 + k : 1 + 2 * k]
    amp, amp_err = scale * theta[1 + 2 * k :], scale * err[1 + 2 * k :]
    base, base_err = offset + scale * theta[0], scale * err[0]
    cov_ab = scale * scale * cov[1 + 2 * k :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        contrast = -amp / base
        contrast_var = (amp_err / base) ** 2 + (amp * base_err / base**2) ** 2 - 2.0 * amp * cov_ab / base**3
        contrast_err = np.sqrt(np.abs(contrast_var))
    # A PL dip cannot remove more light than there is: beyond that the baseline is ~0 (lock-in data).
    meaningless = ~(np.abs(base) > np.abs(amp))
    contrast[meaningless] = np.nan
    contrast_err[meaningless] = np.nan
    per_peak = [center, fwhm, amp, contrast, center_err, fwhm_err, amp_err, contrast_err]
    out = np.concatenate([*per_peak, base[None], base_err[None]], axis=0)
    out[:, ~good] = np.nan
    return np.concatenate([out, good[None].astype(np.float64), reason[None].astype(np.float64)], axis=0).T


def unpack(
    packed: np.ndarray, n_peaks: int, model: str = "lorentzian", hyperfine: str | None = None
) -> OdmrFit:
    """Turn packed (..., width) results back into an OdmrFit."""
    k = n_peaks
    pix = packed.shape[:-1]

    def peakwise(i: int) -> np.ndarray:
        block = packed[..., i * k : (i + 1) * k]
        return block[..., 0].copy() if k == 1 else block.copy()

    names = [
        "center",
        "fwhm",
        "amplitude",
        "contrast",
        "center_err",
        "fwhm_err",
        "amplitude_err",
        "contrast_err",
    ]
    values = {name: peakwise(i) for i, name in enumerate(names)}
    return OdmrFit(
        **values,
        baseline=packed[..., 8 * k].copy(),
        baseline_err=packed[..., 8 * k + 1].copy(),
        converged=packed[..., 8 * k + 2].astype(bool).reshape(pix),
        reason=packed[..., 8 * k + 3].astype(np.uint8).reshape(pix),
        model=model,
        n_peaks=k,
        hyperfine=hyperfine,
    )
