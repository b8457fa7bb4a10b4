"""Per-pixel ODMR fits of whole spectral cubes: one vectorised Levenberg-Marquardt for all pixels.

``fit_odmr(freqs, spectra)`` fits every spectrum along the last axis of ``spectra`` with a baseline
plus ``n_peaks`` lines (Lorentzian or Gaussian, optionally hyperfine multiplets with a shared width and
fixed splitting). Dips (PL) and peaks (lock-in) both work; the sign is found from the data.

Every pixel whose fit is determined is kept with its standard errors. Only what is actually wrong is
rejected (non-finite or saturated samples, flat spectra, no convergence, undetermined parameters, a
line at or beyond the sweep edge, a width outside the physical range, a centre whose standard error
exceeds a stated bound); such pixels come back with ``converged`` False, NaN parameters and a
``FitReason`` code saying why. An amplitude-significance cut (``min_snr``) is available but off by
default: at ordinary widefield signal-to-noise (1-2 % contrast, 1e5 counts) a 5-sigma amplitude rule
throws away ~17 % of pixels whose centres are good to a fraction of the line width, because the
amplitude error is inflated by its correlation with the width. ``fit_options()`` gives the defaults,
and every ``OdmrFit`` carries the options it was made with (``OdmrFit.options``) for the run's metadata.
"""

from __future__ import annotations

import contextlib
import enum
import threading
from dataclasses import dataclass, fields

import numpy as np

from instrument.analysis._batched_lm import cholesky_solve, levenberg_marquardt
from instrument.analysis._multiplet_model import MultipletModel
from instrument.analysis.lineshapes import LINE_SHAPES, line, multiplet_offsets_hz

MAX_PEAKS = 8
ESTIMATORS = ("least_squares", "poisson")
CHI2_TOL = 1e-4
"""Levenberg-Marquardt stops when a step would lower the cost by less than this many residual
variances: the parameters are then within ~0.01 standard errors of the optimum."""
WORK_BYTES = 16 * 2**20
"""Working memory per chunk of pixels; large chunks amortise numpy's per-call cost, small ones stay
in cache and bound the memory."""


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
    UNCERTAIN = 9
    """A line centre's standard error exceeds the bound (``max_center_err_hz``)."""


DEFAULT_OPTIONS: dict = {
    "model": "lorentzian",
    "n_peaks": 1,
    "hyperfine": None,
    "estimator": "least_squares",
    "min_snr": 0.0,
    "min_delta_chi2": 0.0,
    "max_center_err_hz": None,
    "max_center_err_fwhm": 0.5,
    "fwhm_range_hz": None,
    "saturation_level": None,
    "precision": "single",
    "max_iter": 50,
    "backend": "numpy",
}
"""Defaults of ``fit_odmr``; ``fit_options()`` returns them with overrides, for metadata.

- ``estimator``: "least_squares" or "poisson" (maximum likelihood for photon counts).
- ``min_snr`` 0: no amplitude-significance cut (a line is kept whenever its centre is determined).
- ``min_delta_chi2`` 0: no detection cut. ``OdmrFit.delta_chi2`` (how much the lines lower the
  residual sum against a flat spectrum, in residual variances) is stored for every fitted pixel;
  pure noise gives ~8 (median) to ~25 (1 in 1000), so ``min_delta_chi2=25`` blanks regions without
  a resonance at the cost of the faintest real lines.
- centre bound: a centre's standard error above ``max_center_err_hz`` (if set) or above
  ``max_center_err_fwhm`` times the line's fitted FWHM (a line not located within its own half width)
  is UNCERTAIN.
- ``fwhm_range_hz`` None: widths from the smallest sample spacing to the sweep span are physical.
"""


def fit_options(**overrides) -> dict:
    """The options ``fit_odmr`` uses: its defaults updated with ``overrides`` (unknown names refused)."""
    unknown = set(overrides) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValueError(f"unknown fit option(s) {sorted(unknown)}; known: {sorted(DEFAULT_OPTIONS)}")
    return {**DEFAULT_OPTIONS, **overrides}


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
    delta_chi2: np.ndarray | None = None
    """Least-squares cost of a flat spectrum minus that of the fit, in residual variances (the
    detection statistic); NaN where no fit was made."""
    residual_rms: np.ndarray | None = None
    """RMS residual of the fit (data units); for Poisson counts residual_rms**2 / baseline is the
    reduced chi-square. NaN where no fit was made."""
    model: str = "lorentzian"
    n_peaks: int = 1
    hyperfine: str | None = None
    options: dict | None = None
    """The fit options used (``fit_options()`` form), for the run's metadata."""

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
    estimator: str
    min_snr: float
    min_delta_chi2: float
    max_center_err: float | None  # normalised absolute bound, or None
    max_center_err_fwhm: float
    fwhm_range: tuple[float, float]  # normalised
    max_iter: int
    backend: str
    dtype: np.dtype
    saturation_level: float | None
    templates: _Templates


@dataclass(frozen=True)
class _Templates:
    """Zero-mean, unit-norm multiplet templates for the initial guess."""

    unit: np.ndarray  # (M, F) in the compute dtype
    norm: np.ndarray  # (M,) norm before normalising
    mean: np.ndarray  # (M,) mean before centring
    center: np.ndarray  # (M,)
    fwhm: np.ndarray  # (M,)
    left: np.ndarray  # (M,) index of the template one centre lower at the same width (itself at an edge)
    right: np.ndarray  # (M,) one centre higher
    narrower: np.ndarray  # (M,) template of the next smaller width with the nearest centre (itself if none)
    wider: np.ndarray  # (M,) same for the next larger width
    gram: np.ndarray | None  # (M, M) overlaps, for subtracting a found peak from the scores


def fit_odmr(
    freqs: np.ndarray,
    spectra,
    *,
    model: str = "lorentzian",
    n_peaks: int = 1,
    hyperfine: str | None = None,
    estimator: str = "least_squares",
    min_snr: float = 0.0,
    min_delta_chi2: float = 0.0,
    max_center_err_hz: float | None = None,
    max_center_err_fwhm: float = 0.5,
    fwhm_range_hz: tuple[float, float] | None = None,
    saturation_level: float | None = None,
    precision: str = "single",
    max_iter: int = 50,
    chunk_pixels: int | None = None,
    backend: str = "numpy",
) -> OdmrFit:
    """Fit every spectrum in a cube with a baseline plus ``n_peaks`` lines.

    Args:
        freqs: (F,) sweep frequencies in Hz, strictly monotonic.
        spectra: (..., F) numpy or dask array (float32/float64/integer); dips or peaks.
        model: "lorentzian" or "gaussian".
        n_peaks: 1 to 8 lines (multiplets when ``hyperfine`` is set).
        hyperfine: None, "15N" (doublet, 3.03 MHz) or "14N" (triplet, 2.16 MHz); each peak becomes a
            multiplet with shared width and fixed splitting, and ``center`` is its centre.
        estimator: "least_squares" (default) or "poisson": maximum likelihood for photon counts
            (Fisher scoring from the least-squares optimum; errors from the Fisher information).
            Needs counts in photons (non-negative; divide a camera's ADU by its gain first).
        min_delta_chi2: reject pixels whose lines lower the residual sum by less than this many
            residual variances against a flat spectrum (NO_RESONANCE); 0 (default) keeps all.
        min_snr: a line whose amplitude is below ``min_snr`` standard errors is rejected
            (NO_RESONANCE); 0 (the default) keeps every determined line.
        max_center_err_hz: a centre whose standard error is above this (Hz) is rejected (UNCERTAIN).
        max_center_err_fwhm: the same bound relative to the line's fitted FWHM (default 0.5).
        fwhm_range_hz: (lowest, highest) physical FWHM in Hz; default from the smallest sample
            spacing to the sweep span. Widths outside are WIDTH_OUT_OF_RANGE.
        saturation_level: samples at or above it mark the pixel SATURATED; defaults to the integer
            dtype's maximum for integer data and to no check for float data.
        precision: "single" or "double" arithmetic for the per-sample work. Spectra are normalised
            first, so single precision resolves the centre to ~1e-7 of the sweep span, far below any
            shot-noise error, at twice the speed; results are float64 either way.
        max_iter: Levenberg-Marquardt iteration limit per pixel.
        chunk_pixels: pixels fitted together; by default as many as fit in ``WORK_BYTES`` of buffers.
        backend: "numpy" (default) or "torch": the Levenberg-Marquardt iterations in PyTorch, on the
            GPU when one is present (``torch.cuda.is_available()``), else on the CPU. Guess, checks
            and results are the same code; ``torch_lm`` says what differs.

    Returns:
        OdmrFit with arrays of shape ``spectra.shape[:-1]`` (plus a peak axis when n_peaks > 1).
    """
    options = fit_options(
        model=model,
        n_peaks=n_peaks,
        hyperfine=hyperfine,
        estimator=estimator,
        min_snr=min_snr,
        min_delta_chi2=min_delta_chi2,
        max_center_err_hz=max_center_err_hz,
        max_center_err_fwhm=max_center_err_fwhm,
        fwhm_range_hz=None if fwhm_range_hz is None else tuple(float(v) for v in fwhm_range_hz),
        saturation_level=saturation_level_for(spectra.dtype, saturation_level),
        precision=precision,
        max_iter=max_iter,
        backend=backend,
    )
    with single_threaded_blas():
        setup = make_setup(freqs, spectra.shape, **options)
    if type(spectra).__module__.startswith("dask"):
        packed = fit_dask_packed(setup, spectra, chunk_pixels).compute()
    else:
        spectra = np.asarray(spectra)
        packed = fit_packed(setup, spectra.reshape(-1, spectra.shape[-1]), chunk_pixels)
        packed = packed.reshape(*spectra.shape[:-1], packed.shape[-1])
    fit = unpack(np.asarray(packed), setup.n_peaks, model, hyperfine)
    fit.options = options
    return fit


def saturation_level_for(dtype, saturation_level: float | None) -> float | None:
    """``saturation_level`` if given, else the maximum of an integer ``dtype`` (None for float data)."""
    if saturation_level is None and np.issubdtype(np.dtype(dtype), np.integer):
        return float(np.iinfo(dtype).max)
    return saturation_level


def make_setup(
    freqs,
    shape: tuple[int, ...],
    *,
    model: str = "lorentzian",
    n_peaks: int = 1,
    hyperfine: str | None = None,
    estimator: str = "least_squares",
    min_snr: float = 0.0,
    min_delta_chi2: float = 0.0,
    max_center_err_hz: float | None = None,
    max_center_err_fwhm: float = 0.5,
    fwhm_range_hz: tuple[float, float] | None = None,
    saturation_level: float | None = None,
    precision: str = "single",
    max_iter: int = 50,
    backend: str = "numpy",
) -> _Setup:
    """Check the options against the sweep and precompute what every pixel shares."""
    freqs = np.asarray(freqs, dtype=np.float64)
    if model not in LINE_SHAPES:
        raise ValueError(f"unknown model {model!r}; choose one of {LINE_SHAPES}")
    if not 1 <= int(n_peaks) <= MAX_PEAKS:
        raise ValueError(f"n_peaks must be 1..{MAX_PEAKS}, got {n_peaks}")
    if precision not in ("single", "double"):
        raise ValueError(f"precision must be 'single' or 'double', got {precision!r}")
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
    x = (freqs - f_mid) / half_span
    dx = float(np.abs(steps).min() / half_span)
    offsets = offsets_hz / half_span
    dtype = np.dtype(np.float32 if precision == "single" else np.float64)
    if backend not in ("numpy", "torch"):
        raise ValueError(f"unknown backend {backend!r}; choose 'numpy' or 'torch'")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
    bad_bound = max_center_err_hz is not None and max_center_err_hz <= 0
    if min_snr < 0 or min_delta_chi2 < 0 or max_center_err_fwhm <= 0 or bad_bound:
        raise ValueError("min_snr must be >= 0 and the centre-error bounds > 0")
    if fwhm_range_hz is None:
        fwhm_range = (dx, 2.0)
    else:
        lo_w, hi_w = (float(v) for v in fwhm_range_hz)
        if not 0 < lo_w < hi_w:
            raise ValueError(f"fwhm_range_hz must be (low, high) with 0 < low < high, got {fwhm_range_hz}")
        fwhm_range = (lo_w / half_span, hi_w / half_span)
    return _Setup(
        x=x,
        f_mid=float(f_mid),
        half_span=float(half_span),
        dx=dx,
        offsets=offsets,
        shape=model,
        n_peaks=int(n_peaks),
        estimator=estimator,
        min_snr=float(min_snr),
        min_delta_chi2=float(min_delta_chi2),
        max_center_err=None if max_center_err_hz is None else float(max_center_err_hz) / half_span,
        max_center_err_fwhm=float(max_center_err_fwhm),
        fwhm_range=fwhm_range,
        max_iter=int(max_iter),
        backend=backend,
        dtype=dtype,
        saturation_level=saturation_level,
        templates=_make_templates(model, x, dx, offsets, dtype, int(n_peaks) > 1),
    )


def packed_width(n_peaks: int) -> int:
    """Columns of the packed result: per peak centre, FWHM, amplitude, contrast and their errors;
    baseline and its error; converged; reason; delta_chi2; residual_rms."""
    return 8 * n_peaks + 6


def fit_dask_packed(setup: _Setup, spectra, chunk_pixels: int | None = None):
    """Lazy packed fit of a dask array, block by block (the sweep axis becomes one chunk)."""
    import dask.array as da

    spectra = spectra.rechunk({spectra.ndim - 1: -1})
    width = packed_width(setup.n_peaks)

    def block(b: np.ndarray) -> np.ndarray:
        out = fit_packed(setup, b.reshape(-1, b.shape[-1]), chunk_pixels)
        return out.reshape(*b.shape[:-1], width)

    return da.map_blocks(block, spectra, dtype=np.float64, chunks=(*spectra.chunks[:-1], (width,)))


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


@contextlib.contextmanager
def single_threaded_blas():
    """Keep BLAS on one thread while any fit runs (safe to nest and to enter from many threads).

    The fit's only BLAS calls (matched filter, template overlaps) are too small to gain from
    threads, and idle OpenBLAS threads spin for the CPU the element-wise work needs: one thread is
    1.5-2x faster on two cores. Parallelism comes from dask over chunks of pixels instead. The limit
    is process-wide, so it is set by the first fit in and restored by the last one out.
    """
    global _blas_users, _blas_limiter
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def default_chunk_pixels(setup: _Setup) -> int:
    """Pixels per chunk so that the fit's (N, F) buffers (Jacobian, model, residuals, scratch) fit
    in ``WORK_BYTES``."""
    # data, model/residuals, Jacobian columns, line offsets, the data compacted as pixels finish,
    # a scratch row for several peaks and three accumulators for multiplets
    n_buffers = 4 + 3 * setup.n_peaks + (setup.n_peaks > 1) + 3 * (setup.offsets.size > 1)
    per_pixel = n_buffers * setup.x.size * setup.dtype.itemsize
    return max(64, WORK_BYTES // per_pixel)


def fit_packed(
    setup: _Setup,
    flat: np.ndarray,
    chunk_pixels: int | None = None,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Fit (N, F) spectra chunk by chunk; returns (N, packed_width) results.

    ``start``: optional (P, N) starting parameters in physical units (baseline, centres, FWHMs,
    amplitudes) instead of the matched-filter guess.
    """
    out = np.empty((flat.shape[0], packed_width(setup.n_peaks)))
    step = max(1, int(chunk_pixels or default_chunk_pixels(setup)))
    if chunk_pixels is None and setup.backend == "torch":
        from instrument.analysis.torch_lm import default_device

        if default_device() != "cpu":
            step *= 16  # a GPU wants large batches; 16 x WORK_BYTES fits any accelerator's memory
    with single_threaded_blas():
        for i in range(0, flat.shape[0], step):
            part = None if start is None else start[:, i : i + step]
            out[i : i + step] = _fit_chunk(setup, flat[i : i + step], part)
    return out


def refit_from(
    freqs: np.ndarray, spectra: np.ndarray, start: dict[str, np.ndarray], **options
) -> OdmrFit:
    """Fit (N, F) spectra from given starting parameters instead of the matched-filter guess.

    ``start`` holds "baseline" (N,), "center", "fwhm", "amplitude" ((N,) or (N, n_peaks)) in the
    data's units, e.g. the mean of a pixel's neighbours (see ``outliers.refit_outliers``).
    """
    spectra = np.asarray(spectra)
    if spectra.ndim != 2:
        raise ValueError(f"refit_from takes (N, F) spectra, got shape {spectra.shape}")
    opts = fit_options(**options)
    opts["saturation_level"] = saturation_level_for(spectra.dtype, opts["saturation_level"])
    setup = make_setup(freqs, spectra.shape, **opts)
    k = setup.n_peaks
    n = spectra.shape[0]
    theta = np.empty((1 + 3 * k, n))
    theta[0] = np.asarray(start["baseline"], dtype=float).reshape(n)
    for j, name in enumerate(("center", "fwhm", "amplitude")):
        theta[1 + j * k : 1 + (j + 1) * k] = np.asarray(start[name], dtype=float).reshape(n, k).T
    packed = fit_packed(setup, spectra, start=theta)
    fit = unpack(packed, k, opts["model"], opts["hyperfine"])
    fit.options = opts
    return fit


def _start_to_normalised(setup: _Setup, start: np.ndarray, offset, scale) -> tuple[np.ndarray, np.ndarray]:
    """Physical (P, N) start -> normalised parameters and the feature sign (dips -1)."""
    k = setup.n_peaks
    theta = np.empty_like(start)
    theta[0] = (start[0] - offset) / scale
    theta[1 : 1 + k] = (start[1 : 1 + k] - setup.f_mid) / setup.half_span
    theta[1 + k : 1 + 2 * k] = start[1 + k : 1 + 2 * k] / setup.half_span
    theta[1 + 2 * k :] = start[1 + 2 * k :] / scale
    sign = np.where(np.sum(start[1 + 2 * k :], axis=0) > 0, 1.0, -1.0)
    return theta, sign


def _fit_chunk(setup: _Setup, raw: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Screen, normalise, guess, fit and check one chunk of (N, F) spectra."""
    n, f = raw.shape
    k = setup.n_peaks
    reason = np.zeros(n, dtype=np.uint8)
    y = np.array(raw, dtype=setup.dtype)
    total = np.einsum("nf,f->n", y, np.ones(f, y.dtype)).astype(np.float64)  # faster than sum(axis=1)
    finite = np.isfinite(total)  # one pass: any NaN or infinity makes the sum non-finite
    reason[~finite] = FitReason.NON_FINITE
    y[~finite] = 0.0
    total[~finite] = 0.0
    if setup.saturation_level is not None:
        saturated = finite & np.any(raw >= setup.saturation_level, axis=1)
        reason[saturated] = FitReason.SATURATED
    # Normalise each spectrum to zero mean and unit spread so that one set of tolerances fits all data.
    offset = total / f
    y -= offset[:, None].astype(setup.dtype)
    scale = np.sqrt(np.einsum("nf,nf->n", y, y).astype(np.float64) / f)
    flat_spec = ~(scale > 1e-9 * np.maximum(np.abs(offset), 1e-300))
    reason[(reason == 0) & flat_spec] = FitReason.FLAT
    scale[flat_spec] = 1.0
    y *= (1.0 / scale)[:, None].astype(setup.dtype)
    todo = np.flatnonzero(reason == 0)

    theta = np.full((1 + 3 * k, n), np.nan)
    cov = np.full((1 + 3 * k, 1 + 3 * k, n), np.nan)
    cost = np.full(n, np.nan)
    if todo.size:
        yn = y if todo.size == n else y[todo]
        if start is None:
            theta0, sign = _initial_guess(setup, yn)
        else:
            theta0, sign = _start_to_normalised(setup, start[:, todo], offset[todo], scale[todo])
            theta0 = np.where(np.isfinite(theta0), theta0, _initial_guess(setup, yn)[0])
        lower, upper = _bounds(setup, sign)
        model = MultipletModel(setup.shape, setup.x, setup.offsets, k, capacity=todo.size, dtype=setup.dtype)
        if setup.backend == "torch":
            from instrument.analysis.torch_lm import levenberg_marquardt_torch

            res = levenberg_marquardt_torch(
                setup.shape, setup.x, setup.offsets, k, yn, theta0, lower, upper,
                max_iter=setup.max_iter, chi2_tol=CHI2_TOL,
            )
        else:
            res = levenberg_marquardt(
                model, yn, theta0, lower, upper, max_iter=setup.max_iter, chi2_tol=CHI2_TOL
            )
        th, cv, conv = res.theta, res.covariance, res.converged
        if setup.estimator == "poisson":
            counts = np.asarray(raw[todo], dtype=np.float64)
            th, cv, ml_ok = poisson_refine(model, counts, th, lower, upper, offset[todo], scale[todo])
            conv = conv & ml_ok
        theta[:, todo] = th
        cov[:, :, todo] = cv
        cost[todo] = res.cost
        reason[todo] = _judge(setup, th, cv, conv)
    dof = max(f - (1 + 3 * k), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta_chi2 = (f - cost) / (cost / dof)  # the normalised spectrum's flat-model cost is f
    reason[(reason == 0) & ~(delta_chi2 >= setup.min_delta_chi2)] = FitReason.NO_RESONANCE
    residual_rms = np.sqrt(cost / dof) * scale
    packed = _to_physical(setup, theta, cov, offset, scale, reason)
    return np.concatenate([packed, delta_chi2[:, None], residual_rms[:, None]], axis=1)


def poisson_refine(model, counts, theta, lower, upper, offset, scale, max_iter: int = 20):
    """Poisson maximum likelihood by Fisher scoring, started at the least-squares optimum.

    The model lives in normalised units (data = offset + scale * model), so the scoring works on
    the normalised parameters with the raw counts' weights 1 / mu. Steps that raise the negative
    log-likelihood are halved (up to five times). The covariance is the inverse Fisher
    information, with no residual scaling: Poisson noise is known, not estimated.

    Returns theta, covariance (P, P, N) and a mask of pixels whose scoring settled.
    """
    if np.any(counts < 0):
        raise ValueError("the poisson estimator needs photon counts (>= 0); divide ADU by the camera gain")
    p, n = theta.shape
    f = counts.shape[1]
    mbuf = np.empty((n, f), model.dtype)
    jbuf = np.empty((p - 1, n, f), model.dtype)

    def evaluate(th):
        scales = model.evaluate(th, mbuf, jbuf)
        mu = offset[:, None] + scale[:, None] * mbuf.astype(np.float64)
        jac = np.empty((p, n, f))
        jac[0] = scale[:, None]
        jac[1:] = jbuf * (scales[1:, :, None] * scale[None, :, None])
        return np.maximum(mu, 1e-12), jac

    def nll(mu):
        return np.einsum("nf->n", mu - counts * np.log(mu))

    theta = theta.copy()
    mu, jac = evaluate(theta)
    current = nll(mu)
    settled = np.zeros(n, dtype=bool)
    info = np.empty((p, p, n))
    for _ in range(max_iter):
        w = 1.0 / mu
        info = np.einsum("pnf,qnf,nf->pqn", jac, jac, w)
        score = np.einsum("pnf,nf->pn", jac, (counts - mu) * w)
        step, ok = cholesky_solve(info, score)
        step = np.where(ok, step, 0.0)
        # A step that would gain less than 1e-4 in log-likelihood (it moves the parameters by ~0.01
        # standard errors) is the end; so is one the bounds cut to nothing.
        clipped = np.clip(theta + step, lower, upper) - theta
        settled |= ok & (
            (np.einsum("pn,pn->n", step, score) < 1e-4) | np.all(np.abs(clipped) < 1e-12, axis=0)
        )
        frac = np.ones(n)
        for _half in range(6):
            trial = np.clip(theta + frac * step, lower, upper)
            mu_t, jac_t = evaluate(trial)
            new = nll(mu_t)
            good = new <= current
            if good.all():
                break
            frac = np.where(good, frac, 0.5 * frac)
        good &= ~settled
        theta = np.where(good, trial, theta)
        current = np.where(good, new, current)
        mu = np.where(good[:, None], mu_t, mu)
        jac = np.where(good[None, :, None], jac_t, jac)
        if settled.all():
            break
    w = 1.0 / mu
    info = np.einsum("pnf,qnf,nf->pqn", jac, jac, w)
    ident = np.broadcast_to(np.eye(p)[:, :, None], (p, p, n)).copy()
    cov, ok = cholesky_solve(info, ident)
    cov[:, :, ~ok] = np.nan
    return theta, cov, settled


def _make_templates(
    shape: str, x: np.ndarray, dx: float, offsets: np.ndarray, dtype: np.dtype, with_gram: bool
) -> _Templates:
    """Multiplet templates on a grid of widths (factor 2.5 apart, from two samples to the half span)
    and, for each width, of centres 0.75 width apart (at least one sample): a start within 0.4 width
    and a factor ~1.6 in width of the best grid point is well inside the basin of the
    Levenberg-Marquardt refinement, and ~100 templates keep the matched filter cheap."""
    widths = [2.0 * dx]
    while widths[-1] * 2.5 < 1.0:
        widths.append(widths[-1] * 2.5)
    widths.append(1.0)
    xs = np.sort(x)
    cc, ww = [], []
    for w in widths:
        stride = max(1, int(round(0.75 * w / dx)))
        centers = xs[::stride]
        cc.append(centers)
        ww.append(np.full(centers.size, w))
    cc, ww = np.concatenate(cc), np.concatenate(ww)
    t = sum(line(shape, x[None, :], cc[:, None] + off, ww[:, None]) for off in offsets) / len(offsets)
    mean = t.mean(axis=1)
    centred = t - mean[:, None]
    norm = np.linalg.norm(centred, axis=1)
    keep = norm > 1e-6
    unit = centred[keep] / norm[keep, None]
    cc, ww = cc[keep], ww[keep]
    # Neighbours along the centre axis (templates are grouped by width with rising centres).
    idx = np.arange(cc.size)
    same_left = np.r_[False, ww[1:] == ww[:-1]]
    same_right = np.r_[ww[:-1] == ww[1:], False]
    left = np.where(same_left, idx - 1, idx)
    right = np.where(same_right, idx + 1, idx)
    narrower, wider = idx.copy(), idx.copy()
    levels = np.unique(ww)
    for lo_w, hi_w in zip(levels[:-1], levels[1:], strict=True):
        lo_idx, hi_idx = np.flatnonzero(ww == lo_w), np.flatnonzero(ww == hi_w)
        wider[lo_idx] = hi_idx[np.argmin(np.abs(cc[lo_idx, None] - cc[None, hi_idx]), axis=1)]
        narrower[hi_idx] = lo_idx[np.argmin(np.abs(cc[hi_idx, None] - cc[None, lo_idx]), axis=1)]
    gram = (unit @ unit.T).astype(dtype) if with_gram else None
    return _Templates(unit.astype(dtype), norm[keep], mean[keep], cc, ww, left, right, narrower, wider, gram)


def _initial_guess(setup: _Setup, yn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matched-filter start: the best template, subtract it, the next best, ...; then each peak is
    taken out and picked again given the others (two back-fitting sweeps), which splits a broad
    template that had swallowed two close lines.

    For one line this is the least-squares optimum over the template grid, so the start is global and
    the Levenberg-Marquardt refinement only has to polish it.
    """
    tpl = setup.templates
    scores = yn @ tpl.unit.T
    n = yn.shape[0]
    k = setup.n_peaks
    rows = np.arange(n)
    hi_idx, lo_idx = np.argmax(scores, axis=1), np.argmin(scores, axis=1)
    sign = _feature_sign(yn, scores, rows, hi_idx, lo_idx)
    best = np.zeros((k, n), dtype=np.intp)
    picked = np.zeros((k, n))
    theta = np.empty((1 + 3 * k, n))
    passes = 3 if k > 1 else 1
    for sweep in range(passes):
        last = sweep == passes - 1
        for p in range(k):
            if sweep > 0:
                scores += picked[p][:, None].astype(scores.dtype) * tpl.gram[best[p]]
            if sweep > 0 or p > 0:
                hi_idx, lo_idx = np.argmax(scores, axis=1), np.argmin(scores, axis=1)
            b = np.where(sign > 0, hi_idx, lo_idx)
            best[p], picked[p] = b, scores[rows, b]
            if last:
                theta[1 + p] = _refined_center(tpl, scores, rows, b, sign)
                theta[1 + k + p] = _refined_width(tpl, scores, rows, b, sign)
            if k > 1:
                scores -= picked[p][:, None].astype(scores.dtype) * tpl.gram[b]
    amp = picked / tpl.norm[best]
    theta[1 + 2 * k :] = np.where(sign * amp > 0, amp, sign * 1e-3)
    theta[0] = -np.sum(amp * tpl.mean[best], axis=0)
    return theta, sign


def _feature_sign(yn: np.ndarray, scores: np.ndarray, rows: np.ndarray, hi_idx, lo_idx) -> np.ndarray:
    """-1 for dips, +1 for peaks, per pixel.

    Lines cover a minority of the sweep, so the spectrum is skewed towards them: the sign of the
    skewness decides when it is clearly non-zero (it is not fooled by a broad template fitting the
    baseline between many dips); otherwise the sign of the best template's score does.
    """
    f = yn.shape[1]
    skew = np.einsum("nf,nf,nf->n", yn, yn, yn).astype(np.float64) / f
    top, bottom = scores[rows, hi_idx], scores[rows, lo_idx]
    sign = np.where(top >= -bottom, 1.0, -1.0)
    clear = np.abs(skew) > 3.0 * np.sqrt(6.0 / f)  # three standard deviations of Gaussian noise's skew
    sign = np.where(clear, np.sign(skew), sign)
    sign[sign == 0] = -1.0
    return sign


def _refined_center(tpl: _Templates, scores, rows, best, sign) -> np.ndarray:
    """Centre of the parabola through the best score and its two neighbours along the centre grid:
    a start a fraction of a grid step from the optimum saves Levenberg-Marquardt iterations."""
    lft, rgt = tpl.left[best], tpl.right[best]
    s0 = sign * scores[rows, best]
    sl = sign * scores[rows, lft]
    sr = sign * scores[rows, rgt]
    curvature = sl - 2.0 * s0 + sr
    inner = (lft != best) & (rgt != best) & (curvature < 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(inner, 0.5 * (sl - sr) / curvature, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    step = np.where(shift < 0, tpl.center[best] - tpl.center[lft], tpl.center[rgt] - tpl.center[best])
    return tpl.center[best] + shift * step


def _refined_width(tpl: _Templates, scores, rows, best, sign) -> np.ndarray:
    """Width at the vertex of the parabola (in log width) through the best score and those of the
    neighbouring widths: the width grid is coarse (factor 2.5), so this saves iterations too."""
    nar, wid = tpl.narrower[best], tpl.wider[best]
    u0 = np.log(tpl.fwhm[best])
    ul, ur = np.log(tpl.fwhm[nar]), np.log(tpl.fwhm[wid])
    s0 = sign * scores[rows, best]
    sl = sign * scores[rows, nar]
    sr = sign * scores[rows, wid]
    inner = (nar != best) & (wid != best)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Vertex of the parabola through three points with unequal spacing.
        num = (u0 - ul) ** 2 * (s0 - sr) - (u0 - ur) ** 2 * (s0 - sl)
        den = (u0 - ul) * (s0 - sr) - (u0 - ur) * (s0 - sl)
        vertex = u0 - 0.5 * num / den
    good = inner & np.isfinite(vertex) & (den != 0)
    vertex = np.where(good, np.clip(vertex, 0.5 * (ul + u0), 0.5 * (u0 + ur)), u0)
    return np.exp(vertex)


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
    if setup.min_snr > 0:
        weak = np.any(~(np.abs(amps) >= setup.min_snr * amp_err), axis=0)
        reason[(reason == 0) & weak] = FitReason.NO_RESONANCE
    lo_w, hi_w = setup.fwhm_range
    bad_width = np.any((widths < lo_w) | (widths > hi_w), axis=0)
    reason[(reason == 0) & bad_width] = FitReason.WIDTH_OUT_OF_RANGE
    center_err = np.sqrt(np.abs(var[1 : 1 + k]))
    bound = setup.max_center_err_fwhm * widths
    if setup.max_center_err is not None:
        bound = np.minimum(bound, setup.max_center_err)
    uncertain = np.any(~(center_err <= bound), axis=0)
    reason[(reason == 0) & uncertain] = FitReason.UNCERTAIN
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
        delta_chi2=packed[..., 8 * k + 4].copy(),
        residual_rms=packed[..., 8 * k + 5].copy(),
        model=model,
        n_peaks=k,
        hyperfine=hyperfine,
    )
