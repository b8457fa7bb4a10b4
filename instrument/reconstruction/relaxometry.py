"""NV relaxometry forward operators, objectives, baselines and metrics (seed 001, sections 3-4, App. A-E).

Spin-source density rho (a non-negative cell weight per pixel) and a per-pixel Larmor field omega_L
produce a magnetic-noise spectrum S(omega, r) at NV pixels a standoff z0 above the source plane:

* F1 (scalar, coherent): S = |(G_zz * rho)(r)|^2 L(omega; omega_L(r)),
* F2 (tensor, incoherent): S = [sum_a (|G_az|^2 * rho)(r)] L(omega; omega_L(r)),
* F3 (direct simulator, data generation only): S = sum_src rho P(R) L(omega; omega_L(src)), evaluated
  source by source in float64 with the Lorentzian at the *source* (no FFT factorisation, no inverse
  crime when F1/F2 invert F3 data).

G is the dipolar Green tensor; the NV axis is z as in the paper. Kernels are expressed in units of
mu0 / (4 pi z0^3), so G_zz directly under a source is 2 and spectra are O(1) numbers.

F1/F2 are differentiable torch operators (linear convolution through zero-padded FFTs); torch is
imported only inside the functions that need it. Everything else here is numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from instrument.physics.constants import MU0
from instrument.reconstruction.torch_support import flush_denormals

OPERATORS = ("F1", "F2")
"""Operators of the paper's table; ``"F2T"`` (transverse power, see ``kernels``) is accepted too."""
LOG_FLOOR = 1e-10
"""Additive constant in the log-MSE fidelity (App. B.1)."""


@dataclass(frozen=True)
class RelaxometryGeometry:
    """Grid, standoff and spectral sampling of a relaxometry measurement.

    Defaults follow the paper's cross-fidelity benchmark: 64x64 grid, 20 nm pixels and standoff,
    50 frequencies, Lorentzian half-width gamma = 0.5 GHz, Larmor band 1.5-2.5 GHz.
    """

    shape: tuple[int, int] = (64, 64)
    pixel_m: float = 20e-9
    standoff_m: float = 20e-9
    frequencies_hz: tuple[float, ...] = tuple(np.linspace(1.0e9, 3.0e9, 50))
    linewidth_hz: float = 0.5e9
    larmor_band_hz: tuple[float, float] = (1.5e9, 2.5e9)

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 2:
            raise ValueError(f"shape must be two sizes >= 2, got {self.shape}")
        if self.pixel_m <= 0 or self.standoff_m <= 0 or self.linewidth_hz <= 0:
            raise ValueError("pixel_m, standoff_m and linewidth_hz must be positive")
        if len(self.frequencies_hz) < 1:
            raise ValueError("frequencies_hz is empty")
        if len(self.frequencies_hz) > 1 and np.any(np.diff(self.frequencies_hz) <= 0):
            raise ValueError("frequencies_hz must increase (the first spectral frequency below the last)")
        lo, hi = self.larmor_band_hz
        if not 0 < lo < hi:
            raise ValueError(f"larmor_band_hz must satisfy 0 < min < max, got {self.larmor_band_hz}")

    def coarsened(self, factor: int) -> RelaxometryGeometry:
        """Same field of view on a grid ``factor`` times coarser (the multiscale stage-1 grid)."""
        rows, cols = self.shape
        if rows % factor or cols % factor:
            raise ValueError(f"shape {self.shape} is not divisible by {factor}")
        return RelaxometryGeometry(
            (rows // factor, cols // factor), self.pixel_m * factor, self.standoff_m,
            self.frequencies_hz, self.linewidth_hz, self.larmor_band_hz,
        )


def green_tensor(r_m: np.ndarray) -> np.ndarray:
    """Dipolar Green tensor G_ia(R) = mu0/(4 pi) (3 R_i R_a - |R|^2 delta_ia) / |R|^5 in T m^-3 per A m^2.

    ``r_m`` has shape (..., 3); the result has shape (..., 3, 3).
    """
    r = np.asarray(r_m, dtype=float)
    norm = np.linalg.norm(r, axis=-1)[..., None, None]
    if np.any(norm == 0):
        raise ValueError("green_tensor is singular at R = 0; the NV must sit at a positive standoff")
    outer = 3 * r[..., :, None] * r[..., None, :]
    return MU0 / (4 * np.pi) * (outer - norm**2 * np.eye(3)) / norm**5


def _offset_vectors(geometry: RelaxometryGeometry) -> np.ndarray:
    """R for every readout-minus-source offset, shape (2 rows - 1, 2 cols - 1, 3), centre = zero offset."""
    rows, cols = geometry.shape
    dy, dx = np.mgrid[-(rows - 1) : rows, -(cols - 1) : cols].astype(float)
    return np.stack([dx * geometry.pixel_m, dy * geometry.pixel_m, np.full_like(dx, geometry.standoff_m)], -1)


def kernels(geometry: RelaxometryGeometry) -> dict[str, np.ndarray]:
    """Offset kernels in units of mu0/(4 pi z0^3): 'scalar' = G_zz (F1), 'power' = sum_a G_az^2 (F2),
    'transverse' = sum_a (G_ax^2 + G_ay^2), proportional to (5 r^2 + 2 z^2) / R^8 (F2T).

    F2 sums the noise power along the NV axis; T1 relaxation responds to the field components
    transverse to it, which for isotropic fluctuators is the 'transverse' kernel: half the on-axis
    value of 'power' and wider, since it falls more slowly with the lateral offset.
    """
    g = green_tensor(_offset_vectors(geometry)) / (MU0 / (4 * np.pi * geometry.standoff_m**3))
    return {"scalar": g[..., 2, 2], "power": (g[..., :, 2] ** 2).sum(-1),
            "transverse": (g[..., :, 0] ** 2).sum(-1) + (g[..., :, 1] ** 2).sum(-1)}


OPERATOR_KERNELS = {"F1": "scalar", "F2": "power", "F2T": "transverse"}


def lorentzian(frequency_hz: np.ndarray, larmor_hz: np.ndarray, linewidth_hz: float) -> np.ndarray:
    """L(omega; omega_L) = gamma^2 / ((omega - omega_L)^2 + gamma^2) (App. A.7), broadcasting."""
    return linewidth_hz**2 / ((frequency_hz - larmor_hz) ** 2 + linewidth_hz**2)


def _check_fields(rho: np.ndarray, larmor_hz: np.ndarray, geometry: RelaxometryGeometry) -> None:
    if np.shape(rho) != geometry.shape or np.shape(larmor_hz) != geometry.shape:
        raise ValueError(
            f"rho {np.shape(rho)} and larmor_hz {np.shape(larmor_hz)} must both have shape {geometry.shape}"
        )
    if np.any(np.asarray(rho) < 0):
        raise ValueError("rho must be non-negative (it is a spin density)")


def simulate_f3(
    rho: np.ndarray,
    larmor_hz: np.ndarray,
    geometry: RelaxometryGeometry,
    noise_fraction: float = 0.0,
    rng: np.random.Generator | None = None,
    noise_model: str = "proportional",
    kernel: str = "power",
) -> np.ndarray:
    """Direct source-side simulator F3 (eq. 11): spectrum (n_freq, rows, cols) in float64.

    Each non-zero source pixel adds rho * P(R) with its own Lorentzian at its own Larmor frequency;
    P is the ``kernel`` ('power': along the NV axis, as the paper; 'transverse': T1 physics).
    ``noise_model`` 'proportional': Gaussian noise of sigma ``noise_fraction`` times the local signal
    (keeps S positive). 'additive' (the paper's "matched to per-sample dynamic range"): sigma is
    ``noise_fraction`` times max(S), the same everywhere, so background pixels go negative.
    """
    if noise_model not in ("proportional", "additive"):
        raise ValueError(f"noise_model must be 'proportional' or 'additive', got {noise_model!r}")
    rho = np.asarray(rho, dtype=float)
    larmor_hz = np.asarray(larmor_hz, dtype=float)
    _check_fields(rho, larmor_hz, geometry)
    rows, cols = geometry.shape
    power = kernels(geometry)[kernel]
    freqs = np.asarray(geometry.frequencies_hz)
    spectrum = np.zeros((len(freqs), rows, cols))
    for sy, sx in zip(*np.nonzero(rho), strict=True):
        # Readout (y, x) sees offset (y - sy, x - sx); the kernel centre sits at (rows-1, cols-1).
        footprint = power[rows - 1 - sy : 2 * rows - 1 - sy, cols - 1 - sx : 2 * cols - 1 - sx]
        line = lorentzian(freqs, larmor_hz[sy, sx], geometry.linewidth_hz)
        spectrum += rho[sy, sx] * line[:, None, None] * footprint[None]
    if noise_fraction > 0:
        rng = rng if rng is not None else np.random.default_rng()
        if noise_model == "additive":
            spectrum += rng.normal(0.0, noise_fraction * spectrum.max(), spectrum.shape)
        else:
            spectrum *= 1.0 + rng.normal(0.0, noise_fraction, spectrum.shape)
    return spectrum


def forward_numpy(
    rho: np.ndarray, larmor_hz: np.ndarray, geometry: RelaxometryGeometry, operator: str
) -> np.ndarray:
    """F1 or F2 spectrum (n_freq, rows, cols) with scipy's direct-or-FFT convolution (reference path)."""
    from scipy.signal import fftconvolve

    _check_fields(rho, larmor_hz, geometry)
    rows, cols = geometry.shape
    k = kernels(geometry)
    if operator not in OPERATOR_KERNELS:
        raise ValueError(f"operator must be one of {tuple(OPERATOR_KERNELS)}, got {operator!r}")
    conv = fftconvolve(rho, k[OPERATOR_KERNELS[operator]], mode="full")
    conv = conv[rows - 1 : 2 * rows - 1, cols - 1 : 2 * cols - 1]
    if operator == "F1":
        conv = conv**2
    freqs = np.asarray(geometry.frequencies_hz)[:, None, None]
    return conv[None] * lorentzian(freqs, np.asarray(larmor_hz)[None], geometry.linewidth_hz)


class TorchOperator:
    """Differentiable F1/F2 on a fixed geometry (kernels cached on the device).

    ``noise_map(rho, larmor)`` returns N(r) = sum_omega S(omega, r) without building the spectrum
    (the Lorentzian factorises at the readout pixel); ``spectrum`` builds S itself.
    """

    def __init__(self, geometry: RelaxometryGeometry, operator: str, device=None, dtype=None):
        import torch

        if operator not in OPERATOR_KERNELS:
            raise ValueError(f"operator must be one of {tuple(OPERATOR_KERNELS)}, got {operator!r}")
        self.geometry, self.operator = geometry, operator
        self.dtype = dtype or torch.float32
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        rows, cols = geometry.shape
        self._padded = (2 * rows, 2 * cols)
        kern = kernels(geometry)[OPERATOR_KERNELS[operator]]
        # Wrap the (2r-1, 2c-1) offset kernel onto a 2r x 2c circle: circular convolution of the
        # zero-padded density is then exactly the linear convolution on the r x c window.
        wrapped = np.zeros(self._padded)
        dy, dx = np.mgrid[-(rows - 1) : rows, -(cols - 1) : cols]
        wrapped[dy % (2 * rows), dx % (2 * cols)] = kern
        self._kernel_f = torch.fft.rfft2(torch.as_tensor(wrapped, dtype=torch.float64)).to(
            self.device, torch.complex128 if self.dtype == torch.float64 else torch.complex64
        )
        self._freqs = torch.as_tensor(np.asarray(geometry.frequencies_hz) / 1e9, dtype=self.dtype,
                                      device=self.device)

    def tensor(self, array) -> object:
        """numpy array or tensor -> tensor on this operator's device and dtype."""
        import torch

        return torch.as_tensor(np.asarray(array) if not torch.is_tensor(array) else array,
                               dtype=self.dtype, device=self.device)

    def spatial(self, rho):
        """The bracket of eq. 2: (G_zz * rho)^2 for F1, sum_a (|G_az|^2 * rho) for F2."""
        import torch

        rows, cols = self.geometry.shape
        conv = torch.fft.irfft2(torch.fft.rfft2(rho, s=self._padded) * self._kernel_f, s=self._padded)
        conv = conv[..., :rows, :cols]
        return conv**2 if self.operator == "F1" else conv

    def line_shape(self, larmor_hz):
        """L(omega; omega_L(r)), shape (n_freq, rows, cols); Larmor in Hz."""
        gamma = self.geometry.linewidth_hz / 1e9
        return gamma**2 / ((self._freqs[:, None, None] - larmor_hz[None] / 1e9) ** 2 + gamma**2)

    def line_sum(self, larmor_hz):
        """sum_omega L(omega; omega_L(r))."""
        return self.line_shape(larmor_hz).sum(0)

    def noise_map(self, rho, larmor_hz):
        return self.spatial(rho) * self.line_sum(larmor_hz)

    def spectrum(self, rho, larmor_hz):
        return self.spatial(rho)[None] * self.line_shape(larmor_hz)


# ----- objective terms (torch) -----------------------------------------------------------------

def normalized_log_map(noise_map):
    """l(r) = log10(N / max N + 1e-10); negative (noisy) values are clipped at zero first."""
    import torch

    n = noise_map.clamp_min(0.0)
    return torch.log10(n / n.max().clamp_min(1e-30) + LOG_FLOOR)


def log_mse_fidelity(pred_noise_map, obs_log_map):
    """D of App. B.1: pixelwise MSE of the max-normalised log noise maps."""
    import torch

    return torch.mean((normalized_log_map(pred_noise_map) - obs_log_map) ** 2)


def mean_normalized_mse(pred, obs):
    """MSE(pred / mean(pred), obs / mean(obs)): R_nm (noise maps) and R_ds (rho^2 vs noise map)."""
    import torch

    return torch.mean((pred / pred.mean().clamp_min(1e-30) - obs / obs.mean().clamp_min(1e-30)) ** 2)


def l1_norm(rho):
    """Mean |rho| (the paper's sum divided by the pixel count, so weights do not depend on the grid)."""
    return rho.abs().mean()


def total_variation(rho):
    """Anisotropic TV of eq. 3, per pixel."""
    return (rho[1:, :] - rho[:-1, :]).abs().mean() + (rho[:, 1:] - rho[:, :-1]).abs().mean()


def energy_scale(obs_spectrum: np.ndarray, pred_spectrum: np.ndarray, operator: str) -> float:
    """Energy-ratio correction of eq. 30: E_obs/E_pred for F2, its square root for F1."""
    e_obs, e_pred = float(np.sum(obs_spectrum)), float(np.sum(pred_spectrum))
    if e_pred <= 0 or e_obs <= 0:
        return 1.0
    ratio = e_obs / e_pred
    return math.sqrt(ratio) if operator == "F1" else ratio


# ----- shared plumbing -------------------------------------------------------------------------

@dataclass
class RelaxometryResult:
    """A reconstruction: scale-corrected density, Larmor field (0 off the support), loss history."""

    density: np.ndarray
    larmor_hz: np.ndarray
    loss_history: list[float]
    operator: str
    method: str
    scale: float
    epochs_run: int
    seed: int
    extras: dict = field(default_factory=dict)


ProgressCallback = Callable[[int, float], None]
"""Called as callback(step, loss) during optimisation."""


def _validate_spectrum(spectrum: np.ndarray, geometry: RelaxometryGeometry) -> np.ndarray:
    spectrum = np.asarray(spectrum, dtype=float)
    expected = (len(geometry.frequencies_hz), *geometry.shape)
    if spectrum.shape != expected:
        raise ValueError(f"spectrum must have shape (n_freq, rows, cols) = {expected}, got {spectrum.shape}")
    if not np.all(np.isfinite(spectrum)):
        raise ValueError("spectrum contains NaN or inf")
    if spectrum.sum(0).max() <= 0:
        raise ValueError("spectrum has no positive signal; nothing to reconstruct")
    return spectrum


def finalize(
    density: np.ndarray, larmor_hz: np.ndarray, spectrum: np.ndarray, geometry: RelaxometryGeometry,
    operator: str,
) -> tuple[np.ndarray, float]:
    """Apply the operator-matched energy-ratio scale (eq. 28-30) to a reconstructed density."""
    pred = forward_numpy(density, larmor_hz, geometry, operator)
    scale = energy_scale(spectrum, pred, operator)
    return density * scale, scale


def _baseline_larmor(geometry: RelaxometryGeometry) -> np.ndarray:
    """Free-density baselines fit density only; their Larmor field is the band centre everywhere."""
    return np.full(geometry.shape, 0.5 * sum(geometry.larmor_band_hz))


FIDELITIES = ("log", "mean-normalised")
"""Data terms of the free-density baselines: the paper's log-MSE D (App. B.1, its only fidelity for
Tikhonov and ADMM) and its mean-normalised noise-map MSE R_nm (App. D.4), a squared error on the
linear map, which is what additive Gaussian noise calls for (D clips negative noise to 0 and sends it
to log10(1e-10), so the background dominates D and rewards collapsing the map onto one peak)."""


def _fidelity(name: str, obs_map) -> Callable:
    """pred_noise_map -> scalar data term against the observed (frequency-summed) noise map."""
    if name == "log":
        obs_log = normalized_log_map(obs_map)
        return lambda pred: log_mse_fidelity(pred, obs_log)
    if name == "mean-normalised":
        return lambda pred: mean_normalized_mse(pred, obs_map)
    raise ValueError(f"`fidelity` must be one of {FIDELITIES}, got {name!r}")


def _baseline_problem(spectrum: np.ndarray, geometry: RelaxometryGeometry, operator: str, seed: int,
                      device: str | None, fidelity: str = "log"):
    """What the Tikhonov and ADMM baselines share: the checked spectrum, the torch operator, the
    fixed mid-band Larmor field (numpy and tensor), the data term and a free density at 0.5."""
    import torch

    spectrum = _validate_spectrum(spectrum, geometry)
    if fidelity not in FIDELITIES:
        raise ValueError(f"`fidelity` must be one of {FIDELITIES}, got {fidelity!r}")
    torch.manual_seed(seed)
    op = TorchOperator(geometry, operator, device)
    larmor = _baseline_larmor(geometry)
    data_term = _fidelity(fidelity, op.tensor(spectrum.sum(0)))
    rho = torch.full(geometry.shape, 0.5, dtype=op.dtype, device=op.device, requires_grad=True)
    return spectrum, op, larmor, op.tensor(larmor), data_term, rho


def reconstruct_tikhonov(
    spectrum: np.ndarray,
    geometry: RelaxometryGeometry,
    operator: str = "F2",
    *,
    epochs: int = 5000,
    learning_rate: float = 5e-3,
    l2_weight: float = 1e-3,
    tv_weight: float = 1e-3,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    device: str | None = None,
    fidelity: str = "log",
) -> RelaxometryResult:
    """Tikhonov baseline (App. E.2): free density, Adam (wd 1e-5, clip 1), D + l2 + TV, rho >= 0.

    ``fidelity`` 'log' is the paper's D; 'mean-normalised' replaces it by R_nm (see ``FIDELITIES``).
    """
    import torch

    spectrum, op, larmor, larmor_t, data_term, rho = _baseline_problem(spectrum, geometry, operator, seed,
                                                                       device, fidelity)
    opt = torch.optim.Adam([rho], lr=learning_rate, weight_decay=1e-5)
    history = []
    with flush_denormals():
        _tikhonov_loop(op, rho, opt, data_term, larmor_t, epochs, l2_weight, tv_weight, history, callback)
    density, scale = finalize(rho.detach().cpu().numpy().astype(float), larmor, spectrum, geometry, operator)
    return RelaxometryResult(density, np.zeros(geometry.shape), history, operator, "tikhonov", scale,
                             epochs, seed)


def _tikhonov_loop(op, rho, opt, data_term, larmor_t, epochs, l2_weight, tv_weight, history, callback):
    import torch

    for step in range(1, epochs + 1):
        opt.zero_grad()
        loss = (data_term(op.noise_map(rho, larmor_t))
                + l2_weight * (rho**2).mean() + tv_weight * total_variation(rho))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([rho], 1.0)
        opt.step()
        with torch.no_grad():
            rho.clamp_(min=0.0)
        history.append(float(loss.detach()))
        if callback is not None:
            callback(step, history[-1])


def reconstruct_admm(
    spectrum: np.ndarray,
    geometry: RelaxometryGeometry,
    operator: str = "F2",
    *,
    outer_iterations: int = 200,
    inner_iterations: int = 30,
    learning_rate: float = 5e-3,
    penalty: float = 1.0,
    l1_weight: float = 1e-2,
    rho_max: float = 10.0,
    tolerance: float = 1e-3,
    min_outer_iterations: int = 10,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    device: str | None = None,
    fidelity: str = "log",
) -> RelaxometryResult:
    """ADMM baseline (App. E.2): split rho = z; Adam on D + penalty/2 |rho - z + u|^2, then
    z = clip(shrink(rho + u, l1/penalty), 0, rho_max), u += rho - z; stop when |rho - z|_inf < tol
    (after at least ``min_outer_iterations``).

    The paper's augmented-Lagrangian penalty 1e-3 with l1 weight 1e-2 makes the shrink threshold 10
    (every pixel zero) in our density units, so the default penalty here is 1. ``fidelity`` as for
    ``reconstruct_tikhonov``.
    """
    import torch

    spectrum, op, larmor, larmor_t, data_term, rho = _baseline_problem(spectrum, geometry, operator, seed,
                                                                       device, fidelity)
    z = rho.detach().clone()
    u = torch.zeros_like(z)
    opt = torch.optim.Adam([rho], lr=learning_rate)
    history: list[float] = []
    outer = 0
    with flush_denormals():
        for outer in range(1, outer_iterations + 1):
            for _ in range(inner_iterations):
                opt.zero_grad()
                loss = (data_term(op.noise_map(rho.clamp_min(0.0), larmor_t))
                        + 0.5 * penalty * ((rho - z + u) ** 2).mean())
                loss.backward()
                opt.step()
            with torch.no_grad():
                v = rho + u
                z = (v.abs() - l1_weight / penalty).clamp_min(0.0) * torch.sign(v)
                z = z.clamp(0.0, rho_max)
                u = u + rho - z
                gap = float((rho - z).abs().max())
            history.append(float(loss.detach()))
            if callback is not None:
                callback(outer, history[-1])
            if gap < tolerance and outer >= min_outer_iterations:
                break
    density, scale = finalize(z.cpu().numpy().astype(float), larmor, spectrum, geometry, operator)
    return RelaxometryResult(density, np.zeros(geometry.shape), history, operator, "admm", scale, outer, seed)


# ----- trivial and per-pixel baselines ----------------------------------------------------------

def identity_density(spectrum: np.ndarray, geometry: RelaxometryGeometry, operator: str = "F2") -> np.ndarray:
    """The observed noise map itself (summed over frequency, negatives clipped) as the density,
    scaled like the other methods (eq. 30). A method that does not beat it has deconvolved nothing."""
    spectrum = _validate_spectrum(spectrum, geometry)
    density = np.clip(spectrum.sum(0), 0.0, None)
    return finalize(density, _baseline_larmor(geometry), spectrum, geometry, operator)[0]


def reconstruct_nnls(spectrum: np.ndarray, geometry: RelaxometryGeometry, operator: str = "F2",
                     max_pixels: int = 64 * 64) -> RelaxometryResult:
    """Non-negative least squares on the frequency-summed noise map (scipy's Lawson-Hanson ``nnls``).

    F2 (and F2T) are linear in rho once the Larmor field is fixed (mid-band, as the other free-density
    baselines), so min |A rho - N_obs|^2 with rho >= 0 is the plain deconvolution that additive
    Gaussian noise calls for, with no prior beyond positivity: the sceptic's linear baseline. A is
    dense (pixels x pixels), hence ``max_pixels``. F1 is quadratic in rho and is refused.
    """
    from scipy.optimize import nnls

    if operator not in ("F2", "F2T"):
        raise ValueError(f"reconstruct_nnls needs a linear operator, 'F2' or 'F2T', got {operator!r}")
    spectrum = _validate_spectrum(spectrum, geometry)
    rows, cols = geometry.shape
    if rows * cols > max_pixels:
        raise ValueError(f"reconstruct_nnls builds a dense {rows * cols}^2 matrix; the grid {geometry.shape} "
                         f"exceeds `max_pixels` = {max_pixels}")
    larmor = _baseline_larmor(geometry)
    kern = kernels(geometry)[OPERATOR_KERNELS[operator]]
    line_sum = lorentzian(np.asarray(geometry.frequencies_hz), larmor[0, 0], geometry.linewidth_hz).sum()
    # Column (sy, sx) is the noise map of a unit source there (offset kernel centred at rows-1, cols-1).
    columns = [kern[rows - 1 - sy : 2 * rows - 1 - sy, cols - 1 - sx : 2 * cols - 1 - sx].ravel()
               for sy in range(rows) for sx in range(cols)]
    matrix = np.stack(columns, axis=1) * line_sum
    solution, residual = nnls(matrix, spectrum.sum(0).ravel(), maxiter=50 * rows * cols)
    density, scale = finalize(solution.reshape(geometry.shape), larmor, spectrum, geometry, operator)
    return RelaxometryResult(density, np.zeros(geometry.shape), [float(residual)], operator, "nnls", scale,
                             1, 0)


def larmor_lorentzian_fit(spectrum: np.ndarray, geometry: RelaxometryGeometry,
                          grid_points: int = 401) -> np.ndarray:
    """Per-pixel Larmor frequency (Hz): least-squares fit of A L(omega; omega_L) with the known width.

    For each candidate omega_L on a grid spanning the sampled frequencies the best amplitude is
    linear, so the residual is |S|^2 - <L, S>^2 / <L, L>; the best candidate is refined by a parabola
    through its neighbours. The baseline for the neural field's Larmor head.
    """
    spectrum = _validate_spectrum(spectrum, geometry)
    freqs = np.asarray(geometry.frequencies_hz)
    grid = np.linspace(freqs.min(), freqs.max(), grid_points)
    lines = lorentzian(freqs[None, :], grid[:, None], geometry.linewidth_hz)  # (K, F)
    flat = spectrum.reshape(len(freqs), -1)  # (F, P)
    proj = lines @ flat  # (K, P)
    gain = proj**2 / np.sum(lines**2, axis=1)[:, None]  # residual reduction per candidate
    k = np.clip(np.argmax(gain, axis=0), 1, grid_points - 2)
    cols = np.arange(flat.shape[1])
    left, mid, right = gain[k - 1, cols], gain[k, cols], gain[k + 1, cols]
    denom = left - 2 * mid + right
    shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, -1.0), 0.0)
    step = grid[1] - grid[0]
    return (grid[k] + np.clip(shift, -1, 1) * step).reshape(geometry.shape)


# ----- metrics (App. E.3) ----------------------------------------------------------------------

def _check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    if pred.shape != truth.shape or pred.ndim != 2:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must be equal-shape 2-D images")
    return pred, truth


def gmsd(pred: np.ndarray, truth: np.ndarray, c: float = 0.0026) -> float:
    """Gradient-magnitude similarity deviation with Prewitt gradients, both rescaled to max 1."""
    pred, truth = _check_pair(pred, truth)

    def grad_mag(img: np.ndarray) -> np.ndarray:
        peak = img.max()
        img = img / peak if peak > 0 else img
        return np.hypot(ndimage.prewitt(img, axis=1) / 3.0, ndimage.prewitt(img, axis=0) / 3.0)

    gp, gt = grad_mag(pred), grad_mag(truth)
    gms = (2 * gp * gt + c) / (gp**2 + gt**2 + c)
    return float(np.std(gms))


def find_peaks(img: np.ndarray, rel_threshold: float = 0.05) -> np.ndarray:
    """(row, col) of 3x3 local maxima above ``rel_threshold`` of the image maximum."""
    img = np.asarray(img, dtype=float)
    peak = img.max()
    if peak <= 0:
        return np.zeros((0, 2), dtype=int)
    is_max = (img == ndimage.maximum_filter(img, size=3, mode="constant", cval=-np.inf))
    return np.argwhere(is_max & (img > rel_threshold * peak))


def hungarian_f1(pred: np.ndarray, truth: np.ndarray, radius_px: float = 2.0,
                 rel_threshold: float = 0.05) -> float:
    """One-to-one peak matching (Hungarian) within ``radius_px``; F1 = 2TP / (2TP + FP + FN)."""
    pred, truth = _check_pair(pred, truth)
    p, t = find_peaks(pred, rel_threshold), find_peaks(truth, rel_threshold)
    if len(p) == 0 or len(t) == 0:
        return 0.0
    dist = np.linalg.norm(p[:, None, :] - t[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(np.where(dist <= radius_px, dist, 1e6))
    tp = int(np.sum(dist[rows, cols] <= radius_px))
    return 2 * tp / (len(p) + len(t))


def _wasserstein_1d(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> float:
    """Exact W2 between two weighted 1-D point sets (weights sum to one) via quantile functions."""
    ix, iy = np.argsort(x), np.argsort(y)
    x, wx, y, wy = x[ix], wx[ix], y[iy], wy[iy]
    cx, cy = np.cumsum(wx), np.cumsum(wy)
    levels = np.union1d(cx, cy)
    levels = levels[levels <= 1.0]
    steps = np.diff(np.concatenate([[0.0], levels]))
    mid = levels - steps / 2
    qx = x[np.minimum(np.searchsorted(cx, mid), len(x) - 1)]
    qy = y[np.minimum(np.searchsorted(cy, mid), len(y) - 1)]
    return float(np.sqrt(np.sum(steps * (qx - qy) ** 2)))


def sliced_wasserstein(pred: np.ndarray, truth: np.ndarray, n_projections: int = 128, seed: int = 0) -> float:
    """Mean 1-D W2 over random directions between the mass distributions rho/|rho|_1.

    Pixel positions are in units of the field of view (the larger side = 1). An empty prediction
    has no distribution and scores 1 (the worst distance on the unit square's diagonal order).
    """
    pred, truth = _check_pair(pred, truth)
    pred, truth = np.clip(pred, 0, None), np.clip(truth, 0, None)
    if pred.sum() <= 0 or truth.sum() <= 0:
        return 1.0
    rows, cols = pred.shape
    yy, xx = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    coords = np.stack([xx.ravel(), yy.ravel()], -1)
    wp, wt = pred.ravel() / pred.sum(), truth.ravel() / truth.sum()
    keep_p, keep_t = wp > 0, wt > 0
    angles = np.random.default_rng(seed).uniform(0, np.pi, n_projections)
    dirs = np.stack([np.cos(angles), np.sin(angles)], -1)
    dists = [
        _wasserstein_1d(coords[keep_p] @ d, wp[keep_p], coords[keep_t] @ d, wt[keep_t]) for d in dirs
    ]
    return float(np.mean(dists))


def density_mse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pixelwise MSE of the scale-corrected density."""
    pred, truth = _check_pair(pred, truth)
    return float(np.mean((pred - truth) ** 2))


def all_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """GMSD, Hungarian F1 (r = 2 px), sliced Wasserstein and density MSE in one dict."""
    return {
        "GMSD": gmsd(pred, truth),
        "F1": hungarian_f1(pred, truth),
        "SWD": sliced_wasserstein(pred, truth),
        "MSE": density_mse(pred, truth),
    }


# ----- synthetic scenes (App. E.1) -------------------------------------------------------------

SCENE_CLASSES = (
    "few/close", "few/medium", "few/far", "medium/close",
    "medium/medium", "medium/far", "many/close", "many/far",
)
SOURCE_COUNTS = {"few": (1, 3), "medium": (4, 8), "many": (10, 16)}
SEPARATIONS_PX = {"close": (2.0, 4.0), "medium": (4.0, 8.0), "far": (8.0, 16.0)}
"""Minimum source separation in pixels; with 20 nm pixels and standoff that is 1 px = z0."""


def make_scene(
    scene_class: str, geometry: RelaxometryGeometry, rng: np.random.Generator, margin_px: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse ground truth (density, Larmor field in Hz) for one scene class like 'many/close'.

    Sources are single-pixel deltas with amplitude in [0.5, 1]; each new source is placed between the
    class's minimum and maximum separation from an existing one (clustered for 'close'), never closer
    than the minimum to any. The Larmor field is uniform in the band within each source.
    """
    if scene_class not in SCENE_CLASSES:
        raise ValueError(f"unknown scene class {scene_class!r}; choose one of {SCENE_CLASSES}")
    count_name, sep_name = scene_class.split("/")
    lo, hi = SOURCE_COUNTS[count_name]
    dmin, dmax = SEPARATIONS_PX[sep_name]
    rows, cols = geometry.shape
    n_sources = int(rng.integers(lo, hi + 1))
    points: list[np.ndarray] = []
    for _ in range(2000):
        if len(points) == n_sources:
            break
        if not points:
            cand = rng.uniform([margin_px, margin_px], [rows - 1 - margin_px, cols - 1 - margin_px])
        else:
            anchor = points[int(rng.integers(len(points)))]
            angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(dmin, dmax)
            cand = anchor + dist * np.array([np.sin(angle), np.cos(angle)])
        cand = np.round(cand)
        upper = np.array([rows - 1 - margin_px, cols - 1 - margin_px])
        inside = bool(np.all(cand >= margin_px) and np.all(cand <= upper))
        if inside and all(np.linalg.norm(cand - p) >= dmin for p in points):
            points.append(cand)
    density = np.zeros(geometry.shape)
    larmor = np.full(geometry.shape, 0.5 * sum(geometry.larmor_band_hz))
    for p in points:
        r, c = int(p[0]), int(p[1])
        density[r, c] = rng.uniform(0.5, 1.0)
        larmor[r, c] = rng.uniform(*geometry.larmor_band_hz)
    return density, larmor
