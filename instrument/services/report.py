"""Every figure of a measurement: CW field maps, pulsed fits, SPAD maps.

Figures are drawn on ``matplotlib.figure.Figure`` objects and saved directly, so no module switches
the process's matplotlib backend (the GUI's Qt backend, a notebook's inline one stay as they are).
Images carry physical axes (um, with a scale bar) where the pixel size is known, colour bars read in
plain numbers (no "+2.785e3" offsets), and fit curves are drawn as lines apart from the data points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FIGURE_NAME = "figure.png"
NICE_LENGTHS_UM = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def pixel_size_of(metadata_or_snapshot: dict[str, Any]) -> float | None:
    """The camera's pixel size on the sample from a run's metadata or a station snapshot, if known."""
    snap = metadata_or_snapshot.get("station_snapshot", metadata_or_snapshot)
    instruments = snap.get("instruments") or {}
    for role in ("camera", "spad", "counter"):
        value = (instruments.get(role) or {}).get("pixel_size_m")
        if value:
            return float(value)
    return None


def scale_bar_um(width_um: float) -> float:
    """A round scale-bar length near a fifth of the image width."""
    target = width_um / 5
    return min(NICE_LENGTHS_UM, key=lambda v: abs(np.log(v / target)))


def _plain_colorbar(fig: Any, im: Any, ax: Any, label: str) -> Any:
    from matplotlib.ticker import ScalarFormatter

    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    bar = fig.colorbar(im, ax=ax, format=formatter)
    bar.set_label(label)
    return bar


def show_image(fig: Any, ax: Any, data: np.ndarray, pixel_size_m: float | None, label: str, cmap: str,
               **imshow: Any) -> Any:
    """``data`` (rows, cols) with um axes and a scale bar when the pixel size is known, else pixel axes;
    a colour bar labelled ``label`` with plain tick labels. Returns the image artist."""
    rows, cols = data.shape
    if pixel_size_m:
        from matplotlib.patches import Rectangle
        from matplotlib.patheffects import withStroke

        um = pixel_size_m * 1e6
        im = ax.imshow(data, cmap=cmap, extent=(0, cols * um, rows * um, 0), **imshow)
        ax.set_xlabel("x (um)")
        ax.set_ylabel("y (um)")
        bar = scale_bar_um(cols * um)
        x0, y0 = cols * um * 0.05, rows * um * 0.93
        ax.add_patch(Rectangle((x0, y0), bar, rows * um * 0.02, color="white", ec="black", lw=0.5))
        # white with a dark outline: readable on a bright colour map's centre as on a dark one
        ax.text(x0 + bar / 2, y0 - rows * um * 0.02, f"{bar:g} um", color="white", ha="center", va="bottom",
                fontsize=8, fontweight="bold", path_effects=[withStroke(linewidth=2, foreground="black")])
    else:
        im = ax.imshow(data, cmap=cmap, **imshow)
        ax.set_xlabel("column (px)")
        ax.set_ylabel("row (px)")
    _plain_colorbar(fig, im, ax, label)
    return im


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def plot_cw_result(result: Any, path: str | Path, pixel: tuple[int, int] | None = None, title: str = "",
                   pixel_size_m: float | None = None) -> Path:
    """Save ``cw_figure`` as ``path`` (PNG, PDF or SVG by its suffix)."""
    return _save(cw_figure(result, pixel, title, pixel_size_m), path, 110)


def cw_figure(result: Any, pixel: tuple[int, int] | None = None, title: str = "",
              pixel_size_m: float | None = None) -> Any:
    """Figure with the spectrum of one pixel (data points, fit lines), the fitted resonance map and the
    B_NV map of a ``CwFieldMap``."""
    from matplotlib.figure import Figure

    from instrument.analysis.cw_run import fitted_curve

    b_ut = result.b_nv_t * 1e6
    if pixel is None:
        finite = np.where(np.isfinite(b_ut), np.abs(b_ut), -1)
        pixel = np.unravel_index(int(np.argmax(finite)), b_ut.shape)
    r, c = pixel
    f_mhz = result.frequencies_hz / 1e6
    fig = Figure(figsize=(15, 4.4), constrained_layout=True)
    axes = fig.subplots(1, 3)

    ax = axes[0]
    for k, (label, fit, colour) in enumerate(
        [("I-off", result.fit_off, "tab:blue"), ("I-on", result.fit_on, "tab:red")]
    ):
        ax.plot(f_mhz, result.spectra[k, r, c], "o", ms=3, color=colour, label=f"{label} data")
        dense = np.linspace(result.frequencies_hz[0], result.frequencies_hz[-1], 400)
        ax.plot(dense / 1e6, fitted_curve(fit, dense, (r, c)), "-", lw=1.2, color=colour, alpha=0.8,
                label=f"{label} fit")
    ax.set_xlabel("MW frequency (MHz)")
    ax.set_ylabel("lock-in signal (counts)")
    ax.xaxis.get_major_formatter().set_useOffset(False)
    ax.set_title(f"spectrum at pixel (row {r}, col {c})")
    ax.legend(fontsize=8)

    ax = axes[1]
    show_image(fig, ax, result.center_off_hz / 1e6, pixel_size_m, "fitted resonance, I-off (MHz)", "viridis")
    ax.set_title("fitted resonance, I-off")
    ax = axes[2]
    lim = np.nanpercentile(np.abs(b_ut), 99.5) if np.isfinite(b_ut).any() else 1.0
    show_image(fig, ax, b_ut, pixel_size_m, "B_NV (uT)", "RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title("B_NV of the coils, I-on minus I-off")
    um = (pixel_size_m or 0) * 1e6
    for ax in axes[1:]:
        ax.plot((c + 0.5) * um if um else c, (r + 0.5) * um if um else r, "k+", ms=10)
    if title:
        fig.suptitle(title)
    return fig


X_AXES = {"rabi": ("MW pulse length", 1e-9, "ns"), "ramsey": ("free evolution", 1e-6, "us"),
          "echo": ("total free evolution", 1e-6, "us"), "t1": ("dark time", 1e-3, "ms"),
          "odmr": ("MW frequency", 1e6, "MHz")}
HEADLINES = {"rabi": ("rabi_hz", "Rabi frequency", 1e6, "MHz"), "ramsey": ("t2_star_s", "T2*", 1e-6, "us"),
             "echo": ("t2_s", "T2", 1e-6, "us"), "t1": ("t1_s", "T1", 1e-3, "ms"),
             "odmr": ("center_hz", "line centre", 1e6, "MHz")}


def plot_pulsed_fit(fit: Any, path: str | Path, title: str = "") -> Path:
    """A ``PulsedFit``: data with error bars, the fitted model as a line, and the residuals."""
    from matplotlib.figure import Figure

    label, scale, unit = X_AXES.get(fit.kind, ("x", 1.0, ""))
    fig = Figure(figsize=(8, 5.5), constrained_layout=True)
    ax, res = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    dense = np.linspace(fit.x.min(), fit.x.max(), 1000)
    ax.errorbar(fit.x / scale, fit.y, fit.sigma, fmt="o", ms=3, lw=0.8, label="data")
    ax.plot(dense / scale, fit.model(dense), "-", lw=1.5, label="fit")
    if fit.kind in HEADLINES:
        name, text, div, u = HEADLINES[fit.kind]
        ax.set_title(f"{title}  {text} = {fit.params[name] / div:.4g} +- {fit.errors[name] / div:.2g} {u}"
                     .strip())
    ax.set_ylabel("signal / reference")
    ax.legend(fontsize=8)
    res.errorbar(fit.x / scale, (fit.y - fit.model(fit.x)) / fit.sigma, 1.0, fmt=".", ms=3, lw=0.6)
    res.axhline(0, color="0.5", lw=0.8)
    res.set_ylabel("residual / sigma")
    res.set_xlabel(f"{label} ({unit})")
    res.xaxis.get_major_formatter().set_useOffset(False)
    return _save(fig, path, 110)


def plot_spad_result(result: Any, path: str | Path, title: str = "",
                     pixel_size_m: float | None = None) -> Path:
    """A ``SpadOdmrResult``: mean spectrum with fit, count-rate image, resonance and sensitivity maps."""
    from matplotlib.figure import Figure

    from instrument.analysis.cw_run import fitted_curve

    fig = Figure(figsize=(18, 4.2), constrained_layout=True)
    axes = fig.subplots(1, 4)
    f_mhz = result.frequencies_hz / 1e6
    r, c = np.unravel_index(int(np.nanargmax(np.where(result.fit.converged, result.count_rate_hz, -1))),
                            result.count_rate_hz.shape)
    axes[0].plot(f_mhz, result.counts[r, c], "o", ms=3, label="counts")
    if result.fit.converged[r, c]:
        dense = np.linspace(result.frequencies_hz[0], result.frequencies_hz[-1], 400)
        axes[0].plot(dense / 1e6, fitted_curve(result.fit, dense, (r, c)), "-", lw=1.2, label="fit")
    axes[0].set(xlabel="MW frequency (MHz)", ylabel="counts per point", title=f"SPAD pixel ({r}, {c})")
    axes[0].xaxis.get_major_formatter().set_useOffset(False)
    axes[0].legend(fontsize=8)
    for ax, data, label, cmap in (
        (axes[1], result.count_rate_hz / 1e3, "count rate (kcps)", "gray"),
        (axes[2], result.fit.center / 1e6, "fitted resonance (MHz)", "viridis"),
        (axes[3], result.sensitivity_t_per_sqrt_hz * 1e9, "sensitivity (nT/sqrt(Hz))", "magma"),
    ):
        show_image(fig, ax, data, pixel_size_m, label, cmap)
        ax.set_title(label)
    if title:
        fig.suptitle(title)
    return _save(fig, path, 100)


MAP_LABELS = {"rabi_hz": ("Rabi frequency", 1e6, "MHz"), "t2_star_s": ("T2*", 1e-6, "us"),
              "t2_s": ("T2", 1e-6, "us"), "t1_s": ("T1", 1e-3, "ms")}


def plot_pulsed_map(result: Any, path: str | Path, truth: Any = None, title: str = "") -> Path:
    """A widefield pulsed result: the fitted map, its error, the truth (simulation) and the mean curve.

    With ``truth`` a histogram of (fit - truth) / sigma shows whether the errors are honest (a unit
    Gaussian when they are).
    """
    from matplotlib.figure import Figure

    name = result.parameter
    label, scale, unit = MAP_LABELS[name]
    values, errors = result.maps.params[name] / scale, result.maps.errors[name] / scale
    fig = Figure(figsize=(13, 7.5) if truth is not None else (13, 4), constrained_layout=True)
    axes = fig.subplots(2 if truth is not None else 1, 3, squeeze=False)
    lo, hi = np.nanpercentile(values, [1, 99])
    if truth is not None:
        t = np.asarray(truth) / scale
        lo, hi = min(lo, float(np.min(t))), max(hi, float(np.max(t)))
    im = axes[0, 0].imshow(values, vmin=lo, vmax=hi, cmap="viridis")
    axes[0, 0].set_title(f"fitted {label} ({unit}), {result.bin} px bins")
    _plain_colorbar(fig, im, axes[0, 0], f"{label} ({unit})")
    im = axes[0, 1].imshow(errors, cmap="magma")
    axes[0, 1].set_title(f"one-sigma error ({unit})")
    _plain_colorbar(fig, im, axes[0, 1], unit)
    fit = result.fit
    ax = axes[0, 2]
    x_label, x_scale, x_unit = X_AXES.get(fit.kind, ("x", 1.0, ""))
    dense = np.linspace(fit.x.min(), fit.x.max(), 800)
    ax.plot(fit.x / x_scale, fit.y, "o", ms=3, label="pixel mean")
    ax.plot(dense / x_scale, fit.model(dense), "-", lw=1.2, label="fit")
    ax.set_xlabel(f"{x_label} ({x_unit})")
    ax.set_ylabel("signal / reference")
    ax.set_title(title)
    ax.legend(fontsize=8)
    if truth is not None:
        im = axes[1, 0].imshow(t, vmin=lo, vmax=hi, cmap="viridis")
        axes[1, 0].set_title(f"simulated truth {label} ({unit})")
        _plain_colorbar(fig, im, axes[1, 0], f"{label} ({unit})")
        z = (values - t) / errors
        im = axes[1, 1].imshow(z, vmin=-4, vmax=4, cmap="coolwarm")
        axes[1, 1].set_title("(fit - truth) / sigma")
        _plain_colorbar(fig, im, axes[1, 1], "sigma")
        ax = axes[1, 2]
        zz = z[np.isfinite(z)]
        ax.hist(np.clip(zz, -6, 6), bins=np.linspace(-6, 6, 49), density=True, alpha=0.7, label="bins")
        g = np.linspace(-6, 6, 200)
        ax.plot(g, np.exp(-g**2 / 2) / np.sqrt(2 * np.pi), "k-", lw=1, label="unit Gaussian")
        a = getattr(result, "agreement", {}) or {}
        if a:
            ax.set_title(f"{a['within_2_sigma']:.0%} within 2 sigma, median |z| {a['median_abs_z']:.2f}")
        ax.set_xlabel("(fit - truth) / sigma")
        ax.legend(fontsize=8)
    for a in [axes[0, 0], axes[0, 1], *(axes[1, :2] if truth is not None else [])]:
        a.set_xticks([])
        a.set_yticks([])
    return _save(fig, path, 100)
