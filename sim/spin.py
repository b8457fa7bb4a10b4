"""NV spin dynamics under a PulseBlaster timeline, and a gated photon counter built on it.

The simulated board (``sim.spinapi``) turns a program into a timeline of laser, MW-switch and gate
levels. :class:`SpinEnsemble` plays that timeline on the NV ensemble of the World's sample and
returns the photoluminescence collected in every gate window, so pulsed measurements (Rabi,
Ramsey, Hahn echo, T1, pulsed ODMR) show the right physics:

* each NV family (4 axes) x branch (ms=0 <-> -1 / +1) x nitrogen hyperfine line is a driven
  two-level system, detuned by ``f_mw - f_line``; the MW Rabi frequency grows with the field
  amplitude, ``rabi_hz_at_0dbm * 10**(P_dBm / 20)``;
* inhomogeneous broadening: a Gaussian spread of detunings (Gauss-Hermite nodes) whose free
  induction decay is ``exp(-(t / T2*)**2)``;
* homogeneous decoherence: transverse components decay as ``exp(-(t / T2)**n)`` with ``t`` the
  time since the first MW pulse after the laser (so a Hahn echo decays with T2);
* longitudinal relaxation in the dark towards the thermal mixture with ``T1``;
* the laser destroys coherence and repolarises into ms=0 with ``polarization_time_s``; PL drops by
  ``readout_contrast`` for a family entirely out of ms=0.

The spin parameters are read from an optional ``spin:`` block of the sample file (see
:class:`SpinParameters`); the bundled seed-000 sample has one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from scipy.ndimage import zoom

from instrument.physics.nv import HYPERFINE_OFFSETS_HZ, NV_AXES, project_on_axis, resonance_hz
from sim.spinapi import SIM_WIRING, SimSpinAPI, Timeline
from sim.world import DEFAULT_SAMPLE, World

N_INHOMOGENEOUS = 48
"""Gauss-Hermite nodes for the inhomogeneous detuning spread (exact FID to beyond 4 T2*)."""


class SpinModelError(ValueError):
    """Spin parameters are missing or invalid, or a timeline cannot be measured."""


@dataclass(frozen=True)
class SpinParameters:
    """Pulsed-physics parameters of the NV layer (the sample file's ``spin:`` block).

    Attributes:
        t1_s: longitudinal relaxation time.
        t2_s: Hahn-echo coherence time.
        t2_stretch: exponent n of the echo decay exp(-(t/T2)**n) (3 for spectral diffusion).
        t2_star_s: free-induction decay time (Gaussian envelope).
        rabi_hz_at_0dbm: Rabi frequency at 0 dBm source power.
        polarization_time_s: 1/e time of optical repolarisation into ms=0 under the laser.
        readout_contrast: fractional PL drop of a family fully out of ms=0.
    """

    t1_s: float = 2.0e-3
    t2_s: float = 8.0e-6
    t2_stretch: float = 3.0
    t2_star_s: float = 0.6e-6
    rabi_hz_at_0dbm: float = 3.0e6
    polarization_time_s: float = 0.8e-6
    readout_contrast: float = 0.2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value) or value <= 0:
                raise SpinModelError(f"spin parameter {f.name} must be a positive number, got {value!r}")
        if self.readout_contrast >= 1:
            raise SpinModelError(f"readout_contrast must be < 1, got {self.readout_contrast}")

    @classmethod
    def from_sample_source(cls, source: str | Path | None) -> SpinParameters:
        """Read the ``spin:`` block of a sample file; defaults where the block or an entry is absent."""
        if source is None or str(source) == f"sim/samples/{DEFAULT_SAMPLE}":
            text = resources.files("sim.samples").joinpath(DEFAULT_SAMPLE).read_text()
        else:
            try:
                text = Path(source).read_text()
            except OSError as exc:
                raise SpinModelError(f"cannot read sample file {source}: {exc.strerror}") from exc
        try:
            block = (yaml.safe_load(text) or {}).get("spin") or {}
        except yaml.YAMLError as exc:
            raise SpinModelError(f"sample file {source} is not valid YAML: {exc}") from exc
        known = {f.name for f in fields(cls)}
        unknown = set(block) - known
        if unknown:
            raise SpinModelError(
                f"sample file {source}: unknown spin parameter(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        try:
            return cls(**{k: float(v) for k, v in block.items()})
        except (TypeError, ValueError) as exc:
            raise SpinModelError(f"sample file {source}: bad spin parameter: {exc}") from exc

    def rabi_hz(self, power_dbm: float) -> float:
        """Rabi frequency for a source power: proportional to the MW field amplitude."""
        return self.rabi_hz_at_0dbm * 10 ** (power_dbm / 20)


@dataclass
class _State:
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    age_s: float | None = None  # time since the coherence was created (first MW after the laser)


class SpinEnsemble:
    """The NV ensemble of a World, evolved through pulse timelines.

    Args:
        world: the simulated microscope (field, MW source state, sample).
        params: spin parameters; ``None`` reads them from the World's sample file.
    """

    def __init__(self, world: World, params: SpinParameters | None = None) -> None:
        self.world = world
        self.params = params or SpinParameters.from_sample_source(world.sample.source)
        nodes, weights = np.polynomial.hermite_e.hermegauss(N_INHOMOGENEOUS)
        sigma_hz = 1.0 / (np.sqrt(2.0) * np.pi * self.params.t2_star_s)
        self._spread_hz = nodes * sigma_hz
        self._spread_w = weights / weights.sum()
        self._field_key: tuple[float, ...] | None = None
        self._b_mean = np.zeros(3)
        self.state = self._polarised()

    # ---- the two-level systems -----------------------------------------------------------------

    def line_frequencies_hz(self) -> np.ndarray:
        """Transition frequencies, shape (4 families, 2 branches, n hyperfine lines)."""
        w = self.world
        with w.lock:
            currents = np.array(w.coil_currents_a, dtype=float)
        key = tuple(currents)
        if key != self._field_key:
            # The spins are modelled as one ensemble in the mean field over the field of view; the
            # coil maps (an expensive Biot-Savart sum) are needed only while a coil carries current.
            self._b_mean = (w.total_field_t(currents).reshape(3, -1).mean(axis=1) if np.any(currents)
                            else w.bias_field_t())
            self._field_key = key
        b_mean = self._b_mean
        offsets = HYPERFINE_OFFSETS_HZ[w.sample.isotope]
        lines = np.empty((4, 2, len(offsets)))
        for axis in range(len(NV_AXES)):
            b_par = float(project_on_axis(b_mean, axis))
            for j, branch in enumerate((-1, 1)):
                lines[axis, j] = float(resonance_hz(b_par, branch)) + offsets
        return lines

    def _polarised(self) -> _State:
        n = 4 * 2 * len(HYPERFINE_OFFSETS_HZ[self.world.sample.isotope]) * N_INHOMOGENEOUS
        return _State(np.zeros(n), np.zeros(n), np.ones(n))

    def reset(self) -> None:
        """Fully polarised into ms=0, no coherence."""
        self.state = self._polarised()

    def _drive(self) -> tuple[np.ndarray, float]:
        """Detuning of every two-level system (Hz) and the Rabi frequency (Hz, 0 if RF off)."""
        w = self.world
        with w.lock:
            f_mw, power, on = w.mw_frequency_hz, w.mw_power_dbm, w.mw_output
        lines = self.line_frequencies_hz()
        detuning = (f_mw - lines)[..., None] - self._spread_hz  # (4, 2, h, k)
        return detuning.ravel(), (self.params.rabi_hz(power) if on else 0.0)

    def out_of_zero(self) -> float:
        """Ensemble fraction out of ms=0, averaged over the four families."""
        h = len(HYPERFINE_OFFSETS_HZ[self.world.sample.isotope])
        z = self.state.z.reshape(4, 2, h, N_INHOMOGENEOUS)
        per_branch = ((1 - z) / 2 * self._spread_w).sum(axis=-1).mean(axis=-1)  # (4, 2)
        return float(per_branch.sum(axis=1).mean())

    # ---- evolution -----------------------------------------------------------------------------

    def _rotate(self, detuning_hz: np.ndarray, rabi_hz: float, t: float) -> None:
        s = self.state
        if not np.any(rabi_hz):
            if s.age_s is None:
                return  # no coherence since the laser: free precession leaves z, the only component
            # Free precession: a rotation about z only (exact; a third of the general case's work).
            c, sn = np.cos(2 * np.pi * detuning_hz * t), np.sin(2 * np.pi * detuning_hz * t)
            s.x, s.y = s.x * c - s.y * sn, s.x * sn + s.y * c
            return
        wx = 2 * np.pi * rabi_hz
        wz = 2 * np.pi * detuning_hz
        w = np.hypot(wx, wz)
        theta = w * t
        safe = np.where(w > 0, w, 1.0)
        nx, nz = np.where(w > 0, wx / safe, 0.0), np.where(w > 0, wz / safe, 1.0)
        c, sn = np.cos(theta), np.sin(theta)
        dot = nx * s.x + nz * s.z
        # Rodrigues: v c + (n x v) s + n (n.v)(1 - c), with n = (nx, 0, nz).
        cx, cy, cz = -nz * s.y, nz * s.x - nx * s.z, nx * s.y
        s.x, s.y, s.z = (
            s.x * c + cx * sn + nx * dot * (1 - c),
            s.y * c + cy * sn,
            s.z * c + cz * sn + nz * dot * (1 - c),
        )

    def _dark(self, t: float) -> None:
        """Relaxation over a stretch of ``t`` without laser: T1 on z, T2 on the coherence."""
        p, s = self.params, self.state
        z_eq = 1.0 / 3.0  # thermal mixture: P0 = 1/3 with both branches counted
        s.z = z_eq + (s.z - z_eq) * np.exp(-t / p.t1_s)
        if s.age_s is not None:
            a0, a1 = s.age_s, s.age_s + t
            decay = np.exp(-((a1 / p.t2_s) ** p.t2_stretch - (a0 / p.t2_s) ** p.t2_stretch))
            s.x, s.y = s.x * decay, s.y * decay
            s.age_s = a1

    def _laser(self, t: float) -> None:
        s = self.state
        s.x, s.y = np.zeros_like(s.x), np.zeros_like(s.y)
        s.z = 1 - (1 - s.z) * np.exp(-t / self.params.polarization_time_s)
        s.age_s = None

    def play(
        self, timeline: Timeline, wiring: dict[str, int] | None = None, gate: str = "spad_gate",
        max_simulated_repeats: int = 3, latency_s: dict[str, float] | None = None,
    ) -> np.ndarray:
        """Evolve through a finite timeline; returns the PL collected in each gate window.

        The result is in "seconds of full brightness": multiply by a pixel's photon rate to get
        its expected count. One entry per gate window of one pass; windows inside a repeated
        LOOP body are summed over its repetitions (the last simulated repetition stands for the
        rest, which is exact once the laser has set a steady state).

        ``latency_s`` delays a line's physical effect after its TTL edge (AOM rise, switch
        latency); inside a repeated run the delayed level wraps around the repetition, which is
        what every repetition but the first sees.
        """
        if timeline.periodic:
            raise SpinModelError(
                "gated counting needs a program that ends (STOP), not one that loops forever"
            )
        wiring = wiring or SIM_WIRING
        try:
            laser_bit, mw_bit, gate_bit = wiring["laser"], wiring["mw_switch"], wiring[gate]
        except KeyError as exc:
            raise SpinModelError(f"wiring has no channel {exc}") from None
        detuning, rabi = self._drive()
        clock = timeline.clock_hz
        totals: list[float] = []
        shifts = {}
        for name, delay in (latency_s or {}).items():
            if name not in wiring or not np.isfinite(delay) or delay < 0:
                raise SpinModelError(f"latency of {name!r} must be >= 0 s on a wired line, got {delay!r}")
            shifts[wiring[name]] = int(round(delay * clock))
        for run in timeline.runs:
            n_sim = min(run.repeats, max_simulated_repeats)
            rel, outputs = _physical(run.rel_cycles, run.outputs, run.length_cycles, shifts)
            ends = np.append(rel[1:], run.length_cycles)
            per_rep: list[list[float]] = []
            for _ in range(n_sim):
                windows: list[float] = []
                in_gate = False
                for start, end, out in zip(rel, ends, outputs, strict=True):
                    t = (end - start) / clock
                    out = int(out)
                    laser, mw, g = (out >> laser_bit) & 1, (out >> mw_bit) & 1, (out >> gate_bit) & 1
                    if g and not in_gate:
                        windows.append(0.0 * self.out_of_zero())  # a float, or zeros over cells
                    in_gate = bool(g)
                    if laser:
                        if g:
                            k = self.params.readout_contrast * self.out_of_zero()
                            tau = self.params.polarization_time_s
                            windows[-1] += t - k * tau * (1 - np.exp(-t / tau))
                        self._laser(t)
                    elif mw and np.any(rabi > 0):
                        if self.state.age_s is None:
                            self.state.age_s = 0.0
                        self._rotate(detuning, rabi, t)
                        self._dark(t)
                    else:
                        self._rotate(detuning, 0.0, t)
                        self._dark(t)
                per_rep.append(windows)
            summed = np.sum(per_rep[:-1], axis=0) if n_sim > 1 else 0.0
            # One entry per window: a float, or an array over cells for a per-cell ensemble.
            totals.extend(np.asarray(summed + np.asarray(per_rep[-1]) * (run.repeats - n_sim + 1)))
        return np.asarray(totals, float)


def _physical(rel: np.ndarray, outputs: np.ndarray, length: int, shifts: dict[int, int]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Segments of one repetition with the given bits delayed by their latency (cyclically)."""
    shifts = {bit: d % length for bit, d in shifts.items() if d % length}
    if not shifts:
        return rel, outputs
    bounds = set(rel.tolist()) | {0}
    for d in shifts.values():
        bounds |= set(((rel + d) % length).tolist())
    b = np.array(sorted(bounds), dtype=np.int64)
    moved = sum(1 << bit for bit in shifts)
    new = outputs[np.searchsorted(rel, b, side="right") - 1] & ~moved
    for bit, d in shifts.items():
        src = np.searchsorted(rel, (b - d) % length, side="right") - 1
        new |= outputs[src] & (1 << bit)
    keep = np.ones(len(b), bool)
    keep[1:] = new[1:] != new[:-1]
    return b[keep], new[keep]


class SimPhotonCounter:
    """Gated photon counts per pixel, as a SPAD array or a gated camera would return them.

    Counts in a gate window follow the NV photoluminescence (Poisson noise) with a peak rate of
    ``photon_rate_hz`` per pixel at the laser spot centre, under the World's illumination profile.

    Args:
        name: instrument name.
        world: the simulated microscope.
        board: the simulated PulseBlaster whose timeline gates the counter.
        shape: pixel array shape; ``None`` uses the World's image shape.
        photon_rate_hz: detected photon rate of a pixel at the spot centre, NVs in ms=0.
        gate: the board channel that gates this counter (``spad_gate`` or ``camera_trigger``).
        params: spin parameters; ``None`` reads the sample file.
    """

    def __init__(
        self,
        name: str,
        world: World,
        board: SimSpinAPI,
        shape: tuple[int, int] | None = None,
        photon_rate_hz: float = 5e6,
        gate: str = "spad_gate",
        params: SpinParameters | None = None,
    ) -> None:
        if not np.isfinite(photon_rate_hz) or photon_rate_hz <= 0:
            raise SpinModelError(f"photon rate must be > 0 Hz, got {photon_rate_hz!r}")
        self.name = name
        self.world = world
        self.board = board
        self.shape = tuple(shape or world.shape)
        self.photon_rate_hz = photon_rate_hz
        self.gate = gate
        self.spins = SpinEnsemble(world, params)
        illum = world.illumination()
        if illum.shape != self.shape:
            illum = zoom(illum, (self.shape[0] / illum.shape[0], self.shape[1] / illum.shape[1]), order=1)
        self._rate_map = photon_rate_hz * illum

    def count_gates(self) -> np.ndarray:
        """Run the loaded program once and return counts, shape (n_gates, rows, cols).

        The virtual clock advances by the program's length, as the real acquisition would take.
        """
        timeline = self.board.timeline
        if timeline is None:
            raise SpinModelError(f"{self.name}: the pulse generator has not been started")
        pl = self.spins.play(timeline, self.board.wiring, self.gate, latency_s=self.board.latency_s)
        self.world.clock.advance(timeline.duration_s)
        expected = pl[:, None, None] * self._rate_map[None]
        with self.world.lock:
            return self.world.rng.poisson(expected).astype(np.float64)

    def safe_state(self) -> None:
        """A passive detector: nothing to switch off."""

    def close(self) -> None:
        """Nothing to release."""
