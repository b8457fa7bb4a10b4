"""A sink that keeps every step's image of the running sweep, for spectra at any pixel.

The engine's ``LiveSink`` holds only the latest step, which is right for the image view (stale frames
are dropped) but not for a spectrum: a pixel's spectrum needs every frequency point. ``SweepCube``
copies each step's image into a preallocated array under a short lock, so the engine never waits on
the GUI, and the GUI reads spectra from it on its timer. No Qt here: it is plain numpy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from instrument.storage.runs import Step

GROUP_KEY = "config"


@dataclass(frozen=True)
class Spectra:
    """Spectra by group (I-off, I-on, ...): ``x`` and ``y`` per group, NaN where not yet measured."""

    x_name: str
    x: dict[int, np.ndarray]
    y: dict[int, np.ndarray]


class SweepCube:
    """Engine sink holding all images of one image stream of the running sequence.

    Args:
        image_name: which of the sequence's images to keep (``signal`` for CW ODMR).
        x_name: the step value that is the spectrum's x axis (the swept setpoint).
    """

    def __init__(self, image_name: str = "signal", x_name: str = "frequency_hz") -> None:
        self.image_name = image_name
        self.x_name = x_name
        self._lock = threading.Lock()
        self._images: np.ndarray | None = None
        self._x = np.empty(0)
        self._group = np.empty(0, dtype=int)
        self._mean = np.empty(0)
        self.metadata: dict[str, Any] = {}
        self.steps_written = 0

    # ---- sink interface (engine thread) ----------------------------------------------------------

    def open(self, metadata: Mapping[str, Any], image_shapes: Mapping[str, tuple[int, ...]],
             n_steps: int) -> None:
        shape = image_shapes.get(self.image_name)
        with self._lock:
            self.metadata = dict(metadata)
            self._images = None if shape is None else np.full((n_steps, *shape), np.nan, np.float32)
            self._x = np.full(n_steps, np.nan)
            self._group = np.zeros(n_steps, dtype=int)
            self._mean = np.full(n_steps, np.nan)
            self.steps_written = 0

    def write(self, step: Step) -> None:
        image = step.images.get(self.image_name)
        with self._lock:
            i = step.index
            if self._images is not None and image is not None:
                self._images[i] = image
                self._mean[i] = float(np.mean(image))
            self._x[i] = float(step.values.get(self.x_name, i))
            self._group[i] = int(step.values.get(GROUP_KEY, 0))
            self.steps_written += 1

    def close(self, status: str, reason: str = "") -> None:
        """Keeps the data: the GUI still shows the finished (or aborted) sweep."""

    # ---- readers (GUI thread) --------------------------------------------------------------------

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        with self._lock:
            return None if self._images is None else self._images.shape[1:]

    def pixel_spectra(self, row: int, col: int) -> Spectra:
        """Spectra of one pixel by group; raises IndexError outside the image."""
        with self._lock:
            if self._images is None:
                return Spectra(self.x_name, {}, {})
            rows, cols = self._images.shape[1:3]
            if not (0 <= row < rows and 0 <= col < cols):
                raise IndexError(f"pixel ({row}, {col}) is outside the {rows}x{cols} image")
            return self._split(self._images[:, row, col].astype(float))

    def mean_spectra(self) -> Spectra:
        """Image-mean spectra by group."""
        with self._lock:
            return self._split(self._mean.copy())

    def _split(self, y: np.ndarray) -> Spectra:
        measured = np.isfinite(self._x)
        xs, ys = {}, {}
        for g in np.unique(self._group[measured]):
            take = measured & (self._group == g)
            order = np.argsort(self._x[take])
            xs[int(g)] = self._x[take][order]
            ys[int(g)] = y[take][order]
        return Spectra(self.x_name, xs, ys)
