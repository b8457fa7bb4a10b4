"""Spatially varying NV spin physics for widefield pulsed measurements, with its truth maps.

A widefield map means something only if the spins differ across the field of view. The simulated
sample is divided into cells (``grid``, each ``block`` x ``block`` camera pixels) with their own
spin parameters, stored as :class:`SpinTruthMaps` so a test can compare fitted maps with them:

* Rabi frequency: the MW comes from a straight wire antenna beyond the top edge of the field of
  view; its field amplitude, and so the Rabi frequency, falls off as 1/distance from the wire;
* T2*: shortened in a strain patch; T2: a gradient across the field (NV density);
  T1: shortened around a spot of magnetic noise (a paramagnetic particle on the surface).

:class:`CellSpinEnsemble` plays a pulse timeline on every cell at once (numpy over cells), with
the physics of :class:`sim.spin.SpinEnsemble`. Only the lines near the MW frequency (the driven
family's hyperfine lines) carry their inhomogeneous detuning spread; the far-detuned ones (other
families, the other branch) are driven weakly and fast, so each is one two-level system at its
mean detuning. That cuts the work per cell by ~8 and changes the PL by ~1e-6 relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from instrument.physics.nv import HYPERFINE_OFFSETS_HZ
from sim.spin import N_INHOMOGENEOUS, SpinEnsemble, SpinModelError, SpinParameters, _State
from sim.world import World

FULL_SPREAD_HZ = 20e6
"""Lines closer than this (or 3 Rabi frequencies) to the MW are evolved with their detuning spread."""


@dataclass(frozen=True)
class SpinTruthMaps:
    """Spin parameters per cell (arrays of shape ``grid``); the truth the fitted maps must match.

    ``rabi_scale`` multiplies the sample's Rabi frequency (its MW field amplitude at that cell);
    ``block`` is the cell size in camera pixels.
    """

    rabi_scale: np.ndarray
    t2_star_s: np.ndarray
    t2_s: np.ndarray
    t1_s: np.ndarray
    t2_stretch: float
    block: int = 1

    def __post_init__(self) -> None:
        shape = np.shape(self.rabi_scale)
        for name in ("rabi_scale", "t2_star_s", "t2_s", "t1_s"):
            a = np.asarray(getattr(self, name), float)
            if a.shape != shape or a.ndim != 2:
                raise SpinModelError(f"truth map {name} has shape {a.shape}, expected the grid {shape}")
            if not np.all(np.isfinite(a) & (a > 0)):
                raise SpinModelError(f"truth map {name} must be finite and positive")
        if int(self.block) < 1:
            raise SpinModelError(f"the cell block must be >= 1 camera pixel, got {self.block}")

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(np.shape(self.rabi_scale))  # type: ignore[return-value]

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.grid[0] * self.block, self.grid[1] * self.block)

    def rabi_hz(self, params: SpinParameters, power_dbm: float) -> np.ndarray:
        """Rabi frequency map at a source power."""
        return params.rabi_hz(power_dbm) * np.asarray(self.rabi_scale)

    def as_dict(self, params: SpinParameters, power_dbm: float | None = None) -> dict[str, Any]:
        """The maps by the names the fitted maps use (SI units)."""
        out: dict[str, Any] = {"t2_star_s": np.asarray(self.t2_star_s), "t2_s": np.asarray(self.t2_s),
                               "t1_s": np.asarray(self.t1_s), "t2_stretch": self.t2_stretch}
        if power_dbm is not None:
            out["rabi_hz"] = self.rabi_hz(params, power_dbm)
        return out


def default_truth(params: SpinParameters, grid: tuple[int, int], block: int = 1) -> SpinTruthMaps:
    """The bundled spatial variation, around the sample's uniform spin parameters.

    Coordinates run over [-1, 1] across the field of view (u along columns, v down the rows).
    """
    rows, cols = (int(n) for n in grid)
    if rows < 1 or cols < 1:
        raise SpinModelError(f"the truth grid must have at least one cell, got {grid}")
    v, u = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    # A straight wire beyond the top edge, tilted 15 degrees from the rows, 2.5 half-widths from the
    # centre and 0.5 below the NV layer: amplitude ~ 1/distance, 1 at the centre of the field
    # (about 0.7 at the bottom, 1.6 at the top).
    wire_v, depth, tilt = -2.5, 0.5, np.deg2rad(15.0)
    across = (v - wire_v) * np.cos(tilt) - u * np.sin(tilt)  # distance from the wire in the layer
    centre = -wire_v * np.cos(tilt)
    rabi_scale = np.hypot(centre, depth) / np.hypot(across, depth)

    def bump(u0: float, v0: float, width: float) -> np.ndarray:
        return np.exp(-((u - u0) ** 2 + (v - v0) ** 2) / (2 * width**2))

    return SpinTruthMaps(
        rabi_scale=rabi_scale,
        t2_star_s=params.t2_star_s * (1 - 0.4 * bump(0.35, -0.2, 0.4)),
        t2_s=params.t2_s * (0.75 + 0.2 * (u + 1)),
        t1_s=params.t1_s * (1 - 0.6 * bump(-0.4, 0.45, 0.35)),
        t2_stretch=params.t2_stretch,
        block=block,
    )


class _CellParams:
    """SpinParameters with per-cell arrays (cells, 1) where the truth varies; broadcasts in the physics."""

    def __init__(self, params: SpinParameters, truth: SpinTruthMaps) -> None:
        col = lambda a: np.asarray(a, float).reshape(-1, 1)  # noqa: E731 - a one-line reshape
        self.t1_s = col(truth.t1_s)
        self.t2_s = col(truth.t2_s)
        self.t2_stretch = float(truth.t2_stretch)
        self.t2_star_s = col(truth.t2_star_s)
        self.polarization_time_s = params.polarization_time_s
        self.readout_contrast = params.readout_contrast
        self._rabi_at_0dbm = params.rabi_hz_at_0dbm * col(truth.rabi_scale)

    def rabi_hz(self, power_dbm: float) -> np.ndarray:
        return self._rabi_at_0dbm * 10 ** (power_dbm / 20)


class CellSpinEnsemble(SpinEnsemble):
    """The NV ensemble of every truth cell, evolved through pulse timelines together.

    ``play`` returns, per gate window, the PL of every cell (n_windows, cells) in seconds of full
    brightness, as :meth:`SpinEnsemble.play` does for the uniform ensemble.
    """

    def __init__(self, world: World, truth: SpinTruthMaps, params: SpinParameters | None = None) -> None:
        self.world = world
        self.uniform = params or SpinParameters.from_sample_source(world.sample.source)
        self.truth = truth
        self.params = _CellParams(self.uniform, truth)  # type: ignore[assignment]
        self.n_cells = int(np.prod(truth.grid))
        nodes, weights = np.polynomial.hermite_e.hermegauss(N_INHOMOGENEOUS)
        sigma_hz = 1.0 / (np.sqrt(2.0) * np.pi * self.params.t2_star_s)  # (cells, 1)
        self._spread_hz = nodes[None, :] * sigma_hz  # (cells, K)
        self._spread_w = weights / weights.sum()
        self._field_key = None
        self._b_mean = np.zeros(3)
        self._lines_key: tuple = ()
        self._weights = np.ones(1)
        self.state = self._polarised()

    def _polarised(self) -> _State:
        n = len(self._weights)
        ones = np.ones((self.n_cells, n))
        return _State(np.zeros_like(ones), np.zeros_like(ones), ones)

    def _drive(self) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        w = self.world
        with w.lock:
            f_mw, power, on = w.mw_frequency_hz, w.mw_power_dbm, w.mw_output
        lines = self.line_frequencies_hz().ravel()  # (4 families * 2 branches * h,)
        rabi = self.params.rabi_hz(power) if on else np.zeros((self.n_cells, 1))
        r_max = float(np.max(self.params.rabi_hz(power)))
        # Lines within a few Rabi frequencies see the detuning spread (K nodes); lines further out
        # are driven weakly and far faster than the spread dephases them: one node at their mean.
        full = np.abs(f_mw - lines) < max(FULL_SPREAD_HZ, 3 * r_max)
        key = tuple(full)
        if key != self._lines_key:
            # Another set of driven lines: start polarised (the programs' first laser pulse does this
            # anyway, to within exp(-laser / polarisation time)).
            self._lines_key = key
            h = len(HYPERFINE_OFFSETS_HZ[w.sample.isotope])
            self._weights = np.concatenate(
                [np.tile(self._spread_w, int(full.sum())), np.ones(int((~full).sum()))]) / (4 * h)
            self.state = self._polarised()
        spread = (f_mw - lines[full])[None, :, None] - self._spread_hz[:, None, :]
        detuning = np.concatenate([
            spread.reshape(self.n_cells, -1),
            np.broadcast_to(f_mw - lines[~full], (self.n_cells, int((~full).sum()))),
        ], axis=1)
        return detuning, rabi

    def out_of_zero(self) -> np.ndarray:  # type: ignore[override]
        """Fraction out of ms=0 per cell, (cells,), averaged over the four families."""
        return 0.5 * (self._weights.sum() - self.state.z @ self._weights)

    def reset(self) -> None:
        self.state = self._polarised()


def cells_to_pixels(values: np.ndarray, truth: SpinTruthMaps) -> np.ndarray:
    """Per-cell values (..., cells) as camera images (..., rows, cols): each cell fills its block."""
    v = np.asarray(values, float)
    grid = v.reshape(*v.shape[:-1], *truth.grid)
    b = truth.block
    return np.repeat(np.repeat(grid, b, axis=-2), b, axis=-1)
