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

    def evaluate(self, theta: np.ndarray, out_model: np.ndarray, out_jac: np.ndarray) -> np.ndarray:
        """Write the model (N, F) and the unscaled Jacobian (P-1, N, F) for ``theta`` (P, N).

        Returns the per-column scales (P, N): the Jacobian is ``scales[1:, :, None] * out_jac``. The
        amplitude and width factors of the centre and width columns are per pixel, so applying them
        to the small normal equations saves two passes over the samples per line.
        The baseline's constant column is not stored (see ``BatchModel``).
        """
        n = theta.shape[1]
        k = self.k
        theta64 = theta
        theta = theta.astype(self.dtype, copy=False)
        n_lines = len(self.offsets)
        inv_lines = self.dtype.type(1.0 / n_lines)
        tmp = self._tmp[:n]
        scales = np.ones((self.n_params, n))
        for p in range(k):
            c = theta[1 + p][:, None]
            w = theta[1 + k + p][:, None]
            a = theta[1 + 2 * k + p][:, None]
            g, dc, dw = out_jac[2 * k + p], out_jac[p], out_jac[k + p]
            for i, off in enumerate(self.offsets):
                if i == 0:
                    self._line(c + self.dtype.type(off), w, g, dc, dw, n)
                else:
                    acc = self._acc[:, :n]
                    self._line(c + self.dtype.type(off), w, acc[0], acc[1], acc[2], n)
                    g += acc[0]
                    dc += acc[1]
                    dw += acc[2]
            if n_lines > 1:
                g *= inv_lines
            a64, w64 = theta64[1 + 2 * k + p], theta64[1 + k + p]
            if self.shape == "lorentzian":
                scales[1 + p] = 8.0 * a64 / (w64 * w64) / n_lines
                scales[1 + k + p] = 2.0 * a64 / w64 / n_lines
            else:
                scales[1 + p] = 2.0 * _FOUR_LN2 * a64 / (w64 * w64) / n_lines
                scales[1 + k + p] = 2.0 * _FOUR_LN2 * a64 / (w64 * w64 * w64) / n_lines
            if p == 0:
                np.multiply(g, a, out=out_model)
                out_model += theta[0][:, None]
            else:
                np.multiply(g, a, out=tmp)
                out_model += tmp
        return scales

    def _line(self, c, w, g, dg_dc, dg_dw, n) -> None:
        """Peak-normalised line and its derivatives (centre, FWHM) without their per-pixel factors,
        into the given (n, F) buffers (the factors are in ``evaluate``'s scales)."""
        d = self._d[:n]
        np.subtract(self.x, c, out=d)
        if self.shape == "lorentzian":
            # L = h^2 / (d^2 + h^2), h = w / 2;  dL/dc = (8 / w^2) d L^2;  dL/dw = (2 / w) (L - L^2)
            np.multiply(d, d, out=g)
            h2 = 0.25 * w * w  # (n, 1)
            g += h2
            np.divide(h2, g, out=g)
            np.multiply(g, g, out=dg_dw)
            np.multiply(dg_dw, d, out=dg_dc)
            np.subtract(g, dg_dw, out=dg_dw)
        else:
            # G = exp(-4 ln2 d^2 / w^2);  dG/dc = (8 ln2 / w^2) d G;  dG/dw = (8 ln2 / w^3) d^2 G
            np.multiply(d, d, out=g)
            g *= -_FOUR_LN2 / (w * w)
            np.exp(g, out=g)
            np.multiply(d, g, out=dg_dc)
            np.multiply(dg_dc, d, out=dg_dw)
