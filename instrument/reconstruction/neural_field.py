"""Coordinate neural field (NeTMY) for spin density and Larmor field from relaxometry spectra (seed 001).

An MLP of grid coordinates, fed annealed Fourier features, outputs a density logit, a gate logit and a
Larmor logit. The density is softplus(h) * sigmoid(g) (>= 0, gated towards zero off the sources); the
Larmor field is sigmoid-mapped into the device band and, through a stop-gradient support mask
(rho > 0.3 max rho), learns only where the data constrains it. Training is per measurement against a
differentiable F1 or F2 operator (``relaxometry.TorchOperator``) in two stages, 32x32 then 64x64 for
the paper's grid, and the density is finally rescaled by the energy ratio (eq. 30).

Objective (App. D.4, Table 7): 2 D (log-MSE) + 0.5 R_nm + 0.1 R_ds + L1 + TV; in stage 2 the log-MSE
is replaced by R_nm. Our additions, stated: L1 and TV are divided by max(rho) so that the max-normalised
(scale-free) fidelity cannot shrink the whole density to underflow to satisfy them, and a
spectral-shape term (per-pixel normalised spectrum, weighted by the observed noise map) gives the
Larmor head a signal: the frequency-summed fidelity alone carries almost none.

Larmor warm start (ours, ``larmor_warm_start``, on by default): the head outputs a correction to the
logit of the per-pixel Lorentzian fit (``relaxometry.larmor_lorentzian_fit`` on each stage's grid)
and its output layer starts at zero. Started from the band centre instead, the head either saturates
its sigmoid at a band edge (large steps) or settles on a smooth average over neighbouring sources,
100 MHz or more off where the fit is within about 10 MHz (docs/results/reconstruction_ii.md).
``extras['larmor_band_hz']`` is the unmasked band field, for scoring at pixels the support misses.

torch is imported only inside the functions that build or train the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrument.reconstruction.relaxometry import (
    ProgressCallback,
    RelaxometryGeometry,
    RelaxometryResult,
    TorchOperator,
    _validate_spectrum,
    energy_scale,
    larmor_lorentzian_fit,
    log_mse_fidelity,
    mean_normalized_mse,
    normalized_log_map,
    total_variation,
)
from instrument.reconstruction.torch_support import flush_denormals, pick_device


@dataclass(frozen=True)
class NeuralFieldConfig:
    """Architecture, schedule and loss weights; defaults are the paper's (App. D, Tables 5-7)."""

    octaves: int = 12
    hidden: int = 320
    layers: int = 6
    skip_layer: int = 3
    stage_epochs: tuple[int, int] = (3000, 7000)
    coarse_factor: int = 2
    base_learning_rate: float = 1e-3
    stage2_lr_factor: float = 0.5
    weight_decay: float = 1e-4
    fidelity_weight: float = 2.0
    noise_map_weight: float = 0.5
    direct_density_weight: float = 0.1
    l1_weight: float = 1.1e-2
    tv_weight: float = 1e-3
    spectral_weight: float = 1.0
    support_threshold: float = 0.3
    stage2_log_fidelity: bool = False
    larmor_lr_factor: float = 10.0
    larmor_warm_start: bool = True

    def __post_init__(self) -> None:
        if self.layers < 2 or not 1 <= self.skip_layer < self.layers:
            raise ValueError(
                f"need layers >= 2 and 1 <= skip_layer < layers, got {self.layers}, {self.skip_layer}"
            )
        if min(self.stage_epochs) < 0 or sum(self.stage_epochs) < 1:
            raise ValueError(f"stage_epochs must be non-negative and not both zero, got {self.stage_epochs}")
        if self.octaves < 0 or self.hidden < 1 or self.coarse_factor < 1:
            raise ValueError("octaves must be >= 0, hidden >= 1 and coarse_factor >= 1")
        if not 0 < self.support_threshold < 1:
            raise ValueError(f"support_threshold must lie in (0, 1), got {self.support_threshold}")


def fourier_features(coords, beta: float, octaves: int):
    """Annealed Fourier features (eq. 27) of (points, 2) coordinates at progress ``beta`` in [0, K].

    (x, w_k sin(2^k pi x), w_k cos(2^k pi x)) with w_k = (1 - cos(pi clip(beta - k, 0, 1))) / 2.
    """
    import torch

    if octaves == 0:
        return coords
    k = torch.arange(octaves, dtype=coords.dtype, device=coords.device)
    weights = (1 - torch.cos(math.pi * (beta - k).clamp(0.0, 1.0))) / 2
    angles = coords[:, :, None] * (2.0**k) * math.pi  # (points, 2, K)
    enc = torch.cat([torch.sin(angles) * weights, torch.cos(angles) * weights], dim=-1)
    return torch.cat([coords, enc.flatten(1)], dim=1)


def _build_mlp(config: NeuralFieldConfig):
    import torch
    from torch import nn

    enc_dim = 2 + 4 * config.octaves

    class CoordinateMLP(nn.Module):
        """tanh backbone with the encoded input re-injected at ``skip_layer``; 3 output logits."""

        def __init__(self) -> None:
            super().__init__()
            dims = []
            for i in range(config.layers):
                d_in = enc_dim if i == 0 else config.hidden
                if i == config.skip_layer:
                    d_in += enc_dim
                dims.append(nn.Linear(d_in, config.hidden))
            self.hidden = nn.ModuleList(dims)
            self.density_head = nn.Linear(config.hidden, 2)  # density logit, gate logit
            self.larmor_head = nn.Linear(config.hidden, 1)

        def forward(self, enc):
            h = enc
            for i, layer in enumerate(self.hidden):
                if i == config.skip_layer:
                    h = torch.cat([h, enc], dim=1)
                h = torch.tanh(layer(h))
            return torch.cat([self.density_head(h), self.larmor_head(h)], dim=1)

    return CoordinateMLP()


def _grid_coords(shape: tuple[int, int], device, dtype):
    """Pixel centres normalised to [-1, 1] by the half extent, so both stages share physical positions."""
    import torch

    rows, cols = shape
    y = (torch.arange(rows, dtype=dtype, device=device) + 0.5) / rows * 2 - 1
    x = (torch.arange(cols, dtype=dtype, device=device) + 0.5) / cols * 2 - 1
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def _larmor_prior_logit(spectrum: np.ndarray, geometry: RelaxometryGeometry, enabled: bool) -> np.ndarray:
    """Logit of the per-pixel Lorentzian fit in the Larmor band (zeros, the band centre, if disabled).

    The Larmor head outputs a correction to this logit: its output layer starts at zero, so training
    starts from the per-pixel fit and can only be credited with what it changes.
    """
    if not enabled:
        return np.zeros(geometry.shape)
    lo, hi = geometry.larmor_band_hz
    frac = np.clip((larmor_lorentzian_fit(spectrum, geometry) - lo) / (hi - lo), 0.02, 0.98)
    return np.log(frac / (1 - frac))


def _block_mean(spectrum: np.ndarray, factor: int) -> np.ndarray:
    n, rows, cols = spectrum.shape
    return spectrum.reshape(n, rows // factor, factor, cols // factor, factor).mean(axis=(2, 4))


def reconstruct_neural_field(
    spectrum: np.ndarray,
    geometry: RelaxometryGeometry,
    operator: str = "F2",
    *,
    config: NeuralFieldConfig | None = None,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    early_stop_patience: int | None = None,
    early_stop_rel_tol: float = 1e-4,
    device: str | None = None,
) -> RelaxometryResult:
    """Fit density and Larmor field to one observed spectrum (n_freq, rows, cols).

    Args:
        spectrum: observed S(omega, r) on ``geometry``'s grid and frequencies.
        geometry: grid, standoff, frequencies, linewidth and Larmor band.
        operator: 'F2' (tensor, physical) or 'F1' (scalar) inversion operator.
        config: architecture/schedule/weights (paper defaults: 3000 + 7000 epochs, hidden 320).
        seed: seeds the MLP initialisation (same seed, same result on CPU).
        callback: progress, called as callback(global_epoch, loss).
        early_stop_patience: end a stage after this many epochs without a relative loss improvement
            of ``early_stop_rel_tol`` (None: run every epoch).
        device: torch device; default CUDA when present, else CPU.

    Returns:
        RelaxometryResult with the scale-corrected density, the Larmor field in Hz (0 off the
        predicted support), the loss history and ``extras['stages']`` (epochs run per stage).
    """
    import torch

    cfg = config or NeuralFieldConfig()
    spectrum = _validate_spectrum(spectrum, geometry)
    dev = pick_device(device)
    torch.manual_seed(seed)
    net = _build_mlp(cfg).to(dev)
    if cfg.larmor_warm_start:
        with torch.no_grad():
            net.larmor_head.weight.zero_()
            net.larmor_head.bias.zero_()
    # The Larmor head learns from a weak spectral-shape signal on a few support pixels; a larger
    # step lets it travel the band within the schedule.
    larmor_params = list(net.larmor_head.parameters())
    other_params = [p for n, p in net.named_parameters() if not n.startswith("larmor_head")]
    opt = torch.optim.AdamW(
        [{"params": other_params, "lr_factor": 1.0},
         {"params": larmor_params, "lr_factor": cfg.larmor_lr_factor}],
        lr=cfg.base_learning_rate, weight_decay=cfg.weight_decay,
    )
    lo, hi = geometry.larmor_band_hz
    history: list[float] = []
    stages_run: list[int] = []

    def fields(coords, beta, shape, prior_logit):
        out = net(fourier_features(coords, beta, cfg.octaves))
        rho = (torch.nn.functional.softplus(out[:, 0]) * torch.sigmoid(out[:, 1])).reshape(shape)
        band = (lo + (hi - lo) * torch.sigmoid(prior_logit + out[:, 2].reshape(shape)))
        support = (rho > cfg.support_threshold * rho.max()).detach().to(band.dtype)
        # Forward uses the band value everywhere (readout pixels off the support still see their
        # neighbours' noise); the gradient reaches the Larmor head only on the support.
        larmor_fwd = support * band + (1 - support) * band.detach()
        return rho, larmor_fwd, support * band, band

    stage_plan = []
    if cfg.coarse_factor > 1 and cfg.stage_epochs[0] > 0:
        stage_plan.append((geometry.coarsened(cfg.coarse_factor), _block_mean(spectrum, cfg.coarse_factor),
                           cfg.stage_epochs[0], cfg.base_learning_rate, True))
    stage_plan.append((geometry, spectrum, cfg.stage_epochs[1] if len(stage_plan) else sum(cfg.stage_epochs),
                       cfg.base_learning_rate * (cfg.stage2_lr_factor if stage_plan else 1.0),
                       cfg.stage2_log_fidelity or not stage_plan))

    with flush_denormals():
        for geo, obs, epochs, lr, log_fidelity in stage_plan:
            if epochs == 0:
                continue
            op = TorchOperator(geo, operator, dev)
            coords = _grid_coords(geo.shape, dev, op.dtype)
            prior = op.tensor(_larmor_prior_logit(obs, geo, cfg.larmor_warm_start))
            obs_noise = op.tensor(obs.sum(0))
            obs_log = normalized_log_map(obs_noise)
            obs_pos = obs_noise.clamp_min(0.0)
            obs_shape = op.tensor(obs) / obs_pos.clamp_min(1e-30)[None]
            spec_weight = obs_pos / obs_pos.max()
            best, since_best, ran = math.inf, 0, 0
            for t in range(1, epochs + 1):
                beta = cfg.octaves * t / epochs
                # Cosine annealing within the stage down to 0.01 of the stage's learning rate.
                decay = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (t - 1) / epochs))
                for group in opt.param_groups:
                    group["lr"] = lr * group["lr_factor"] * decay
                rho, larmor_fwd, _, _ = fields(coords, beta, geo.shape, prior)
                # The Larmor field learns from the spectral shape only: letting the summed-spectrum
                # terms move it would trade line-sum amplitude against density (the P4 ambiguity).
                pred_noise = op.noise_map(rho, larmor_fwd.detach())
                shape_pred = op.line_shape(larmor_fwd)
                shape_pred = shape_pred / shape_pred.sum(0, keepdim=True)
                rho_max = rho.max().clamp_min(1e-12)
                loss = (
                    (cfg.fidelity_weight if log_fidelity else 0.0) * log_mse_fidelity(pred_noise, obs_log)
                    + (cfg.noise_map_weight + (0.0 if log_fidelity else cfg.fidelity_weight))
                    * mean_normalized_mse(pred_noise, obs_pos)
                    + cfg.direct_density_weight * mean_normalized_mse(rho**2, obs_pos)
                    + cfg.l1_weight * rho.mean() / rho_max
                    + cfg.tv_weight * total_variation(rho) / rho_max
                    + cfg.spectral_weight * len(geo.frequencies_hz)
                    * torch.mean(spec_weight * ((shape_pred - obs_shape) ** 2).sum(0))
                )
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                value = float(loss.detach())
                history.append(value)
                ran = t
                if callback is not None:
                    callback(len(history), value)
                if value < best * (1 - early_stop_rel_tol) or best == math.inf:
                    best, since_best = value, 0
                else:
                    since_best += 1
                if early_stop_patience is not None and since_best >= early_stop_patience:
                    break
            stages_run.append(ran)

        coords = _grid_coords(geometry.shape, dev, torch.float32)
        prior = torch.as_tensor(_larmor_prior_logit(spectrum, geometry, cfg.larmor_warm_start),
                                dtype=torch.float32, device=dev)
        with torch.no_grad():
            rho, larmor_fwd, larmor_masked, band = fields(coords, float(cfg.octaves), geometry.shape, prior)
        rho_np = rho.cpu().numpy().astype(float)
        op = TorchOperator(geometry, operator, dev, dtype=torch.float64)
        pred = op.spectrum(op.tensor(rho_np), op.tensor(larmor_fwd.cpu().numpy())).cpu().numpy()
    scale = energy_scale(spectrum, pred, operator)
    return RelaxometryResult(
        density=rho_np * scale,
        larmor_hz=larmor_masked.cpu().numpy().astype(float),
        loss_history=history,
        operator=operator,
        method="neural_field",
        scale=scale,
        epochs_run=len(history),
        seed=seed,
        extras={"stages": stages_run, "larmor_band_hz": band.cpu().numpy().astype(float)},
    )


def save_relaxometry_figure(
    result: RelaxometryResult,
    spectrum: np.ndarray,
    path: str | Path,
    truth_density: np.ndarray | None = None,
) -> Path:
    """Save observed noise map, reconstructed density, Larmor field (and truth) as one PNG."""
    from matplotlib.figure import Figure

    path = Path(path)
    panels = [
        (np.asarray(spectrum).sum(0), "observed noise map N(r)", "magma"),
        (result.density, f"density ({result.method}, {result.operator})", "viridis"),
        (np.where(result.larmor_hz > 0, result.larmor_hz / 1e9, np.nan), "Larmor field (GHz)", "coolwarm"),
    ]
    if truth_density is not None:
        panels.append((np.asarray(truth_density), "true density", "viridis"))
    fig = Figure(figsize=(4.2 * len(panels) + 4, 4), layout="constrained")
    axes = fig.subplots(1, len(panels) + 1)
    for ax, (img, title, cmap) in zip(axes, panels, strict=False):
        im = ax.imshow(img, cmap=cmap)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    axes[-1].semilogy(np.maximum(result.loss_history, 1e-12))
    axes[-1].set_xlabel("epoch")
    axes[-1].set_title("loss")
    fig.savefig(path, dpi=110)
    return path


def reconstruct_neural_field_files(
    spectrum_path: str | Path,
    output_dir: str | Path,
    geometry: RelaxometryGeometry,
    *,
    spectrum_dataset: str | None = None,
    **kwargs,
) -> tuple[RelaxometryResult, Path, Path]:
    """File-level entry point for ``acquire reconstruct neural-field``: load S(omega, r), reconstruct,
    write ``neural_field_result.npz`` (density, larmor_hz, loss history) and ``neural_field_result.png``.

    ``kwargs`` go to ``reconstruct_neural_field`` (operator, config, seed, callback, early stopping).
    """
    from instrument.reconstruction.array_files import load_array, write_result

    spectrum = load_array(spectrum_path, spectrum_dataset)
    result = reconstruct_neural_field(spectrum, geometry, **kwargs)
    arrays, figure = write_result(
        output_dir,
        "neural_field_result",
        lambda png: save_relaxometry_figure(result, spectrum, png),
        density=result.density,
        larmor_hz=result.larmor_hz,
        loss_history=np.asarray(result.loss_history),
    )
    return result, arrays, figure
