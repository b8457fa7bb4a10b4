"""Camera frames of pulsed programs: the spin dynamics of every cell of the sample, integrated over
each exposure the camera line gates.

``sim.camera_line.ExposureRenderer`` gives a frame the steady-state CW PL of the laser and MW levels
in its window, which is right for CW ODMR but has no spin dynamics. A pulsed program (laser and MW
never on together) needs them: :class:`SpinExposureRenderer` plays the board's whole timeline once
per program run on a :class:`sim.spin_maps.CellSpinEnsemble`, with the camera line as the gate, so
every exposure gets, per cell, the PL the spins emit during every laser pulse inside it (the whole
readout pulse, as the camera integrates it: the spin contrast diluted by repolarisation over the
laser time). That light, times the World's brightness per pixel (illumination and optics), is the
frame's expected photons. Programs with the laser and MW on together (CW ODMR), or that loop
forever, go to the CW renderer.
"""

from __future__ import annotations

import numpy as np

from sim.camera_line import CAMERA_LINE, ExposureRenderer, ExposureWindow
from sim.spin import SpinModelError, SpinParameters
from sim.spin_maps import CellSpinEnsemble, SpinTruthMaps, cells_to_pixels, default_truth
from sim.spinapi import SimSpinAPI
from sim.world import World

DEFAULT_BLOCK = 10
"""Camera pixels per truth cell side: 300 x 300 images have 30 x 30 cells of their own spin physics."""


def truth_for(world: World, params: SpinParameters, block: int = DEFAULT_BLOCK) -> SpinTruthMaps:
    """The bundled truth maps on the World's image, ``block`` x ``block`` pixels a cell."""
    rows, cols = world.shape
    if block < 1 or rows % block or cols % block:
        raise SpinModelError(
            f"the spin-map block ({block} px) must divide the simulated image {rows} x {cols}; "
            "choose image_shape and spin_map_block in the station's sim: block to fit")
    return default_truth(params, (rows // block, cols // block), block)


class SpinExposureRenderer(ExposureRenderer):
    """Expected photons of a camera exposure, with per-cell spin dynamics for pulsed programs.

    Args:
        world: the shared physics.
        board: the simulated pulse generator.
        truth: the spin parameters per cell (``None``: :func:`truth_for` the World).
        params: the sample's uniform spin parameters (``None``: the sample file's).
        line: the board output cabled to the camera's trigger input.
    """

    def __init__(self, world: World, board: SimSpinAPI, truth: SpinTruthMaps | None = None,
                 params: SpinParameters | None = None, line: str = CAMERA_LINE) -> None:
        super().__init__(world, board)
        params = params or SpinParameters.from_sample_source(world.sample.source)
        self.truth = truth or truth_for(world, params)
        if self.truth.image_shape != tuple(world.shape):
            raise SpinModelError(f"the truth maps cover {self.truth.image_shape} pixels, the simulated "
                                 f"image is {tuple(world.shape)}")
        self.spins = CellSpinEnsemble(world, self.truth, params)
        self.line = line
        self.programs_played = 0
        self._played: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._kind: tuple[int, bool] | None = None

    def truth_maps(self, power_dbm: float | None = None) -> dict[str, object]:
        """The truth by the names the fitted maps use, with its cell size in pixels."""
        return {**self.truth.as_dict(self.spins.uniform, power_dbm), "block": self.truth.block}

    def photons(self, window: ExposureWindow) -> np.ndarray:
        if not self._pulsed_program():
            return super().photons(window)
        return self._pl_rates()[0] * self._light(window)

    def _pulsed_program(self) -> bool:
        """The running program ends and never has the laser and the MW switch on together."""
        board, tl = self.board, self.board.timeline
        if tl is None or tl.periodic or not board.running:
            return False
        if self._kind is None or self._kind[0] != board.start_count:
            _, outs = tl.segments()
            outs = np.asarray(outs, np.int64)
            both = ((outs >> board.wiring[self.laser_line]) & 1) & ((outs >> board.wiring[self.mw_line]) & 1)
            self._kind = (board.start_count, not bool(np.any(both)))
        return self._kind[1]

    def _light(self, window: ExposureWindow) -> np.ndarray:
        """Seconds of full brightness per pixel in ``window``, from the run's spin simulation."""
        board, tl, t0 = self.board, self.board.timeline, self.board.started_at_s
        assert tl is not None and t0 is not None
        if self._played is None or self._played[0] != board.start_count:
            pl = self.spins.play(tl, board.wiring, self.line, latency_s=board.latency_s)
            pulses = board.pulses_s(self.line, t0 - 1e-12, t0 + tl.duration_s + 1e-9)
            if len(pulses) != len(pl):
                raise SpinModelError(
                    f"the program's {len(pulses)} {self.line} pulses do not match the {len(pl)} gate "
                    "windows of its spin simulation; keep each exposure inside one block or one loop")
            self._played = (board.start_count, pulses[:, 0], pulses[:, 1], pl.reshape(len(pl), -1))
            self.programs_played += 1
        _, rises, falls, pl = self._played
        k = int(np.argmin(np.abs(rises - window.start_s)))
        tol = 2.0 / tl.clock_hz
        if abs(rises[k] - window.start_s) > tol or abs(falls[k] - window.end_s) > tol:
            raise SpinModelError(
                "pulsed frames are simulated for trigger-width exposures on the rising edge only; "
                f"the exposure {window.start_s:.9g} .. {window.end_s:.9g} s is not a {self.line} pulse")
        return cells_to_pixels(pl[k], self.truth)
