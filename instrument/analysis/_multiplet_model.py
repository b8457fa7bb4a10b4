"""Baseline plus multiplet lines with analytic Jacobian, evaluated in place for batches of pixels.

This is the inner loop of every fit, so it writes into preallocated buffers with ``out=`` arguments:
fresh (N, F) temporaries per operation cost more in page faults than the arithmetic itself. The line
formulas are those of ``instrument.analysis.lineshapes`` (checked against each other in the tests).

Parameters, per pixel, in this order: baseline, ``k`` centres, ``k`` FWHMs, ``k`` amplitudes.
"""

from __future__ import annotations

import math

import numpy as np

_FOUR_LN2 = 4.0 * math.log(2.0)


class MultipletModel:
    """``n_peaks`` multiplets of one line shape on a fixed (normalised) frequency axis.

    Args:
        shape: "lorentzian" or "gaussian".
        x: (F,) sample positions.
        offsets: line offsets within one multiplet, same units as ``x``.
        n_peaks: number of multiplets.
        capacity: the largest number of pixels evaluated at once (sizes the scratch buffers).
        dtype: arithmetic precision of the (N, F) arrays; parameters stay float64.
    """

    def __init__(
        self, shape: str, x: np.ndarray, offsets: np.ndarray, n_peaks: int, capacity: int, dtype=np.float64
    ):
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.x = np.ascontiguousarray(x, dtype=self.dtype)[None, :]
        self.offsets = [float(o) for o in offsets]
        self.k = n_peaks
        self.n_params = 1 + 3 * n_peaks
        f = self.x.shape[1]
        self._d = np.empty((capacity, f), self.dtype)
        self._acc = np.empty((3, capacity, f), self.dtype) if len(self.offsets) > 1 else None
        self._tmp = np.empty((capacity, f), self.dtype)

    def evaluate(self, theta: np.ndarray, out_model: np.ndarray, out_jac: np.ndarray) -> None:
        """Write the model (N, F) and its Jacobian (P, N, F) for parameters ``theta`` (P, N)."""
        n = theta.shape[1]
        k = self.k
        theta = theta.astype(self.dtype, copy=False)
        out_jac[0] = 1.0
        out_model[...] = theta[0][:, None]
        inv_lines = 1.0 / len(self.offsets)
        tmp = self._tmp[:n]
        for p in range(k):
            c = theta[1 + p][:, None]
            w = theta[1 + k + p][:, None]
            a = theta[1 + 2 * k + p][:, None]
            g, dc, dw = out_jac[1 + 2 * k + p], out_jac[1 + p], out_jac[1 + k + p]
            for i, off in enumerate(self.offsets):
                if i == 0:
                    self._line(c + self.dtype.type(off), w, g, dc, dw, n)
                else:
                    acc = self._acc[:, :n]
                    self._line(c + self.dtype.type(off), w, acc[0], acc[1], acc[2], n)
                    g += acc[0]
                    dc += acc[1]
                    dw += acc[2]
            if len(self.offsets) > 1:
                g *= inv_lines
            # The line derivatives become Jacobian columns once scaled by the amplitude.
            a_lines = a * inv_lines if len(self.offsets) > 1 else a
            dc *= a_lines
            dw *= a_lines
            np.multiply(g, a, out=tmp)
            out_model += tmp

    def _line(self, c, w, g, dg_dc, dg_dw, n) -> None:
        """Peak-normalised line and its derivatives (centre, FWHM) into the given (n, F) buffers."""
        d = self._d[:n]
        np.subtract(self.x, c, out=d)
        if self.shape == "lorentzian":
            # L = h^2 / (d^2 + h^2), h = w / 2;  dL/dc = 8 d L^2 / w^2;  dL/dw = 2 (L - L^2) / w
            h2 = 0.25 * w * w  # (n, 1): per-pixel factors are computed once, not per sample
            np.multiply(d, d, out=g)
            g += h2
            np.divide(h2, g, out=g)
            np.multiply(g, g, out=dg_dw)
            np.multiply(dg_dw, d, out=dg_dc)
            dg_dc *= 8.0 / (w * w)
            np.subtract(g, dg_dw, out=dg_dw)
            dg_dw *= 2.0 / w
        else:
            # G = exp(-4 ln2 d^2 / w^2);  dG/dc = 8 ln2 d G / w^2;  dG/dw = dG/dc * d / w
            np.multiply(d, d, out=g)
            g *= -_FOUR_LN2 / (w * w)
            np.exp(g, out=g)
            np.multiply(d, g, out=dg_dc)
            dg_dc *= 2.0 * _FOUR_LN2 / (w * w)
            np.multiply(dg_dc, d, out=dg_dw)
            dg_dw /= w
