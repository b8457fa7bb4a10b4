"""Background subtraction for field maps beyond a global polynomial.

``subtract_background(image, method, ...)`` returns (corrected, background):

- "mean": the mean of the (masked) background pixels;
- "polynomial": a 2-D polynomial of ``order`` fitted to the background pixels (``mask`` True);
- "gaussian": a Gaussian low-pass of ``sigma_px`` (NaN-aware: normalised convolution), which keeps
  features smaller than ~sigma and removes slow gradients;
- "interpolate": the background under a region (``mask`` False: the sample) interpolated from the
  pixels around it (``scipy.interpolate.griddata``, cubic inside the hull of the known pixels), the
  way one removes a bias gradient under a localised source.

``mask`` is True where the map is background (field-free). NaN stays NaN.
"""

from __future__ import annotations

import numpy as np

from instrument.analysis.fieldmap import remove_polynomial_background

METHODS = ("mean", "polynomial", "gaussian", "interpolate")


def subtract_background(
    image: np.ndarray,
    method: str = "polynomial",
    *,
    mask: np.ndarray | None = None,
    order: int = 1,
    sigma_px: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the background estimated by ``method`` (see the module docstring)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (rows, cols), got shape {image.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown background method {method!r}; choose one of {METHODS}")
    use = np.isfinite(image)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the image's {image.shape}")
        use &= mask
    if not use.any():
        raise ValueError("no finite background pixels: widen the mask")
    if method == "polynomial":
        return remove_polynomial_background(image, order, mask)
    if method == "mean":
        background = np.full(image.shape, image[use].mean())
    elif method == "gaussian":
        from scipy.ndimage import gaussian_filter

        if not sigma_px > 0:
            raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
        filled = np.where(use, image, 0.0)
        weight = gaussian_filter(use.astype(np.float64), sigma_px, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            background = gaussian_filter(filled, sigma_px, mode="nearest") / weight
    else:
        from scipy.interpolate import griddata

        if mask is None:
            raise ValueError("method 'interpolate' needs a mask (False over the region to interpolate)")
        rows, cols = np.nonzero(use)
        grid = np.indices(image.shape)
        points = np.column_stack([rows, cols])
        background = griddata(points, image[use], (grid[0], grid[1]), method="cubic")
        # Outside the hull of the known pixels cubic interpolation is undefined: nearest there.
        hole = ~np.isfinite(background)
        if hole.any():
            background[hole] = griddata(points, image[use], (grid[0][hole], grid[1][hole]), method="nearest")
    return image - background, background
