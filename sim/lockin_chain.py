"""Seed-000 field maps measured through a simulated lock-in ODMR chain, on a perturbed sample.

The reconstruction (``instrument.reconstruction.dictionary``) models a map as a linear sum of
measured single-coil maps. To score it without an inverse crime the maps here are made another way:

- **Truth.** Biot-Savart of the spirals at their *true* standoffs (nominal + ``standoff_error_m``
  per layer), with the centre return lead and the two feed lines of every coil (the nominal model,
  ``nominal_unit_maps``, has neither), times the sample's ``field_scale``.
- **Spectra.** Each pixel sees the 15N doublet (3.03 MHz) of the bias-axis NV family, lower branch,
  at ``f = D(T) - gamma (B0 + B_NV)``; D moves by -74 kHz/K (Acosta et al., PRL 104, 070801 (2010)).
  Coil heating (``heating_k``, Joule heat, quadratic in the drive, spread over ``heating_sigma_m``)
  and the session's temperature shift D; the slow bias drift moves B0 between the I-on and the I-off
  sweep. The point-spread function blurs the photoluminescence at each frequency (not the field).
- **Lock-in camera.** The signal is the MW-on/off PL difference; its white noise per frame is set
  from the paper's per-pixel sensitivity (400 nT/sqrt(Hz) at 208 frames/s): one frame at the line's
  steepest slope has field noise ``eta * sqrt(frame_rate)`` (5.8 uT), scaled by 1/sqrt(illumination).
- **Static maps.** A 100 kHz-step sweep (the paper's step), ``sweeps`` sweeps averaged, a per-pixel
  least-squares fit of the doublet (centre, amplitude, width, baseline), I-on minus I-off, plus a few
  saturated pixels. ``sweeps=1`` is single-shot; the paper's "under 3 minutes" per configuration
  allows about 250 sweeps of 71 points per state at 208 frames/s.
- **Movies.** The MW frequency sits on the steepest flank of the doublet, found by a calibration
  sweep of the session; each frame's lock-in signal minus the mean of the frames without current,
  divided by each pixel's fitted slope, is the field (the paper's baseline correction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from instrument.physics.biot_savart import polyline_field, segment_field, square_spiral
from instrument.physics.constants import D_HZ, GAMMA_E_HZ_PER_T, HYPERFINE_15N_HZ
from instrument.physics.nv import NV_AXES
from sim.world import Sample

PAPER_SENSITIVITY_T_RTHZ = 400e-9
"""Seed 000: per-pixel sensitivity at 208 frames/s."""
PAPER_FRAME_RATE_HZ = 208.0
D_TEMPERATURE_HZ_PER_K = -74e3
"""dD/dT near room temperature (Acosta et al., PRL 104, 070801 (2010))."""


@dataclass
class ChainConfig:
    """Numbers of the simulated measurement chain; defaults follow seed 000 where it gives them."""

    roi_pixels: int = 129                      # 129 x 1.165 um = 150 um, the paper's field of view
    pixel_m: float | None = None               # None: the camera's pixel (1.165 um); larger: binned
    sweep_step_hz: float = 100e3               # paper
    sweep_half_span_hz: float = 3.5e6
    fwhm_hz: float = 1.0e6                     # ours: power-broadened dense-ensemble line
    sensitivity_t_rthz: float = PAPER_SENSITIVITY_T_RTHZ
    frame_rate_hz: float = PAPER_FRAME_RATE_HZ
    sweeps: int = 1
    standoff_error_m: tuple[float, ...] = (0.6e-6, -0.5e-6, 0.8e-6)  # true minus nominal, per layer
    return_leads: bool = True
    lead_length_m: float = 60e-6               # feed lines run this far towards the bond pads
    heating_k: float = 0.15                    # NV-layer temperature rise per coil at the reference drive
    heating_sigma_m: float = 25e-6
    drift_t: float = 0.3e-6                    # bias drift between the I-on and I-off sweeps
    hot_pixels: int = 5
    hot_t: float = 50e-6
    calibration_sweeps: int = 64               # movie sessions: sweep that finds the working point


@dataclass
class Session:
    """Conditions of one measurement session (dictionary day or test day)."""

    temperature_k: float = 0.0                 # relative to the nominal
    bias_offset_t: float = 0.0                 # change of the bias projection


DICTIONARY_DAY = Session(temperature_k=0.0, bias_offset_t=0.0)
TEST_DAY = Session(temperature_k=0.5, bias_offset_t=1e-6)  # D moves -37 kHz, bias +1 uT


def fill_failed_fits(image: np.ndarray) -> np.ndarray:
    """Failed-fit pixels (NaN) replaced by the map's median, for scores that need every pixel."""
    return np.where(np.isfinite(image), image, np.nanmedian(image))


def _lorentz(x: np.ndarray, half: float | np.ndarray) -> np.ndarray:
    return half**2 / (x**2 + half**2)


@dataclass
class LockInQDM:
    """Measured B_NV maps (T) of the seed-000 sample's live coils through the lock-in ODMR chain.

    Drives are in units of the sample's drive current (1.0 = reference drive, as the dictionary).
    """

    sample: Sample = field(default_factory=Sample.load)
    config: ChainConfig = field(default_factory=ChainConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        s, c = self.sample, self.config
        self.rng = np.random.default_rng(self.seed)
        # A binned pixel keeps the per-pixel noise of one camera pixel: conservative, and the
        # noise figure stays the paper's per-pixel sensitivity.
        self.pixel_m = c.pixel_m or s.fov_width_m / s.sensor_shape[1]
        n = c.roi_pixels
        coords = (np.arange(n) - (n - 1) / 2) * self.pixel_m
        self.x, self.y = np.meshgrid(coords, coords)
        self.shape = (n, n)
        self.live = [i for i, coil in enumerate(s.coils) if not coil.dead]
        self.axis = NV_AXES[s.bias_axis]
        self.b0 = s.bias_magnitude_t  # bias along the bias axis
        self.true_unit = np.stack([self._coil_map(i, true=True) for i in self.live])
        self.heat_unit = np.stack([
            np.exp(-((self.x - s.coils[i].center_m[0]) ** 2 + (self.y - s.coils[i].center_m[1]) ** 2)
                   / (2 * c.heating_sigma_m**2)) for i in self.live])
        w = s.illumination_waist_m
        self.illumination = np.exp(-2 * (self.x**2 + self.y**2) / w**2)
        self.psf_sigma_px = s.psf_fwhm_m / (2 * np.sqrt(2 * np.log(2))) / self.pixel_m
        self.freqs = self._expected_centre() + np.arange(-c.sweep_half_span_hz, c.sweep_half_span_hz
                                                         + c.sweep_step_hz / 2, c.sweep_step_hz)
        self.half = c.fwhm_hz / 2
        self.split = HYPERFINE_15N_HZ
        # Noise of one lock-in frame (signal units, line peak = 1 at full illumination): the field
        # noise at the steepest slope is sensitivity * sqrt(frame rate).
        fine = np.linspace(-3 * c.fwhm_hz, 3 * c.fwhm_hz, 4001)
        slope = np.abs(np.gradient(self._doublet(fine, 0.0, 1.0, self.half), fine)).max()
        self.frame_noise_b_t = c.sensitivity_t_rthz * np.sqrt(c.frame_rate_hz)
        self.frame_noise = self.frame_noise_b_t * GAMMA_E_HZ_PER_T * slope

    # ---- geometry --------------------------------------------------------------------------------

    @property
    def n_sources(self) -> int:
        return len(self.live)

    def _coil_map(self, index: int, true: bool) -> np.ndarray:
        """B_NV (rows, cols) of one coil at the reference drive; nominal or true geometry."""
        s, c = self.sample, self.config
        coil = s.coils[index]
        cx, cy, cz = coil.center_m
        if true:
            cz -= c.standoff_error_m[coil.layer]  # centres sit at -standoff
        points = np.stack([self.x, self.y, np.zeros_like(self.x)], axis=-1)
        verts = square_spiral((cx, cy, cz), s.coil_size_m, s.coil_track_m, s.coil_spacing_m)
        b = polyline_field(verts, points, 1.0, s.coil_track_m, s.coil_filaments)
        if true and c.return_leads:
            # Return lead from the spiral's end under the turns (1 um deeper) out past the edge, then
            # both feed lines towards the bond pads; they carry the same current both ways.
            end, start = verts[-1], verts[0]
            out_x = start[0] - 4e-6
            depth = cz - 1e-6
            lead = np.array([[end[0], end[1], depth], [out_x, end[1], depth]])
            feed_out = np.array([[out_x, end[1], depth], [out_x - c.lead_length_m, end[1], depth]])
            feed_in = np.array([[start[0] - c.lead_length_m, start[1], cz], [start[0], start[1], cz]])
            for seg in (lead, feed_out, feed_in):
                b = b + segment_field(seg[:1], seg[1:], points)
        return s.field_scale * s.drive_current_a * (b @ self.axis)

    def nominal_unit_maps(self) -> np.ndarray:
        """Model dictionary (N, rows, cols): nominal geometry, no leads, PSF-blurred B_NV (like FEM maps)."""
        maps = np.stack([self._coil_map(i, true=False) for i in self.live])
        return gaussian_filter(maps, (0, self.psf_sigma_px, self.psf_sigma_px))

    def truth(self, drive: np.ndarray) -> np.ndarray:
        """Noise-free true B_NV (rows, cols) of a drive vector, before the optics."""
        return np.tensordot(np.asarray(drive, float), self.true_unit, axes=(0, 0))

    # ---- spectra and fit -------------------------------------------------------------------------

    def _expected_centre(self) -> float:
        return D_HZ - GAMMA_E_HZ_PER_T * self.b0

    def _doublet(self, f: np.ndarray, centre: np.ndarray | float, amp, half) -> np.ndarray:
        offset = self.split / 2
        return amp * (_lorentz(f - centre - offset, half) + _lorentz(f - centre + offset, half))

    def _centres(self, b_nv: np.ndarray, temperature: np.ndarray | float, session: Session) -> np.ndarray:
        d = D_HZ + D_TEMPERATURE_HZ_PER_K * (session.temperature_k + temperature)
        return d - GAMMA_E_HZ_PER_T * (self.b0 + session.bias_offset_t + b_nv)

    def _blur(self, planes: np.ndarray) -> np.ndarray:
        return gaussian_filter(planes, (0,) * (planes.ndim - 2) + (self.psf_sigma_px,) * 2)

    def _sweep(self, centres: np.ndarray, sweeps: int) -> np.ndarray:
        f = self.freqs[:, None, None]
        signal = self._blur(self.illumination * self._doublet(f, centres[None], 1.0, self.half))
        noise = self.frame_noise / np.sqrt(sweeps) * np.sqrt(self.illumination)
        return signal + self.rng.normal(0.0, 1.0, signal.shape) * noise

    def fit_centres(self, spectra: np.ndarray, iterations: int = 4) -> np.ndarray:
        """Per-pixel doublet fit (centre, amplitude, width, baseline) of spectra (F, rows, cols): centres."""
        # float32 and frequencies relative to the sweep centre: twice as fast, and ample for a fit
        # whose noise is tens of kHz.
        f0 = self._expected_centre()
        f = (self.freqs - f0).astype(np.float32)
        y = spectra.reshape(len(f), -1).T.astype(np.float32)  # (P, F)
        # Start: best of a grid of doublet templates (normalised cross-correlation), then Gauss-Newton.
        grid = np.arange(-1.5e6, 1.5e6 + 1, 25e3).astype(np.float32)
        templates = self._doublet(f[None], grid[:, None], 1.0, self.half)
        templates -= templates.mean(axis=1, keepdims=True)
        c = grid[np.argmax((y - y.mean(axis=1, keepdims=True)) @ templates.T, axis=1)]
        b = np.concatenate([y[:, :5], y[:, -5:]], axis=1).mean(axis=1)  # the sweep's ends are off resonance
        a = np.maximum(y.max(axis=1) - b, 1e-3)
        h = np.full(len(y), self.half, dtype=np.float32)
        lam = 1e-3
        for _ in range(iterations):
            x1, x2 = f[None] - c[:, None] - self.split / 2, f[None] - c[:, None] + self.split / 2
            hh = h[:, None]
            l1, l2 = _lorentz(x1, hh), _lorentz(x2, hh)
            dl1 = 2 * x1 * hh**2 / (x1**2 + hh**2) ** 2  # d L / d c
            dl2 = 2 * x2 * hh**2 / (x2**2 + hh**2) ** 2
            dh1 = 2 * hh * x1**2 / (x1**2 + hh**2) ** 2
            dh2 = 2 * hh * x2**2 / (x2**2 + hh**2) ** 2
            r = y - (a[:, None] * (l1 + l2) + b[:, None])
            cols = (a[:, None] * (dl1 + dl2), l1 + l2, a[:, None] * (dh1 + dh2))
            # Normal equations per pixel, entry by entry (the baseline column is all ones).
            jtj = np.empty((len(y), 4, 4), dtype=np.float64)
            for i in range(3):
                for j in range(i, 3):
                    jtj[:, i, j] = jtj[:, j, i] = np.einsum("pf,pf->p", cols[i], cols[j])
                jtj[:, i, 3] = jtj[:, 3, i] = cols[i].sum(axis=1)
            jtj[:, 3, 3] = len(f)
            jtr = np.stack([np.einsum("pf,pf->p", col, r) for col in cols] + [r.sum(axis=1)], axis=1)
            jtj[:, range(4), range(4)] *= 1 + lam
            step = np.linalg.solve(jtj, jtr[..., None])[..., 0].astype(np.float32)
            c = c + np.clip(step[:, 0], -0.5e6, 0.5e6)
            a, h, b = a + step[:, 1], np.clip(h + step[:, 2], 0.1 * self.half, 5 * self.half), b + step[:, 3]
        lo, hi = f[0] + self.split / 2, f[-1] - self.split / 2
        c = np.where((c > lo) & (c < hi) & (a > 0), c, np.nan)
        self._last_fit = (a.astype(float), h.astype(float), b.astype(float))
        return (c.astype(float) + f0).reshape(self.shape)

    # ---- measurements ----------------------------------------------------------------------------

    def _drift(self, scale: float) -> np.ndarray:
        o, gx, gy = self.rng.normal(0, scale, 3)
        span = self.x.max() - self.x.min()
        return o + gx * self.x / span + gy * self.y / span

    def _heating(self, drive: np.ndarray) -> np.ndarray:
        squared = np.asarray(drive, float) ** 2
        return self.config.heating_k * np.tensordot(squared, self.heat_unit, axes=(0, 0))

    def _hot(self, image: np.ndarray) -> np.ndarray:
        n = self.config.hot_pixels
        rows, cols = self.shape
        image[self.rng.integers(0, rows, n), self.rng.integers(0, cols, n)] += self.config.hot_t
        return image

    def measure(self, drive: np.ndarray, session: Session | None = None, sweeps: int | None = None
                ) -> np.ndarray:
        """One static map (rows, cols): I-on sweep minus I-off sweep, each fitted per pixel.

        Pixels whose fit failed are NaN (the reconstructor treats them as missing).
        """
        session = session or Session()
        sweeps = self.config.sweeps if sweeps is None else int(sweeps)
        drive = np.asarray(drive, float)
        b_on = self.truth(drive) + self._drift(self.config.drift_t)
        on = self._centres(b_on, self._heating(drive), session)
        off = self._centres(self._drift(self.config.drift_t), 0.0, session)
        c_on = self.fit_centres(self._sweep(on, sweeps))
        c_off = self.fit_centres(self._sweep(off, sweeps))
        return self._hot(-(c_on - c_off) / GAMMA_E_HZ_PER_T)

    def measure_movie(self, drives: np.ndarray, session: Session | None = None) -> np.ndarray:
        """Movie (T, rows, cols) at a fixed MW frequency on the doublet's steepest flank."""
        session = session or Session()
        drives = np.asarray(drives, float)
        t = len(drives)
        # Calibration sweep of the session (no current): working point and each pixel's slope.
        off = self._centres(np.zeros(self.shape), 0.0, session)
        c0 = self.fit_centres(self._sweep(off, self.config.calibration_sweeps)).ravel()
        a, h, _ = self._last_fit
        c0 = np.where(np.isfinite(c0), c0, np.nanmedian(c0))
        f0 = np.nanmedian(c0) + self.split / 2 + self.half / np.sqrt(3)
        x = f0 - c0 - self.split / 2
        ds_dc = a * 2 * x * h**2 / (x**2 + h**2) ** 2  # d signal / d centre (other line negligible)
        ds_db = (-GAMMA_E_HZ_PER_T * ds_dc).reshape(self.shape)
        # Slow drift: random walks of offset and gradients, smoothed over ~50 frames.
        walk = np.cumsum(self.rng.normal(0, self.config.drift_t / np.sqrt(t), (t + 50, 3)), axis=0)
        walk = np.array([np.convolve(w, np.ones(50) / 50, mode="valid")[:t] for w in walk.T]).T
        span = self.x.max() - self.x.min()
        b = (np.tensordot(drives, self.true_unit, axes=(1, 0)) + walk[:, 0, None, None]
             + walk[:, 1, None, None] * self.x / span + walk[:, 2, None, None] * self.y / span)
        heat = self.config.heating_k * np.tensordot(drives**2, self.heat_unit, axes=(1, 0))
        centres = self._centres(b, heat, session)
        signal = self._blur(self.illumination * self._doublet(f0, centres, 1.0, self.half))
        signal += self.rng.normal(0.0, 1.0, signal.shape) * self.frame_noise * np.sqrt(self.illumination)
        quiet = np.all(drives == 0, axis=1)
        baseline = signal[quiet].mean(axis=0) if quiet.any() else signal.mean(axis=0)
        movie = (signal - baseline) / ds_db
        for k in range(t):
            self._hot(movie[k])
        return movie


@dataclass
class TwoDayProtocol:
    """Seed 000's protocol on the chain: the dictionary on one day, the maps to identify on another.

    ``measure_dictionary`` and ``measure`` take a drive over the live coils and return a static map
    (``sweeps`` averaged; 256 is the paper's 3 minutes per map), failed fits filled with the median;
    ``measure_movie`` a 208 frame/s movie on the test day.
    """

    qdm: LockInQDM
    dictionary_sweeps: int = 256
    sweeps: int = 256

    @property
    def n_sources(self) -> int:
        return self.qdm.n_sources

    def measure_dictionary(self, drive: np.ndarray) -> np.ndarray:
        return fill_failed_fits(self.qdm.measure(drive, DICTIONARY_DAY, sweeps=self.dictionary_sweeps))

    def measure(self, drive: np.ndarray) -> np.ndarray:
        return fill_failed_fits(self.qdm.measure(drive, TEST_DAY, sweeps=self.sweeps))

    def measure_movie(self, drives: np.ndarray) -> np.ndarray:
        return self.qdm.measure_movie(drives, TEST_DAY)
