"""Dictionary reconstruction of field maps from measured single-source maps (seed 000).

A measured map ``y`` is modelled as ``y = A x + background + noise``: ``A`` holds one measured map
per source (micro-coil) at its reference drive, ``x`` the drive of each source in units of that
reference. Following seed 000 ("Reconstruction Algorithm Using Pseudo-Inverse and LASSO") the basis
and the data are mean-centred and standardised, the coefficients are found by LASSO (or the
pseudo-inverse baseline) and rescaled back to physical units.

How this implementation does it:

- **Centring and drift.** Mean-centring removes a uniform offset; a slow background drift (bias
  field drift, illumination) also tilts the map, so a polynomial surface of order ``drift_order``
  (1: plane) is projected out of basis and data alike. Because the standardised basis ``Z`` is
  orthogonal to that surface, ``Z^T y`` of the raw frame already is the projection of the detrended
  frame: one matrix product per chunk of frames.
- **The small problem.** With ``G = Z^T Z / M`` (N x N) and ``b = Z^T y / M`` the LASSO objective
  ``(1/2M) |y - Z z|^2 + alpha |z|_1`` equals ``z^T G z / 2 - b^T z + alpha |z|_1`` up to a
  constant, so every frame is an N x N problem. All frames are solved together by vectorised
  coordinate descent, then polished exactly on each frame's support (KKT checked).
- **Automatic alpha** (``alpha=None``). The white-noise level ``sigma`` of each frame is estimated
  from the median absolute deviation of second differences along rows (the field is smooth on the
  pixel scale, noise is not; hot pixels do not move a median). Noise alone puts
  ``N(0, sigma^2 / M)`` into each ``b_j``, so ``alpha = z * sigma / sqrt(M)`` with
  ``z = Phi^-1(1 - false_alarm / (2 N))`` makes a frame that holds only noise come out all-zero with
  probability at least ``1 - false_alarm`` (Bonferroni over the N sources; default 1 %). The value
  reported in ``alpha_`` is in the standardised units of seed 000 and scikit-learn (data divided by
  its standard deviation), the units of the paper's lambda.
- **Hot pixels** (and NaN pixels). After a first solve the residual is clipped at
  ``hot_pixel_sigma * sigma``; the excess (and the whole residual at NaN pixels) is removed from
  the data and the frame solved again (iteratively reweighted, Huber-type). A frame gets another
  pass (up to ``robust_passes``) only while its model still moves by more than half a noise sigma
  at some pixel. Each pass is two more matrix products over the frames, done in cache-sized
  blocks. Hot pixels in the basis maps are replaced by their 3x3 median once, at construction.
- **Debiasing.** LASSO shrinks every kept coefficient by about alpha, which pushes weak but real
  sources under the active threshold. By default the selected sources are refitted by least
  squares (relaxed LASSO): LASSO decides which sources, least squares how much.
- **Active sources.** A source counts as active when its coefficient is at least
  ``active_threshold`` of the reference drive in magnitude (default 0.1); LASSO's zeros are never
  active. The same rule applies to the pseudo-inverse, so their active-set scores compare.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import ndtri

METHODS = ("lasso", "pinv")


def polynomial_background(shape: tuple[int, int], order: int) -> np.ndarray:
    """Orthonormal columns (rows*cols, n_terms) spanning 2-D polynomials up to ``order`` on the grid."""
    if order < 0:
        raise ValueError(f"drift_order must be >= 0, got {order}")
    rows, cols = shape
    y, x = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    terms = [x.ravel() ** i * y.ravel() ** (d - i) for d in range(order + 1) for i in range(d + 1)]
    q, _ = np.linalg.qr(np.column_stack(terms))
    return q


def robust_noise_sigma(frames: np.ndarray, max_samples: int = 2048) -> np.ndarray:
    """White-noise standard deviation of each frame (..., rows, cols) from second differences.

    For white noise the second difference along a row has variance 6 sigma^2, and for a field that
    is smooth on the pixel scale its median is zero; so ``1.4826 * median(|d2|) / sqrt(6)`` estimates
    sigma and ignores hot pixels and the few sharp features. Rows are subsampled to about
    ``max_samples`` differences per frame (relative error about 1.1 / sqrt(max_samples)).
    """
    rows, cols = frames.shape[-2:]
    if cols < 3:
        raise ValueError(f"maps need at least 3 columns to estimate noise, got {cols}")
    step = max(1, (rows * (cols - 2)) // max_samples)
    sub = frames[..., ::step, :]
    d2 = np.abs(sub[..., 2:] - 2 * sub[..., 1:-1] + sub[..., :-2]).reshape(*frames.shape[:-2], -1)
    half = d2.shape[-1] // 2
    median = np.partition(d2, half, axis=-1)[..., half]
    return 1.4826 * median / np.sqrt(6.0)


def clean_hot_pixels(maps: np.ndarray, sigmas: float) -> tuple[np.ndarray, int]:
    """Replace pixels of each map (N, rows, cols) that stand out from their 3x3 median.

    A pixel is replaced by the median of its neighbourhood when it differs from it by more than
    ``sigmas`` times the map's noise (``robust_noise_sigma``, floored at 1e-3 of the map's RMS so a
    noise-free map keeps its real structure). Used once on the basis, whose hot pixels would
    otherwise be copied into every reconstruction. Returns the cleaned maps and the pixel count.
    """
    from scipy.ndimage import median_filter

    if sigmas <= 0:
        return maps, 0
    median = median_filter(maps, size=(1, 3, 3), mode="nearest")
    rms = np.sqrt(np.mean(maps**2, axis=(1, 2)))
    limit = sigmas * np.maximum(robust_noise_sigma(maps, max_samples=100000), 1e-3 * rms)
    hot = np.abs(maps - median) > limit[:, None, None]
    return np.where(hot, median, maps), int(hot.sum())


def _soft(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


def lasso_gram(gram: np.ndarray, b: np.ndarray, alpha: np.ndarray, tol: float = 1e-10,
               max_sweeps: int = 2000) -> np.ndarray:
    """Solve ``min_z z^T G z / 2 - b^T z + alpha |z|_1`` for each row of ``b`` (T, N).

    Vectorised coordinate descent over all rows, then each row is polished exactly on its support:
    ``z_S = G_SS^-1 (b_S - alpha sign(z_S))`` is kept where it satisfies the optimality (KKT)
    conditions, which makes the answer exact rather than tolerance-limited.

    Args:
        gram: (N, N) positive-definite Gram matrix.
        b: (T, N) projections.
        alpha: (T,) or scalar, >= 0.
        tol: stop when no coefficient moved by more than ``tol`` times the largest one.
        max_sweeps: cap on coordinate-descent sweeps.
    """
    b = np.atleast_2d(b)
    t_frames, n = b.shape
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (t_frames,))
    diag = np.diag(gram).copy()
    # Warm start: the least-squares solution, soft-thresholded. For well-separated sources it already
    # has the right support, and the polish below then finishes the job without sweeping.
    z = _soft(np.linalg.solve(gram, b.T).T, alpha[:, None] / diag)
    if _polish(gram, b, alpha, z):
        return z
    for sweep in range(max_sweeps):
        largest_step = 0.0
        for j in range(n):
            rho = b[:, j] - z @ gram[:, j] + z[:, j] * diag[j]
            new = _soft(rho, alpha) / diag[j]
            largest_step = max(largest_step, float(np.max(np.abs(new - z[:, j]), initial=0.0)))
            z[:, j] = new
        scale = max(float(np.max(np.abs(z), initial=0.0)), 1e-300)
        if largest_step <= tol * scale or (sweep % 5 == 4 and _polish(gram, b, alpha, z)):
            break
    _polish(gram, b, alpha, z)
    return z


def solve_on_support(gram: np.ndarray, rhs: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Solve ``G_SS z_S = rhs_S`` for each row with its own support S (rows of a bool (T, N) array).

    All rows are solved at once as batched N x N systems: coordinates outside the support get an
    identity row and a zero right-hand side, so they come out zero.
    """
    s = support.astype(float)
    n = gram.shape[0]
    system = gram[None] * (s[:, :, None] * s[:, None, :]) + np.eye(n)[None] * (1 - s)[:, :, None]
    return np.linalg.solve(system, (rhs * s)[..., None])[..., 0]


def _polish(gram: np.ndarray, b: np.ndarray, alpha: np.ndarray, z: np.ndarray) -> bool:
    """Replace each row of ``z`` by the exact solution on its support where KKT holds; True if all do."""
    support = z != 0
    signs = np.sign(z)
    candidate = solve_on_support(gram, b - alpha[:, None] * signs, support)
    grad = b - candidate @ gram  # gram is symmetric
    slack = 1e-9 * (alpha + np.abs(b).max(axis=1) + 1e-300)
    ok = np.all(support | (np.abs(grad) <= alpha[:, None] + slack[:, None]), axis=1)
    ok &= np.all(~support | (np.sign(candidate) == signs), axis=1)
    z[ok] = candidate[ok]
    return bool(ok.all())


def _sparse_nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a mostly-False 2-D bool array whose row length is a multiple of 8.

    Scans 8 bytes at a time, which is several times faster than ``np.nonzero`` on hot-pixel masks.
    """
    width = mask.shape[1]
    words = mask.reshape(-1).view(np.uint64)
    candidates = (np.flatnonzero(words)[:, None] * 8 + np.arange(8)).ravel()
    flat = candidates[mask.reshape(-1)[candidates]]
    return flat // width, flat % width


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # inspecting the loaded libraries takes milliseconds: do it once


def _blas_single_thread():
    """Context limiting BLAS to one thread (cheap after the first call)."""
    return _blas_controller().limit(limits=1, user_api="blas")


class DictionaryReconstructor:
    """Sparse (LASSO) and pseudo-inverse reconstruction of maps from a dictionary of source maps.

    Args:
        basis: (N, rows, cols) measured field map of each source at its reference drive.
        drift_order: order of the polynomial background projected out (0: offset only, 1: plane).
        active_threshold: smallest |coefficient| (units of the reference drive) counted as active.
        false_alarm: probability that a noise-only frame gets any non-zero LASSO coefficient
            under the automatic alpha.
        hot_pixel_sigma: residuals beyond this many noise sigmas are clipped (0 disables).
        chunk_frames: frames solved together (bounds the memory of the per-frame bookkeeping).
        threads: worker threads for the per-pixel passes (numpy releases the GIL in them).
        robust_passes: most hot-pixel reweighting passes (each costs two passes over the data); a
            frame gets another only while its model still moves by more than half a noise sigma.
        debias: refit the sources LASSO selected by least squares (relaxed LASSO), removing the
            shrinkage of the kept coefficients; ``False`` returns the plain LASSO estimate of seed 000.

    ``basis`` keeps the maps after hot-pixel cleaning (``basis_hot_pixels`` replaced pixels).
    After ``fit``, ``alpha_`` holds the standardised alpha used per frame, ``noise_sigma_`` the
    estimated white-noise level per frame (map units) and ``hot_pixels_`` the clipped pixels per frame.
    """

    def __init__(self, basis: np.ndarray, drift_order: int = 1, active_threshold: float = 0.1,
                 false_alarm: float = 0.01, hot_pixel_sigma: float = 6.0, chunk_frames: int = 1024,
                 debias: bool = True, robust_passes: int = 2, threads: int = 2) -> None:
        basis = np.asarray(basis, dtype=float)
        if basis.ndim != 3 or basis.shape[0] < 1:
            raise ValueError(f"basis must have shape (N sources, rows, cols), got {basis.shape}")
        if not np.all(np.isfinite(basis)):
            raise ValueError("basis contains NaN or inf pixels; repair or re-measure those source maps")
        if not 0 < false_alarm < 1:
            raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm}")
        if active_threshold < 0 or hot_pixel_sigma < 0 or chunk_frames < 1 or threads < 1:
            raise ValueError("active_threshold and hot_pixel_sigma must be >= 0, chunk_frames and "
                             "threads >= 1")
        n, rows, cols = basis.shape
        self.basis, self.basis_hot_pixels = clean_hot_pixels(basis, hot_pixel_sigma)
        basis = self.basis
        self.shape = (rows, cols)
        self.n_sources = n
        self.n_pixels = rows * cols
        self.active_threshold = float(active_threshold)
        self.false_alarm = float(false_alarm)
        self.hot_pixel_sigma = float(hot_pixel_sigma)
        self.chunk_frames = int(chunk_frames)
        self.threads = int(threads)
        # Frames per block of the per-pixel passes: about 8 MB of float32, which stays in the L3 cache
        # between the operations of a pass and amortises reading the projector.
        self._block = max(1, 2**21 // self.n_pixels)
        self.debias = bool(debias)
        if robust_passes < 1:
            raise ValueError(f"robust_passes must be >= 1, got {robust_passes}")
        self.robust_passes = int(robust_passes)
        self._background = polynomial_background(self.shape, drift_order)
        if self.n_pixels < 4 * (n + self._background.shape[1]):
            raise ValueError(f"{self.n_pixels} pixels are too few for {n} sources; use larger maps")
        a = basis.reshape(n, -1).T
        detrended = a - self._background @ (self._background.T @ a)
        self.scale = np.linalg.norm(detrended, axis=0) / np.sqrt(self.n_pixels)
        original = np.linalg.norm(a, axis=0) / np.sqrt(self.n_pixels)
        flat = np.flatnonzero(self.scale <= 1e-9 * np.maximum(original, 1e-300))
        if len(flat):
            raise ValueError(f"basis maps {flat.tolist()} are flat after removing the background drift "
                             f"(order {drift_order}); check that those sources were driven")
        z = detrended / self.scale
        self.gram = z.T @ z / self.n_pixels
        if np.linalg.cond(self.gram) > 1e10:
            corr = self.gram - np.eye(n) * 2
            i, j = np.unravel_index(np.argmax(np.abs(corr)), corr.shape)
            raise ValueError(f"basis maps are linearly dependent (maps {i} and {j} correlate at "
                             f"{self.gram[i, j]:.6f}); remove duplicate sources")
        self._gram_inv = np.linalg.inv(self.gram)
        self._z_peak = np.abs(z).max(axis=0)  # largest pixel of each standardised source map
        self._p_peak = np.abs(self._background).max(axis=0)
        # Rows: the standardised basis, then the background terms; one product projects on both.
        self._projector = {np.dtype(np.float64): np.ascontiguousarray(np.vstack([z.T, self._background.T]))}
        self._projector[np.dtype(np.float32)] = self._projector[np.dtype(np.float64)].astype(np.float32)
        self.alpha_: np.ndarray | float | None = None
        self.noise_sigma_: np.ndarray | float | None = None
        self.hot_pixels_: np.ndarray | int | None = None

    # ---- public interface ----------------------------------------------------------------------

    def fit(self, maps: np.ndarray, method: str = "lasso", alpha: float | np.ndarray | None = None
            ) -> np.ndarray:
        """Coefficients of one map (rows, cols) -> (N,) or of a movie (T, rows, cols) -> (T, N).

        Coefficients are in units of the reference drive of the basis (1.0 = the basis drive).

        Args:
            maps: measured map(s); NaN pixels are treated as missing.
            method: ``"lasso"`` or ``"pinv"`` (pseudo-inverse baseline).
            alpha: LASSO regularisation in standardised units (seed 000's lambda); a scalar or one
                per frame. ``None`` chooses it from each frame's noise (see module docstring).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        maps = np.asarray(maps)
        if maps.ndim not in (2, 3) or maps.shape[-2:] != self.shape:
            raise ValueError(f"maps must have shape {self.shape} or (T, *{self.shape}) like the basis, "
                             f"got {maps.shape}")
        if not np.issubdtype(maps.dtype, np.floating) and not np.issubdtype(maps.dtype, np.integer):
            raise TypeError(f"maps must be a real numeric array, got dtype {maps.dtype}")
        single = maps.ndim == 2
        movie = maps[None] if single else maps
        t_frames = movie.shape[0]
        alphas = None
        if alpha is not None:
            alpha_array = np.asarray(alpha, dtype=float)
            if alpha_array.ndim > 1 or alpha_array.size not in (1, t_frames):
                raise ValueError(f"alpha must be a scalar or one value per frame ({t_frames}), "
                                 f"got shape {alpha_array.shape}")
            alphas = np.broadcast_to(alpha_array.reshape(-1), (t_frames,))
            if not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
                raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
        coefficients = np.empty((t_frames, self.n_sources))
        alpha_used = np.empty(t_frames)
        sigma = np.empty(t_frames)
        hot = np.empty(t_frames, dtype=int)
        local = threading.local()
        # One BLAS thread per worker: the products here are thin (N + 3 columns), and a multi-threaded
        # BLAS spends more on synchronising its threads than on the arithmetic; the blocks run in
        # parallel on the pool instead.
        with _blas_single_thread(), ThreadPoolExecutor(max_workers=self.threads) as pool:
            for start in range(0, t_frames, self.chunk_frames):
                sl = slice(start, min(start + self.chunk_frames, t_frames))
                coefficients[sl], alpha_used[sl], sigma[sl], hot[sl] = self._fit_chunk(
                    movie[sl], method, None if alphas is None else alphas[sl], pool, local)
        if single:
            self.alpha_, self.noise_sigma_ = float(alpha_used[0]), float(sigma[0])
            self.hot_pixels_ = int(hot[0])
            return coefficients[0]
        self.alpha_, self.noise_sigma_, self.hot_pixels_ = alpha_used, sigma, hot
        return coefficients

    def reconstruct(self, coefficients: np.ndarray) -> np.ndarray:
        """Map(s) ``sum_j x_j basis_j`` for coefficients (N,) -> (rows, cols) or (T, N) -> (T, rows, cols)."""
        coefficients = np.asarray(coefficients, dtype=float)
        if coefficients.ndim not in (1, 2) or coefficients.shape[-1] != self.n_sources:
            raise ValueError(f"coefficients must have shape ({self.n_sources},) or (T, {self.n_sources}), "
                             f"got {coefficients.shape}")
        return np.tensordot(coefficients, self.basis, axes=(-1, 0))

    def active(self, coefficients: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Boolean mask of active sources: |coefficient| >= threshold (default ``active_threshold``)."""
        threshold = self.active_threshold if threshold is None else float(threshold)
        c = np.asarray(coefficients, dtype=float)
        return (np.abs(c) >= threshold) & (c != 0)

    def detrend(self, maps: np.ndarray) -> np.ndarray:
        """Map(s) with the polynomial background the fit ignores removed (to compare with ``reconstruct``)."""
        maps = np.asarray(maps, dtype=float)
        flat = maps.reshape(-1, self.n_pixels)
        flat = flat - (flat @ self._background) @ self._background.T
        return flat.reshape(maps.shape)

    def alpha_for_noise(self, noise_sigma: np.ndarray | float, data_sigma: np.ndarray | float) -> np.ndarray:
        """Automatic alpha (standardised) for white noise ``noise_sigma`` and data spread ``data_sigma``."""
        return self._alpha_phys(np.asarray(noise_sigma, dtype=float)) / np.asarray(data_sigma, dtype=float)

    # ---- internals -----------------------------------------------------------------------------

    def _alpha_phys(self, sigma: np.ndarray) -> np.ndarray:
        z_crit = float(ndtri(1 - self.false_alarm / (2 * self.n_sources)))
        return z_crit * sigma / np.sqrt(self.n_pixels)

    def _solve(self, b: np.ndarray, alpha_phys: np.ndarray, method: str) -> np.ndarray:
        if method == "pinv":
            return b @ self._gram_inv
        z = lasso_gram(self.gram, b, alpha_phys)
        if self.debias:
            z = solve_on_support(self.gram, b, z != 0)
        return z

    def _blocks(self, pool: ThreadPoolExecutor, fn, t_frames: int) -> list:
        """Run ``fn(start, stop)`` over cache-sized blocks of frames on the thread pool, in order."""
        spans = [(a, min(a + self._block, t_frames)) for a in range(0, t_frames, self._block)]
        if self.threads == 1 or len(spans) == 1:
            return [fn(a, b) for a, b in spans]
        return list(pool.map(lambda span: fn(*span), spans))

    def _fit_chunk(self, chunk: np.ndarray, method: str, alphas: np.ndarray | None,
                   pool: ThreadPoolExecutor, local: threading.local):
        dtype = np.dtype(np.float32) if chunk.dtype == np.float32 else np.dtype(np.float64)
        proj = self._projector[dtype]
        t_frames, m, n = chunk.shape[0], self.n_pixels, self.n_sources
        y = chunk.reshape(t_frames, m)
        if y.dtype != dtype:
            y = y.astype(dtype)
        coords = np.empty((t_frames, proj.shape[0]))
        sq_norm = np.empty(t_frames)
        sigma = np.empty(t_frames)

        def project(start: int, stop: int) -> None:
            block = y[start:stop]
            coords[start:stop] = block @ proj.T  # Z^T y and P^T y
            sq_norm[start:stop] = np.einsum("ij,ij->i", block, block)
            sigma[start:stop] = robust_noise_sigma(block.reshape(stop - start, *self.shape))

        self._blocks(pool, project, t_frames)
        has_bad = not np.all(np.isfinite(sq_norm))
        bad = None
        if has_bad:  # NaN/inf pixels: only now pay for a full mask and a cleaned copy
            bad = ~np.isfinite(y)
            if np.any(bad.all(axis=1)):
                raise ValueError("a frame has no finite pixel; drop it before fitting")
            y = np.where(bad, 0.0, y).astype(dtype)
            self._blocks(pool, project, t_frames)
        b = coords[:, :n] / m
        background = coords[:, n:].copy()
        data_sigma = np.sqrt(np.maximum(sq_norm - np.sum(background**2, axis=1), 0.0) / m)
        alpha_phys = self._alpha_phys(sigma) if alphas is None else alphas * data_sigma
        z = self._solve(b, alpha_phys, method)
        hot = np.zeros(t_frames, dtype=int)
        if self.hot_pixel_sigma > 0 or has_bad:
            # Iteratively reweighted: each pass clips the residual of the previous solution against
            # the original data, so a first solution pulled by hot pixels is corrected in the next.
            b0, background0, sq_norm0 = b.copy(), background.copy(), sq_norm.copy()
            frames = np.arange(t_frames)
            for _ in range(self.robust_passes):
                # Fancy indexing copies: only index once a pass works on a subset of the frames.
                subset = len(frames) < t_frames
                y_pass = y[frames] if subset else y
                model = np.hstack([z[frames], background[frames]])
                excess = self._excess(y_pass, model, sigma[frames],
                                      (bad[frames] if subset else bad) if has_bad else None, pool, local)
                counts = np.diff(excess.indptr)
                hot[frames] = counts
                if not excess.nnz:
                    break
                correction = np.asarray(excess @ self._projector[np.dtype(np.float64)].T)
                previous = background.copy()
                b[frames] = b0[frames] - correction[:, :n] / m
                background[frames] = background0[frames] - correction[:, n:]
                # |y - e|^2 = |y|^2 - 2 y.e + |e|^2, with e sparse
                y_dot_e = np.asarray(excess.multiply(y_pass).sum(axis=1)).ravel()
                e_sq = np.asarray(excess.multiply(excess).sum(axis=1)).ravel()
                sq_norm[frames] = sq_norm0[frames] - 2 * y_dot_e + e_sq
                data_sigma = np.sqrt(np.maximum(sq_norm - np.sum(background**2, axis=1), 0.0) / m)
                if alphas is not None:
                    alpha_phys = alphas * data_sigma
                z_new = self._solve(b[frames], alpha_phys[frames], method)
                # Another pass only helps where the model moved enough to change which pixels are
                # clipped: bound the largest change of any model pixel and compare it with the noise.
                moved = (np.abs(z_new - z[frames]) @ self._z_peak
                         + np.abs(background[frames] - previous[frames]) @ self._p_peak)
                z[frames] = z_new
                frames = frames[(counts > 0) & (moved > 0.5 * sigma[frames])]
                if not len(frames):
                    break
        coefficients = z / self.scale
        if method == "pinv":
            alpha_std = np.zeros(t_frames)
        else:
            alpha_std = np.where(data_sigma > 0, alpha_phys / np.where(data_sigma > 0, data_sigma, 1.0), 0.0)
        return coefficients, alpha_std, sigma, hot

    def _excess(self, y: np.ndarray, model_coords: np.ndarray, sigma: np.ndarray, bad: np.ndarray | None,
                pool: ThreadPoolExecutor, local: threading.local):
        """Sparse (T, M) part of the residual beyond the hot-pixel limit (all of it at ``bad`` pixels).

        Works block by block in per-thread buffers that stay in the CPU cache between the model
        product, the subtraction and the comparison; fresh multi-megabyte arrays per chunk would cost
        more in memory traffic and page faults than the arithmetic.
        """
        import scipy.sparse

        t_frames, m = y.shape
        dtype = y.dtype
        projector = self._projector[dtype]
        limit = (self.hot_pixel_sigma * sigma if self.hot_pixel_sigma > 0 else np.full(t_frames, np.inf))
        limit = limit.astype(dtype)[:, None]
        coords = model_coords.astype(dtype)

        def block_excess(start: int, stop: int):
            work = getattr(local, "work", None)
            if work is None or work["residual"].dtype != dtype:
                # The mask is padded to whole 8-byte words (the padding stays False) for _sparse_nonzero.
                work = local.work = {"residual": np.empty((self._block, m), dtype),
                                     "magnitude": np.empty((self._block, m), dtype),
                                     "mask": np.zeros((self._block, -(-m // 8) * 8), bool)}
            rows_here = stop - start
            residual, magnitude = work["residual"][:rows_here], work["magnitude"][:rows_here]
            mask = work["mask"][:rows_here]
            np.matmul(coords[start:stop], projector, out=residual)
            np.subtract(y[start:stop], residual, out=residual)
            np.abs(residual, out=magnitude)
            np.greater(magnitude, limit[start:stop], out=mask[:, :m])
            if bad is not None:
                np.logical_or(mask[:, :m], bad[start:stop], out=mask[:, :m])
            rows, cols = _sparse_nonzero(mask)
            values = residual[rows, cols].astype(np.float64)
            lim = limit[start + rows, 0].astype(np.float64)
            clipped = values - np.clip(values, -lim, lim)
            if bad is not None:
                clipped = np.where(bad[start + rows, cols], values, clipped)
            return rows + start, cols, clipped

        parts = self._blocks(pool, block_excess, t_frames)
        rows, cols, values = (np.concatenate(p) for p in zip(*parts, strict=True))
        return scipy.sparse.csr_matrix((values, (rows, cols)), shape=y.shape)
