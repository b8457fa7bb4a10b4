"""Vector field, D and E per pixel from the eight ODMR lines of a {100} diamond, exact Hamiltonian.

Each NV axis i has the ground-state spin-1 Hamiltonian (in its own frame, z along the axis)

    H_i = D Sz^2 + E (Sx^2 - Sy^2) + gamma_e B . (Sx x_i + Sy y_i + Sz z_i)

diagonalised exactly (not the first-order projection f = D -/+ gamma B . n, which at a few mT
off-axis is MHz off). Below the ground-state level anticrossing (|B| << D / gamma ~ 0.1 T) the
lowest eigenstate is the ms=0-like one, so the two lines of axis i are e1 - e0 and e2 - e0.

``fit_vector_field`` works in two batched stages: ``fit_odmr`` finds the eight line centres (and
their errors) of every pixel, then a batched Levenberg-Marquardt on the exact eigenvalues solves B,
D and E per pixel from them (weights from the centre errors, eigenvalue derivatives by
Hellmann-Feynman). The measured lines are matched to the model's in sorted order, so it needs the
eight lines resolved. A 15N/14N hyperfine multiplet is fitted as one line group per transition
(``hyperfine=``): the multiplet centre is the electron transition of the Hamiltonian above.

Symmetry: the four axes (+-1, +-1, 1)/sqrt(3) are mapped onto themselves (up to sign) by every
signed permutation of (x, y, z), 48 in all, and the spectrum depends on B only through |B . n_i|
and |B x n_i| (exactly so at E = 0). Eight lines therefore fix B only up to those 48 operations.
``bias_t`` (an approximate bias vector) picks the one nearest to it; without it the fit reports
the representative with Bx >= By >= Bz >= 0 for the median pixel and says so in ``ambiguity``.
The frame is that of ``instrument.physics.nv.NV_AXES``; each NV's x axis is the projection of the
surface normal +z onto its transverse plane (the convention for E).
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

import numpy as np

from instrument.analysis.fieldmap import vector_field, vector_field_from_lines
from instrument.physics.constants import D_HZ, GAMMA_E_HZ_PER_T
from instrument.physics.nv import NV_AXES

_R2 = 1.0 / np.sqrt(2.0)
SX = _R2 * np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=complex)
SY = _R2 * np.array([[0, -1j, 0], [1j, 0, -1j], [0, 1j, 0]], dtype=complex)
SZ = np.diag([1.0, 0.0, -1.0]).astype(complex)
KILO = 1e3  # B is handled in mT and D, E in MHz inside the solver: all parameters of order 1..1000
TEMPERATURE_COEFF_HZ_PER_K = -74.2e3
"""dD/dT of the NV ground state near room temperature (Acosta et al., PRL 104, 070801 (2010))."""


class VectorReason(enum.IntEnum):
    """Why a pixel's vector fit is (not) trusted; ``VectorFit.reason``."""

    OK = 0
    LINES_FAILED = 1
    """The eight-line fit of the spectrum was rejected (see ``VectorFit.line_fit.reason``)."""
    NOT_CONVERGED = 2
    """The Hamiltonian solve reached its iteration limit."""
    SINGULAR = 3
    """B, D, E are not determined by the line positions."""
    POOR_FIT = 4
    """The eight lines are not those of one field (chi-square per degree of freedom above
    ``max_chi2``): lines misassigned, overlapping, or a second field in the pixel."""


@dataclass
class VectorFit:
    """Per-pixel exact-Hamiltonian fit. Maps have the pixel shape; ``b_t`` has a trailing 3."""

    b_t: np.ndarray
    b_err_t: np.ndarray
    d_hz: np.ndarray
    d_err_hz: np.ndarray
    e_hz: np.ndarray
    e_err_hz: np.ndarray
    chi2: np.ndarray
    """Sum of squared, error-weighted line residuals (3 degrees of freedom)."""
    reason: np.ndarray
    ambiguity: str | None
    """None when ``bias_t`` chose among the symmetry-equivalent fields; else what remains."""
    line_fit: object = None
    """The ``OdmrFit`` of the eight lines (None when fitted from given centres)."""
    options: dict = field(default_factory=dict)

    @property
    def converged(self) -> np.ndarray:
        return self.reason == VectorReason.OK

    def temperature_shift_k(self, d_ref_hz: float = D_HZ) -> np.ndarray:
        """Temperature change from the D map (strain shifts D too: a map, not a thermometer)."""
        return (self.d_hz - d_ref_hz) / TEMPERATURE_COEFF_HZ_PER_K


def nv_frames(axes: np.ndarray = NV_AXES) -> np.ndarray:
    """(n_axes, 3, 3) rows x_i, y_i, z_i of each NV's frame in the lab frame."""
    axes = np.asarray(axes, dtype=float)
    z_hat = np.array([0.0, 0.0, 1.0])
    frames = np.empty((len(axes), 3, 3))
    for i, n in enumerate(axes):
        n = n / np.linalg.norm(n)
        x = z_hat - (z_hat @ n) * n
        if np.linalg.norm(x) < 1e-9:  # an axis along z: any transverse x will do
            x = np.array([1.0, 0.0, 0.0])
        x /= np.linalg.norm(x)
        frames[i] = [x, np.cross(n, x), n]
    return frames


def _hamiltonians(b: np.ndarray, d: np.ndarray, e: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(N, A, 3, 3) Hamiltonians (units of d) for fields b (N, 3) in units of d / gamma."""
    local = np.einsum("acj,nj->nac", frames, b)  # (N, A, 3) field components in each NV frame
    h = (d[:, None, None, None] * (SZ @ SZ) + e[:, None, None, None] * (SX @ SX - SY @ SY)) + 0j
    h = np.broadcast_to(h, (b.shape[0], frames.shape[0], 3, 3)).copy()
    for c, s in enumerate((SX, SY, SZ)):
        h += local[..., c, None, None] * s
    return h


def transition_frequencies_hz(
    b_t: np.ndarray, d_hz: float | np.ndarray = D_HZ, e_hz: float | np.ndarray = 0.0, axes=NV_AXES
) -> np.ndarray:
    """Exact ms=0 -> ms=-1/+1 transition frequencies (..., n_axes, 2) for fields b_t (..., 3)."""
    b = np.asarray(b_t, dtype=float)
    shape = b.shape[:-1]
    b2 = b.reshape(-1, 3) * GAMMA_E_HZ_PER_T / 1e6  # in MHz
    d = np.broadcast_to(np.asarray(d_hz, dtype=float) / 1e6, shape).reshape(-1)
    e = np.broadcast_to(np.asarray(e_hz, dtype=float) / 1e6, shape).reshape(-1)
    w = np.linalg.eigvalsh(_hamiltonians(b2, d, e, nv_frames(axes)))
    return (1e6 * (w[..., 1:] - w[..., :1])).reshape(*shape, len(axes), 2)


def first_order_frequencies_hz(b_t: np.ndarray, d_hz: float = D_HZ, axes=NV_AXES) -> np.ndarray:
    """The first-order picture f = D -/+ gamma |B . n| (..., n_axes, 2), for comparison."""
    proj = np.abs(np.asarray(b_t, dtype=float) @ np.asarray(axes, dtype=float).T)
    return np.stack([d_hz - GAMMA_E_HZ_PER_T * proj, d_hz + GAMMA_E_HZ_PER_T * proj], axis=-1)


def signed_permutations() -> np.ndarray:
    """The 48 signed permutation matrices: the symmetry group of the {100} diamond's NV axes."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), perm] = signs
            mats.append(m)
    return np.array(mats)


def nearest_equivalent(b_t: np.ndarray, bias_t: np.ndarray) -> np.ndarray:
    """Of the 48 symmetry-equivalent fields of each b_t (..., 3), the one nearest to bias_t."""
    g = signed_permutations()
    cands = np.einsum("gij,...j->...gi", g, b_t)  # (..., 48, 3)
    best = np.argmin(np.sum((cands - np.asarray(bias_t)) ** 2, axis=-1), axis=-1)
    return np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]


def first_order_guess(centers_hz: np.ndarray, axes=NV_AXES) -> np.ndarray:
    """First-order field (3,) for one set of eight sorted line centres, by trying every assignment
    of the four outside-in line pairs to the axes and every sign (the least-residual one)."""
    c = np.sort(np.asarray(centers_hz, dtype=float))
    mags = (c[::-1][:4] - c[:4]) / (2.0 * GAMMA_E_HZ_PER_T)
    best, best_res = None, np.inf
    for perm in itertools.permutations(range(4)):
        for signs in itertools.product((1.0, -1.0), repeat=4):
            proj = np.empty(4)
            proj[list(perm)] = np.array(signs) * mags
            b, res = vector_field(proj, axes)
            if res < best_res:
                best, best_res = b, res
    return best


def solve_field_from_lines(
    centers_hz: np.ndarray,
    center_err_hz: np.ndarray,
    *,
    bias_t: np.ndarray | None = None,
    axes=NV_AXES,
    fit_e: bool = True,
    max_iter: int = 100,
    max_chi2: float = 30.0,
) -> VectorFit:
    """B, D, E per pixel from eight fitted line centres (..., 8) and their errors (..., 8).

    Batched Levenberg-Marquardt on the exact eigenvalues; the start is the first-order solution
    with the lines assigned by ``bias_t`` (or by the median pixel's best assignment).
    """
    centers = np.asarray(centers_hz, dtype=float)
    errs = np.asarray(center_err_hz, dtype=float)
    if centers.shape[-1] != 2 * len(axes) or errs.shape != centers.shape:
        raise ValueError(
            f"expected centres and errors of shape (..., {2 * len(axes)}), "
            f"got {centers.shape} and {errs.shape}"
        )
    pix = centers.shape[:-1]
    c = centers.reshape(-1, centers.shape[-1])
    s = errs.reshape(c.shape)
    order = np.argsort(c, axis=1)
    c = np.take_along_axis(c, order, axis=1) / 1e6  # MHz
    s = np.take_along_axis(s, order, axis=1) / 1e6
    n = c.shape[0]
    usable = np.all(np.isfinite(c) & np.isfinite(s) & (s > 0), axis=1)
    reason = np.where(usable, VectorReason.OK, VectorReason.LINES_FAILED).astype(np.uint8)
    ambiguity = None
    if bias_t is None:
        if not usable.any():
            ref = np.array([1e-3, 0.0, 0.0])
        else:
            ref = first_order_guess(1e6 * np.median(c[usable], axis=0), axes)
        bias = np.sort(np.abs(ref))[::-1]
        ambiguity = (
            "B is fixed by eight lines only up to the 48 signed permutations of (Bx, By, Bz) (the "
            "cubic symmetry of the four NV axes); reported: the one nearest to "
            f"({bias[0]:.3e}, {bias[1]:.3e}, {bias[2]:.3e}) T, the median pixel's field with "
            "Bx >= By >= Bz >= 0. Give bias_t to choose."
        )
    else:
        bias = np.asarray(bias_t, dtype=float)
        if bias.shape != (3,) or not np.all(np.isfinite(bias)) or not np.any(bias):
            raise ValueError(f"bias_t must be a finite, non-zero 3-vector in T, got {bias_t!r}")

    theta = np.zeros((n, 5))
    theta[:, 3] = D_HZ / 1e6
    theta[usable, 3] = c[usable].mean(axis=1)
    # First-order start with the bias' assignment, in mT.
    start, _ = vector_field_from_lines(np.where(usable[:, None], c, D_HZ / 1e6) * 1e6, bias, axes)
    theta[:, :3] = start * KILO
    frames = nv_frames(axes)
    gamma = GAMMA_E_HZ_PER_T / 1e6 / KILO  # MHz per mT
    n_par = 5 if fit_e else 4
    theta, cov, chi2, conv = _levenberg_marquardt(theta, c, s, frames, gamma, n_par, max_iter, usable)
    reason[usable & ~conv] = VectorReason.NOT_CONVERGED
    var = np.diagonal(cov, axis1=1, axis2=2)
    singular = ~np.all(np.isfinite(var[:, :n_par]) & (var[:, :n_par] >= 0), axis=1)
    reason[(reason == 0) & singular] = VectorReason.SINGULAR
    dof = 8 - n_par
    reason[(reason == 0) & ~(chi2 <= max_chi2 * dof)] = VectorReason.POOR_FIT
    b = theta[:, :3] / KILO
    # The solve keeps the start's orientation; make sure it is the bias' equivalent (a start on a
    # symmetry boundary may drift to a neighbour).
    b = nearest_equivalent(b, bias)
    err = np.sqrt(np.abs(var))
    bad = reason != 0
    out = {
        "b_t": b,
        "b_err_t": err[:, :3] / KILO,
        "d_hz": theta[:, 3] * 1e6,
        "d_err_hz": err[:, 3] * 1e6,
        "e_hz": theta[:, 4] * 1e6,
        "e_err_hz": err[:, 4] * 1e6 if fit_e else np.zeros(n),
    }
    for key, value in out.items():
        value[bad] = np.nan
        out[key] = value.reshape(*pix, *value.shape[1:])
    chi2 = np.where(usable, chi2, np.nan)
    return VectorFit(
        **out,
        chi2=chi2.reshape(pix),
        reason=reason.reshape(pix),
        ambiguity=ambiguity,
        options={"bias_t": None if bias_t is None else bias.tolist(), "fit_e": fit_e, "max_chi2": max_chi2},
    )


def _model(theta: np.ndarray, frames: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted model lines (N, 8) in MHz and their Jacobian (N, 8, 5) w.r.t. (Bx, By, Bz, D, E)."""
    n = theta.shape[0]
    h = _hamiltonians(theta[:, :3] * gamma, theta[:, 3], theta[:, 4], frames)
    w, v = np.linalg.eigh(h)  # (N, A, 3), (N, A, 3, 3): columns are eigenvectors
    # Hellmann-Feynman: d e_k / d p = <v_k| dH/dp |v_k>.
    ops = [gamma * sum(frames[:, c, j, None, None] * s for c, s in enumerate((SX, SY, SZ))) for j in range(3)]
    ops.append(np.broadcast_to(SZ @ SZ, (frames.shape[0], 3, 3)))
    ops.append(np.broadcast_to(SX @ SX - SY @ SY, (frames.shape[0], 3, 3)))
    grad = np.stack([np.einsum("naik,aij,najk->nak", v.conj(), op, v).real for op in ops], axis=-1)
    n_lines = 2 * frames.shape[0]
    f = (w[..., 1:] - w[..., :1]).reshape(n, n_lines)  # axis-major, (lower, upper)
    jac = (grad[:, :, 1:, :] - grad[:, :, :1, :]).reshape(n, n_lines, 5)
    order = np.argsort(f, axis=1)
    return np.take_along_axis(f, order, axis=1), np.take_along_axis(jac, order[..., None], axis=1)


def _levenberg_marquardt(theta, c, s, frames, gamma, n_par, max_iter, active0):
    """Weighted least squares of the sorted lines, all pixels at once; E fixed at 0 if n_par == 4.

    Only pixels still moving are evaluated in each iteration (E's flat valley at large fields
    makes a few pixels take many more steps than the rest).
    """
    n = theta.shape[0]
    w = 1.0 / np.where(np.isfinite(s) & (s > 0), s, 1.0) ** 2
    cw = np.where(np.isfinite(c), c, 0.0)
    lam = np.full(n, 1e-3)
    f, jac = _model(theta, frames, gamma)
    jac = jac[..., :n_par]
    resid = cw - f
    cost = np.einsum("nl,nl,nl->n", resid, resid, w)
    conv = ~active0.copy()
    eye = np.eye(n_par)
    for _ in range(max_iter):
        idx = np.flatnonzero(~conv)
        if idx.size == 0:
            break
        ja, wa, ra = jac[idx], w[idx], resid[idx]
        jtj = np.einsum("nlp,nl,nlq->npq", ja, wa, ja)
        jtr = np.einsum("nlp,nl,nl->np", ja, wa, ra)
        diag = np.maximum(np.einsum("npp->np", jtj), 1e-12)
        damped = jtj + lam[idx, None, None] * diag[:, :, None] * eye
        step = np.linalg.solve(damped, jtr[..., None])[..., 0]
        trial = theta[idx].copy()
        trial[:, :n_par] += step
        f_t, jac_t = _model(trial, frames, gamma)
        resid_t = cw[idx] - f_t
        cost_t = np.einsum("nl,nl,nl->n", resid_t, resid_t, wa)
        better = cost_t < cost[idx]
        gain = cost[idx] - cost_t
        # Weighted costs are chi-squares: a step predicted to gain < 1e-4 moves the parameters by
        # ~0.01 standard errors, and an accepted one gaining < 1e-4 is the end as well.
        small = np.einsum("np,np->n", step, jtr) < 1e-4
        up = idx[better]
        theta[up] = trial[better]
        resid[up] = resid_t[better]
        jac[up] = jac_t[better][..., :n_par]
        cost[up] = cost_t[better]
        lam[idx] = np.where(better, lam[idx] * 0.3, lam[idx] * 4.0)
        conv[idx] |= (better & (gain < 1e-4)) | small | (lam[idx] > 1e10)
    jtj = np.einsum("nlp,nl,nlq->npq", jac, w, jac)
    cov = np.full((n, 5, 5), np.nan)
    # Scale to unit diagonal first: E is weakly determined at large fields (its effect is second
    # order), which is a large error bar, not a singular problem.
    scale = 1.0 / np.sqrt(np.maximum(np.einsum("npp->np", jtj), 1e-300))
    corr = jtj * scale[:, :, None] * scale[:, None, :]
    det_ok = np.linalg.cond(corr) < 1e12
    if det_ok.any():
        inv = np.linalg.inv(corr[det_ok]) * scale[det_ok, :, None] * scale[det_ok, None, :]
        cov[np.ix_(det_ok, np.arange(n_par), np.arange(n_par))] = inv
    if n_par == 4:
        cov[:, 4, :] = cov[:, :, 4] = 0.0
    return theta, cov, cost, conv & active0


def fit_vector_field(
    freqs_hz: np.ndarray,
    spectra,
    *,
    bias_t: np.ndarray | None = None,
    hyperfine: str | None = None,
    fit_e: bool = True,
    max_chi2: float = 30.0,
    **line_options,
) -> VectorFit:
    """B (T, NV_AXES frame), D and E (Hz) per pixel from spectra (..., F) holding eight lines.

    Args:
        freqs_hz: (F,) sweep covering all eight lines.
        spectra: (..., F) cube (numpy or dask).
        bias_t: approximate bias field (3,) in T; picks among the 48 symmetry-equivalent fields.
            Without it ``VectorFit.ambiguity`` says which choice was made.
        hyperfine: None, "15N" or "14N": each line is fitted as a hyperfine multiplet.
        fit_e: fit the strain/electric term E (else E = 0, one more degree of freedom).
        max_chi2: per degree of freedom; above it a pixel is POOR_FIT (its lines are not one field's).
        **line_options: passed to ``fit_odmr`` for the eight-line fit (model, precision, ...).

    Returns:
        VectorFit; ``line_fit`` holds the eight-line OdmrFit.
    """
    from instrument.analysis.odmr import fit_odmr

    lines = fit_odmr(freqs_hz, spectra, n_peaks=8, hyperfine=hyperfine, **line_options)
    result = solve_field_from_lines(
        lines.center, lines.center_err, bias_t=bias_t, fit_e=fit_e, max_chi2=max_chi2
    )
    result.reason[(result.reason == 0) & ~np.asarray(lines.converged)] = VectorReason.LINES_FAILED
    result.line_fit = lines
    result.options = {**result.options, "lines": lines.options}
    return result


def separate_remanent_induced(b_plus_t: np.ndarray, b_minus_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remanent and induced sample fields from maps taken with the bias field reversed.

    A remanent magnetisation does not follow the bias, an induced one (paramagnetic, soft
    ferromagnetic in its linear range) reverses with it: B(+B0) = Br + Bi, B(-B0) = Br - Bi, with
    the bias itself subtracted from both maps first (and both maps in one frame, e.g. B(-B0) taken
    with ``bias_t=-B0``).

    Returns (remanent, induced), each shaped like the inputs.
    """
    plus = np.asarray(b_plus_t, dtype=float)
    minus = np.asarray(b_minus_t, dtype=float)
    if plus.shape != minus.shape:
        raise ValueError(f"the two maps differ in shape: {plus.shape} vs {minus.shape}")
    return 0.5 * (plus + minus), 0.5 * (plus - minus)
