"""Heliotis heliCam C3 lock-in camera over the vendor library LibHeLIC.

The camera demodulates the light in every pixel at ``fd`` and returns raw I/Q volumes. Facts used
here come from the heliCam C3 user manual (v1.15):

* demodulation frequency ``fd = 70 MHz / (8 (SensTqp + 30))``, 2.137 kHz to 250 kHz;
* cycles per frame ``Nc = 2 SensNavM2 + 2`` (SensNavM2 1-255);
* frame period ``Tfr = Nc / fd + Toffset`` with the calibration (offset compensation) time
  ``Toffset = (SensCaldur + 58) / 35 MHz`` (SensCaldur 1-4096) or one cycle with CalDur1Cyc = 1;
* at most 3800 frames/s and 512 frames per volume (SensNFrames);
* raw I/Q is 10-bit (0-1023) with an unmodulated level near 512 (CamMode 0, format DF_I16Q16);
* internal trigger: TrigFreeExtN = 1; external trigger: TrigFreeExtN = 0, ExtTqp = 0,
  EnTrigOnPos = 0.

* usable area: the centre 280 columns x 292 rows of the 300 x 300 sensor; the outer rows and
  columns are test pixels (user manual). Pixel size and field of view refer to the usable area.

The library is called through its C entry points (``HE_Open``, ``HE_GetRegDesc``, ``HE_SetMap``,
``HE_AllocCamData``, ``HE_Acquire``, ``HE_ProcessCamData``, ``HE_GetCamData`` ...) in the order of
the heliSDK programmer's manual flow chart and the vendor examples: configure, flush (``HE_Acquire``
while it returns a positive byte count), then per volume ``HE_Acquire`` -> ``HE_ProcessCamData`` ->
``HE_GetCamData`` (the result pointer is valid only after ``HE_ProcessCamData``). ``HE_Acquire``
returns the bytes transferred; no volume (a missed external trigger, a timeout) is a value <= 0
(the public labscript heliCam worker sees -116 while waiting for a trigger).

Demodulation reference: this driver sets ``ExtTqp = 0``, so the camera demodulates against its own
internal reference at ``fd`` (from ``SensTqp``), not against the PulseBlaster's ``camera_trigger``
square wave. The phase between that reference and the MW gating is therefore not fixed by design:
``measure_phase`` reads it from the I/Q data, and the last value is kept in the snapshot.

Facts and their sources: ``docs/hardware/helicam.md``. The simulated library in ``sim.helicam``
offers the same entry points with the same ctypes arguments, so this driver runs unchanged on it.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import ctypes.util
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Any

import numpy as np

from instrument.checks import CheckResult
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    LockInSettings,
)

# --------------------------------------------------------------------------------------------
# Camera facts (heliCam C3 user manual)
# --------------------------------------------------------------------------------------------

SENSOR_CLOCK_HZ = 70e6
"""Sensor clock that sets the demodulation frequency."""
SEQUENCER_CLOCK_HZ = 35e6
"""Clock of the offset-compensation (calibration) time."""
FD_MIN_HZ = 2.1e3
FD_MAX_HZ = 250e3
SENS_TQP_MAX = 4095
SENS_NAVM2_MIN, SENS_NAVM2_MAX = 1, 255
SENS_CALDUR_MIN, SENS_CALDUR_MAX = 1, 4096
SENS_NFRAMES_MAX = 512
FRAME_RATE_MAX_HZ = 3800.0
RAW_OFFSET = 512
"""Raw I/Q level of an unmodulated pixel (10-bit data)."""
RAW_MAX = 1023
DEFAULT_FIELD_OF_VIEW_M = 150e-6
"""Sample-plane field of view of the seed-000 microscope (34x magnification)."""

SENSOR_TEST_ROWS = 8
"""Rows outside the usable area (292 of 300 are usable; split evenly above and below: inferred)."""
SENSOR_TEST_COLS = 20
"""Columns outside the usable area (280 of 300 are usable; split evenly left and right: inferred)."""
ACQUIRE_TIMEOUT_CODE = -116
"""``HE_Acquire``'s code while no volume came (seen by the public labscript heliCam worker; inferred)."""
FLUSH_TIMEOUT_MS = 20
"""Library timeout while flushing stale volumes after configuring (the normal timeout is restored)."""
FLUSH_MAX_VOLUMES = 16
"""A camera that still delivers volumes after this many flushes while stopped is reported."""

CAM_MODE_RAW_IQ = 0
DF_I16Q16 = 0x1
CAM_DATA_SLOT = 1
FRAME_RATE_TOLERANCE = 0.01
"""Largest relative frame-rate error accepted from register quantisation."""
MODULATION_TOLERANCE = 1e-3
"""Largest relative error between the requested and the achievable demodulation frequency."""


def demodulation_frequency_hz(sens_tqp: int) -> float:
    """fd for a SensTqp register value."""
    return SENSOR_CLOCK_HZ / (8 * (sens_tqp + 30))


def calibration_time_s(sens_caldur: int) -> float:
    """Offset-compensation time Toffset for a SensCaldur register value (CalDur1Cyc = 0)."""
    return (sens_caldur + 58) / SEQUENCER_CLOCK_HZ


def frame_period_s(sens_tqp: int, sens_navm2: int, sens_caldur: int) -> float:
    """Time between two frames: Nc / fd + Toffset."""
    n_cycles = 2 * sens_navm2 + 2
    return n_cycles / demodulation_frequency_hz(sens_tqp) + calibration_time_s(sens_caldur)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class HeliCamError(InstrumentError):
    """LibHeLIC refused or failed a call."""


class HeliCamSettingError(HeliCamError, ValueError):
    """A requested setting is outside what the heliCam C3 can do; nothing was sent."""


class LibraryNotFoundError(HeliCamError, OSError):
    """LibHeLIC could not be loaded."""


# --------------------------------------------------------------------------------------------
# LibHeLIC ABI (structures of libHeLIC.h as the vendor's Python wrapper declares them)
# --------------------------------------------------------------------------------------------


class Map(ct.Structure):
    """One named register mapping (a camera setting such as ``SensTqp``)."""

    _fields_ = [
        ("id", ct.c_char_p),
        ("cmt", ct.c_char_p),
        ("mode", ct.c_uint8),
        ("regs", ct.c_void_p),
        ("enums", ct.c_void_p),
        ("group", ct.c_char_p),
        ("level", ct.c_uint8),
        ("minValue", ct.c_ulong),
        ("maxValue", ct.c_ulong),
        ("defValue", ct.c_ulong),
        ("cammode", ct.c_uint8),
    ]


class RegDesc(ct.Structure):
    """Register description: the register and mapping tables of the opened camera."""

    _fields_ = [
        ("numReg", ct.c_ushort),
        ("regs", ct.c_void_p),
        ("numMap", ct.c_ushort),
        ("maps", ct.POINTER(Map)),
    ]


class Sensor(ct.Structure):
    """Sensor description; ``size`` is (columns, rows)."""

    _fields_ = [
        ("id", ct.c_char_p),
        ("verStr", ct.c_char_p),
        ("pixPitch", ct.c_float * 2),
        ("size", ct.c_ushort * 2),
        ("orientation", ct.c_uint8),
    ]


class SysDesc(ct.Structure):
    """System description of the opened camera (only the sensor is used here)."""

    _fields_ = [
        ("id", ct.c_char_p),
        ("featStrFPGA", ct.c_void_p),
        ("featStrUSB", ct.c_void_p),
        ("fpga", ct.c_void_p),
        ("sensor", ct.POINTER(Sensor)),
        ("usb", ct.c_void_p),
        ("eth", ct.c_void_p),
        ("motion", ct.c_void_p),
    ]


class CamData(ct.Structure):
    """A camera data buffer: ``data`` points at ``size`` bytes of ``format``."""

    _fields_ = [
        ("size", ct.c_uint),
        ("format", ct.c_uint),
        ("prop", ct.c_ushort),
        ("refCount", ct.c_ushort),
        ("data", ct.c_void_p),
    ]


class CamDataMeta(ct.Structure):
    """Dimensions of a camera data buffer, fastest-varying first."""

    _fields_ = [("numDim", ct.c_uint8), ("dimSz", ct.c_uint * 5)]


Handle = ct.c_void_p


def _check_status(result: int, func: Any, args: tuple) -> int:
    if result < 0:
        raise HeliCamError("LibHeLIC", _name(func), f"returned error code {result}", result)
    return result


def _check_pointer(result: Any, func: Any, args: tuple) -> Any:
    if not result:
        raise HeliCamError("LibHeLIC", _name(func), "returned a NULL pointer (no data or no camera)")
    return result


def _check_acquire(result: int, func: Any, args: tuple) -> int:
    return int(result)  # <= 0 is no volume: the driver says why, knowing the trigger mode


def _name(func: Any) -> str:
    return getattr(func, "__name__", None) or getattr(func, "name", None) or str(func)


# name: (argtypes, restype, errcheck)
_SIGNATURES: dict[str, tuple[list[Any], Any, Callable[..., Any]]] = {
    "HE_Open": ([ct.POINTER(Handle), ct.c_int, ct.c_char_p], ct.c_int, _check_status),
    "HE_Close": ([Handle], ct.c_int, _check_status),
    "HE_SetTimeout": ([Handle, ct.c_int], ct.c_int, _check_status),
    "HE_GetRegDesc": ([Handle], ct.POINTER(RegDesc), _check_pointer),
    "HE_GetSysDesc": ([Handle], ct.POINTER(SysDesc), _check_pointer),
    "HE_SetMap": ([Handle, ct.POINTER(Map), ct.c_int], ct.c_int, _check_status),
    "HE_GetMap": ([Handle, ct.POINTER(Map)], ct.c_int, _check_status),
    "HE_AllocCamData": (
        [Handle, ct.c_uint, ct.c_uint, ct.c_uint, ct.c_void_p, ct.c_uint], ct.c_int, _check_status
    ),
    "HE_Acquire": ([Handle], ct.c_int, _check_acquire),
    "HE_ProcessCamData": ([Handle, ct.c_uint, ct.c_uint, ct.c_void_p], ct.POINTER(CamData), _check_pointer),
    "HE_GetCamData": (
        [Handle, ct.c_uint, ct.c_uint, ct.POINTER(CamDataMeta)], ct.POINTER(CamData), _check_pointer
    ),
}


def library_search_paths() -> list[str]:
    """Where LibHeLIC is looked for, in order (``HELIC_LIBRARY`` first when set)."""
    paths: list[str] = []
    if env := os.environ.get("HELIC_LIBRARY"):
        paths.append(env)
    if sys.platform == "win32":
        program_files = os.environ.get("PROGRAMFILES", r"C:\Program Files")
        base = PureWindowsPath(program_files) / "Heliotis" / "heliCam"
        # the SDK installs the DLL under heliCam\libHeLIC\ (user manual); older layouts kept it higher up
        paths += ["libHeLIC.dll", str(base / "libHeLIC" / "libHeLIC.dll"), str(base / "libHeLIC.dll"),
                  str(base / "bin" / "libHeLIC.dll")]
    else:
        if found := ctypes.util.find_library("helic"):
            paths.append(found)
        paths += ["libhelic.so", "/usr/local/lib/libhelic.so", "/usr/lib/libhelic.so",
                  "/usr/lib/x86_64-linux-gnu/libhelic.so", "/opt/heliotis/lib/libhelic.so"]
    return paths


def load_libhelic() -> Any:
    """Load LibHeLIC with typed, error-checking entry points.

    Raises:
        LibraryNotFoundError: naming every place that was tried and how to point at the library.
    """
    tried = []
    for path in library_search_paths():
        try:
            lib = ct.CDLL(path)
        except OSError as exc:
            tried.append(f"{path} ({exc})")
            continue
        missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
        if missing:
            tried.append(f"{path} (not LibHeLIC: lacks {', '.join(missing[:3])})")
            continue
        for name, (argtypes, restype, errcheck) in _SIGNATURES.items():
            func = getattr(lib, name)
            func.argtypes, func.restype, func.errcheck = argtypes, restype, errcheck
        return lib
    raise LibraryNotFoundError(
        "heliCam", "load LibHeLIC",
        "library not found; tried " + "; ".join(tried)
        + ". Install the heliCam SDK or set HELIC_LIBRARY to the full path of libhelic.so / libHeLIC.dll",
    )


class _CheckedLibrary:
    """Applies the ctypes error checks to a Python object offering the LibHeLIC entry points."""

    def __init__(self, library: object) -> None:
        missing = [n for n in _SIGNATURES if not callable(getattr(library, n, None))]
        if missing:
            raise HeliCamError("heliCam", "library", f"object lacks LibHeLIC entry points {missing}")
        self._library = library

    def __getattr__(self, name: str) -> Callable[..., Any]:
        func = getattr(self._library, name)
        errcheck = _SIGNATURES[name][2]

        def checked(*args: Any) -> Any:
            return errcheck(func(*args), name, args)

        return checked


# --------------------------------------------------------------------------------------------
# Register solver: physical settings -> registers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockInRegisters:
    """Register values for one lock-in configuration."""

    sens_tqp: int
    sens_navm2: int
    sens_caldur: int
    sens_nframes: int

    @property
    def demodulation_frequency_hz(self) -> float:
        return demodulation_frequency_hz(self.sens_tqp)

    @property
    def cycles_per_frame(self) -> int:
        return 2 * self.sens_navm2 + 2

    @property
    def frame_period_s(self) -> float:
        return frame_period_s(self.sens_tqp, self.sens_navm2, self.sens_caldur)


def solve_registers(modulation_frequency_hz: float, frame_rate_hz: float,
                    frames_per_volume: int, name: str = "heliCam") -> LockInRegisters:
    """Registers that realise the physical settings, or a ``HeliCamSettingError`` naming the setting."""

    def refuse(setting: str, value: Any, why: str) -> HeliCamSettingError:
        return HeliCamSettingError(name, f"configure {setting}", why, value)

    f = float(modulation_frequency_hz)
    if not math.isfinite(f) or not FD_MIN_HZ <= f <= FD_MAX_HZ:
        raise refuse("modulation_frequency_hz", modulation_frequency_hz,
                     f"the demodulation frequency must lie in {FD_MIN_HZ:g}-{FD_MAX_HZ:g} Hz")
    tqp = int(round(SENSOR_CLOCK_HZ / (8 * f) - 30))
    tqp = min(max(tqp, 0), SENS_TQP_MAX)
    fd = demodulation_frequency_hz(tqp)
    if abs(fd - f) / f > MODULATION_TOLERANCE:
        steps = [t for t in (tqp - 1, tqp, tqp + 1) if 0 <= t <= SENS_TQP_MAX]
        near = sorted({demodulation_frequency_hz(t) for t in steps})
        raise refuse("modulation_frequency_hz", modulation_frequency_hz,
                     "not reachable with fd = 70 MHz / (8 (SensTqp + 30)); nearest achievable: "
                     + ", ".join(f"{x:.2f} Hz" for x in near))

    r = float(frame_rate_hz)
    if not math.isfinite(r) or not 0 < r <= FRAME_RATE_MAX_HZ:
        raise refuse("frame_rate_hz", frame_rate_hz,
                     f"the frame rate must lie in (0, {FRAME_RATE_MAX_HZ:g}] Hz")
    period = 1.0 / r
    t_cal_min, t_cal_max = calibration_time_s(SENS_CALDUR_MIN), calibration_time_s(SENS_CALDUR_MAX)
    best: LockInRegisters | None = None
    for navm2 in range(SENS_NAVM2_MIN, SENS_NAVM2_MAX + 1):
        t_cycles = (2 * navm2 + 2) / fd
        caldur = round((period - t_cycles) * SEQUENCER_CLOCK_HZ - 58)
        caldur = min(max(caldur, SENS_CALDUR_MIN), SENS_CALDUR_MAX)
        cand = LockInRegisters(tqp, navm2, caldur, 1)
        if best is None or abs(cand.frame_period_s - period) < abs(best.frame_period_s - period):
            best = cand
        if t_cycles + t_cal_min > period:
            break
    assert best is not None
    if abs(best.frame_period_s - period) / period > FRAME_RATE_TOLERANCE:
        lo = 1 / (best.frame_period_s + (t_cal_max - t_cal_min)) if best.frame_period_s < period else None
        options = [1 / best.frame_period_s] + ([lo] if lo else [])
        raise refuse("frame_rate_hz", frame_rate_hz,
                     f"not reachable at fd = {fd:.2f} Hz (frame = (2 SensNavM2 + 2) cycles + calibration "
                     f"{t_cal_min * 1e6:.1f}-{t_cal_max * 1e6:.1f} us); nearest achievable: "
                     + ", ".join(f"{x:.2f} frames/s" for x in options))

    n = frames_per_volume
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= SENS_NFRAMES_MAX:
        raise refuse("frames_per_volume", frames_per_volume,
                     f"SensNFrames must be an integer in 1-{SENS_NFRAMES_MAX}")
    return LockInRegisters(best.sens_tqp, best.sens_navm2, best.sens_caldur, int(n))


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeInfo:
    """Bookkeeping of the last acquired volume (camera frames, not host frames)."""

    index: int
    """Running count of volumes acquired since ``configure``."""
    n_frames: int
    first_frame_time_s: float
    """Clock time of the first frame's start, from the driver's clock."""
    frame_period_s: float

    def frame_times_s(self) -> np.ndarray:
        return self.first_frame_time_s + self.frame_period_s * np.arange(self.n_frames)


class HeliCamC3:
    """heliCam C3 lock-in camera in raw-I/Q mode; satisfies ``instrument.protocols.LockInCamera``.

    Args:
        name: instrument name used in errors and snapshots.
        library: an object with LibHeLIC's entry points (the simulator); ``None`` loads the real
            library through ctypes.
        system: the ``sys=`` id given to ``HE_Open`` (the camera model in the SDK's SysDesc.xml).
        field_of_view_m: sample-plane width of the image; sets ``pixel_size_m``.
        trigger: ``"internal"`` (free running) or ``"external"`` (one volume per trigger pulse).
        timeout_s: acquisition timeout handed to the library.
        clock: time source for frame timestamps (``time.monotonic``; the sim's clock in sim).
    """

    def __init__(
        self,
        name: str,
        library: object | None = None,
        system: str = "c3cam_sl70",
        field_of_view_m: float = DEFAULT_FIELD_OF_VIEW_M,
        trigger: str = "internal",
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.set_trigger(trigger)
        self.timeout_s = float(timeout_s)
        self._clock = clock
        self._field_of_view_m = float(field_of_view_m)
        self._lib = load_libhelic() if library is None else _CheckedLibrary(library)
        self._lock = threading.RLock()
        self._handle = Handle()
        self._lib.HE_Open(ct.pointer(self._handle), 0, f"sys={system}".encode())
        if not self._handle.value:
            raise InstrumentDisconnected(
                name, "HE_Open", f"no camera opened for sys={system}; check the USB cable, power and "
                "that the system id matches the camera in the SDK's SysDesc.xml")
        self._open = True
        try:
            self._maps = self._read_maps()
            sensor = self._lib.HE_GetSysDesc(self._handle).contents.sensor
            if not sensor:
                raise HeliCamError(name, "HE_GetSysDesc", "library reports no sensor description")
            cols, rows = (int(v) for v in sensor.contents.size)
            if rows <= SENSOR_TEST_ROWS or cols <= SENSOR_TEST_COLS:
                raise HeliCamError(name, "HE_GetSysDesc",
                                   f"sensor of {cols} x {rows} pixels has no usable area inside its "
                                   f"{SENSOR_TEST_COLS} test columns and {SENSOR_TEST_ROWS} test rows")
            self._sensor_shape = (rows, cols)
            self._shape = (rows - SENSOR_TEST_ROWS, cols - SENSOR_TEST_COLS)
            r0, c0 = SENSOR_TEST_ROWS // 2, SENSOR_TEST_COLS // 2
            self._usable = (slice(r0, r0 + self._shape[0]), slice(c0, c0 + self._shape[1]))
            self._lib.HE_SetTimeout(self._handle, int(self.timeout_s * 1000))
        except BaseException:
            self._open = False
            with contextlib.suppress(Exception):  # a camera that failed to set up keeps no handle
                self._lib.HE_Close(self._handle)
            raise
        self._registers: LockInRegisters | None = None
        self._settings: LockInSettings | None = None
        self._volumes = 0
        self.last_volume: VolumeInfo | None = None
        self.flushed_volumes = 0
        """Stale volumes drained by the last ``configure`` (the manual's flush after configuring)."""
        self.last_phase_rad: float | None = None
        """Lock-in phase last measured by ``measure_phase`` (internal reference vs. the signal)."""

    # ---- properties ----------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (rows, cols) of the usable area (292 x 280 on a C3's 300 x 300 sensor)."""
        return self._shape

    @property
    def sensor_shape(self) -> tuple[int, int]:
        """The whole sensor (rows, cols) as the library reports it, test rows and columns included."""
        return self._sensor_shape

    @property
    def pixel_size_m(self) -> float:
        """Sample-plane pixel size: field of view over the usable columns."""
        return self._field_of_view_m / self._shape[1]

    @property
    def settings(self) -> LockInSettings | None:
        return self._settings

    @property
    def registers(self) -> LockInRegisters | None:
        return self._registers

    def snapshot(self) -> dict[str, Any]:
        """Settings and register values for the run's station snapshot."""
        snap: dict[str, Any] = {"name": self.name, "model": "heliCam C3", "trigger": self.trigger,
                                "shape": list(self._shape), "sensor_shape": list(self._sensor_shape),
                                "pixel_size_m": self.pixel_size_m,
                                "demodulation_reference": "internal (ExtTqp = 0)",
                                "lockin_phase_rad": self.last_phase_rad,
                                "flushed_volumes": self.flushed_volumes}
        if self._settings and self._registers:
            snap.update(vars(self._settings))
            snap["registers"] = {"SensTqp": self._registers.sens_tqp, "SensNavM2": self._registers.sens_navm2,
                                 "SensCaldur": self._registers.sens_caldur,
                                 "SensNFrames": self._registers.sens_nframes}
        return snap

    # ---- configuration -------------------------------------------------------------------------

    def _read_maps(self) -> dict[str, Any]:
        desc = self._lib.HE_GetRegDesc(self._handle).contents
        maps = {}
        for i in range(desc.numMap):
            ptr = ct.pointer(desc.maps[i])
            maps[ptr.contents.id.decode()] = ptr
        return maps

    def _set(self, setting: str, value: int) -> None:
        ptr = self._maps.get(setting)
        if ptr is None:
            raise HeliCamError(self.name, f"set {setting}", "no such setting in the register description")
        m = ptr.contents
        if not m.minValue <= value <= m.maxValue:
            raise HeliCamSettingError(self.name, f"set {setting}",
                                      f"outside the camera's range {m.minValue}-{m.maxValue}", value)
        self._lib.HE_SetMap(self._handle, ptr, int(value))

    def set_trigger(self, trigger: str) -> None:
        """``"internal"`` (free running) or ``"external"`` (one volume per trigger pulse).

        Takes effect at the next ``configure()``; a sequence that times volumes with the pulse
        generator switches to external and back.
        """
        if trigger not in ("internal", "external"):
            raise HeliCamSettingError(self.name, "trigger", "must be 'internal' or 'external'", trigger)
        self.trigger = trigger

    def get_setting(self, setting: str) -> int:
        """Read a camera setting (register mapping) by name, e.g. ``"SensTqp"``."""
        ptr = self._maps.get(setting)
        if ptr is None:
            raise HeliCamError(self.name, f"get {setting}", "no such setting in the register description")
        with self._lock:
            return int(self._lib.HE_GetMap(self._handle, ptr))

    def settings_for(self, modulation_frequency_hz: float, frame_rate_hz: float,
                     frames_per_volume: int) -> LockInSettings:
        """The settings ``configure`` would give, from the register solver alone: touches no hardware,
        so a sequence's plan can use it (``sequences.cw_odmr``)."""
        regs = solve_registers(modulation_frequency_hz, frame_rate_hz, frames_per_volume, self.name)
        return LockInSettings(modulation_frequency_hz=regs.demodulation_frequency_hz,
                              frame_rate_hz=1.0 / regs.frame_period_s, frames_per_volume=regs.sens_nframes,
                              cycles_per_frame=regs.cycles_per_frame)

    def configure(self, modulation_frequency_hz: float, frame_rate_hz: float,
                  frames_per_volume: int) -> LockInSettings:
        """Set up raw-I/Q lock-in acquisition; returns the settings the camera really runs with.

        Raises:
            HeliCamSettingError: a setting the camera cannot realise (named, with what it can do).
        """
        regs = solve_registers(modulation_frequency_hz, frame_rate_hz, frames_per_volume, self.name)
        with self._lock:
            self._require_open("configure")
            self._set("AcqStop", 1)
            self._set("CamMode", CAM_MODE_RAW_IQ)
            self._set("SensTqp", regs.sens_tqp)
            self._set("SensNavM2", regs.sens_navm2)
            self._set("CalDur1Cyc", 0)
            self._set("SensCaldur", regs.sens_caldur)
            self._set("SensNFrames", regs.sens_nframes)
            self._set("BSEnable", 1)
            self._set("DdsGain", 2)  # best SNR per the manual
            if self.trigger == "internal":
                self._set("TrigFreeExtN", 1)
            else:
                self._set("TrigFreeExtN", 0)
                self._set("ExtTqp", 0)
                self._set("EnTrigOnPos", 0)
            self._set("EnSynFOut", 1)
            self._lib.HE_AllocCamData(self._handle, CAM_DATA_SLOT, DF_I16Q16, 0, None, 0)
            self.flushed_volumes = self._flush()
            self._set("AcqStop", 0)
            self._registers = regs
            self._volumes = 0
            self._settings = LockInSettings(
                modulation_frequency_hz=regs.demodulation_frequency_hz,
                frame_rate_hz=1.0 / regs.frame_period_s,
                frames_per_volume=regs.sens_nframes,
                cycles_per_frame=regs.cycles_per_frame,
            )
            return self._settings

    def _flush(self) -> int:
        """Drain volumes left in the buffer before the new settings (``HE_Acquire`` while > 0).

        Runs while acquisition is stopped (AcqStop = 1) with a short timeout, so it ends as soon as
        the buffer is empty; the normal timeout is restored afterwards.
        """
        self._lib.HE_SetTimeout(self._handle, FLUSH_TIMEOUT_MS)
        try:
            for flushed in range(FLUSH_MAX_VOLUMES + 1):
                if self._lib.HE_Acquire(self._handle) <= 0:
                    return flushed
            raise HeliCamError(self.name, "flush", f"the camera still delivers volumes after "
                               f"{FLUSH_MAX_VOLUMES} flushes with acquisition stopped; power-cycle it")
        finally:
            self._lib.HE_SetTimeout(self._handle, int(self.timeout_s * 1000))

    # ---- acquisition ---------------------------------------------------------------------------

    def acquire_volume(self) -> np.ndarray:
        """One volume of ``frames_per_volume`` raw I/Q frames, int16 (n, rows, cols, 2).

        Raises:
            InstrumentTimeout: no volume within the timeout (external trigger missing, camera stalled).
            HeliCamError: the library reported an error or returned data of the wrong size.
        """
        with self._lock:
            self._require_open("acquire")
            if self._registers is None:
                raise HeliCamError(self.name, "acquire", "camera not configured; call configure() first")
            n_bytes = self._lib.HE_Acquire(self._handle)
            t_end = self._clock()
            if n_bytes in (0, ACQUIRE_TIMEOUT_CODE) or (n_bytes < 0 and self.trigger == "external"):
                # a missed external trigger is a negative code (the labscript worker sees -116)
                raise InstrumentTimeout(
                    self.name, "HE_Acquire",
                    f"no volume within {self.timeout_s:g} s (trigger={self.trigger}, code {n_bytes}); "
                    "check the trigger cable, that the pulse generator is running and that camera_start "
                    "pulses are wider than 10 us (the camera starts on their falling edge)",
                    self.timeout_s)
            if n_bytes < 0:
                raise HeliCamError(self.name, "HE_Acquire", f"returned error code {n_bytes}", n_bytes)
            # the result pointer is valid only after HE_ProcessCamData (programmer's manual flow)
            self._lib.HE_ProcessCamData(self._handle, CAM_DATA_SLOT, 0, None)
            meta = CamDataMeta()
            cd = self._lib.HE_GetCamData(self._handle, CAM_DATA_SLOT, 0, ct.pointer(meta)).contents
            shape = tuple(int(meta.dimSz[i]) for i in range(meta.numDim - 1, -1, -1))
            n = self._registers.sens_nframes
            expected = (n, *self._sensor_shape, 2)
            count = math.prod(expected)
            if shape != expected or cd.size < count * 2 or not cd.data:
                raise HeliCamError(self.name, "HE_GetCamData",
                                   f"volume has shape {shape} and {cd.size} bytes, expected {expected}")
            full = np.ctypeslib.as_array((ct.c_int16 * count).from_address(cd.data)).reshape(expected)
            raw = full[:, self._usable[0], self._usable[1], :].copy()  # test rows and columns dropped
            period = self._registers.frame_period_s
            self.last_volume = VolumeInfo(self._volumes, n, t_end - n * period, period)
            self._volumes += 1
            return raw

    def acquire(self, n_frames: int) -> np.ndarray:
        """``n_frames`` raw I/Q frames (whole volumes are read; surplus frames are discarded)."""
        if isinstance(n_frames, bool) or not isinstance(n_frames, int | np.integer) or n_frames < 1:
            raise HeliCamSettingError(self.name, "acquire n_frames", "must be a positive integer", n_frames)
        volumes = []
        got = 0
        while got < n_frames:
            v = self.acquire_volume()
            volumes.append(v)
            got += len(v)
        out = volumes[0] if len(volumes) == 1 else np.concatenate(volumes)
        return out[:n_frames]

    def demodulate(self, raw: np.ndarray) -> np.ndarray:
        """In-phase signal with the raw offset removed, float32 (n, rows, cols)."""
        raw = np.asarray(raw)
        if raw.ndim != 4 or raw.shape[-1] != 2 or raw.shape[1:3] != self._shape:
            rows, cols = self._shape
            raise ValueError(f"{self.name}: raw frames must be (n, {rows}, {cols}, 2), got {raw.shape}")
        return raw[..., 0].astype(np.float32) - np.float32(RAW_OFFSET)

    def measure_phase(self, raw: np.ndarray) -> tuple[float, float]:
        """Lock-in phase and amplitude of the modulated signal in raw I/Q frames.

        The camera demodulates against its internal reference (``ExtTqp = 0``), so the signal sits
        at an angle in the I/Q plane that depends on how the reference and the MW gating line up.
        Returns ``(phase_rad, amplitude_du)`` of the frame- and pixel-averaged I + jQ (offset
        removed) and keeps the phase in ``last_phase_rad`` and the snapshot. ``demodulate`` reads
        only I, so a phase far from 0 or pi loses signal (cos(phase)).
        """
        raw = np.asarray(raw)
        if raw.ndim != 4 or raw.shape[-1] != 2:
            raise ValueError(f"{self.name}: raw frames must be (n, rows, cols, 2), got {raw.shape}")
        iq = raw.astype(np.float64).mean(axis=(0, 1, 2)) - RAW_OFFSET
        z = complex(iq[0], iq[1])
        self.last_phase_rad = float(np.angle(z))
        return self.last_phase_rad, float(abs(z))

    def station_checks(self) -> list[CheckResult]:
        """Commissioning: identity, register read-back at the standard lock-in settings, flush."""
        rows, cols = self._sensor_shape
        results = [CheckResult(
            self.name, "identity", True,
            f"heliCam C3 sensor {cols} x {rows}, usable {self._shape[1]} x {self._shape[0]}, "
            f"pixel {self.pixel_size_m * 1e6:.3g} um, demodulation reference internal (ExtTqp = 0)")]
        previous = self.trigger
        try:
            self.set_trigger("internal")
            s = self.configure(6250.0, 208.0, 4)
            expected = {"CamMode": CAM_MODE_RAW_IQ, "SensTqp": self._registers.sens_tqp,
                        "SensNavM2": self._registers.sens_navm2, "SensNFrames": 4, "TrigFreeExtN": 1,
                        "ExtTqp": 0}
            got = {k: self.get_setting(k) for k in expected}
            wrong = {k: v for k, v in got.items() if v != expected[k]}
            results.append(CheckResult(
                self.name, "register read-back", not wrong,
                f"fd {s.modulation_frequency_hz:.6g} Hz, {s.frame_rate_hz:.5g} frames/s; read back {got}; "
                f"{self.flushed_volumes} stale volume(s) flushed",
                "" if not wrong else f"registers {sorted(wrong)} did not keep their values: update the "
                "heliCam firmware / SDK so its register description matches the camera"))
            raw = self.acquire(4)
            results.append(CheckResult(self.name, "internal-trigger volume", raw.shape[0] == 4,
                                       f"{raw.shape[0]} frames of {raw.shape[1]} x {raw.shape[2]} pixels"))
        except Exception as exc:  # noqa: BLE001 - a commissioning check reports, it does not stop
            results.append(CheckResult(self.name, "register read-back", False, str(exc),
                                       "check the USB 3 cable and that the heliCam SDK is installed"))
        finally:
            self.set_trigger(previous)
        return results

    # ---- safety --------------------------------------------------------------------------------

    def _require_open(self, command: str) -> None:
        if not self._open:
            raise InstrumentDisconnected(self.name, command, "camera is closed")

    def stop(self) -> None:
        """Stop acquisition (AcqStop = 1)."""
        with self._lock:
            if self._open:
                self._set("AcqStop", 1)

    def safe_state(self) -> None:
        """Stop acquisition; raises ``InstrumentError`` if the library refused (it may keep acquiring)."""
        try:
            self.stop()
        except Exception as exc:
            raise InstrumentError(self.name, "AcqStop = 1", f"could not stop the acquisition ({exc}); "
                                  "close the camera or unplug its USB cable") from exc

    def close(self) -> None:
        """Stop acquisition and release the camera. Safe to call twice."""
        with self._lock:
            if not self._open:
                return
            try:
                self.safe_state()
            finally:
                try:
                    self._lib.HE_Close(self._handle)
                finally:
                    self._open = False

    def __enter__(self) -> HeliCamC3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
