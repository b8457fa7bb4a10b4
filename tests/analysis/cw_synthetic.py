"""Synthetic stored CW-ODMR runs (I-off, I-on) with a textured sample that may drift between passes.

The sample is analytic (PL texture, a strain gradient of the zero-field line, a coil field), so a
drifted pass is the same sample evaluated at shifted coordinates: no interpolation in the truth.
"""

from __future__ import annotations

import numpy as np

from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.physics.nv import lorentzian
from instrument.storage.runs import RunWriter, Step

FREQS = np.linspace(2.845e9, 2.895e9, 51)
FWHM_HZ = 4e6
CONTRAST = 0.03
STRAIN_HZ_PER_PX = 300e3  # the I-off line moves across the image: drift turns into a false field


def texture(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Relative PL brightness: blobs and ripples, the texture registration locks onto."""
    blob = np.exp(-((y - 10.0) ** 2 + (x - 20.0) ** 2) / (2 * 3.0**2))
    return 1.0 + 0.5 * blob + 0.25 * np.sin(2 * np.pi * x / 11.0) * np.cos(2 * np.pi * y / 9.0)


def coil_field_t(y: np.ndarray, x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    r2 = (y - shape[0] / 2) ** 2 + (x - shape[1] / 2) ** 2
    return 20e-6 * np.exp(-r2 / (2 * (shape[0] / 5) ** 2))


def pass_images(shape, shift_px, field_on: bool, counts: float, rng) -> np.ndarray:
    """(F, rows, cols) Poisson frames of one pass of the sample moved by ``shift_px`` (rows, cols)."""
    y, x = np.indices(shape, dtype=float)
    y, x = y - shift_px[0], x - shift_px[1]  # the content at (y, x) came from (y - dy, x - dx)
    center = 2.870e9 + STRAIN_HZ_PER_PX * (y - shape[0] / 2)
    if field_on:
        center = center - GAMMA_E_HZ_PER_T * coil_field_t(y, x, shape)
    dip = CONTRAST * lorentzian(FREQS, center[..., None], FWHM_HZ)
    mean = counts * texture(y, x)[..., None] * (1 - dip)
    return np.moveaxis(rng.poisson(mean).astype(np.float32), -1, 0)


def write_run(out, shape=(32, 32), drift_px=(0.0, 0.0), counts=1e6, seed=0, glitches=0,
              offset_px=(0.0, 0.0)) -> int:
    """Store a CW-ODMR run whose I-on pass moved by ``drift_px`` from its I-off pass, itself at
    ``offset_px`` from the sample's first position; returns its run id."""
    rng = np.random.default_rng(seed)
    off = pass_images(shape, offset_px, False, counts, rng)
    on = pass_images(shape, np.add(offset_px, drift_px), True, counts, rng)
    for _ in range(glitches):  # a cosmic-ray-like spike on one frequency of a pixel
        r, c, k = rng.integers(shape[0]), rng.integers(shape[1]), rng.integers(len(FREQS))
        on[k, r, c] *= 1.5
    images = np.concatenate([off, on])
    writer = RunWriter(out, "cw_odmr", "test", {"frequency_hz": "Hz", "mean": "counts"}, ("frequency_hz",))
    run_id = writer.open({"sequence": {"name": "cw_odmr", "frequencies_hz": FREQS.tolist()}},
                         {"signal": shape}, images.shape[0])
    for i, image in enumerate(images):
        writer.write(Step(i, {"frequency_hz": FREQS[i % FREQS.size], "mean": float(image.mean())},
                          {"signal": image}))
    writer.close("completed")
    return run_id


def true_b_nv_t(shape=(32, 32)) -> np.ndarray:
    y, x = np.indices(shape, dtype=float)
    return coil_field_t(y, x, shape)
