"""Sweep data for the live views: a sink that keeps every step's image, and stored runs replayed into it.

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

from instrument.storage.runs import Step, StoredRun

GROUP_KEY = "config"
IMAGE_NAME = "signal"
# Step values that are measured, not swept: the rest of a run's scalars is its x axis.
MEASURED_VALUES = {"config", "mean_signal", "signal", "reference", "ratio", "ratio_err", "mean_counts",
                   "total_counts"}
IMAGE_LABELS = {"signal": ("lock-in signal", "counts"), "ratio": ("signal / reference", ""),
                "counts": ("SPAD counts", "counts")}


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


def swept_name(scalar_names: Any) -> str:
    """The swept quantity among a run's scalar names (``frequency_hz``, ``tau_s``, ...)."""
    swept = [n for n in scalar_names if n not in MEASURED_VALUES]
    return swept[0] if swept else "frequency_hz"


def cube_from_run(run: StoredRun) -> tuple[SweepCube, np.ndarray]:
    """A stored run replayed into a ``SweepCube``; also returns the image stack."""
    for image_name in IMAGE_LABELS:
        try:
            images = run.images(image_name)
            break
        except KeyError:
            continue
    else:
        raise KeyError(f"run {run.run_id} holds none of the images {', '.join(IMAGE_LABELS)}")
    cube = SweepCube(image_name, swept_name(run.scalars))
    cube.open(run.metadata, {image_name: images.shape[1:]}, images.shape[0])
    names = list(run.scalars)
    n = min(len(v) for v in run.scalars.values()) if run.scalars else 0
    for i in range(n):
        values = {k: float(run.scalars[k][i]) for k in names}
        cube.write(Step(i, values, {image_name: images[i]}))
    return cube, images


def pixel_size_of(metadata_or_snapshot: dict[str, Any]) -> float | None:
    """The camera's pixel size on the sample from a station snapshot, if it reports one."""
    from instrument.services.report import pixel_size_of as from_metadata

    return from_metadata(metadata_or_snapshot)


@dataclass
class StoredView:
    """A stored run made ready for the live views (``stored_run_view``)."""

    cube: SweepCube
    latest: np.ndarray | None
    """The last step with any finite pixel (an aborted run's last measured frame), or None."""
    x_unit: str
    is_cw: bool
    pixel_size_m: float | None


def stored_run_view(run: StoredRun) -> StoredView:
    """Replay ``run`` for the live views: its cube, last measured frame, axis unit and pixel size.

    Raises:
        KeyError: the run holds no image the views show.
        OSError: its image file cannot be read.
    """
    cube, images = cube_from_run(run)
    x = cube.x_name
    x_unit = "Hz" if x.endswith("_hz") else "s" if x.endswith("_s") else ""
    measured = [i for i in range(images.shape[0]) if np.isfinite(images[i]).any()]
    is_cw = (run.metadata.get("sequence") or {}).get("name") == "cw_odmr"
    return StoredView(cube, images[measured[-1]] if measured else None, x_unit, is_cw,
                      pixel_size_of(run.metadata))
