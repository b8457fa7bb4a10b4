"""Simulated seed-000 field maps from the World, for the GUI's reconstruction view, tests, benchmarks.

The reconstruction package must not import ``sim``; the station, tests and benchmarks build the
``measure`` callables of ``instrument.reconstruction.seed000`` here: the World's true B_NV map for
a drive vector plus white noise, a slow background drift (offset and gradient) and hot pixels.

These maps are the dictionary's own model (linear in the drive, the same maps as the truth): fine for
testing the algorithm, not for scoring it. Scores (``acquire --sim reconstruct`` and
``benchmarks/seed000_table.py``) use ``sim.lockin_chain`` (ODMR sweeps, doublet fits, a perturbed
sample, the dictionary on another day).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.world import World


@dataclass
class NoisyMicroscope:
    """Measured maps of the World's live coils for drive vectors in units of the sample's drive current.

    Args:
        world: the simulated physics.
        noise_t: white noise per pixel (T) of a static map.
        movie_noise_t: white noise per pixel of one movie frame (single lock-in frames are noisier).
        drift_t: scale of the background drift (offset and gradient across the map, T).
        hot_pixels: hot pixels per map, each ``hot_t`` above its neighbours.
        seed: random seed.
    """

    world: World
    noise_t: float = 0.3e-6
    movie_noise_t: float = 2.0e-6
    drift_t: float = 1.0e-6
    hot_pixels: int = 5
    hot_t: float = 50e-6
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.live = [i for i, c in enumerate(self.world.sample.coils) if not c.dead]
        self.drive_current_a = self.world.sample.drive_current_a
        self._unit = np.stack([self.truth(np.eye(len(self.live))[i]) for i in range(len(self.live))])

    @property
    def n_sources(self) -> int:
        return len(self.live)

    def truth(self, drive: np.ndarray) -> np.ndarray:
        """Noise-free B_NV map (rows, cols) for a drive vector over the live coils."""
        currents = np.zeros(len(self.world.sample.coils))
        currents[self.live] = np.asarray(drive, dtype=float) * self.drive_current_a
        return self.world.true_b_nv_t(currents_a=currents)

    def _background(self, offset: float, gx: float, gy: float) -> np.ndarray:
        rows, cols = self.world.shape
        y, x = np.mgrid[0:rows, 0:cols]
        return offset + gx * (x / cols - 0.5) + gy * (y / rows - 0.5)

    def _hot(self, image: np.ndarray) -> np.ndarray:
        rows, cols = image.shape
        where = self.rng.integers(0, rows, self.hot_pixels), self.rng.integers(0, cols, self.hot_pixels)
        image[where] += self.hot_t
        return image

    def measure(self, drive: np.ndarray) -> np.ndarray:
        """One static map: truth + noise + a random background tilt + hot pixels."""
        image = self.truth(drive) + self.rng.normal(0, self.noise_t, self.world.shape)
        image += self._background(*self.rng.normal(0, self.drift_t, 3))
        return self._hot(image)

    def measure_movie(self, drives: np.ndarray) -> np.ndarray:
        """Movie (T, rows, cols): truth + frame noise + a background that drifts slowly + hot pixels."""
        drives = np.asarray(drives, dtype=float)
        t = len(drives)
        truth = np.tensordot(drives, self._unit, axes=(1, 0))
        # Slow drift: random walks of offset and gradients, smoothed over ~50 frames.
        walk = np.cumsum(self.rng.normal(0, self.drift_t / np.sqrt(t), (t + 50, 3)), axis=0)
        walk = np.array([np.convolve(w, np.ones(50) / 50, mode="valid")[:t] for w in walk.T]).T
        movie = truth + self.rng.normal(0, self.movie_noise_t, truth.shape)
        for k in range(t):
            movie[k] += self._background(*walk[k])
            self._hot(movie[k])
        return movie
