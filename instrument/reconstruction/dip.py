"""Physics-informed deep image prior (DIP) for in-plane magnetization from B_NV maps (seed 002).

The forward model is the Fourier transfer tensor of a thin film (seed 002, eq. 1) integrated over the
film thickness, projected on the NV axis (eq. 2-3). An untrained convolutional encoder-decoder without
skip connections maps a fixed seeded noise tensor to per-component maps; tanh, a user mask in [-1, 1]
and the saturation magnetization turn them into M. AdamW with ReduceLROnPlateau minimises the MSE
between measured and modelled B_NV (eq. 7); SNR is eq. 8. ``mask_orientation_scan`` runs the paper's
diagnostic: the mask orientation that converges best indicates the domain structure.

Sign convention: ``instrument.physics.fourier``'s (numpy FFT, z up from the film to the NV), in which
the field is -(mu0/2) e^{-kz} (1 - e^{-kt})/k times the matrix of eq. 1 as printed (the paper uses the
opposite z or FFT sign); tests check it against a direct dipole sum.

torch is an optional extra: it is imported only inside the functions that train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instrument.physics import fourier
from instrument.reconstruction.torch_support import flush_denormals, pick_device

NV_POLAR_ANGLE_DEG = 54.75
"""NV axis angle from the sample normal in the paper's scanning probe (eq. 3)."""

PERMALLOY_MS_A_PER_M = 8.0e5
"""Saturation magnetization of Ni80Fe20."""


def nv_unit_vector(polar_deg: float = NV_POLAR_ANGLE_DEG, azimuth_deg: float = 0.0) -> np.ndarray:
    """Unit vector (nx, ny, nz) of the NV axis; azimuth 0 puts it in the x-z plane (eq. 3)."""
    t, p = np.deg2rad(polar_deg), np.deg2rad(azimuth_deg)
    return np.array([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])


def _wavevectors(shape: tuple[int, int], pixel_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if pixel_m <= 0:
        raise ValueError(f"pixel_m must be positive, got {pixel_m}")
    return fourier.wavevectors(shape, pixel_m)


def field_transfer(
    shape: tuple[int, int], pixel_m: float, standoff_m: float, thickness_m: float
) -> np.ndarray:
    """Transfer tensor A (3, 3, rows, cols): B~_i(k) = sum_j A_ij(k) M~_j(k) for a film of M in A/m.

    ``standoff_m`` is the distance from the film's top surface to the sensor; the film extends
    ``thickness_m`` below it. Built from ``instrument.physics.fourier``: the eq. 1 kernel times the
    propagator, with the areal moment M t averaged over the film depth.
    """
    if standoff_m < 0 or thickness_m <= 0:
        raise ValueError(f"need standoff_m >= 0 and thickness_m > 0, got {standoff_m}, {thickness_m}")
    kx, ky, k = _wavevectors(shape, pixel_m)
    depth = thickness_m * fourier.layer_thickness_factor(k, thickness_m)
    return fourier.magnetization_kernel(kx, ky, k) * fourier.propagator(k, standoff_m) * depth


def stray_field(
    magnetization_a_per_m: np.ndarray, pixel_m: float, standoff_m: float, thickness_m: float, pad: int = 2
) -> np.ndarray:
    """Stray field (3, rows, cols) in T of a film magnetization with 2 (in-plane) or 3 components.

    The film is zero-padded ``pad`` times so the field on the grid has no wrap-around from the FFT.
    """
    m = np.asarray(magnetization_a_per_m, dtype=float)
    if m.ndim != 3 or m.shape[0] not in (2, 3):
        raise ValueError(f"magnetization must have shape (2 or 3, rows, cols), got {m.shape}")
    rows, cols = m.shape[1:]
    padded = (rows * pad, cols * pad)
    transfer = field_transfer(padded, pixel_m, standoff_m, thickness_m)[:, : m.shape[0]]
    mk = np.fft.fft2(m, s=padded)
    b = np.fft.ifft2(np.einsum("ijyx,jyx->iyx", transfer, mk)).real
    return b[:, :rows, :cols]


def project_nv(b_t: np.ndarray, nv_axis: np.ndarray) -> np.ndarray:
    """B_NV = B . n (eq. 2); ``b_t`` has its components on axis 0."""
    return np.tensordot(np.asarray(nv_axis, dtype=float), b_t, axes=(0, 0))


def deproject_nv(
    b_nv_t: np.ndarray,
    nv_axis: np.ndarray,
    pixel_m: float,
    regularization: float | None = None,
    noise_rms_t: float | None = None,
) -> tuple[np.ndarray, float]:
    """Full vector field (3, rows, cols) from a B_NV map (eq. 4-6) and the regularization used.

    The denominator i kx nx + i ky ny - k nz vanishes at k = 0 (and is small for an in-plane axis), so
    its magnitude is floored at ``regularization`` times the largest |k|. With ``regularization=None``
    the floor is chosen iteratively: the largest value on a log grid whose re-projection onto the NV
    axis stays within the noise (``noise_rms_t``, default 1 % of the signal rms) of the input map.
    """
    b_nv_t = np.asarray(b_nv_t, dtype=float)
    if b_nv_t.ndim != 2:
        raise ValueError(f"b_nv_t must be a 2-D map, got shape {b_nv_t.shape}")
    n = np.asarray(nv_axis, dtype=float)
    kx, ky, k = _wavevectors(b_nv_t.shape, pixel_m)
    # Above the sources B~ is proportional to (i kx, i ky, -k) in this module's convention; the
    # paper's eq. 4-6 write +k for the opposite z (or FFT sign) convention.
    denom = 1j * kx * n[0] + 1j * ky * n[1] - k * n[2]
    numerators = np.array([1j * kx, 1j * ky, -k.astype(complex)])
    spectrum = np.fft.fft2(b_nv_t)

    def solve(eps: float) -> np.ndarray:
        floor = eps * k.max()
        mag = np.abs(denom)
        safe = np.where(mag >= floor, denom, floor * np.exp(1j * np.angle(denom)))
        safe = np.where(safe == 0, floor, safe)
        return np.fft.ifft2(numerators * spectrum / safe).real

    if regularization is not None:
        if regularization <= 0:
            raise ValueError(f"regularization must be positive, got {regularization}")
        return solve(regularization), float(regularization)
    tolerance = noise_rms_t if noise_rms_t is not None else 0.01 * float(np.sqrt(np.mean(b_nv_t**2)))
    best = 1e-6
    for eps in np.logspace(-6, -0.5, 24):
        residual = project_nv(solve(eps), n) - b_nv_t
        if np.sqrt(np.mean(residual**2)) <= tolerance:
            best = float(eps)
    return solve(best), best


def snr_db(b_model_t: np.ndarray, mse_t2: float) -> float:
    """Eq. 8 with fields in mT (the units of the paper's reported 4.94 dB / 0.56 mT pair)."""
    mean_mt = float(np.mean(np.abs(b_model_t))) * 1e3
    return 10.0 * math.log10(mean_mt / (mse_t2 * 1e6)) if mse_t2 > 0 else math.inf


@dataclass
class DipResult:
    """Outcome of one DIP reconstruction.

    Attributes:
        magnetization_a_per_m: (components, rows, cols) reconstructed M.
        b_nv_model_t: forward-propagated B_NV of the reconstruction.
        loss_history_t2: MSE (T^2) per epoch.
        mse_t2, rmse_t, snr_db: final data misfit (eq. 7, per pixel mean) and eq. 8.
        epochs_run: epochs actually run (early stopping may end sooner).
        seed: seed of the noise input and the weight initialisation.
    """

    magnetization_a_per_m: np.ndarray
    b_nv_model_t: np.ndarray
    loss_history_t2: list[float]
    mse_t2: float
    rmse_t: float
    snr_db: float
    epochs_run: int
    seed: int
    mask: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


ProgressCallback = Callable[[int, float], None]
"""Called as callback(epoch, mse_t2) after each epoch; return value ignored."""


def _build_network(n_out: int, n_in: int, channels: Sequence[int], kernel: int):
    """Encoder-decoder without skip connections: two down and two up blocks (seed 002, Fig. 3)."""
    from torch import nn

    def block(c_in: int, c_out: int) -> list:
        return [
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c_out, c_out, kernel, padding=kernel // 2),
            nn.InstanceNorm2d(c_out, affine=True),
            nn.LeakyReLU(0.2),
        ]

    c1, c2 = channels
    layers = [*block(n_in, c1), nn.MaxPool2d(2), *block(c1, c2), nn.MaxPool2d(2), *block(c2, c2)]
    layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), *block(c2, c1)]
    layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), *block(c1, c1)]
    layers += [nn.Conv2d(c1, n_out, 1)]  # one output channel per magnetization component
    return nn.Sequential(*layers)


def reconstruct_dip(
    b_nv_t: np.ndarray,
    mask: np.ndarray,
    *,
    pixel_m: float,
    standoff_m: float,
    thickness_m: float,
    saturation_a_per_m: float = PERMALLOY_MS_A_PER_M,
    nv_axis: np.ndarray | None = None,
    epochs: int = 2000,
    learning_rate: float = 7.5e-4,
    weight_decay: float = 1e-2,
    plateau_patience: int = 150,
    plateau_factor: float = 0.75,
    early_stop_patience: int | None = 300,
    early_stop_rel_tol: float = 1e-4,
    channels: Sequence[int] = (32, 64),
    kernel: int = 5,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    device: str | None = None,
) -> DipResult:
    """Reconstruct in-plane (or 3-component) magnetization from a B_NV map by deep image prior.

    Args:
        b_nv_t: measured B_NV map (rows, cols) in T.
        mask: (components, rows, cols) in [-1, 1]; 2 components = in-plane only (the paper's case).
        pixel_m, standoff_m, thickness_m: pixel size, NV-to-film-top distance, film thickness.
        saturation_a_per_m: |M| limit (default permalloy).
        nv_axis: unit vector of the NV axis (default 54.75 deg from the normal in the x-z plane).
        epochs: maximum epochs; ``early_stop_patience`` epochs without a relative improvement of
            ``early_stop_rel_tol`` end the run sooner (None disables early stopping).
        learning_rate, weight_decay, plateau_patience, plateau_factor: AdamW + ReduceLROnPlateau
            (paper: 7.5e-4 for Landau, 1e-4 for dipole; patience 150, factor 0.75).
        channels, kernel: encoder widths and convolution size.
        seed: seeds the fixed noise input and the initial weights (same seed, same result on CPU).
        callback: progress, called as callback(epoch, mse_t2).
        device: torch device; default CUDA when present, else CPU.
    """
    import torch

    b_nv_t = np.asarray(b_nv_t, dtype=float)
    mask = np.asarray(mask, dtype=float)
    if b_nv_t.ndim != 2:
        raise ValueError(f"b_nv_t must be a 2-D map, got shape {b_nv_t.shape}")
    if min(b_nv_t.shape) < 2:
        raise ValueError(f"b_nv_t is empty or a single line (shape {b_nv_t.shape}); give a 2-D field map")
    if mask.ndim != 3 or mask.shape[0] not in (2, 3) or mask.shape[1:] != b_nv_t.shape:
        raise ValueError(f"mask must have shape (2 or 3, *{b_nv_t.shape}), got {mask.shape}")
    if not np.all(np.isfinite(b_nv_t)):
        raise ValueError("b_nv_t contains NaN or inf; fill or crop bad pixels first")
    if not np.all(np.isfinite(mask)):
        raise ValueError("mask contains NaN or inf; its values must lie in [-1, 1]")
    if np.abs(mask).max() > 1.0 + 1e-9:
        raise ValueError("mask values must lie in [-1, 1]")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    axis = nv_unit_vector() if nv_axis is None else np.asarray(nv_axis, dtype=float)
    dev = pick_device(device)
    rows, cols = b_nv_t.shape
    n_comp = mask.shape[0]

    # Projected transfer kernel on a 2x padded grid: B~_NV = sum_c K_c M~_c.
    padded = (2 * rows, 2 * cols)
    transfer = field_transfer(padded, pixel_m, standoff_m, thickness_m)[:, :n_comp]
    kernel_nv = np.tensordot(axis, transfer, axes=(0, 0))
    kernel_t = torch.as_tensor(kernel_nv, dtype=torch.complex64, device=dev)
    scale = float(np.sqrt(np.mean(b_nv_t**2))) or 1.0  # train on O(1) numbers; report in T
    target = torch.as_tensor(b_nv_t / scale, dtype=torch.float32, device=dev)
    mask_t = torch.as_tensor(mask, dtype=torch.float32, device=dev)

    torch.manual_seed(seed)
    net_rows, net_cols = 4 * math.ceil(rows / 4), 4 * math.ceil(cols / 4)  # two 2x poolings
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 32, net_rows, net_cols, generator=generator).to(dev)
    net = _build_network(n_comp, 32, channels, kernel).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, patience=plateau_patience, factor=plateau_factor, threshold=1e-9
    )

    def magnetization() -> torch.Tensor:
        raw = net(noise)[0, :, :rows, :cols]
        m = torch.tanh(raw) * mask_t
        # Limit |M| to Ms (masks with unit direction vectors already satisfy it).
        norm = torch.linalg.vector_norm(m, dim=0, keepdim=True).clamp_min(1.0)
        return saturation_a_per_m * m / norm

    def model_bnv(m: torch.Tensor) -> torch.Tensor:
        mk = torch.fft.fft2(m, s=padded)
        return torch.fft.ifft2((kernel_t * mk).sum(0)).real[:rows, :cols] / scale

    history: list[float] = []
    best, since_best = math.inf, 0
    with flush_denormals():
        for epoch in range(1, epochs + 1):
            opt.zero_grad()
            loss = torch.mean((model_bnv(magnetization()) - target) ** 2)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            sched.step(value)
            history.append(value * scale**2)
            if callback is not None:
                callback(epoch, history[-1])
            if value < best * (1 - early_stop_rel_tol):
                best, since_best = value, 0
            else:
                since_best += 1
            if early_stop_patience is not None and since_best >= early_stop_patience:
                break

    with torch.no_grad():
        m = magnetization()
        b_model = (model_bnv(m) * scale).cpu().numpy().astype(float)
    m_np = m.cpu().numpy().astype(float)
    mse = float(np.mean((b_model - b_nv_t) ** 2))
    return DipResult(
        magnetization_a_per_m=m_np,
        b_nv_model_t=b_model,
        loss_history_t2=history,
        mse_t2=mse,
        rmse_t=math.sqrt(mse),
        snr_db=snr_db(b_model, mse),
        epochs_run=len(history),
        seed=seed,
        mask=mask,
    )


@dataclass
class OrientationScan:
    """Mask-orientation diagnostic: final misfit per mask angle; the best angle converged lowest."""

    angles_deg: list[float]
    final_mse_t2: list[float]
    results: list[DipResult]

    @property
    def best_angle_deg(self) -> float:
        return self.angles_deg[int(np.argmin(self.final_mse_t2))]


def mask_orientation_scan(
    b_nv_t: np.ndarray,
    mask_for_angle: Callable[[float], np.ndarray],
    angles_deg: Sequence[float],
    **dip_kwargs,
) -> OrientationScan:
    """Run ``reconstruct_dip`` once per mask orientation (same seed) and rank them by final MSE.

    ``mask_for_angle(angle_deg)`` builds the mask, e.g. ``lambda a: landau_mask(shape, axes, a)``.
    Early stopping is disabled so every orientation gets the same epoch budget.
    """
    if len(angles_deg) == 0:
        raise ValueError("angles_deg is empty; give at least one mask orientation")
    dip_kwargs = {**dip_kwargs, "early_stop_patience": None}
    results = [reconstruct_dip(b_nv_t, mask_for_angle(float(a)), **dip_kwargs) for a in angles_deg]
    return OrientationScan([float(a) for a in angles_deg], [r.mse_t2 for r in results], results)


def save_dip_figure(result: DipResult, b_nv_t: np.ndarray, path: str | Path, pixel_m: float) -> Path:
    """Save data, model, residual, Mx, My and the loss curve as one PNG (Agg backend, no display)."""
    from matplotlib.figure import Figure

    path = Path(path)
    extent = [0, b_nv_t.shape[1] * pixel_m * 1e6, b_nv_t.shape[0] * pixel_m * 1e6, 0]
    fig = Figure(figsize=(13, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    vmax = float(np.abs(b_nv_t).max()) * 1e3
    panels = [
        (axes[0, 0], b_nv_t * 1e3, "measured B_NV (mT)", "RdBu_r", vmax),
        (axes[0, 1], result.b_nv_model_t * 1e3, "model B_NV (mT)", "RdBu_r", vmax),
        (axes[0, 2], (b_nv_t - result.b_nv_model_t) * 1e3, "residual (mT)", "RdBu_r", vmax),
        (axes[1, 0], result.magnetization_a_per_m[0] / 1e3, "Mx (kA/m)", "PuOr", None),
        (axes[1, 1], result.magnetization_a_per_m[1] / 1e3, "My (kA/m)", "PuOr", None),
    ]
    for ax, img, title, cmap, lim in panels:
        lim = lim if lim is not None else float(np.abs(img).max()) or 1.0
        im = ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim, extent=extent)
        ax.set_title(title)
        ax.set_xlabel("x (um)")
        fig.colorbar(im, ax=ax, shrink=0.8)
    axes[1, 2].semilogy(np.asarray(result.loss_history_t2) * 1e6)
    axes[1, 2].set_xlabel("epoch")
    axes[1, 2].set_ylabel("MSE (mT^2)")
    axes[1, 2].set_title(f"RMSE {result.rmse_t * 1e3:.3g} mT, SNR {result.snr_db:.2f} dB")
    fig.savefig(path, dpi=110)
    return path


def reconstruct_dip_files(
    b_nv_path: str | Path,
    mask_path: str | Path,
    output_dir: str | Path,
    *,
    b_nv_dataset: str | None = None,
    mask_dataset: str | None = None,
    **dip_kwargs,
) -> tuple[DipResult, Path, Path]:
    """File-level entry point for ``acquire reconstruct dip``: load B_NV (T) and mask, reconstruct,
    write ``dip_result.npz`` (magnetization, b_nv_model, loss history) and ``dip_result.png``.

    ``dip_kwargs`` go to ``reconstruct_dip`` (pixel_m, standoff_m, thickness_m are required).
    Returns the result and the two paths.
    """
    from instrument.reconstruction.array_files import load_array, write_result

    b_nv = load_array(b_nv_path, b_nv_dataset)
    mask = load_array(mask_path, mask_dataset)
    result = reconstruct_dip(b_nv, mask, **dip_kwargs)
    arrays, figure = write_result(
        output_dir,
        "dip_result",
        lambda png: save_dip_figure(result, b_nv, png, dip_kwargs["pixel_m"]),
        magnetization_a_per_m=result.magnetization_a_per_m,
        b_nv_model_t=result.b_nv_model_t,
        loss_history_t2=np.asarray(result.loss_history_t2),
    )
    return result, arrays, figure
