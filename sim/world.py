"""The simulated microscope's physics: sample, NV layer, optics and instrument state in one place.

Every instrument simulator reads and writes one ``World``: the microwave source sets
``mw_frequency_hz``, the coil driver sets ``coil_currents_a``, the PulseBlaster sets the gating of
MW and laser, and the camera and SPAD simulators ask for the photoluminescence that follows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.ndimage import gaussian_filter

from instrument.physics.biot_savart import polyline_field, square_spiral
from instrument.physics.nv import NV_AXES, odmr_dip, project_on_axis, resonance_hz
from sim.clock import VirtualClock

DEFAULT_SAMPLE = "microcoil_000.yaml"


class SampleFileError(ValueError):
    """A sample file is missing, unreadable or lacks a required entry."""


@dataclass(frozen=True)
class Coil:
    """One micro-coil of the sample."""

    name: str
    layer: int
    index: int
    center_m: tuple[float, float, float]
    dead: bool


@dataclass
class Sample:
    """Parsed sample file; see ``sim/samples/microcoil_000.yaml`` for the meaning of each entry."""

    name: str
    fov_width_m: float
    sensor_shape: tuple[int, int]
    psf_fwhm_m: float
    illumination_waist_m: float
    isotope: str | None
    contrast_max: float
    intrinsic_fwhm_hz: float
    mw_saturation_dbm: float
    photon_rate_hz: float
    bias_magnitude_t: float
    bias_axis: int
    coil_size_m: float
    coil_track_m: float
    coil_spacing_m: float
    coil_filaments: int
    drive_current_a: float
    field_scale: float = 1.0
    coils: list[Coil] = field(default_factory=list)
    source: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None) -> Sample:
        """Read a sample file; ``None`` loads the bundled seed-000 micro-coil sample."""
        if path is None:
            text = resources.files("sim.samples").joinpath(DEFAULT_SAMPLE).read_text()
            source = f"sim/samples/{DEFAULT_SAMPLE}"
        else:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise SampleFileError(f"cannot read sample file {path}: {exc.strerror}") from exc
            source = str(path)
        try:
            data = yaml.safe_load(text)
            return cls._from_dict(data, source)
        except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            raise SampleFileError(f"sample file {source} is invalid: {exc!r}") from exc

    @classmethod
    def _from_dict(cls, d: dict[str, Any], source: str) -> Sample:
        c = d["coils"]
        pitch = c["size_m"] + c["gap_m"]
        coils = []
        for li, layer in enumerate(c["layers"]):
            ox, oy = layer["offset_m"]
            for ci, (gx, gy) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)]):
                center = (ox + gx * pitch / 2, oy + gy * pitch / 2, -float(layer["standoff_m"]))
                coils.append(Coil(f"L{li + 1}C{ci + 1}", li, ci, center, ci in layer["dead"]))
        nv = d["nv_layer"]
        return cls(
            name=d["name"],
            fov_width_m=float(d["field_of_view"]["width_m"]),
            sensor_shape=tuple(int(n) for n in d["field_of_view"]["shape"]),
            psf_fwhm_m=float(d["optics"]["psf_fwhm_m"]),
            illumination_waist_m=float(d["optics"]["illumination_waist_m"]),
            isotope=nv["isotope"],
            contrast_max=float(nv["contrast_max"]),
            intrinsic_fwhm_hz=float(nv["intrinsic_fwhm_hz"]),
            mw_saturation_dbm=float(nv["mw_saturation_dbm"]),
            photon_rate_hz=float(nv["photon_rate_hz"]),
            bias_magnitude_t=float(d["bias_field"]["magnitude_t"]),
            bias_axis=int(d["bias_field"]["nv_axis"]),
            coil_size_m=float(c["size_m"]),
            coil_track_m=float(c["track_m"]),
            coil_spacing_m=float(c["spacing_m"]),
            coil_filaments=int(c["filaments"]),
            drive_current_a=float(c["drive_current_a"]),
            field_scale=float(c.get("field_scale", 1.0)),
            coils=coils,
            source=source,
        )


class World:
    """Shared physical state of the simulated microscope.

    Args:
        sample: the sample; ``None`` loads the bundled seed-000 micro-coil sample.
        shape: image shape (rows, cols) over the same field of view; ``None`` uses the sensor's.
        clock: the simulation clock; virtual by default.
        seed: seed of the random generator used for all noise.
    """

    def __init__(
        self,
        sample: Sample | None = None,
        shape: tuple[int, int] | None = None,
        clock: VirtualClock | None = None,
        seed: int = 0,
    ) -> None:
        self.sample = sample or Sample.load()
        self.shape = tuple(shape or self.sample.sensor_shape)
        self.clock = clock or VirtualClock()
        self.rng = np.random.default_rng(seed)
        self.lock = threading.RLock()
        # Instrument state, written by the simulators.
        self.mw_frequency_hz = 2.87e9
        self.mw_power_dbm = -30.0
        self.mw_output = False
        self.mw_gate_modulation_hz = 0.0  # MW switch toggled by the pulse generator, 0 = not running
        self.laser_on = True
        self.coil_currents_a = np.zeros(len(self.sample.coils))
        self._coil_maps: np.ndarray | None = None

    # ---- geometry ------------------------------------------------------------------------------

    @property
    def pixel_size_m(self) -> float:
        return self.sample.fov_width_m / self.shape[1]

    def pixel_coordinates_m(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of each pixel centre; x runs along columns, y along rows, origin at the centre."""
        rows, cols = self.shape
        p = self.pixel_size_m
        x = (np.arange(cols) - (cols - 1) / 2) * p
        y = (np.arange(rows) - (rows - 1) / 2) * p
        return np.meshgrid(x, y)

    # ---- fields --------------------------------------------------------------------------------

    def bias_field_t(self) -> np.ndarray:
        return self.sample.bias_magnitude_t * NV_AXES[self.sample.bias_axis]

    def coil_unit_fields_t(self) -> np.ndarray:
        """Field of each coil at 1 A on the NV layer, shape (n_coils, 3, rows, cols), cached.

        Includes the sample's ``field_scale`` (see the sample file: it matches the paper's amplitudes).
        """
        if self._coil_maps is None:
            s = self.sample
            x, y = self.pixel_coordinates_m()
            points = np.stack([x, y, np.zeros_like(x)], axis=-1)
            maps = []
            for coil in s.coils:
                verts = square_spiral(coil.center_m, s.coil_size_m, s.coil_track_m, s.coil_spacing_m)
                b = s.field_scale * polyline_field(verts, points, 1.0, s.coil_track_m, s.coil_filaments)
                maps.append(np.moveaxis(b, -1, 0))
            self._coil_maps = np.stack(maps)
        return self._coil_maps

    def coil_field_t(self, currents_a: np.ndarray | None = None) -> np.ndarray:
        """Sample field (3, rows, cols) for the given coil currents (default: the present ones).

        Dead coils carry no current whatever they are driven with.
        """
        currents = self.coil_currents_a if currents_a is None else np.asarray(currents_a, float)
        alive = np.array([not c.dead for c in self.sample.coils])
        return np.tensordot(currents * alive, self.coil_unit_fields_t(), axes=(0, 0))

    def total_field_t(self, currents_a: np.ndarray | None = None) -> np.ndarray:
        return self.coil_field_t(currents_a) + self.bias_field_t()[:, None, None]

    def true_b_nv_t(self, axis: int | None = None, currents_a: np.ndarray | None = None,
                    blurred: bool = True) -> np.ndarray:
        """Sample field projected on an NV axis, as an ideal measurement would see it.

        With ``blurred`` the map is convolved with the optical point-spread function, which is
        what a widefield image resolves.
        """
        axis = self.sample.bias_axis if axis is None else axis
        b = project_on_axis(self.coil_field_t(currents_a), axis)
        return self._blur(b) if blurred else b

    # ---- optics and photoluminescence ----------------------------------------------------------

    def _blur(self, image: np.ndarray) -> np.ndarray:
        sigma_px = self.sample.psf_fwhm_m / (2 * np.sqrt(2 * np.log(2))) / self.pixel_size_m
        return gaussian_filter(image, sigma_px, mode="nearest")

    def illumination(self) -> np.ndarray:
        """Relative laser intensity on the NV layer (1 at the spot centre)."""
        x, y = self.pixel_coordinates_m()
        w = self.sample.illumination_waist_m
        return np.exp(-2 * (x**2 + y**2) / w**2)

    def mw_saturation(self) -> float:
        """MW saturation parameter s = P / P_sat from the source power."""
        return 10 ** ((self.mw_power_dbm - self.sample.mw_saturation_dbm) / 10)

    def line_parameters(self) -> tuple[float, float]:
        """(contrast, fwhm_hz) at the present MW power: saturating contrast, power broadening."""
        s = self.mw_saturation()
        contrast = self.sample.contrast_max * s / (1 + s)
        fwhm = self.sample.intrinsic_fwhm_hz * np.sqrt(1 + s)
        return contrast, fwhm

    def pl_rate_hz(self, mw_on: bool, frequency_hz: float | None = None) -> np.ndarray:
        """Detected photon rate per pixel (rows, cols), optics blur included.

        ``mw_on`` is the state of the MW switch; the source must also have its output enabled for
        the NV spins to see any MW.
        """
        with self.lock:
            s = self.sample
            brightness = s.photon_rate_hz * self.illumination() * float(self.laser_on)
            if not (mw_on and self.mw_output):
                return brightness
            f = self.mw_frequency_hz if frequency_hz is None else frequency_hz
            contrast, fwhm = self.line_parameters()
            b = self.total_field_t()
            dip = np.zeros(self.shape)
            for axis in range(4):
                b_par = project_on_axis(b, axis)
                for branch in (-1, 1):
                    dip += odmr_dip(f, resonance_hz(b_par, branch), contrast, fwhm, s.isotope)
            return self._blur(brightness * (1 - dip))

    def resonance_estimate_hz(self, branch: int = -1) -> float:
        """Resonance of the bias axis without sample field: where a sweep should be centred."""
        b_par = float(project_on_axis(self.bias_field_t()[:, None], self.sample.bias_axis)[0])
        return float(resonance_hz(b_par, branch))
