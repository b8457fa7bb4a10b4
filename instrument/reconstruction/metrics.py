"""Reconstruction scores of seed 000 (Table 1): SSIM, RRMSE, Pearson r, and active-set precision/recall/F1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=float)
    estimate = np.asarray(estimate, dtype=float)
    if reference.shape != estimate.shape:
        raise ValueError(f"reference {reference.shape} and estimate {estimate.shape} differ in shape")
    if reference.size < 2:
        raise ValueError("maps need at least two pixels")
    if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(estimate))):
        raise ValueError("maps contain NaN or inf pixels; mask or fill them before scoring")
    return reference, estimate


def ssim(reference: np.ndarray, estimate: np.ndarray, data_range: float | None = None) -> float:
    """Structural similarity (Wang et al. 2004) of two 2-D maps, via scikit-image.

    Args:
        reference: the measured (or true) map.
        estimate: the reconstruction.
        data_range: the dynamic range the SSIM constants refer to, in map units. ``None`` uses the
            peak-to-peak of ``reference`` (not of both maps, so a bad estimate cannot inflate it).
    """
    from skimage.metrics import structural_similarity

    reference, estimate = _pair(reference, estimate)
    if reference.ndim != 2 or min(reference.shape) < 7:
        raise ValueError(f"SSIM needs 2-D maps of at least 7x7 pixels, got {reference.shape}")
    data_range = float(np.ptp(reference)) if data_range is None else float(data_range)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range} (is the reference map flat?)")
    return float(structural_similarity(reference, estimate, data_range=data_range))


def rrmse(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Relative root-mean-square error ``|estimate - reference| / |reference|`` (Frobenius norms)."""
    reference, estimate = _pair(reference, estimate)
    norm = np.linalg.norm(reference)
    if norm == 0:
        raise ValueError("reference map is all zero; RRMSE is undefined")
    return float(np.linalg.norm(estimate - reference) / norm)


def pearson_r(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Pearson correlation coefficient of the pixel values; NaN if either map is constant."""
    reference, estimate = _pair(reference, estimate)
    a = reference.ravel() - reference.mean()
    b = estimate.ravel() - estimate.mean()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class SetScores:
    """Active-set agreement: counts and the scores derived from them."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1.0 when nothing was claimed active (no false claims)."""
        claimed = self.true_positives + self.false_positives
        return self.true_positives / claimed if claimed else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1.0 when nothing was truly active (nothing missed)."""
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (1.0 when both sets are empty)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def active_set_scores(true_active: np.ndarray, estimated_active: np.ndarray) -> SetScores:
    """Compare boolean masks of active sources (any shape, e.g. (N,) or (T, N) pooled over frames)."""
    t = np.asarray(true_active)
    e = np.asarray(estimated_active)
    if t.shape != e.shape:
        raise ValueError(f"true {t.shape} and estimated {e.shape} active masks differ in shape")
    if t.dtype != bool or e.dtype != bool:
        raise TypeError("active masks must be boolean arrays (use coefficients >= threshold)")
    return SetScores(int(np.sum(t & e)), int(np.sum(~t & e)), int(np.sum(t & ~e)))
