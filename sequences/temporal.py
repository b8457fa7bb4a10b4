"""Temporal imaging (seed 000, "Temporal Imaging and Reconstruction"): field movies at 208 frames/s.

The MW is parked at the steepest point of the resonance, where the lock-in signal changes most
with the resonance frequency; the coils are driven with action-potential-like current waveforms
(300 ms, 800 uA peak, one waveform per coil with a refractory period); every camera frame is
converted to a field map with the per-pixel slope calibrated just before the capture:

    dB_par = -(S - S0) / (dS/df * branch * gamma_e)

where ``S0`` is the signal without current (the baseline frames before the first spike), ``dS/df``
the slope of the lock-in signal against the MW frequency at the parked frequency and ``branch``
-1 or +1 for the lower or upper resonance (f = D + branch * gamma_e * B_par). The conversion is
linear: fields that shift the resonance by more than about a quarter line width are compressed.

``TemporalCapture`` is the experiment as an engine sequence (``acquire --sim lockin`` and the GUI's
lock-in panel run it through ``instrument.services.lockin``); ``run_temporal_imaging`` runs it
through the engine without a run store.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.protocols import Instrument, LockInCamera, MicrowaveSource, PulseGenerator, SafetyLimits
from instrument.storage.errors import StorageWriteFailed
from instrument.storage.runs import Step
from sequences.capture import CaptureResult, LockInCapture, open_capture
from sequences.engine import Engine, RunAborted, make_safe
from sequences.pulses import lockin_modulation_frequency_hz, lockin_modulation_program

AP_DURATION_S = 0.3
AP_PEAK_A = 800e-6


# --------------------------------------------------------------------------------------------
# Waveforms
# --------------------------------------------------------------------------------------------


def _raised_cosine(u: np.ndarray) -> np.ndarray:
    """0 -> 1 smoothly for u in [0, 1]."""
    return 0.5 * (1 - np.cos(np.pi * np.clip(u, 0.0, 1.0)))


def ap_waveform(t_s: np.ndarray | float, peak_a: float = AP_PEAK_A, duration_s: float = AP_DURATION_S,
                undershoot: float = 0.15) -> np.ndarray:
    """Action-potential-like current: rise to ``peak_a``, fall through an undershoot, back to 0.

    The shape spans ``duration_s`` (seed 000: 300 ms, 800 uA): depolarisation over the first 20 %,
    repolarisation to ``-undershoot * peak_a`` at 50 %, recovery to zero at 100 %. Zero outside.
    """
    u = np.asarray(t_s, float) / duration_s
    rise = _raised_cosine(u / 0.2)
    fall = 1 - (1 + undershoot) * _raised_cosine((u - 0.2) / 0.3)
    recover = -undershoot * (1 - _raised_cosine((u - 0.5) / 0.5))
    shape = np.where(u < 0.2, rise, np.where(u < 0.5, fall, recover))
    return np.where((u >= 0) & (u <= 1), peak_a * shape, 0.0)


@dataclass(frozen=True)
class CoilWaveforms:
    """One AP-like waveform train per coil channel (the seed's "waveform matrix").

    Args:
        n_channels: channels of the coil driver.
        onsets_s: for each channel, the start times of its action potentials.
        peak_a, duration_s, undershoot: the AP shape (``ap_waveform``).
    """

    n_channels: int
    onsets_s: tuple[tuple[float, ...], ...]
    peak_a: float = AP_PEAK_A
    duration_s: float = AP_DURATION_S
    undershoot: float = 0.15

    def __post_init__(self) -> None:
        if len(self.onsets_s) != self.n_channels:
            raise ValueError(f"need onsets for {self.n_channels} channels, got {len(self.onsets_s)}")

    def __call__(self, t_s: float) -> np.ndarray:
        """Currents of every channel at time ``t_s`` after the stimulus started."""
        out = np.zeros(self.n_channels)
        for ch, onsets in enumerate(self.onsets_s):
            for t0 in onsets:
                if t0 <= t_s <= t0 + self.duration_s:
                    out[ch] += float(ap_waveform(t_s - t0, self.peak_a, self.duration_s, self.undershoot))
        return out

    @property
    def end_s(self) -> float:
        last = [max(o) for o in self.onsets_s if o]
        return (max(last) + self.duration_s) if last else 0.0

    @property
    def peak_abs_a(self) -> float:
        """Largest |current| any channel reaches (overlapping spikes of one channel add)."""
        return float(self.channel_peaks_a().max(initial=0.0))

    def channel_peaks_a(self, step_s: float = 1e-3) -> np.ndarray:
        """Largest |current| of each channel, sampled every ``step_s`` within each spike.

        Spikes of one channel that overlap add, so each group of overlapping spikes is sampled as a
        whole; a spike on its own reaches the single-spike peak. Linear in the number of spikes,
        whatever the capture length (an operator's check runs on every keystroke).
        """
        def sampled(t0s: np.ndarray) -> float:
            t = np.arange(t0s[0], t0s[-1] + self.duration_s + step_s / 2, step_s)
            total = sum(ap_waveform(t - t0, self.peak_a, self.duration_s, self.undershoot) for t0 in t0s)
            return float(np.abs(total).max())

        single = sampled(np.zeros(1))
        peaks = np.zeros(self.n_channels)
        for ch, onsets in enumerate(self.onsets_s):
            starts = np.sort(np.asarray(onsets, float))
            # a new group starts where a spike begins after every earlier one of the channel has ended
            breaks = np.flatnonzero(starts[1:] > np.maximum.accumulate(starts[:-1]) + self.duration_s) + 1
            for group in np.split(starts, breaks) if starts.size else ():
                peaks[ch] = max(peaks[ch], single if group.size == 1 else sampled(group))
        return peaks

    def matrix(self, times_s: np.ndarray) -> np.ndarray:
        """Currents (len(times), n_channels) at the given times (the same values as ``__call__``)."""
        t = np.asarray(times_s, float).reshape(-1)
        order = np.argsort(t, kind="stable")
        ts = t[order]
        out = np.zeros((len(t), self.n_channels))
        for ch, onsets in enumerate(self.onsets_s):
            for t0 in onsets:  # only the samples inside the spike: linear in len(times) + spikes
                lo = np.searchsorted(ts, t0, side="left")
                hi = np.searchsorted(ts, t0 + self.duration_s, side="right")
                inside = order[lo:hi]
                out[inside, ch] += ap_waveform(t[inside] - t0, self.peak_a, self.duration_s, self.undershoot)
        return out


def firing_pattern(channels: Sequence[int], n_channels: int, duration_s: float, rate_hz: float,
                   refractory_s: float = 0.5, start_s: float = 0.0, seed: int = 0,
                   peak_a: float = AP_PEAK_A) -> CoilWaveforms:
    """Random AP onsets per channel (Poisson at ``rate_hz``) with a refractory period.

    A channel never fires again within ``AP_DURATION_S + refractory_s`` of its last onset, so the
    same coil is not driven twice in a short interval (seed 000). Low ``rate_hz`` gives the
    high-sparsity case (few coils active at a time), high ``rate_hz`` the low-sparsity case.
    """
    if not 0 < rate_hz < 1e3 or duration_s <= 0 or refractory_s < 0:
        raise ValueError("firing pattern needs rate_hz > 0, duration_s > 0 and refractory_s >= 0")
    bad = [c for c in channels if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"channels {bad} do not exist on a {n_channels}-channel coil driver")
    rng = np.random.default_rng(seed)
    onsets: list[list[float]] = [[] for _ in range(n_channels)]
    dead = AP_DURATION_S + refractory_s
    for ch in channels:
        t = start_s + rng.exponential(1 / rate_hz)
        while t + AP_DURATION_S <= start_s + duration_s:
            onsets[ch].append(round(float(t), 6))
            t += dead + rng.exponential(1 / rate_hz)
    return CoilWaveforms(n_channels, tuple(tuple(o) for o in onsets), peak_a)


@runtime_checkable
class Stimulus(Protocol):
    """Plays coil waveforms in step with the camera (an AWG or the coil board's waveform memory;
    ``sim.stimulus.SimCoilStimulus`` in the simulated microscope)."""

    name: str

    @property
    def n_channels(self) -> int: ...

    def start(self, waveforms: Callable[[float], np.ndarray]) -> None: ...

    def stop(self) -> None: ...

    def safe_state(self) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Slope calibration and conversion to field
# --------------------------------------------------------------------------------------------


@dataclass
class SlopeCalibration:
    """Lock-in ODMR around one resonance and the per-pixel slope at the parked frequency."""

    frequencies_hz: np.ndarray
    spectra: np.ndarray
    """Mean in-phase signal per frequency and pixel, (n_freq, rows, cols)."""
    parked_hz: float
    slope_per_hz: np.ndarray
    """dS/df at the parked frequency, per pixel (signal units per Hz)."""
    branch: int

    def field_t(self, signal: np.ndarray, baseline: np.ndarray,
                min_slope_fraction: float = 0.1) -> np.ndarray:
        """Field change along the NV axis (T) for lock-in signals (..., rows, cols).

        Pixels whose slope is below ``min_slope_fraction`` of the median slope (outside the laser
        spot, no sensitivity) are NaN.
        """
        slope = self.slope_per_hz
        ref = np.nanmedian(np.abs(slope))
        sensitive = np.abs(slope) >= min_slope_fraction * ref
        with np.errstate(divide="ignore"):
            scale = np.where(sensitive, -1.0 / (slope * self.branch * GAMMA_E_HZ_PER_T), np.nan)
        return ((signal - baseline) * scale).astype(np.float32)


def calibrate_slope(camera: LockInCamera, mw: MicrowaveSource, frequencies_hz: np.ndarray,
                    frames_per_point: int, branch: int = -1, fit_points: int = 5) -> SlopeCalibration:
    """Sweep the MW, find the steepest point of the mean lock-in spectrum, fit the slope per pixel.

    The camera must be configured and the modulation running; the MW is left at the steepest point.
    """
    f = np.asarray(frequencies_hz, float)
    if f.ndim != 1 or len(f) < fit_points + 2 or np.any(np.diff(f) <= 0):
        raise ValueError(f"slope calibration needs at least {fit_points + 2} increasing frequencies")
    if branch not in (-1, 1):
        raise ValueError(f"branch must be -1 or +1, got {branch}")
    spectra = []
    for freq in f:
        mw.set_frequency(float(freq))
        spectra.append(camera.demodulate(camera.acquire(frames_per_point)).mean(axis=0))
    spectra = np.asarray(spectra)
    # where the spatially averaged spectrum is steepest, away from the sweep's ends
    mean = spectra.reshape(len(f), -1).mean(axis=1)
    grad = np.gradient(mean, f)
    half = fit_points // 2
    i = half + int(np.argmax(np.abs(grad[half:len(f) - half])))
    window = slice(i - half, i + half + 1)
    x = f[window] - f[i]
    y = spectra[window].reshape(len(x), -1)
    slope = ((x[:, None] * (y - y.mean(axis=0))).sum(axis=0) / (x**2).sum()).reshape(spectra.shape[1:])
    mw.set_frequency(float(f[i]))
    return SlopeCalibration(f, spectra.astype(np.float32), float(f[i]), slope.astype(np.float32), branch)


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


@dataclass
class TemporalResult:
    """Where the temporal run's data are and how the capture went."""

    frames_path: Path
    field_path: Path
    capture: CaptureResult
    calibration: SlopeCalibration
    waveforms: CoilWaveforms
    baseline_frames: int
    parameters: dict[str, Any] = field(default_factory=dict)
    not_made_safe: list[str] = field(default_factory=list)
    field_per_second: dict[str, list[float]] = field(default_factory=dict)
    """Mean |B| (T) of the field movie per second of camera time (``field_per_second``)."""


def check_temporal(limits: SafetyLimits, power_dbm: float, waveforms: CoilWaveforms, seconds: float) -> None:
    """Refuse an unsafe or impossible temporal run before anything moves."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"capture length must be positive, got {seconds!r} s; raise `seconds`")
    limits.check_mw_power(power_dbm)
    for ch, peak in enumerate(waveforms.channel_peaks_a()):
        limits.check_coil_current(ch, float(peak))


class SecondTally:
    """Per-second sums of the frames the capture wrote (fed from its writer thread, read by the run).

    A second of camera time (from the first frame written, as the field movie counts it) is complete
    once a frame of a later second has been written: the ring is first in, first out, so every frame
    of that second is then on its way to the file or counted as dropped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._t0: float | None = None
        self._sums: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}
        self._newest = -1

    def __call__(self, frames: np.ndarray, times: np.ndarray, index: np.ndarray) -> None:
        if not len(frames):
            return
        if self._t0 is None:
            self._t0 = float(times[0])
        seconds = np.floor(np.asarray(times) - self._t0).astype(int)
        with self._cond:
            for second in np.unique(seconds):
                rows = seconds == second
                total = frames[rows].sum(axis=0, dtype=np.float64)
                key = int(second)
                self._sums[key] = self._sums[key] + total if key in self._sums else total
                self._counts[key] = self._counts.get(key, 0) + int(rows.sum())
            self._newest = max(self._newest, int(seconds[-1]))
            self._cond.notify_all()

    def wait(self, timeout_s: float) -> None:
        """Wait until more frames came (or the timeout passed)."""
        with self._cond:
            self._cond.wait(timeout_s)

    def pop_complete(self, final: bool = False) -> list[tuple[int, int, np.ndarray]]:
        """(second, frames, mean raw frame) of every complete second not yet taken, oldest first;
        ``final``: the capture has ended, so every second held is complete."""
        with self._cond:
            done = sorted(s for s in self._sums if final or s < self._newest)
            out = []
            for second in done:
                n = self._counts.pop(second)
                out.append((second, n, self._sums.pop(second) / n))
            return out

@dataclass
class TemporalCapture:
    """The temporal experiment as an engine sequence: one execution path with every other measurement.

    ``run`` parks the MW on the steepest slope (after a slope calibration), plays the coil waveforms
    and streams every lock-in frame through the capture's bounded ring to ``frames.h5`` (written by
    the frame-writer process). It yields one step per second of camera time as soon as that second's
    frames are written (``frames`` written in it and ``mean_signal``, the mean in-phase lock-in
    signal of its frames), so the engine stores each second at once and checks for an abort or a
    SIGTERM between seconds; leaving early stops the capture, closes the frame file and makes the
    instruments safe. After the capture the instruments are made safe and the frames are converted to
    the field movie ``field.h5`` (the slope calibration and the baseline come first, so the field
    exists only then): ``result`` holds the ``TemporalResult``, with the mean |B| per second in
    ``field_per_second``. The engine checks the limits and the roles before anything moves and
    leaves the microscope safe on any exit.

    Args:
        folder: where ``frames.h5`` and ``field.h5`` go, or a function giving it once the run opens
            (the run's own folder).
        describe: more parameters stored with the run (the operator's request).
        on_capture: called once the capture runs, with the capture (a viewer polls ``latest()``, an
            operator's stop calls ``stop()``) and the slope calibration.
    """

    seconds: float
    center_hz: float
    waveforms: CoilWaveforms
    folder: Path | Callable[[], Path]
    power_dbm: float = 5.0
    span_hz: float = 10e6
    sweep_points: int = 41
    frames_per_point: int = 8
    branch: int = -1
    modulation_hz: float = 6250.0
    frame_rate_hz: float = 208.0
    frames_per_volume: int = 208
    baseline_s: float = 0.25
    on_overflow: str = "drop"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    describe: Mapping[str, Any] = field(default_factory=dict)
    on_capture: Callable[[LockInCapture, SlopeCalibration], None] | None = None
    name: str = "lockin_capture"
    scalars: Mapping[str, str] = field(default_factory=lambda: {"second": "s", "frames": "",
                                                                  "mean_signal": "du"})
    setpoints: tuple[str, ...] = ("second",)
    requires: Mapping[str, type] = field(default_factory=lambda: {
        "mw": MicrowaveSource, "pulser": PulseGenerator, "camera": LockInCamera, "stimulus": Stimulus})
    result: TemporalResult | None = None

    @property
    def n_steps(self) -> int:
        return max(1, math.ceil(self.seconds))

    @property
    def image_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}  # the frames stream to their own file; the steps are the per-second summaries

    def parameters(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "center_hz": self.center_hz, "power_dbm": self.power_dbm,
                "span_hz": self.span_hz, "sweep_points": self.sweep_points,
                "frames_per_point": self.frames_per_point, "branch": self.branch,
                "modulation_hz": self.modulation_hz, "frame_rate_hz": self.frame_rate_hz,
                "baseline_s": self.baseline_s, "onsets_s": [list(o) for o in self.waveforms.onsets_s],
                "peak_a": self.waveforms.peak_a, **dict(self.describe)}

    def check(self, limits: SafetyLimits) -> None:
        check_temporal(limits, self.power_dbm, self.waveforms, self.seconds)

    def run(self, instruments: Mapping[str, Instrument]) -> Iterator[Step]:
        mw: MicrowaveSource = instruments["mw"]  # type: ignore[assignment]
        pulser: PulseGenerator = instruments["pulser"]  # type: ignore[assignment]
        camera: LockInCamera = instruments["camera"]  # type: ignore[assignment]
        stimulus: Stimulus = instruments["stimulus"]  # type: ignore[assignment]
        out = Path(self.folder() if callable(self.folder) else self.folder)
        out.mkdir(parents=True, exist_ok=True)
        frames_path, field_path = out / "frames.h5", out / "field.h5"
        f_mod = lockin_modulation_frequency_hz(self.modulation_hz, pulser.clock_hz)
        sweep = self.center_hz + np.linspace(-self.span_hz / 2, self.span_hz / 2, self.sweep_points)
        params = {**self.parameters(), "modulation_hz": f_mod}
        try:
            pulser.load(lockin_modulation_program(self.modulation_hz, clock_hz=pulser.clock_hz))
            pulser.start()
            camera.configure(f_mod, self.frame_rate_hz, self.frames_per_point)
            mw.set_power(self.power_dbm)
            mw.set_frequency(float(sweep[0]))
            mw.set_output(True)
            calibration = calibrate_slope(camera, mw, sweep, self.frames_per_point, self.branch)
            stimulus.start(self.waveforms)
            tally = SecondTally()
            capture = open_capture(
                camera, frames_path, modulation_frequency_hz=f_mod, frame_rate_hz=self.frame_rate_hz,
                frames_per_volume=self.frames_per_volume, duration_s=self.seconds,
                on_overflow=self.on_overflow, on_written=tally,
                metadata={"experiment": "temporal imaging", "parked_hz": calibration.parked_hz, **params,
                          **dict(self.metadata)})
            try:
                if self.on_capture is not None:
                    self.on_capture(capture, calibration)
                yield from self._stream(capture, tally, camera)
                result = capture.wait()
            except BaseException as exc:  # SIGTERM, the engine's abort (GeneratorExit), a failing viewer
                capture.stop(f"stopped: {str(exc) or type(exc).__name__}")
                capture.wait()  # the frames so far are closed in frames.h5 before the run is
                raise
        finally:
            # Coils first: the micro-coils are what a stuck output would damage. Everything is safe
            # before the (long) conversion to the field movie; the engine makes sure again at the end.
            not_made_safe = make_safe({"stimulus": stimulus, "mw": mw, "pulser": pulser, "camera": camera})
        failed = result.end_reason if "storage error" in result.end_reason or "frame file failed" in \
            result.end_reason else ""
        if failed:  # the frame writer stopped (a full disk): a storage failure, not a short capture
            raise StorageWriteFailed(f"the capture stopped early: {failed}", 0, "disk" in failed)
        baseline_frames = write_field_movie(frames_path, field_path, calibration, self.waveforms,
                                            self.baseline_s, camera)
        self.result = TemporalResult(frames_path, field_path, result, calibration, self.waveforms,
                                     baseline_frames, params, not_made_safe, field_per_second(field_path))

    @staticmethod
    def _stream(capture: LockInCapture, tally: SecondTally, camera: LockInCamera) -> Iterator[Step]:
        """One step per second of capture, each as soon as its frames are written, until the capture ends.

        Ctrl-C ends the capture as before (``interrupted (Ctrl-C)``): the seconds still in the ring are
        written and stored, and the run goes on to its field movie.
        """
        while True:
            try:
                final = capture.finished
                for second, n, mean_raw in tally.pop_complete(final):
                    signal = float(np.nanmean(camera.demodulate(mean_raw[None])))
                    yield Step(second, {"second": float(second), "frames": float(n), "mean_signal": signal},
                               {}, label=f"second {second}")
                if final:
                    return
                tally.wait(0.1)
            except KeyboardInterrupt:
                capture.stop("interrupted (Ctrl-C)")


def field_per_second(field_path: Path) -> dict[str, list[float]]:
    """Mean |B| of the field movie per second of camera time (seconds without frames are left out)."""
    import h5py

    seconds: list[float] = []
    means: list[float] = []
    with h5py.File(field_path, "r") as f:
        t = f["time_s"][...]
        for second in range(int(np.floor(t.max())) + 1 if t.size else 0):
            frames = np.flatnonzero((t >= second) & (t < second + 1))
            if frames.size:
                seconds.append(float(second))
                means.append(float(np.nanmean(np.abs(f["field_t"][frames[0]:frames[-1] + 1]))))
    return {"second": seconds, "mean_abs_field_t": means}


def run_temporal_imaging(
    instruments: Mapping[str, Instrument],
    out_dir: str | Path,
    seconds: float,
    center_hz: float,
    *,
    limits: SafetyLimits | None = None,
    waveforms: CoilWaveforms | None = None,
    channels: Sequence[int] | None = None,
    rate_hz: float = 2.0,
    baseline_s: float = 0.25,
    seed: int = 0,
    **options: Any,
) -> TemporalResult:
    """Run ``TemporalCapture`` through the engine (no run store) and return its result.

    Args:
        instruments: roles ``mw`` (MicrowaveSource), ``pulser`` (PulseGenerator), ``camera``
            (LockInCamera) and ``stimulus`` (``Stimulus``).
        out_dir: directory for ``frames.h5`` (raw I/Q) and ``field.h5`` (field movie).
        seconds: capture length (camera time).
        center_hz: centre of the calibration sweep, near the resonance of ``branch``.
        waveforms: the coil drive; default: random AP trains (``firing_pattern``) on ``channels``
            (default all) at ``rate_hz`` per coil, starting after ``baseline_s``.
        options: the other ``TemporalCapture`` settings (``power_dbm``, ``on_overflow``: ``"wait"``
            only with a virtual-clock sim, ``on_capture``, ...).

    Raises:
        RunAborted: SIGTERM (or Ctrl-C as KeyboardInterrupt); every instrument was left safe.
        ValueError: the request cannot run, or the capture left no baseline frames.
    """
    if waveforms is None:
        stimulus: Stimulus = instruments["stimulus"]  # type: ignore[assignment]
        chans = list(range(stimulus.n_channels)) if channels is None else list(channels)
        if seconds <= baseline_s + AP_DURATION_S:
            least = baseline_s + AP_DURATION_S
            raise ValueError(f"a {seconds:g} s capture leaves no room for a {AP_DURATION_S:g} s spike after "
                             f"the {baseline_s:g} s baseline; raise `seconds` above {least:g}")
        waveforms = firing_pattern(chans, stimulus.n_channels, seconds - baseline_s, rate_hz,
                                   start_s=baseline_s, seed=seed)
    sequence = TemporalCapture(seconds, center_hz, waveforms, Path(out_dir), baseline_s=baseline_s, **options)
    outcome = Engine(instruments, limits or SafetyLimits()).run(sequence)
    if outcome.status == "aborted":
        raise RunAborted(outcome.reason)
    if outcome.error is not None:
        raise outcome.error
    assert sequence.result is not None
    return sequence.result


def write_field_movie(frames_path: Path, field_path: Path, calibration: SlopeCalibration,
                      waveforms: CoilWaveforms, baseline_s: float, camera: LockInCamera,
                      chunk: int = 208) -> int:
    """Convert a frame file to ``field.h5``: B_par per frame (T), the drive currents, the calibration.

    The baseline is the mean signal of the frames before ``baseline_s`` (no current flows yet).
    Returns the number of baseline frames.
    """
    import h5py

    from instrument.storage.frames import FrameFile

    with FrameFile(frames_path) as ff:
        n = ff.n_complete
        t = ff.timestamps_s
        rel = t - t[0] if n else t
        nb = int(np.searchsorted(rel, baseline_s))
        if nb < 1:
            raise ValueError(f"no baseline frames before {baseline_s} s; lengthen the baseline")
        baseline = camera.demodulate(ff.read(0, nb)).mean(axis=0)
        rows, cols = baseline.shape
        with h5py.File(field_path, "w") as out:
            ds = out.create_dataset("field_t", shape=(n, rows, cols), dtype="float32",
                                    chunks=(1, rows, cols), compression="lzf")
            out["time_s"] = rel
            out["currents_a"] = waveforms.matrix(rel)
            out["slope_per_hz"] = calibration.slope_per_hz
            out["baseline"] = baseline
            out["calibration_frequencies_hz"] = calibration.frequencies_hz
            out["calibration_spectra"] = calibration.spectra
            out.attrs["parked_hz"] = calibration.parked_hz
            out.attrs["branch"] = calibration.branch
            out.attrs["baseline_frames"] = nb
            out.attrs["frames_file"] = str(frames_path)
            out.attrs["units"] = "field_t: tesla along the NV axis; time_s: seconds from the first frame"
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                ds[start:stop] = calibration.field_t(camera.demodulate(ff.read(start, stop)), baseline)
    return nb
