"""Andor sCMOS cameras (Zyla, Sona, Neo, Marana) through Andor SDK3's core library, atcore.

Called directly through ctypes from the entry points of ``atcore.h`` (``AT_InitialiseLibrary``,
``AT_Open``, ``AT_Set*``/``AT_Get*`` on named features, ``AT_Command``, ``AT_QueueBuffer``,
``AT_WaitBuffer``, ``AT_Flush``), not through pylablib: why, and every fact used here with its source
and confidence, is in ``docs/hardware/andor_sdk3.md`` (ids A1-A16).

Frames: the driver queues 8-byte aligned buffers of ``ImageSizeBytes`` with the SDK before
``AcquisitionStart`` and re-queues each one as soon as its frame is copied out. The SDK never drops a
frame silently: frames that find no buffer wait in the camera's memory, and when that fills the
camera stops with ``AT_ERR_HARDWARE_OVERFLOW`` (A13). The bounded queue of the protocol is therefore
kept by the driver: every read first takes all frames ready at the SDK, and beyond ``queue_size`` the
oldest are dropped and counted. Frame numbers count arrivals since ``arm`` (SDK3 metadata has no
frame counter, A12); timestamps are the camera's FPGA ticks over ``TimestampClockFrequency``.

Gain: sCMOS cameras have no analogue gain in dB but gain modes (``SimplePreAmpGainControl`` or
``GainMode``: "12-bit (low noise)" ...); ``gain_mode`` chooses one and ``set_gain`` accepts 0 dB only.
"""

from __future__ import annotations

import ctypes as ct
import ctypes.util
import logging
import math
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import PureWindowsPath
from typing import Any

import numpy as np

from drivers.intensity_camera import IntensityCameraSettings
from instrument.checks import CheckResult
from instrument.protocols import (
    CameraConstraints,
    CameraFrames,
    CameraTrigger,
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
)

log = logging.getLogger(__name__)

# atcore.h (A1): return codes and handles.
AT_SUCCESS = 0
AT_ERR_NOTIMPLEMENTED = 2
AT_ERR_TIMEDOUT = 13
AT_ERR_CONNECTION = 10
AT_ERR_COMM = 17
AT_ERR_HARDWARE_OVERFLOW = 100
AT_HANDLE_SYSTEM = 1
ERROR_NAMES = {
    1: ("AT_ERR_NOTINITIALISED", "the library is not initialised"),
    2: ("AT_ERR_NOTIMPLEMENTED", "the feature is not implemented on this camera (or not of this type)"),
    3: ("AT_ERR_READONLY", "the feature is read-only"),
    4: ("AT_ERR_NOTREADABLE", "the feature is not readable now"),
    5: ("AT_ERR_NOTWRITABLE", "the feature is not writable now (acquiring, or another setting forbids it)"),
    6: ("AT_ERR_OUTOFRANGE", "the value is outside the feature's minimum and maximum"),
    7: ("AT_ERR_INDEXNOTAVAILABLE", "the enum index is not available now"),
    8: ("AT_ERR_INDEXNOTIMPLEMENTED", "the enum index is not implemented on this camera"),
    9: ("AT_ERR_EXCEEDEDMAXSTRINGLENGTH", "the string is longer than the feature allows"),
    10: ("AT_ERR_CONNECTION", "error connecting to or disconnecting from the camera"),
    11: ("AT_ERR_NODATA", "no data"),
    12: ("AT_ERR_INVALIDHANDLE", "invalid camera handle"),
    13: ("AT_ERR_TIMEDOUT", "AT_WaitBuffer timed out waiting for a frame"),
    14: ("AT_ERR_BUFFERFULL", "the input queue of buffers is full"),
    15: ("AT_ERR_INVALIDSIZE", "a queued buffer does not match the frame size"),
    16: ("AT_ERR_INVALIDALIGNMENT", "a queued buffer is not aligned on an 8-byte boundary"),
    17: ("AT_ERR_COMM", "error communicating with the camera"),
    18: ("AT_ERR_STRINGNOTAVAILABLE", "the enum string is not available now"),
    19: ("AT_ERR_STRINGNOTIMPLEMENTED", "the enum string is not implemented on this camera"),
    20: ("AT_ERR_NULL_FEATURE", "NULL feature name"),
    21: ("AT_ERR_NULL_HANDLE", "NULL handle"),
    34: ("AT_ERR_NULL_QUEUE_PTR", "NULL buffer queued"),
    35: ("AT_ERR_NULL_WAIT_PTR", "NULL pointer for the returned buffer"),
    36: ("AT_ERR_NULL_PTRSIZE", "NULL pointer for the returned size"),
    37: ("AT_ERR_NOMEMORY", "out of memory"),
    38: ("AT_ERR_DEVICEINUSE", "the camera is already in use (another program or driver holds it)"),
    39: ("AT_ERR_DEVICENOTFOUND", "no camera at that index"),
    100: ("AT_ERR_HARDWARE_OVERFLOW", "frames were not read fast enough and the camera's buffer burst"),
}

BUFFER_ALIGNMENT = 8  # A9
CID_FRAME_DATA, CID_TICKS = 0, 1  # A12
SUPPORTED_ENCODINGS = ("Mono12", "Mono12Packed", "Mono16")
HARDWARE_INPUT = "External"
"""The one trigger input of SDK3 sCMOS cameras (``TriggerMode`` External / External Exposure)."""
_TRIGGER_MODES = {"free": "Internal", "software": "Software"}
_EXPOSURE_MODES = {"timed": "External", "trigger_width": "External Exposure"}
_EDGES = ("rising", "falling")


class AndorSDK3Error(InstrumentError):
    """atcore refused or failed a call; ``code`` is the ``AT_ERR_*`` number."""

    def __init__(self, instrument: str, command: str, detail: str, value: Any = None, code: int = 0) -> None:
        super().__init__(instrument, command, detail, value)
        self.code = code


class AndorSDK3Disconnected(AndorSDK3Error, InstrumentDisconnected):
    """The camera stopped answering (USB or Camera Link lost)."""


class LibraryNotFoundError(AndorSDK3Error, OSError):
    """atcore could not be loaded."""


def describe(code: int) -> str:
    name, meaning = ERROR_NAMES.get(code, (f"code {code}", "unknown atcore error"))
    return f"{name} ({code}): {meaning}"


def _error_for(code: int, instrument: str, command: str, value: Any = None) -> AndorSDK3Error:
    cls = AndorSDK3Disconnected if code in (AT_ERR_CONNECTION, AT_ERR_COMM) else AndorSDK3Error
    return cls(instrument, command, f"atcore returned {describe(code)}", value, code)


def _check(result: int, func: Any, args: tuple) -> int:
    if result != AT_SUCCESS:
        feature = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        where = _name(func) + (f"({feature})" if feature else "")
        raise _error_for(result, "atcore", where)
    return result


def _pass_code(result: int, func: Any, args: tuple) -> int:
    return int(result)  # AT_WaitBuffer: the driver tells a timeout from a failure


def _name(func: Any) -> str:
    return getattr(func, "__name__", None) or str(func)


_H, _WC, _PI, _PB = ct.c_int, ct.c_wchar_p, ct.POINTER(ct.c_int), ct.POINTER(ct.c_int)
_U8P = ct.POINTER(ct.c_ubyte)

# atcore.h prototypes (A1): name -> (argtypes, errcheck); every entry point returns int.
SIGNATURES: dict[str, tuple[list[Any], Callable[..., int]]] = {
    "AT_InitialiseLibrary": ([], _check),
    "AT_FinaliseLibrary": ([], _check),
    "AT_Open": ([ct.c_int, ct.POINTER(_H)], _check),
    "AT_Close": ([_H], _check),
    "AT_IsImplemented": ([_H, _WC, _PB], _check),
    "AT_IsWritable": ([_H, _WC, _PB], _check),
    "AT_SetInt": ([_H, _WC, ct.c_longlong], _check),
    "AT_GetInt": ([_H, _WC, ct.POINTER(ct.c_longlong)], _check),
    "AT_GetIntMax": ([_H, _WC, ct.POINTER(ct.c_longlong)], _check),
    "AT_GetIntMin": ([_H, _WC, ct.POINTER(ct.c_longlong)], _check),
    "AT_SetFloat": ([_H, _WC, ct.c_double], _check),
    "AT_GetFloat": ([_H, _WC, ct.POINTER(ct.c_double)], _check),
    "AT_GetFloatMax": ([_H, _WC, ct.POINTER(ct.c_double)], _check),
    "AT_GetFloatMin": ([_H, _WC, ct.POINTER(ct.c_double)], _check),
    "AT_SetBool": ([_H, _WC, ct.c_int], _check),
    "AT_GetBool": ([_H, _WC, _PB], _check),
    "AT_SetEnumString": ([_H, _WC, _WC], _check),
    "AT_GetEnumIndex": ([_H, _WC, _PI], _check),
    "AT_GetEnumCount": ([_H, _WC, _PI], _check),
    "AT_IsEnumIndexAvailable": ([_H, _WC, ct.c_int, _PB], _check),
    "AT_GetEnumStringByIndex": ([_H, _WC, ct.c_int, _WC, ct.c_int], _check),
    "AT_Command": ([_H, _WC], _check),
    "AT_GetString": ([_H, _WC, _WC, ct.c_int], _check),
    "AT_GetStringMaxLength": ([_H, _WC, _PI], _check),
    "AT_QueueBuffer": ([_H, _U8P, ct.c_int], _check),
    "AT_WaitBuffer": ([_H, ct.POINTER(_U8P), _PI, ct.c_uint], _pass_code),
    "AT_Flush": ([_H], _check),
}


def library_search_paths() -> list[str]:
    """Where atcore is looked for, in order (``ANDOR_SDK3_LIBRARY`` first when set; A3)."""
    paths: list[str] = []
    if env := os.environ.get("ANDOR_SDK3_LIBRARY"):
        paths.append(env)
    if sys.platform == "win32":
        program_files = PureWindowsPath(os.environ.get("PROGRAMFILES", r"C:\Program Files"))
        paths += ["atcore.dll", str(program_files / "Andor SDK3" / "atcore.dll"),
                  str(program_files / "Andor SOLIS" / "atcore.dll")]
    else:
        if found := ctypes.util.find_library("atcore"):
            paths.append(found)
        paths += ["libatcore.so.3", "libatcore.so", "/usr/local/lib/libatcore.so"]
    return paths


def apply_signatures(library: Any) -> Any:
    """Give every atcore entry point of ``library`` (the DLL or a fake of it) its types and checks."""
    missing = [n for n in SIGNATURES if not hasattr(library, n)]
    if missing:
        raise AndorSDK3Error("atcore", "load", f"the library lacks the entry points {', '.join(missing[:4])}")
    for name, (argtypes, errcheck) in SIGNATURES.items():
        func = getattr(library, name)
        func.argtypes, func.restype, func.errcheck = argtypes, ct.c_int, errcheck
    return library


def load_atcore() -> Any:
    """Load atcore with typed, error-checking entry points, or say where it was looked for."""
    tried = []
    loader = ct.WinDLL if sys.platform == "win32" else ct.CDLL  # type: ignore[attr-defined]
    for path in library_search_paths():
        try:
            lib = loader(path)
        except OSError as exc:
            tried.append(f"{path} ({exc})")
            continue
        return apply_signatures(lib)
    raise LibraryNotFoundError(
        "andor", "load atcore",
        "Andor SDK3 not found; tried " + "; ".join(tried)
        + ". Install Andor SDK3 (or Andor Solis, which ships its DLLs) or set ANDOR_SDK3_LIBRARY to "
        "the full path of libatcore.so / atcore.dll",
    )


class _Buffer:
    """One aligned frame buffer the SDK writes into."""

    def __init__(self, size: int) -> None:
        self._raw = np.zeros(size + BUFFER_ALIGNMENT, np.uint8)
        start = (-self._raw.ctypes.data) % BUFFER_ALIGNMENT
        self.array = self._raw[start : start + size]
        self.address = int(self.array.ctypes.data)
        self.pointer = self.array.ctypes.data_as(_U8P)


def unpack_mono12packed(raw: np.ndarray, width: int) -> np.ndarray:
    """Two 12-bit pixels in three bytes: high 8 bits of the first, two low nibbles, high 8 of the second."""
    rows = raw.shape[0]
    triplets = np.zeros((rows, (width + 1) // 2, 3), np.uint16)
    flat = raw[:, : math.ceil(width * 1.5)].astype(np.uint16)
    triplets.reshape(rows, -1)[:, : flat.shape[1]] = flat
    out = np.empty((rows, triplets.shape[1] * 2), np.uint16)
    out[:, 0::2] = (triplets[..., 0] << 4) | (triplets[..., 1] & 0x0F)
    out[:, 1::2] = (triplets[..., 1] >> 4) | (triplets[..., 2] << 4)
    return out[:, :width]


class AndorSDK3Camera(IntensityCameraSettings):
    """One Andor SDK3 camera (``IntensityCamera``), chosen by serial number or index.

    Args:
        name: the station role.
        library: an object with atcore's entry points (a fake of it in tests); ``None`` loads the DLL.
        camera_index: SDK index of the camera when no serial is given.
        serial: the camera's serial number (``VSC-...``); searched over all cameras the SDK sees.
        shape: (rows, cols) area of interest from the sensor's origin; ``None`` keeps the camera's.
        pixel_encoding: ``Mono12``, ``Mono12Packed`` or ``Mono16``; ``None`` keeps the camera's.
        gain_mode: a ``SimplePreAmpGainControl``/``GainMode`` string; ``None`` keeps the camera's.
        cooling: switch the sensor cooler on when the camera opens.
        clock: stand-in time source (s) when the camera sends no timestamps.
    """

    def __init__(
        self,
        name: str,
        *,
        library: Any = None,
        camera_index: int = 0,
        serial: str | None = None,
        shape: tuple[int, int] | None = None,
        pixel_encoding: str | None = None,
        gain_mode: str | None = None,
        cooling: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        self._lib = load_atcore() if library is None else apply_signatures(library)
        self._clock = clock
        self._handle: int | None = None
        self._armed = False
        self._buffers: dict[int, _Buffer] = {}
        self._frames: deque[tuple[np.ndarray, int, float, str]] = deque()
        self._queue_size = 16
        self._arrived = 0
        self._dropped = 0
        self._dropped_unreported = 0
        self.hardware_overflows = 0
        self._trigger = CameraTrigger()
        self._geometry: tuple[int, int, int, int, str, bool] = (0, 0, 0, 0, "", False)
        self._lib.AT_InitialiseLibrary()
        try:
            self._handle = self._open(camera_index, serial)
            self._gain_feature = next(
                (f for f in ("GainMode", "SimplePreAmpGainControl") if self._implemented(f)), None
            )
            self._set_enum("CycleMode", "Continuous")
            for flag in ("MetadataEnable", "MetadataTimestamp"):
                if self._implemented(flag):
                    self._set_bool(flag, True)
            if cooling and self._implemented("SensorCooling"):
                self._set_bool("SensorCooling", True)
            self._tick_hz = (
                float(self._get_int("TimestampClockFrequency"))
                if self._implemented("TimestampClockFrequency") else 0.0
            )
            if gain_mode is not None:
                self.set_gain_mode(gain_mode)
            if pixel_encoding is not None:
                self.set_pixel_format(pixel_encoding)
            if shape is not None:
                self.set_shape(shape)
            self._constraints = self._read_constraints()
            self.set_trigger(CameraTrigger())
        except BaseException:
            self._release()
            raise

    # ---- opening and feature access --------------------------------------------------------------

    def _open(self, index: int, serial: str | None) -> int:
        count = ct.c_longlong()
        self._lib.AT_GetInt(AT_HANDLE_SYSTEM, "DeviceCount", ct.byref(count))
        candidates = range(count.value) if serial is not None else [index]
        seen = []
        for i in candidates:
            if not 0 <= i < count.value:
                break
            handle = ct.c_int()
            try:
                self._lib.AT_Open(i, ct.byref(handle))
            except AndorSDK3Error as exc:
                seen.append(f"index {i}: {exc.detail}")
                continue
            self._handle = handle.value
            found = self._get_string("SerialNumber")
            if serial is None or found == str(serial):
                return handle.value
            seen.append(f"index {i}: serial {found}")
            self._lib.AT_Close(handle.value)
            self._handle = None
        raise AndorSDK3Error(
            self.name, "AT_Open",
            f"no Andor SDK3 camera {'with serial ' + repr(serial) if serial else f'at index {index}'}; "
            f"the SDK sees {count.value} camera(s){': ' + '; '.join(seen) if seen else ''}. Check the cable, "
            "the power and that no other program (Solis, Micro-Manager) holds the camera",
            serial or index,
        )

    def _call(self, entry: str, feature: str, *args: Any, value: Any = None) -> None:
        """One feature call on this camera; a failure names the camera, the entry point and the feature."""
        try:
            getattr(self._lib, entry)(self._handle, feature, *args)
        except AndorSDK3Error as exc:
            raise _error_for(exc.code, self.name, f"{entry} {feature}", value) from exc

    def _buffer_call(self, entry: str, *args: Any) -> None:
        try:
            getattr(self._lib, entry)(self._handle, *args)
        except AndorSDK3Error as exc:
            raise _error_for(exc.code, self.name, entry) from exc

    def _implemented(self, feature: str) -> bool:
        out = ct.c_int()
        self._call("AT_IsImplemented", feature, ct.byref(out))
        return bool(out.value)

    def _writable(self, feature: str) -> bool:
        out = ct.c_int()
        self._call("AT_IsWritable", feature, ct.byref(out))
        return bool(out.value)

    def _get_int(self, feature: str, which: str = "") -> int:
        out = ct.c_longlong()
        self._call(f"AT_GetInt{which}", feature, ct.byref(out))
        return int(out.value)

    def _set_int(self, feature: str, value: int) -> None:
        self._call("AT_SetInt", feature, ct.c_longlong(int(value)), value=value)

    def _get_float(self, feature: str, which: str = "") -> float:
        out = ct.c_double()
        self._call(f"AT_GetFloat{which}", feature, ct.byref(out))
        return float(out.value)

    def _set_float(self, feature: str, value: float) -> None:
        self._call("AT_SetFloat", feature, ct.c_double(float(value)), value=value)

    def _get_bool(self, feature: str) -> bool:
        out = ct.c_int()
        self._call("AT_GetBool", feature, ct.byref(out))
        return bool(out.value)

    def _set_bool(self, feature: str, value: bool) -> None:
        self._call("AT_SetBool", feature, 1 if value else 0, value=value)

    def _enum_string(self, feature: str, index: int) -> str:
        text = ct.create_unicode_buffer(256)
        self._call("AT_GetEnumStringByIndex", feature, index, text, len(text))
        return text.value

    def _get_enum(self, feature: str) -> str:
        index = ct.c_int()
        self._call("AT_GetEnumIndex", feature, ct.byref(index))
        return self._enum_string(feature, index.value)

    def _set_enum(self, feature: str, option: str) -> None:
        self._call("AT_SetEnumString", feature, option, value=option)

    def _options(self, feature: str, available_only: bool = True) -> tuple[str, ...]:
        count = ct.c_int()
        self._call("AT_GetEnumCount", feature, ct.byref(count))
        options = []
        for i in range(count.value):
            ok = ct.c_int(1)
            if available_only:
                self._call("AT_IsEnumIndexAvailable", feature, i, ct.byref(ok))
            if ok.value:
                options.append(self._enum_string(feature, i))
        return tuple(options)

    def _get_string(self, feature: str, handle: int | None = None) -> str:
        saved, self._handle = self._handle, (self._handle if handle is None else handle)
        try:
            length = ct.c_int()
            self._call("AT_GetStringMaxLength", feature, ct.byref(length))
            text = ct.create_unicode_buffer(max(1, length.value) + 1)
            self._call("AT_GetString", feature, text, len(text))
            return text.value
        finally:
            self._handle = saved

    def _read_constraints(self) -> CameraConstraints:
        modes = self._options("TriggerMode")
        return CameraConstraints(
            exposure_min_s=self._get_float("ExposureTime", "Min"),
            exposure_max_s=self._get_float("ExposureTime", "Max"),
            gain_min_db=0.0,
            gain_max_db=0.0,
            frame_rate_min_hz=self._get_float("FrameRate", "Min"),
            frame_rate_max_hz=self._get_float("FrameRate", "Max"),
            width_max=self._get_int("SensorWidth"),
            height_max=self._get_int("SensorHeight"),
            pixel_formats=tuple(e for e in self._options("PixelEncoding") if e in SUPPORTED_ENCODINGS),
            trigger_inputs=(HARDWARE_INPUT,) if "External" in modes else (),
            max_frames_per_trigger=1,
        )

    # ---- identity and state ----------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._get_string("CameraModel")

    @property
    def serial(self) -> str:
        return self._get_string("SerialNumber")

    @property
    def constraints(self) -> CameraConstraints:
        return self._constraints

    @property
    def shape(self) -> tuple[int, int]:
        return self._get_int("AOIHeight"), self._get_int("AOIWidth")

    @property
    def pixel_format(self) -> str:
        return self._get_enum("PixelEncoding")

    @property
    def bit_depth(self) -> int:
        # BitDepth ("12 Bit", "16 Bit") follows the gain mode (A7); the encoding only bounds it.
        if self._implemented("BitDepth"):
            return int(self._get_enum("BitDepth").split()[0])
        return 16 if self.pixel_format == "Mono16" else 12

    @property
    def exposure_s(self) -> float:
        return self._get_float("ExposureTime")

    @property
    def gain_db(self) -> float:
        return 0.0

    @property
    def gain_mode(self) -> str | None:
        return self._get_enum(self._gain_feature) if self._gain_feature else None

    @property
    def frame_rate_hz(self) -> float:
        return self._get_float("FrameRate")

    # ---- settings --------------------------------------------------------------------------------

    def set_gain_mode(self, mode: str) -> None:
        """Choose the sensor's gain mode (and with it the bit depth); ``PixelEncoding`` may follow."""
        self._refuse_while_armed("gain_mode")
        if self._gain_feature is None:
            raise InstrumentError(self.name, "gain_mode", "this camera has no gain-mode feature", mode)
        offered = self._options(self._gain_feature)
        if mode not in offered:
            raise InstrumentError(
                self.name, "gain_mode", f"not a gain mode this camera offers now ({'; '.join(offered)})", mode
            )
        self._set_enum(self._gain_feature, mode)
        self._constraints = self._read_constraints()

    def set_pixel_format(self, pixel_format: str) -> None:
        self._refuse_while_armed("PixelEncoding")
        offered = [e for e in self._options("PixelEncoding") if e in SUPPORTED_ENCODINGS]
        if pixel_format not in offered:
            raise InstrumentError(
                self.name, "PixelEncoding",
                f"not an encoding this camera offers with the gain mode {self.gain_mode!r} "
                f"({', '.join(offered)})", pixel_format,
            )
        self._set_enum("PixelEncoding", pixel_format)

    def set_shape(self, shape: tuple[int, int]) -> None:
        """Area of interest (rows, cols) from the sensor's origin (AOILeft/AOITop count from 1, A4)."""
        self._refuse_while_armed("AOIWidth/AOIHeight")
        rows, cols = (int(v) for v in shape)
        for feature, value, limit in (("AOIWidth", cols, "SensorWidth"), ("AOIHeight", rows, "SensorHeight")):
            top = self._get_int(limit)
            if not 1 <= value <= top:
                raise InstrumentError(self.name, feature, f"must be 1 .. {top} ({limit})", value)
        self._set_int("AOILeft", 1)
        self._set_int("AOIWidth", cols)
        self._set_int("AOITop", 1)
        self._set_int("AOIHeight", rows)
        if hasattr(self, "_constraints"):
            self._constraints = self._read_constraints()

    def set_exposure(self, exposure_s: float) -> float:
        """Set the exposure (also while armed, A6); returns what the camera runs with (row times)."""
        low, high = self._get_float("ExposureTime", "Min"), self._get_float("ExposureTime", "Max")
        self._check_range("ExposureTime", exposure_s, low, high, "s")
        self._set_float("ExposureTime", exposure_s)
        self._constraints = self._read_constraints()  # the frame-rate limit follows the exposure
        return self.exposure_s

    def set_gain(self, gain_db: float) -> float:
        if gain_db != 0:
            modes = self._options(self._gain_feature) if self._gain_feature else ()
            raise InstrumentError(
                self.name, "Gain",
                "an sCMOS camera has no analogue gain in dB; choose a gain mode with `gain_mode` "
                f"({'; '.join(modes) or 'none offered'})", gain_db,
            )
        return 0.0

    def set_frame_rate(self, frame_rate_hz: float) -> float:
        """Frame rate of free-running acquisition (also while armed); its maximum follows exposure and AOI."""
        low, high = self._get_float("FrameRate", "Min"), self._get_float("FrameRate", "Max")
        self._check_range("FrameRate", frame_rate_hz, low, high, "Hz")
        self._set_float("FrameRate", frame_rate_hz)
        return self.frame_rate_hz

    def set_trigger(self, trigger: CameraTrigger) -> None:
        """Choose how frames start; checked whole before anything is sent."""
        self._refuse_while_armed("TriggerMode")
        c = getattr(self, "_constraints", None) or self._read_constraints()
        if trigger.source not in ("free", "software", *c.trigger_inputs):
            raise InstrumentError(
                self.name, "TriggerMode",
                "unknown trigger source; use free, software or the camera's input "
                f"{', '.join(c.trigger_inputs)}",
                trigger.source,
            )
        if trigger.edge not in _EDGES:
            raise InstrumentError(self.name, "IOInvert", "use rising or falling", trigger.edge)
        if trigger.exposure not in _EXPOSURE_MODES:
            raise InstrumentError(self.name, "TriggerMode", "use timed or trigger_width", trigger.exposure)
        hardware = trigger.source in c.trigger_inputs
        if trigger.exposure == "trigger_width":
            if not hardware:
                raise InstrumentError(
                    self.name, "TriggerMode",
                    "trigger-width exposure needs the hardware input (the pulse's width sets the exposure)",
                    trigger.source,
                )
            self._check_range("width_s", trigger.width_s, c.exposure_min_s, c.exposure_max_s, "s (exposure)")
        if trigger.frames_per_trigger != 1:
            raise InstrumentError(
                self.name, "frames_per_trigger",
                "SDK3 cameras make one frame per trigger edge (External Start starts a free run, not a "
                "burst); send one pulse per frame", trigger.frames_per_trigger,
            )
        mode = _EXPOSURE_MODES[trigger.exposure] if hardware else _TRIGGER_MODES[trigger.source]
        if mode not in self._options("TriggerMode"):
            raise InstrumentError(self.name, "TriggerMode", "this camera does not offer it now", mode)
        invert_ok = self._implemented("IOSelector") and self._implemented("IOInvert") \
            and "External Trigger" in self._options("IOSelector", available_only=False)
        if hardware and trigger.edge == "falling" and not invert_ok:
            raise InstrumentError(
                self.name, "IOInvert",
                "this camera cannot invert its trigger input; trigger on the rising edge", trigger.edge,
            )
        self._set_enum("TriggerMode", mode)
        if invert_ok:
            # A8: IOInvert applies to the IO chosen by IOSelector; always leave the input set explicitly.
            self._set_enum("IOSelector", "External Trigger")
            self._set_bool("IOInvert", hardware and trigger.edge == "falling")
        self._trigger = trigger

    # ---- acquisition -----------------------------------------------------------------------------

    def arm(self, queue_size: int = 16) -> None:
        """Queue buffers and start acquiring; at most ``queue_size`` frames wait, older ones are dropped."""
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or not 1 <= queue_size <= 1024:
            raise InstrumentError(self.name, "queue_size", "must be an integer 1 .. 1024", queue_size)
        if self._armed:
            self.disarm()
        self._buffer_call("AT_Flush")  # buffers of an earlier, maybe smaller, frame (A9)
        size = self._get_int("ImageSizeBytes")
        metadata = self._implemented("MetadataEnable") and self._get_bool("MetadataEnable") \
            and self._implemented("MetadataTimestamp") and self._get_bool("MetadataTimestamp")
        rows, cols = self.shape
        self._geometry = (rows, cols, self._get_int("AOIStride"), size, self.pixel_format, metadata)
        self._buffers = {}
        try:
            # queue_size + 2: the camera keeps filling while the driver copies one frame out.
            for _ in range(queue_size + 2):
                buf = _Buffer(size)
                self._buffers[buf.address] = buf
                self._buffer_call("AT_QueueBuffer", buf.pointer, size)
            self._call("AT_Command", "AcquisitionStart")
        except BaseException:
            self._buffer_call("AT_Flush")  # the SDK must not keep addresses of memory about to go
            self._buffers = {}
            raise
        self._frames = deque()
        self._queue_size = queue_size
        self._arrived = 0
        self._dropped_unreported = 0
        self._armed = True

    def trigger(self) -> None:
        """One software trigger (only with ``CameraTrigger(source="software")``)."""
        if not self._armed:
            raise InstrumentError(self.name, "SoftwareTrigger", "not armed; call arm() first")
        if self._trigger.source != "software":
            raise InstrumentError(
                self.name, "SoftwareTrigger",
                f"the trigger source is {self._trigger.source}; software triggers need "
                "CameraTrigger(source='software')",
            )
        self._call("AT_Command", "SoftwareTrigger")

    def _take(self, timeout_ms: int) -> bool:
        """Take one frame from the SDK into the queue; False when none came within ``timeout_ms``."""
        ptr, size = _U8P(), ct.c_int()
        code = self._lib.AT_WaitBuffer(self._handle, ct.byref(ptr), ct.byref(size), int(timeout_ms))
        if code == AT_ERR_TIMEDOUT:
            return False
        if code == AT_ERR_HARDWARE_OVERFLOW:
            self.hardware_overflows += 1
            raise AndorSDK3Error(
                self.name, "AT_WaitBuffer",
                f"{describe(code)}; the camera stopped acquiring. Read frames more often, or lower "
                "FrameRate or the AOI, then arm() again", code=code,
            )
        if code != AT_SUCCESS:
            raise _error_for(code, self.name, "AT_WaitBuffer")
        address = ct.cast(ptr, ct.c_void_p).value or 0
        buf = self._buffers.get(address)
        if buf is None:
            raise AndorSDK3Error(
                self.name, "AT_WaitBuffer",
                f"atcore returned a buffer at 0x{address:x} that this driver never queued; disarm and arm "
                "again, and check that no other code queues buffers on this camera",
            )
        number = self._arrived
        self._arrived += 1
        try:
            expected = self._geometry[3]
            if size.value != expected:
                raise AndorSDK3Error(
                    self.name, "AT_WaitBuffer",
                    f"truncated frame: {size.value} bytes where ImageSizeBytes is {expected}", size.value,
                )
            image, stamp, source = self._decode(buf.array)
        except AndorSDK3Error:
            self._dropped += 1  # an unreadable frame is a lost frame (its number stays a gap)
            self._dropped_unreported += 1
            raise
        finally:
            self._buffer_call("AT_QueueBuffer", buf.pointer, len(buf.array))
        if len(self._frames) >= self._queue_size:
            self._frames.popleft()  # the bounded queue drops its oldest frame
            self._dropped += 1
            self._dropped_unreported += 1
        self._frames.append((image, number, stamp, source))
        return True

    def _decode(self, data: np.ndarray) -> tuple[np.ndarray, float, str]:
        rows, cols, stride, size, encoding, metadata = self._geometry
        if stride * rows > size:
            raise AndorSDK3Error(self.name, "AOIStride", f"{stride} bytes x {rows} rows exceed {size} bytes")
        lines = data[: stride * rows].reshape(rows, stride)  # rows are AOIStride bytes, padded (A11)
        if encoding == "Mono12Packed":
            image = unpack_mono12packed(lines, cols)
        elif encoding in ("Mono12", "Mono16"):
            image = lines[:, : 2 * cols].copy().view("<u2").reshape(rows, cols).astype(np.uint16)
        else:
            raise AndorSDK3Error(self.name, "PixelEncoding", f"cannot decode {encoding}", encoding)
        if metadata:
            ticks = self._timestamp_ticks(data)
            if self._tick_hz > 0:
                return image, ticks / self._tick_hz, "camera"
        now = float(self._clock()) if self._clock is not None else time.monotonic()
        return image, now, "host"

    def _timestamp_ticks(self, data: np.ndarray) -> int:
        """The FPGA tick count from the metadata chunks at the buffer's end (A12)."""
        offset = len(data)
        for _ in range(16):
            if offset < 8:
                break
            length, = struct.unpack_from("<I", data, offset - 4)
            cid, = struct.unpack_from("<I", data, offset - 8)
            body = length - 4
            if length < 4 or body > offset - 8:
                raise AndorSDK3Error(
                    self.name, "metadata",
                    f"corrupt metadata chunk (CID {cid}, length {length}) at byte {offset - 8} "
                    f"of {len(data)}; "
                    "the frame is unreadable: check the camera firmware and SDK versions",
                )
            start = offset - 8 - body
            if cid == CID_TICKS:
                if body != 8:
                    raise AndorSDK3Error(self.name, "metadata", f"timestamp chunk of {body} bytes, not 8")
                return int(struct.unpack_from("<q", data, start)[0])
            if cid == CID_FRAME_DATA:
                break
            offset = start
        raise AndorSDK3Error(
            self.name, "metadata",
            "MetadataTimestamp is on but the frame carries no timestamp chunk (CID 1); disarm, check "
            "MetadataEnable/MetadataTimestamp, and arm again",
        )

    def read_frames(self, n: int, timeout_s: float = 5.0) -> CameraFrames:
        """The next ``n`` frames; on a timeout the frames already read travel on the exception."""
        if not self._armed:
            raise InstrumentError(self.name, "AT_WaitBuffer", "not armed; call arm() first")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InstrumentError(self.name, "read_frames", "n must be a whole number >= 0", n)
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and 0 < timeout_s < 4e6):
            raise InstrumentError(self.name, "read_frames", "timeout_s must be finite and > 0 s", timeout_s)
        while self._take(0):  # everything ready now, so the queue bound drops the oldest
            pass
        got: list[tuple[np.ndarray, int, float, str]] = []
        while len(got) < n:
            if self._frames:
                got.append(self._frames.popleft())
                continue
            if not self._take(int(timeout_s * 1000)):
                exc = InstrumentTimeout(
                    self.name, "AT_WaitBuffer",
                    f"got {len(got)} of {n} frames within {timeout_s:g} s per frame; check the trigger "
                    "cable to the camera's External Trigger input and that the pulse program is running",
                )
                exc.frames = self._stack(got)  # type: ignore[attr-defined]
                raise exc
        return self._stack(got)

    def _stack(self, got: list[tuple[np.ndarray, int, float, str]]) -> CameraFrames:
        rows, cols = self._geometry[:2]
        images = np.stack([g[0] for g in got]) if got else np.zeros((0, rows, cols), np.uint16)
        dropped, self._dropped_unreported = self._dropped_unreported, 0
        return CameraFrames(
            images,
            np.array([g[1] for g in got], np.int64),
            np.array([g[2] for g in got], float),
            dropped,
            got[-1][3] if got else "camera",
        )

    def acquire(self, n: int, timeout_s: float = 5.0) -> CameraFrames:
        """Software-trigger and read ``n`` frames one by one (armed before if needed, left armed)."""
        if not self._armed:
            self.arm()
        parts = []
        for _ in range(n):
            self.trigger()
            parts.append(self.read_frames(1, timeout_s))
        return CameraFrames(
            np.concatenate([p.images for p in parts]) if parts else np.zeros((0, *self.shape), np.uint16),
            np.concatenate([p.frame_numbers for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.timestamps_s for p in parts]) if parts else np.zeros(0),
            sum(p.dropped for p in parts),
            parts[-1].timestamp_source if parts else "camera",
        )

    def disarm(self) -> None:
        """Stop acquiring and take the buffers back from the SDK."""
        if not self._armed:
            return
        self._armed = False
        try:
            if self._get_bool("CameraAcquiring"):
                self._call("AT_Command", "AcquisitionStop")
        finally:
            self._buffer_call("AT_Flush")  # before the buffers' memory goes
            self._buffers = {}
            self._frames.clear()

    # ---- Instrument ------------------------------------------------------------------------------

    def safe_state(self) -> None:
        """The camera's safe state is stopped: no acquisition left running."""
        self.disarm()

    def close(self) -> None:
        """Stop, close the camera and release the library (idempotent)."""
        if self._handle is None:
            return
        try:
            self.safe_state()
        finally:
            self._release()

    def _release(self) -> None:
        try:
            if self._handle is not None:
                self._lib.AT_Close(self._handle)
        finally:
            self._handle = None
            self._lib.AT_FinaliseLibrary()

    def station_checks(self, trigger_input: str = HARDWARE_INPUT) -> list[CheckResult]:
        """Identity, the trigger input, sensor cooling and one software-triggered frame."""
        c = self._constraints
        checks = [
            CheckResult(
                self.name, "identity", True,
                f"Andor {self.model}, serial {self.serial}, firmware {self._get_string('FirmwareVersion')}, "
                f"SDK {self._get_string('SoftwareVersion', AT_HANDLE_SYSTEM)}",
            ),
            CheckResult(
                self.name, f"trigger input {trigger_input}", trigger_input in c.trigger_inputs,
                f"hardware trigger inputs: {', '.join(c.trigger_inputs) or 'none'}",
                "cable the pulser's camera line to the camera's External Trigger input and name it "
                f"{HARDWARE_INPUT!r} in the sequence",
            ),
        ]
        if self._implemented("TemperatureStatus"):
            status = self._get_enum("TemperatureStatus")
            checks.append(CheckResult(
                self.name, "sensor cooling", status == "Stabilised",
                f"TemperatureStatus {status}, sensor at {self._get_float('SensorTemperature'):.1f} C",
                "wait for the cooler to stabilise (dark current and hot pixels change until it does)",
            ))
        checks.append(self._test_frame_check(
            "check the camera in Andor Solis (cable, power, another program holding it)"))
        return checks

    def snapshot(self) -> dict[str, Any]:
        """Identity as the SDK reports it and every setting, for the run's metadata."""
        t = self._trigger
        snap: dict[str, Any] = {
            "name": self.name,
            "driver": "andor_sdk3",
            "vendor": "Andor",
            "model": self.model,
            "serial": self.serial,
            "firmware": self._get_string("FirmwareVersion"),
            "sdk_version": self._get_string("SoftwareVersion", AT_HANDLE_SYSTEM),
            "shape": list(self.shape),
            "pixel_format": self.pixel_format,
            "bit_depth": self.bit_depth,
            "gain_mode": self.gain_mode,
            "exposure_s": self.exposure_s,
            "frame_rate_hz": self.frame_rate_hz,
            "aoi_stride_bytes": self._get_int("AOIStride"),
            "image_size_bytes": self._get_int("ImageSizeBytes"),
            "timestamp_clock_hz": self._tick_hz,
            "trigger": {
                "source": t.source, "edge": t.edge, "exposure": t.exposure, "width_s": t.width_s,
                "frames_per_trigger": t.frames_per_trigger, "trigger_mode": self._get_enum("TriggerMode"),
            },
            "dropped_frames": self._dropped,
            "hardware_overflows": self.hardware_overflows,
        }
        if self._implemented("SensorTemperature"):
            snap["sensor_temperature_c"] = self._get_float("SensorTemperature")
        if self._implemented("TemperatureStatus"):
            snap["temperature_status"] = self._get_enum("TemperatureStatus")
        return snap
