"""Simulated LibHeLIC: the heliCam C3's library entry points, timing and limits over the World.

``SimLibHeLIC`` offers the C entry points the driver calls (``HE_Open``, ``HE_GetRegDesc``,
``HE_SetMap``, ``HE_Acquire``, ``HE_ProcessCamData``, ``HE_GetCamData`` ...) with the same ctypes
arguments and return conventions: status calls return a negative code on error, ``HE_Acquire``
returns the bytes transferred (a negative code, ``ERR_TIMEOUT``, when no volume came), pointer
calls return NULL on error. It supports raw-I/Q mode only.

Facts implemented (``docs/hardware/helicam.md``), strictly:

* H1 ``HE_GetCamData`` is valid only after ``HE_ProcessCamData`` for the volume just acquired
  (programmer's manual flow chart, vendor examples): before, it returns NULL.
* H2 after acquisition is stopped the buffer still holds the volume that was in flight; the next
  ``HE_Acquire`` returns it (stale, the old settings) until flushed (``HE_Acquire`` while > 0).
* H3 no volume (stopped, or a missed external trigger) is a negative ``HE_Acquire`` code, -116.
* H4 external trigger: a volume starts on the falling edge of a pulse wider than 10 us on the
  trigger input (C3 user manual, external triggering); narrower pulses are ignored and counted in
  ``rejected_trigger_pulses``.
* H5 the sensor is the World's image plus 8 test rows and 20 test columns around it (the C3's
  usable area is the centre 280 x 292 of 300 x 300); test pixels read the unmodulated level.
* H6 the camera demodulates against its internal reference; ``phase_rad`` is the angle between
  that reference and the MW gating, which the driver can measure from I and Q.

Signal model per pixel and frame (integration over ``Nc`` demodulation cycles):

* The MW switch toggled at ``world.mw_gate_modulation_hz`` modulates the PL between
  ``pl_rate_hz(False)`` (MW off) and ``pl_rate_hz(True)`` (MW on). The in-phase output is
  ``gain * (R_off - R_on) * T / 2`` with ``T = Nc / fd``, reduced by ``sinc(df * T)`` when the
  modulation is detuned by ``df`` from the camera's ``fd``; no modulation, no signal.
* Shot noise of all ``(R_off + R_on) T / 2`` photons, read noise, a fixed per-pixel offset near
  512 on I and Q, 10-bit quantisation and clipping.
* Time: a volume of ``SensNFrames`` frames takes ``SensNFrames * Tfr``; between two volumes the
  sensor is read out and re-armed for ``readout_dead_time_s``; ``world.clock`` advances by both.
"""

from __future__ import annotations

import ctypes as ct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.world import World

# Facts of the camera (heliCam C3 user manual); the driver keeps its own copy on purpose: the
# simulator is a second implementation of the instrument, not a mirror of the driver.
_SENSOR_CLOCK_HZ = 70e6
_SEQUENCER_CLOCK_HZ = 35e6
_PIXEL_PITCH_M = 39.6e-6
_DF_I16Q16 = 0x1
_DDS_GAIN = {0: 3.0, 1: 1.5, 2: 1.0, 3: 0.75}

# Error codes of the simulator (negative, as the library's status calls report errors).
ERR_GENERAL = -1
ERR_BAD_HANDLE = -2
ERR_RANGE = -3
ERR_NOT_SUPPORTED = -4
ERR_DISCONNECTED = -5
ERR_TIMEOUT = -116
"""What ``HE_Acquire`` returns when no volume came (the public labscript heliCam worker sees -116)."""
ERR_NOT_PROCESSED = -6

TEST_ROWS, TEST_COLS = 8, 20
"""Test rows and columns around the usable area (300 x 300 sensor, 280 x 292 usable)."""
TRIGGER_MIN_WIDTH_S = 10e-6
"""External trigger pulses must be wider than this (C3 user manual)."""


class _Map(ct.Structure):
    _fields_ = [
        ("id", ct.c_char_p), ("cmt", ct.c_char_p), ("mode", ct.c_uint8), ("regs", ct.c_void_p),
        ("enums", ct.c_void_p), ("group", ct.c_char_p), ("level", ct.c_uint8),
        ("minValue", ct.c_ulong), ("maxValue", ct.c_ulong), ("defValue", ct.c_ulong), ("cammode", ct.c_uint8),
    ]


class _RegDesc(ct.Structure):
    _fields_ = [("numReg", ct.c_ushort), ("regs", ct.c_void_p), ("numMap", ct.c_ushort),
                ("maps", ct.POINTER(_Map))]


class _Sensor(ct.Structure):
    _fields_ = [("id", ct.c_char_p), ("verStr", ct.c_char_p), ("pixPitch", ct.c_float * 2),
                ("size", ct.c_ushort * 2), ("orientation", ct.c_uint8)]


class _SysDesc(ct.Structure):
    _fields_ = [("id", ct.c_char_p), ("featStrFPGA", ct.c_void_p), ("featStrUSB", ct.c_void_p),
                ("fpga", ct.c_void_p), ("sensor", ct.POINTER(_Sensor)), ("usb", ct.c_void_p),
                ("eth", ct.c_void_p), ("motion", ct.c_void_p)]


class _CamData(ct.Structure):
    _fields_ = [("size", ct.c_uint), ("format", ct.c_uint), ("prop", ct.c_ushort),
                ("refCount", ct.c_ushort), ("data", ct.c_void_p)]


# name: (min, max, default, comment)
_MAPS: dict[str, tuple[int, int, int, str]] = {
    "AcqStop": (0, 1, 1, "1 stops acquisition"),
    "CamMode": (0, 7, 0, "0 raw IQ, 1 amplitude, 3 intensity, 4 simple max, 7 min energy"),
    "SensTqp": (0, 4095, 845, "fd = 70 MHz / (8 (SensTqp + 30))"),
    "SensNavM2": (1, 255, 2, "cycles per frame Nc = 2 SensNavM2 + 2"),
    "SensNFrames": (1, 512, 100, "frames per volume"),
    "CalDur1Cyc": (0, 1, 1, "1: offset compensation lasts one cycle"),
    "SensCaldur": (1, 4096, 100, "Toffset = (SensCaldur + 58) / 35 MHz"),
    "BSEnable": (0, 1, 1, "in-pixel background suppression"),
    "DdsGain": (0, 3, 2, "analogue gain 3, 1.5, 1, 0.75"),
    "TrigFreeExtN": (0, 1, 1, "1 internal (free running), 0 external trigger"),
    "ExtTqp": (0, 1, 0, "quarter periods from IN3"),
    "EnTrigOnPos": (0, 1, 0, "trigger on encoder position"),
    "EnSynFOut": (0, 1, 0, "sync output at fd on OUT1"),
}


@dataclass
class _Fault:
    code: int
    remaining: int


class SimLibHeLIC:
    """The heliCam C3 library simulated over a ``World``.

    Args:
        world: the shared physics; the image shape is ``world.shape``.
        gain_du_per_photon: conversion of detected photons to raw units at DdsGain = 2.
        read_noise_du: read noise per I or Q sample.
        offset_spread_du: standard deviation of the fixed per-pixel offsets around 512.
        readout_dead_time_s: time between the end of a volume and the start of the next.
        phase_rad: lock-in phase of the MW modulation relative to the camera's reference.
        seed: seed of the noise generator.

    Attributes:
        frame_hook: called with each frame's start time (world clock) before the frame is
            synthesised; the sim stimulus uses it to play coil waveforms frame by frame.
        volume_trigger: in external-trigger mode, called with the time the camera is ready for the
            next volume; returns the (rise, fall) times of the pulses on its trigger input whose
            fall comes after that (empty: none will come, the acquisition times out) or ``None``
            when the line is not driven (the camera is then clocked by the reference alone, as
            before). The station links it to the simulated PulseBlaster's ``camera_start`` line.
        connected: ``False`` makes every call fail as if the USB cable were pulled.
    """

    def __init__(self, world: World, gain_du_per_photon: float = 3e-3, read_noise_du: float = 1.5,
                 offset_spread_du: float = 4.0, readout_dead_time_s: float = 1e-3,
                 phase_rad: float = 0.0, seed: int = 1) -> None:
        self.world = world
        self.gain_du_per_photon = gain_du_per_photon
        self.read_noise_du = read_noise_du
        self.readout_dead_time_s = readout_dead_time_s
        self.phase_rad = phase_rad
        self.frame_hook: Callable[[float], None] | None = None
        self.volume_trigger: Callable[[float], np.ndarray | None] | None = None
        self.connected = True
        self.rejected_trigger_pulses = 0
        """External trigger pulses ignored for being no wider than 10 us."""
        self.stale_volumes_returned = 0
        self.volumes_acquired = 0
        self.synthesis_cpu_s = 0.0
        """CPU time spent computing frames (the real camera does this in hardware)."""
        self._rng = np.random.default_rng(seed)
        rows, cols = world.shape
        spread = offset_spread_du * self._rng.standard_normal((rows, cols, 2))
        self._offsets = np.rint(512 + spread).astype(np.float32)
        self._lock = threading.Lock()
        self._handle = 0
        self._timeout_s = 2.0
        self._values = {name: spec[2] for name, spec in _MAPS.items()}
        self._alloc_format: int | None = None
        self._faults: dict[str, _Fault] = {}
        self._buffer = np.zeros(0, np.int16)
        self._processed = False
        self._stale_frames = 0
        self._running_volumes = 0
        self._pl_cache: tuple[tuple, np.ndarray, np.ndarray] | None = None
        self._model_cache: tuple[tuple, tuple[np.ndarray, np.ndarray]] | None = None
        self._bank: np.ndarray | None = None
        # ctypes objects handed out must outlive the calls: keep them here.
        self._map_array = (_Map * len(_MAPS))()
        self._keep = []
        for i, (name, (lo, hi, default, cmt)) in enumerate(_MAPS.items()):
            ident, comment = name.encode(), cmt.encode()
            self._keep += [ident, comment]
            self._map_array[i] = _Map(ident, comment, 0, None, None, b"sim", 0, lo, hi, default, 0xFF)
        self._regdesc = _RegDesc(0, None, len(_MAPS), ct.cast(self._map_array, ct.POINTER(_Map)))
        pitch = (ct.c_float * 2)(_PIXEL_PITCH_M, _PIXEL_PITCH_M)
        self._sensor = _Sensor(b"heliSens S3.1 (simulated)", b"sim", pitch,
                               (ct.c_ushort * 2)(cols + TEST_COLS, rows + TEST_ROWS), 0)
        self._sysdesc = _SysDesc(b"c3cam_sim", None, None, None, ct.pointer(self._sensor), None, None, None)
        self._camdata = _CamData()

    @property
    def timeout_s(self) -> float:
        """Acquisition timeout set by ``HE_SetTimeout``."""
        return self._timeout_s

    # ---- fault injection -----------------------------------------------------------------------

    def inject_fault(self, function: str, code: int, times: int = 1) -> None:
        """Make the next ``times`` calls of ``function`` (e.g. ``"HE_Acquire"``) return ``code``."""
        self._faults[function] = _Fault(code, times)

    def _fault(self, function: str) -> int | None:
        if not self.connected:
            return ERR_DISCONNECTED
        f = self._faults.get(function)
        if f is None:
            return None
        f.remaining -= 1
        if f.remaining <= 0:
            del self._faults[function]
        return f.code

    def _refused(self, function: str, handle: object) -> int | None:
        """The code a status call returns instead of working (injected fault, bad handle), or None."""
        if (code := self._fault(function)) is not None:
            return code
        return ERR_BAD_HANDLE if self._bad(handle) else None

    def _bad(self, handle: object) -> bool:
        value = handle.value if hasattr(handle, "value") else handle
        return not self._handle or value != self._handle

    # ---- entry points: connection --------------------------------------------------------------

    def HE_Open(self, handle_ptr, mode: int, args: bytes) -> int:  # noqa: N802 - vendor names
        if (code := self._fault("HE_Open")) is not None:
            return code
        if mode != 0 or not args.startswith(b"sys="):
            return ERR_GENERAL
        self._handle = 0x5EC3
        handle_ptr.contents.value = self._handle
        return 1

    def HE_Close(self, handle) -> int:  # noqa: N802
        if self._bad(handle):
            return ERR_BAD_HANDLE
        self._handle = 0
        return 0

    def HE_SetTimeout(self, handle, ms: int) -> int:  # noqa: N802
        if (code := self._refused("HE_SetTimeout", handle)) is not None:
            return code
        self._timeout_s = ms / 1000 if ms > 0 else float("inf")
        return 0

    def HE_GetRegDesc(self, handle):  # noqa: N802
        if self._fault("HE_GetRegDesc") is not None or self._bad(handle):
            return ct.POINTER(_RegDesc)()
        return ct.pointer(self._regdesc)

    def HE_GetSysDesc(self, handle):  # noqa: N802
        if self._fault("HE_GetSysDesc") is not None or self._bad(handle):
            return ct.POINTER(_SysDesc)()
        return ct.pointer(self._sysdesc)

    # ---- entry points: settings ----------------------------------------------------------------

    def HE_SetMap(self, handle, map_ptr, value: int) -> int:  # noqa: N802
        if (code := self._refused("HE_SetMap", handle)) is not None:
            return code
        name = map_ptr.contents.id.decode()
        if name not in _MAPS:
            return ERR_GENERAL
        lo, hi = _MAPS[name][:2]
        if not lo <= int(value) <= hi:
            return ERR_RANGE
        with self._lock:
            stopping = name == "AcqStop" and int(value) == 1 and self._values["AcqStop"] == 0
            if stopping and self._running_volumes:
                self._stale_frames = self._values["SensNFrames"]  # the volume in flight stays buffered
            if name == "AcqStop" and int(value) == 0:
                self._running_volumes = 0
            self._values[name] = int(value)
        return 0

    def HE_GetMap(self, handle, map_ptr) -> int:  # noqa: N802
        if (code := self._refused("HE_GetMap", handle)) is not None:
            return code
        return self._values.get(map_ptr.contents.id.decode(), ERR_GENERAL)

    def HE_AllocCamData(self, handle, idx: int, fmt: int, prop: int, ext_data, ext_size: int) -> int:  # noqa: N802
        if (code := self._refused("HE_AllocCamData", handle)) is not None:
            return code
        if fmt != _DF_I16Q16:
            return ERR_NOT_SUPPORTED
        self._alloc_format = fmt
        return 0

    # ---- entry points: acquisition -------------------------------------------------------------

    def timing(self) -> tuple[float, int, float]:
        """(fd in Hz, cycles per frame, frame period in s) from the present registers."""
        v = self._values
        fd = _SENSOR_CLOCK_HZ / (8 * (v["SensTqp"] + 30))
        n_cycles = 2 * v["SensNavM2"] + 2
        t_offset = 1 / fd if v["CalDur1Cyc"] else (v["SensCaldur"] + 58) / _SEQUENCER_CLOCK_HZ
        return fd, n_cycles, n_cycles / fd + t_offset

    def HE_Acquire(self, handle) -> int:  # noqa: N802
        if (code := self._fault("HE_Acquire")) is not None:
            if code == 0:
                self.world.clock.advance(min(self._timeout_s, 10.0))
            return code
        if self._bad(handle):
            return ERR_BAD_HANDLE
        v = self._values
        if v["CamMode"] != 0 or self._alloc_format != _DF_I16Q16:
            return ERR_NOT_SUPPORTED
        self._processed = False
        if self._stale_frames:  # H2: the volume that was in flight when acquisition stopped
            n_stale, self._stale_frames = self._stale_frames, 0
            self.stale_volumes_returned += 1
            return self._deliver(self._test_level(n_stale))
        triggered = v["TrigFreeExtN"] == 1 or self.world.mw_gate_modulation_hz > 0
        if v["AcqStop"] == 1 or not triggered:
            # Stopped, or waiting for an external trigger that the pulse generator is not sending.
            self.world.clock.advance(min(self._timeout_s, 10.0))
            return ERR_TIMEOUT
        if self.volumes_acquired:
            # readout and re-arm between volumes: the sensor does not integrate meanwhile
            self.world.clock.advance(self.readout_dead_time_s)
        if v["TrigFreeExtN"] == 0 and self.volume_trigger is not None:
            now = self.world.clock.now()
            pulses = self.volume_trigger(now)
            if pulses is not None:
                start = self._falling_edge_start(np.asarray(pulses, float).reshape(-1, 2), now)
                if start is None or start - now > self._timeout_s:  # no valid start within the timeout
                    self.world.clock.advance(min(self._timeout_s, 10.0))
                    return ERR_TIMEOUT
                self.world.clock.advance(max(0.0, start - now))
        cpu0 = time.thread_time()
        volume = self._synthesise(v["SensNFrames"])
        self.synthesis_cpu_s += time.thread_time() - cpu0
        self.volumes_acquired += 1
        self._running_volumes += 1
        return self._deliver(volume)

    def _deliver(self, volume: np.ndarray) -> int:
        self._buffer = volume
        self._camdata = _CamData(volume.nbytes, _DF_I16Q16, 0, 1, volume.ctypes.data)
        return volume.nbytes

    def _test_level(self, n_frames: int) -> np.ndarray:
        rows, cols = self.world.shape
        return np.full((n_frames, rows + TEST_ROWS, cols + TEST_COLS, 2), 512, np.int16)

    def _falling_edge_start(self, pulses: np.ndarray, now: float) -> float | None:
        """H4: the first falling edge after ``now`` of a pulse wider than 10 us; narrower ones are ignored."""
        for rise, fall in pulses:
            if fall < now - 1e-12:
                continue
            if fall - rise <= TRIGGER_MIN_WIDTH_S:
                self.rejected_trigger_pulses += 1
                continue
            return float(fall)
        return None

    def HE_ProcessCamData(self, handle, idx: int, mode: int, param) -> object:  # noqa: N802
        """Process the volume just acquired (raw I/Q needs no conversion); NULL if there is none."""
        if self._fault("HE_ProcessCamData") is not None or self._bad(handle) or not self._buffer.size:
            return ct.POINTER(_CamData)()
        if idx != 1 or mode != 0:
            return ct.POINTER(_CamData)()
        self._processed = True
        return ct.pointer(self._camdata)

    def HE_GetCamData(self, handle, idx: int, add_ref: int, meta_ptr):  # noqa: N802
        if self._fault("HE_GetCamData") is not None or self._bad(handle) or not self._buffer.size:
            return ct.POINTER(_CamData)()
        if not self._processed:  # H1: the result pointer is valid only after HE_ProcessCamData
            return ct.POINTER(_CamData)()
        if meta_ptr:
            meta = meta_ptr.contents
            dims = self._buffer.shape[::-1]
            meta.numDim = len(dims)
            for i, d in enumerate(dims):
                meta.dimSz[i] = d
        return ct.pointer(self._camdata)

    # ---- physics -------------------------------------------------------------------------------

    def _pl_rates(self) -> tuple[np.ndarray, np.ndarray]:
        """(R_off - R_on, (R_off + R_on) / 2) per pixel, cached while the World's state holds."""
        w = self.world
        key = (w.mw_frequency_hz, w.mw_power_dbm, w.mw_output, w.laser_on, w.coil_currents_a.tobytes())
        if self._pl_cache is None or self._pl_cache[0] != key:
            off, on = w.pl_rate_hz(False), w.pl_rate_hz(True)
            self._pl_cache = (key, (off - on).astype(np.float32), (0.5 * (off + on)).astype(np.float32))
        return self._pl_cache[1], self._pl_cache[2]

    def _noise(self, n: int) -> np.ndarray:
        """``n`` standard normal samples: a window at a random start in a large pre-drawn bank.

        Drawing 180,000 normals per frame would cost more than the frame time at 208 frames/s; a
        random window gives each pixel an independent draw per frame at the cost of a copy.
        """
        bank_size = 1 << 23
        if self._bank is None or self._bank.size < bank_size + n:
            self._bank = self._rng.standard_normal(bank_size + n, dtype=np.float32)
        start = int(self._rng.integers(0, bank_size))
        return self._bank[start:start + n]

    def _frame_model(self, fd: float, t_int: float) -> tuple[np.ndarray, np.ndarray]:
        """(mean raw frame, noise sigma) for the World's present state, both (rows, cols, 2).

        Cached while the World and the settings hold, so a per-frame hook costs little.
        """
        diff, mean = self._pl_rates()
        assert self._pl_cache is not None
        key = (self._pl_cache[0], fd, t_int, self._values["DdsGain"], self.world.mw_gate_modulation_hz,
               self.phase_rad)
        if self._model_cache is None or self._model_cache[0] != key:
            self._model_cache = (key, self._compute_frame_model(fd, t_int, diff, mean))
        return self._model_cache[1]

    def _compute_frame_model(self, fd: float, t_int: float, diff: np.ndarray,
                             mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gain = self.gain_du_per_photon * _DDS_GAIN[self._values["DdsGain"]]
        f_mod = self.world.mw_gate_modulation_hz
        response = float(np.sinc((f_mod - fd) * t_int)) if f_mod > 0 else 0.0
        amplitude = diff * np.float32(gain * 0.5 * t_int * response)
        lock_phase = np.array([np.cos(self.phase_rad), np.sin(self.phase_rad)], np.float32)
        base = self._offsets + amplitude[..., None] * lock_phase
        sigma = np.sqrt(mean * np.float32(t_int * gain**2) + np.float32(self.read_noise_du**2))
        return base, np.repeat(sigma[..., None], 2, axis=-1)

    def _synthesise(self, n_frames: int) -> np.ndarray:
        fd, n_cycles, period = self.timing()
        t_int = n_cycles / fd
        t0 = self.world.clock.now()
        rows, cols = self.world.shape
        full = self._test_level(n_frames)  # H5: test rows and columns around the usable area
        r0, c0 = TEST_ROWS // 2, TEST_COLS // 2
        out = full[:, r0:r0 + rows, c0:c0 + cols, :]
        frame = np.empty((rows, cols, 2), np.float32)
        model = None
        for k in range(n_frames):
            if self.frame_hook is not None or model is None:
                if self.frame_hook is not None:
                    self.frame_hook(t0 + k * period)
                model = self._frame_model(fd, t_int)
            base, sigma = model
            np.multiply(self._noise(frame.size).reshape(frame.shape), sigma, out=frame)
            frame += base
            np.rint(frame, out=frame)
            np.clip(frame, 0, 1023, out=frame)
            out[k] = frame
        self.world.clock.advance(n_frames * period)
        return full
