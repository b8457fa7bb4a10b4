"""The seed-000 reconstruction experiments: static coil combinations and temporal AP-like movies.

Arrays and callables in, scores out, so the same code scores the simulator and real acquisitions:

- ``basis``: (N, rows, cols) measured map of each source alone at its reference drive
  (``measure_basis`` builds it from ``measure``).
- ``measure(drive)``: one measured map (rows, cols) for a drive vector (N,) in units of the
  reference drive (1.0 = the basis drive), with whatever noise, drift and hot pixels the
  instrument has.
- ``measure_movie(drives)``: a movie (T, rows, cols) for drives (T, N); defaults to calling
  ``measure`` per frame.

Scores follow seed 000 Table 1: SSIM, RRMSE and Pearson r between the measured map and the LASSO
reconstruction (both with the fitted background drift removed, as the fit sees them, and hot
pixels of the measured map replaced by their 3x3 median, like the paper's saturation correction),
plus the active-set F1 of LASSO and of the pseudo-inverse against the true drive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from instrument.reconstruction.dictionary import DictionaryReconstructor, clean_hot_pixels
from instrument.reconstruction.metrics import active_set_scores, pearson_r, rrmse, ssim

Measure = Callable[[np.ndarray], np.ndarray]
MeasureMovie = Callable[[np.ndarray], np.ndarray]

STATIC_COMBINATIONS: dict[str, tuple[int, ...]] = {
    "2 coils": (4, 6),
    "4 coils": (0, 2, 3, 7),
    "7 coils": (0, 2, 3, 4, 5, 6, 7),
}
"""Source indices of the static cases. For the bundled simulated sample the 8 live coils in order
are L1C1 L1C2 L1C3 L2C1 L2C3 L2C4 L3C2 L3C4, so the 2-coil case sits in layers 2 and 3 (the deeper
layers, like the paper's case (i)), the 4-coil case spans all layers and the 7-coil case leaves out
one top-layer coil."""

PAPER_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "static": {"ssim": (0.5729, 0.8201), "rrmse": (0.2051, 0.2897), "r": (0.9517, 0.9765)},
    "temporal": {"ssim": (0.1615, 0.31), "rrmse": (0.3604, 0.5389), "r": (0.2851, 0.7605)},
}
"""Seed 000: Table 1 (static) and the temporal ranges quoted in the text and abstract."""

SPARSITY_EVENTS_PER_SOURCE = {"high": 1, "low": 3}
"""AP-like events per source in a temporal movie: one (few sources overlap) or three (many do)."""


@dataclass(frozen=True)
class CaseResult:
    """Scores of one experiment; map scores are ranges (min, max) over the frames scored."""

    name: str
    ssim: tuple[float, float]
    rrmse: tuple[float, float]
    r: tuple[float, float]
    f1_lasso: float
    f1_pinv: float
    alpha: tuple[float, float]
    frames_scored: int


@dataclass
class Seed000Report:
    """All cases of ``run_all``; ``str()`` gives the printable table."""

    cases: list[CaseResult] = field(default_factory=list)

    def table(self) -> str:
        """Fixed-width table of every case next to the paper's ranges."""

        def span(lo_hi: tuple[float, float]) -> str:
            lo, hi = lo_hi
            if not np.isfinite(lo):
                return "-"
            return f"{lo:.3f}" if np.isclose(lo, hi) else f"{lo:.3f}-{hi:.3f}"

        head = (f"{'case':<22}{'SSIM':>14}{'RRMSE':>14}{'Pearson r':>14}{'F1 LASSO':>10}{'F1 pinv':>9}"
                f"{'alpha':>14}")
        lines = [head, "-" * len(head)]
        for c in self.cases:
            lines.append(f"{c.name:<22}{span(c.ssim):>14}{span(c.rrmse):>14}{span(c.r):>14}"
                         f"{c.f1_lasso:>10.3f}{c.f1_pinv:>9.3f}{span(c.alpha):>14}")
        for kind, ranges in PAPER_RANGES.items():
            lines.append(f"{'paper ' + kind:<22}{span(ranges['ssim']):>14}{span(ranges['rrmse']):>14}"
                         f"{span(ranges['r']):>14}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def measure_basis(measure: Measure, n_sources: int, averages: int = 1) -> np.ndarray:
    """Basis maps (N, rows, cols): each source alone at its reference drive, averaged ``averages`` times."""
    if n_sources < 1 or averages < 1:
        raise ValueError(f"n_sources and averages must be >= 1, got {n_sources}, {averages}")
    eye = np.eye(n_sources)
    return np.stack([np.mean([np.asarray(measure(eye[i]), dtype=float) for _ in range(averages)], axis=0)
                     for i in range(n_sources)])


def _map_scores(rec: DictionaryReconstructor, measured: np.ndarray, coefficients: np.ndarray):
    # Seed 000 corrects saturated pixels before scoring; hot pixels get the same treatment here.
    cleaned = clean_hot_pixels(measured[None], rec.hot_pixel_sigma)[0][0]
    reference = rec.detrend(cleaned)
    estimate = rec.detrend(rec.reconstruct(coefficients))
    return ssim(reference, estimate), rrmse(reference, estimate), pearson_r(reference, estimate)


def _span(values: Sequence[float]) -> tuple[float, float]:
    # Pearson r is undefined (NaN) on a frame whose reconstruction is all zero; such frames are left
    # out of the range, and a case with no defined value prints "-".
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if len(v) else (float("nan"), float("nan"))


def static_experiment(basis: np.ndarray, measure: Measure,
                      combinations: dict[str, tuple[int, ...]] | None = None, drive: float = 1.0,
                      reconstructor: DictionaryReconstructor | None = None) -> list[CaseResult]:
    """Reconstruct one measured map per coil combination (seed 000 Figure 2 and Table 1)."""
    rec = reconstructor or DictionaryReconstructor(basis)
    combinations = STATIC_COMBINATIONS if combinations is None else combinations
    results = []
    for name, active in combinations.items():
        if not active or min(active) < 0 or max(active) >= rec.n_sources:
            raise ValueError(f"combination {name!r} has source indices {active} "
                             f"outside 0..{rec.n_sources - 1}")
        truth = np.zeros(rec.n_sources)
        truth[list(active)] = drive
        measured = _checked_map(measure(truth), rec.shape, name)
        lasso = rec.fit(measured)
        alpha = float(rec.alpha_)
        pinv = rec.fit(measured, method="pinv")
        s, e, r = _map_scores(rec, measured, lasso)
        true_active = rec.active(truth)
        results.append(CaseResult(
            name=f"static {name}", ssim=(s, s), rrmse=(e, e), r=(r, r),
            f1_lasso=active_set_scores(true_active, rec.active(lasso)).f1,
            f1_pinv=active_set_scores(true_active, rec.active(pinv)).f1,
            alpha=(alpha, alpha), frames_scored=1))
    return results


def ap_waveform(times_s: np.ndarray, duration_s: float = 0.3, undershoot: float = 0.2) -> np.ndarray:
    """Action-potential-like pulse starting at t = 0, peak 1, lasting ``duration_s`` (zero outside).

    Fast rise over the first 15 %, fall through zero to ``-undershoot`` by 45 %, then a slow
    recovery (the refractory hyperpolarisation) back to zero at ``duration_s``.
    """
    u = np.asarray(times_s, dtype=float) / duration_s
    rise = 0.5 * (1 - np.cos(np.pi * u / 0.15))
    fall = (1 + undershoot) * 0.5 * (1 + np.cos(np.pi * (u - 0.15) / 0.30)) - undershoot
    recover = -undershoot * 0.5 * (1 + np.cos(np.pi * (u - 0.45) / 0.55))
    out = np.where(u < 0.15, rise, np.where(u < 0.45, fall, recover))
    return np.where((u >= 0) & (u < 1), out, 0.0)


def temporal_drives(n_sources: int, n_frames: int, frame_rate_hz: float, sparsity: str,
                    rng: np.random.Generator, peak: float = 1.0, duration_s: float = 0.3,
                    refractory_s: float = 0.1) -> np.ndarray:
    """Drive matrix (T, N) of AP-like events (seed 000 Figures 3-4 waveform matrices).

    Each source fires ``SPARSITY_EVENTS_PER_SOURCE[sparsity]`` times at random onsets; onsets of one
    source are at least ``duration_s + refractory_s`` apart, so a source never re-fires while it is
    recovering.
    """
    if sparsity not in SPARSITY_EVENTS_PER_SOURCE:
        raise ValueError(f"sparsity must be one of {list(SPARSITY_EVENTS_PER_SOURCE)}, got {sparsity!r}")
    events = SPARSITY_EVENTS_PER_SOURCE[sparsity]
    total_s = n_frames / frame_rate_hz
    gap = duration_s + refractory_s
    if events * gap > total_s:
        raise ValueError(f"{events} events of {gap:.2f} s do not fit a {total_s:.2f} s movie; "
                         "use more frames")
    t = np.arange(n_frames) / frame_rate_hz
    drives = np.zeros((n_frames, n_sources))
    for j in range(n_sources):
        # Spread the events: draw the free time and split it at random between the gaps.
        free = total_s - events * gap
        cuts = np.sort(rng.uniform(0, free, events))
        onsets = cuts + np.arange(events) * gap
        for onset in onsets:
            drives[:, j] += peak * ap_waveform(t - onset, duration_s)
    return drives


def representative_frames(drives: np.ndarray, count: int = 4) -> np.ndarray:
    """``count`` frames spread evenly over the frames with at least half the peak total activity."""
    activity = np.abs(drives).sum(axis=1)
    busy = np.flatnonzero(activity >= 0.5 * activity.max())
    picks = np.linspace(0, len(busy) - 1, min(count, len(busy))).round().astype(int)
    return busy[picks]


def temporal_experiment(basis: np.ndarray, measure_movie: MeasureMovie, sparsity: str,
                        n_frames: int = 300, frame_rate_hz: float = 208.0, peak: float = 1.0,
                        seed: int = 0, reconstructor: DictionaryReconstructor | None = None) -> CaseResult:
    """Frame-by-frame reconstruction of an AP-like movie (seed 000 Figures 3-4).

    Map scores are the range over four representative busy frames, as in the paper; the F1 scores
    pool every frame and source of the movie.
    """
    rec = reconstructor or DictionaryReconstructor(basis)
    drives = temporal_drives(rec.n_sources, n_frames, frame_rate_hz, sparsity, np.random.default_rng(seed),
                             peak=peak)
    movie = np.asarray(measure_movie(drives))
    if movie.shape != (n_frames, *rec.shape):
        raise ValueError(f"measure_movie returned shape {movie.shape}, expected {(n_frames, *rec.shape)}")
    lasso = rec.fit(movie)
    alphas = np.asarray(rec.alpha_)
    pinv = rec.fit(movie, method="pinv")
    frames = representative_frames(drives)
    scores = np.array([_map_scores(rec, movie[f], lasso[f]) for f in frames])
    true_active = rec.active(drives)
    return CaseResult(
        name=f"temporal {sparsity} sparsity", ssim=_span(scores[:, 0]), rrmse=_span(scores[:, 1]),
        r=_span(scores[:, 2]),
        f1_lasso=active_set_scores(true_active, rec.active(lasso)).f1,
        f1_pinv=active_set_scores(true_active, rec.active(pinv)).f1,
        alpha=_span(alphas[frames]), frames_scored=len(frames))


def run_all(basis: np.ndarray, measure: Measure, measure_movie: MeasureMovie | None = None,
            n_frames: int = 300, frame_rate_hz: float = 208.0, peak: float = 1.0, seed: int = 0
            ) -> Seed000Report:
    """Every seed-000 experiment: three static combinations and the high/low-sparsity movies.

    ``print(run_all(basis, measure))`` prints the table. ``peak`` is the AP amplitude in units of the
    reference drive (seed 000: 800 uA pulses on a basis normalised to 800 uA, i.e. 1.0).

    From the simulator (in a layer allowed to import ``sim``)::

        live = [i for i, c in enumerate(world.sample.coils) if not c.dead]

        def measure(drive):
            currents = np.zeros(len(world.sample.coils))
            currents[live] = drive * world.sample.drive_current_a
            return world.true_b_nv_t(currents_a=currents) + noise_drift_and_hot_pixels()

        print(run_all(measure_basis(measure, len(live), averages=4), measure))
    """
    basis = np.asarray(basis, dtype=float)
    rec = DictionaryReconstructor(basis)
    if measure_movie is None:
        def measure_movie(drives: np.ndarray) -> np.ndarray:
            return np.stack([_checked_map(measure(d), rec.shape, "movie frame") for d in drives])
    report = Seed000Report(static_experiment(basis, measure, reconstructor=rec))
    for sparsity in ("high", "low"):
        report.cases.append(temporal_experiment(basis, measure_movie, sparsity, n_frames, frame_rate_hz,
                                                peak, seed, reconstructor=rec))
    return report


def _checked_map(measured: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    measured = np.asarray(measured, dtype=float)
    if measured.shape != shape:
        raise ValueError(f"measure() returned shape {measured.shape} for {what}, "
                         f"expected {shape} like the basis")
    return measured


# ---- fair scoring (issue 18): several methods, scores against the measurement and the truth ------

LAMBDA_GRID = (0.01, 0.03, 0.1, 0.2, 0.3, 0.4)
"""Plain-LASSO lambdas (standardised units, seed 000's lambda) swept next to the automatic alpha."""


def random_configurations(n_sources: int, count: int, rng: np.random.Generator,
                          active_range: tuple[int, int] = (2, 7)) -> list[tuple[int, ...]]:
    """``count`` distinct on/off configurations with 2 to 7 active sources (seed 000 Suppl. Section 3)."""
    lo, hi = active_range
    if not 1 <= lo <= hi <= n_sources:
        raise ValueError(f"active_range {active_range} must lie within 1..{n_sources}")
    seen: set[tuple[int, ...]] = set()
    while len(seen) < count:
        k = int(rng.integers(lo, hi + 1))
        seen.add(tuple(sorted(rng.choice(n_sources, k, replace=False).tolist())))
    return sorted(seen, key=lambda c: (len(c), c))


def map_scores(reference: np.ndarray, estimate: np.ndarray) -> tuple[float, float, float]:
    """(SSIM, RRMSE, Pearson r) of two maps, both as given (detrend them first where needed)."""
    return ssim(reference, estimate), rrmse(reference, estimate), pearson_r(reference, estimate)


def score_map(rec: DictionaryReconstructor, measured: np.ndarray, truth: np.ndarray,
              coefficients: np.ndarray, true_drive: np.ndarray) -> dict[str, float]:
    """Scores of one reconstruction: against the measured map (the paper's), against the truth, F1.

    ``truth`` is the noise-free map an ideal measurement would give; both references are cleaned
    of hot pixels (measured only) and detrended as the fit sees them. ``coef_rms`` is the RMS error
    of the coefficients in units of the reference drive.
    """
    s, e, r = _map_scores(rec, measured, coefficients)
    estimate = rec.detrend(rec.reconstruct(coefficients))
    st, et, rt = map_scores(rec.detrend(truth), estimate)
    f1 = active_set_scores(rec.active(true_drive), rec.active(coefficients)).f1
    return {"ssim": s, "rrmse": e, "r": r, "ssim_truth": st, "rrmse_truth": et, "r_truth": rt,
            "f1": f1, "coef_rms": float(np.sqrt(np.mean((coefficients - true_drive) ** 2)))}


def identity_scores(rec: DictionaryReconstructor, measured: np.ndarray, truth: np.ndarray
                    ) -> dict[str, float]:
    """The trivial baseline: the measured map itself (hot pixels cleaned) as the estimate of the truth."""
    cleaned = clean_hot_pixels(np.asarray(measured, float)[None], rec.hot_pixel_sigma)[0][0]
    st, et, rt = map_scores(rec.detrend(truth), rec.detrend(cleaned))
    return {"ssim_truth": st, "rrmse_truth": et, "r_truth": rt}


def all_on_f1(true_drive: np.ndarray, threshold: float = 0.1) -> float:
    """F1 of the trivial detector that calls every source active."""
    t = np.abs(np.asarray(true_drive)) >= threshold
    return active_set_scores(t, np.ones_like(t)).f1
