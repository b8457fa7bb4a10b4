"""A fake of Andor's SDK3 core library (atcore), written from atcore.h and the documented behaviour.

The fake hands out real ctypes function pointers (``CFUNCTYPE``) with the prototypes of atcore.h,
so a driver calls it exactly as it calls ``libatcore.so`` / ``atcore.dll``: through the C ABI, with
its own ``argtypes``, wide-character feature names, out-pointers, and buffers given by address.
Frames are written into the caller's memory at the queued addresses. Facts implemented and their
sources: ``docs/hardware/andor_sdk3.md`` (ids A1-A16 are named below).

Strict where the library is:

* every call returns an ``AT_ERR_*`` code (A1); nothing works before ``AT_InitialiseLibrary`` (A2);
* a feature accessed through the wrong type (``AT_SetFloat`` on an integer) is not implemented for
  that type (A5), a read-only feature refuses a set (``AT_ERR_READONLY``), a setting other than
  exposure and frame rate is not writable while acquiring (``AT_ERR_NOTWRITABLE``, A6), values
  outside ``AT_Get*Min``/``Max`` are ``AT_ERR_OUTOFRANGE``, unknown enum strings
  ``AT_ERR_STRINGNOTIMPLEMENTED`` and known but unavailable ones ``AT_ERR_STRINGNOTAVAILABLE`` (A7);
* a queued buffer must be 8-byte aligned (``AT_ERR_INVALIDALIGNMENT``) and hold ``ImageSizeBytes``
  (``AT_ERR_INVALIDSIZE``) (A9); ``AT_WaitBuffer`` that sees no frame within its timeout returns
  ``AT_ERR_TIMEDOUT`` (A10);
* rows are ``AOIStride`` bytes, wider than the pixels; the padding is filled with 0xAB so a reader
  that ignores the stride sees garbage (A11); with metadata on, the buffer ends with chunks
  ``[data][CID][length]`` read backwards from ``ImageSizeBytes``: frame data CID 0 first, the
  timestamp (CID 1, 8 bytes of ``TimestampClockFrequency`` ticks) last (A12);
* frames that find no queued buffer wait in the camera's on-head memory; when it is full the camera
  aborts the acquisition and ``AT_WaitBuffer`` reports ``AT_ERR_HARDWARE_OVERFLOW`` (A13);
* triggers that arrive while the previous frame is still exposing or reading out are ignored and
  counted in ``ignored_triggers`` (A14, unconfirmed); ``SoftwareTrigger`` outside software trigger
  mode is not writable (A15, unconfirmed); ``IOInvert`` on ``External Trigger`` makes the falling
  edge the trigger (A8); ``External Exposure`` exposes for the time the input is active.

Time is virtual: ``now_s`` moves only when a caller waits in ``AT_WaitBuffer`` (by up to its
timeout) or the test calls ``advance``; tests never sleep.
"""

from __future__ import annotations

import ctypes as ct
import functools
import math
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# atcore.h: return codes (the fake's own copy; the driver keeps another).
AT_SUCCESS = 0
AT_ERR_NOTINITIALISED = 1
AT_ERR_NOTIMPLEMENTED = 2
AT_ERR_READONLY = 3
AT_ERR_NOTREADABLE = 4
AT_ERR_NOTWRITABLE = 5
AT_ERR_OUTOFRANGE = 6
AT_ERR_INDEXNOTAVAILABLE = 7
AT_ERR_INDEXNOTIMPLEMENTED = 8
AT_ERR_EXCEEDEDMAXSTRINGLENGTH = 9
AT_ERR_CONNECTION = 10
AT_ERR_NODATA = 11
AT_ERR_INVALIDHANDLE = 12
AT_ERR_TIMEDOUT = 13
AT_ERR_BUFFERFULL = 14
AT_ERR_INVALIDSIZE = 15
AT_ERR_INVALIDALIGNMENT = 16
AT_ERR_COMM = 17
AT_ERR_STRINGNOTAVAILABLE = 18
AT_ERR_STRINGNOTIMPLEMENTED = 19
AT_ERR_NULL_FEATURE = 20
AT_ERR_NULL_HANDLE = 21
AT_ERR_NULL_VALUE = 28
AT_ERR_NULL_STRING = 29
AT_ERR_NULL_QUEUE_PTR = 34
AT_ERR_NULL_WAIT_PTR = 35
AT_ERR_NULL_PTRSIZE = 36
AT_ERR_NOMEMORY = 37
AT_ERR_DEVICENOTFOUND = 39
AT_ERR_HARDWARE_OVERFLOW = 100
AT_HANDLE_SYSTEM = 1
AT_INFINITE = 0xFFFFFFFF

_H, _B, _WC, _64 = ct.c_int, ct.c_int, ct.c_wchar_p, ct.c_longlong
_PB = _PI = ct.POINTER(ct.c_int)
_P64, _PD = ct.POINTER(ct.c_longlong), ct.POINTER(ct.c_double)

# atcore.h prototypes as this fake declares them (int return everywhere).
PROTOTYPES: dict[str, tuple[Any, ...]] = {
    "AT_InitialiseLibrary": (),
    "AT_FinaliseLibrary": (),
    "AT_Open": (ct.c_int, _PI),
    "AT_Close": (_H,),
    "AT_IsImplemented": (_H, _WC, _PB),
    "AT_IsReadable": (_H, _WC, _PB),
    "AT_IsWritable": (_H, _WC, _PB),
    "AT_IsReadOnly": (_H, _WC, _PB),
    "AT_SetInt": (_H, _WC, _64),
    "AT_GetInt": (_H, _WC, _P64),
    "AT_GetIntMax": (_H, _WC, _P64),
    "AT_GetIntMin": (_H, _WC, _P64),
    "AT_SetFloat": (_H, _WC, ct.c_double),
    "AT_GetFloat": (_H, _WC, _PD),
    "AT_GetFloatMax": (_H, _WC, _PD),
    "AT_GetFloatMin": (_H, _WC, _PD),
    "AT_SetBool": (_H, _WC, _B),
    "AT_GetBool": (_H, _WC, _PB),
    "AT_SetEnumIndex": (_H, _WC, ct.c_int),
    "AT_SetEnumString": (_H, _WC, _WC),
    "AT_GetEnumIndex": (_H, _WC, _PI),
    "AT_GetEnumCount": (_H, _WC, _PI),
    "AT_IsEnumIndexAvailable": (_H, _WC, ct.c_int, _PB),
    "AT_IsEnumIndexImplemented": (_H, _WC, ct.c_int, _PB),
    "AT_GetEnumStringByIndex": (_H, _WC, ct.c_int, ct.c_void_p, ct.c_int),
    "AT_Command": (_H, _WC),
    "AT_SetString": (_H, _WC, _WC),
    "AT_GetString": (_H, _WC, ct.c_void_p, ct.c_int),
    "AT_GetStringMaxLength": (_H, _WC, _PI),
    "AT_QueueBuffer": (_H, ct.c_void_p, ct.c_int),
    "AT_WaitBuffer": (_H, ct.POINTER(ct.c_void_p), _PI, ct.c_uint),
    "AT_Flush": (_H,),
}

_GAIN_MODES = ("12-bit (high well capacity)", "12-bit (low noise)", "16-bit (low noise & high well capacity)")
_ENCODINGS = ("Mono12", "Mono12Packed", "Mono16", "Mono32")
_TRIGGER_MODES = ("Internal", "Software", "External", "External Start", "External Exposure")
_IO_SELECTOR = ("Fire 1", "Fire N", "Aux Out 1", "Arm", "External Trigger")
_TEMPERATURE_STATUS = ("Cooler Off", "Stabilised", "Cooling", "Drift", "Not Stabilised", "Fault")
_WRITABLE_WHILE_ACQUIRING = {"ExposureTime", "FrameRate"}
_STRING_MAX = 64


@dataclass
class _Feature:
    kind: str  # int float bool enum string command
    value: Any = None
    readonly: bool = False
    options: tuple[str, ...] = ()


@dataclass
class _Trigger:
    start_s: float
    exposure_s: float


@dataclass
class FakeCamera:
    """What one fake camera is (model, sensor, timing); the state lives in ``FakeAtcore``."""

    model: str = "ZYLA-5.5-USB3"
    serial: str = "VSC-00001"
    firmware: str = "15.7.2.0"
    sensor: tuple[int, int] = (48, 64)  # (rows, cols)
    pixel_size_um: float = 6.5
    exposure_min_s: float = 1e-5
    exposure_max_s: float = 30.0
    row_time_s: float = 9.24e-6
    tick_hz: int = 100_000_000
    onhead_frames: int = 32
    stride_align: int = 16
    scene: Callable[[tuple[int, int], float, float], np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def default_scene(shape: tuple[int, int], exposure_s: float, t_s: float) -> np.ndarray:
    """A ramp of photoelectron rates (e-/s) times the exposure, plus a 100-count offset."""
    rows, cols = shape
    rate = 2e5 + 1e4 * (np.arange(rows)[:, None] + 2 * np.arange(cols)[None, :])
    return 100.0 + rate * exposure_s


def _guarded(fn: Callable[..., int]) -> Callable[..., int]:
    """A Python exception must never cross the C boundary: record it and answer AT_ERR_NOMEMORY."""

    @functools.wraps(fn)
    def wrapper(self: FakeAtcore, *args: Any) -> int:
        if not self.connected and fn.__name__ not in ("AT_InitialiseLibrary", "AT_FinaliseLibrary"):
            return AT_ERR_COMM
        try:
            return int(fn(self, *args))
        except Exception as exc:  # noqa: BLE001 - recorded for the tests to assert on
            self.internal_errors.append(f"{fn.__name__}: {exc!r}")
            return AT_ERR_NOMEMORY

    return wrapper


class FakeAtcore:
    """The SDK3 core library with one or more fake cameras behind it.

    Attributes:
        library: the object a driver loads instead of the DLL (``AT_*`` ctypes function pointers).
        calls: names of the entry points called, in order (the exchanged calls are the spec).
        ignored_triggers: triggers that came while the camera was busy with a frame.
        internal_errors: Python errors inside the fake (a test asserts this stays empty).
    """

    def __init__(self, *cameras: FakeCamera) -> None:
        self.cameras = list(cameras) or [FakeCamera()]
        self.now_s = 0.0
        self.calls: list[str] = []
        self.internal_errors: list[str] = []
        self.connected = True
        self.ignored_triggers = 0
        self.ignored_pulses_not_acquiring = 0
        self.init_count = 0
        self._open: dict[int, int] = {}  # handle -> camera index
        self._next_handle = 100
        self._cam: FakeCamera = self.cameras[0]
        self._features: dict[str, _Feature] = {}
        self._io_invert: dict[str, bool] = {}
        self._queue: deque[tuple[int, int]] = deque()
        self._filled: deque[tuple[int, int]] = deque()
        self._onhead: deque[bytes] = deque()
        self._pending: list[tuple[float, bytes]] = []  # (ready time, frame bytes) being read out
        self._triggers: list[_Trigger] = []  # scheduled hardware triggers not yet exposed
        self._busy_until = -math.inf
        self._internal_next = 0.0
        self._frames_made = 0
        self._overflowed = False
        self._fall_waiting: float | None = None
        self.faults: dict[str, Any] = {}
        self.library = self._build_library()

    # ---- the C surface ---------------------------------------------------------------------------

    def _build_library(self) -> Any:
        lib = type("FakeAtcoreLibrary", (), {})()
        self._keep: list[Any] = []
        for name, argtypes in PROTOTYPES.items():
            proto = ct.CFUNCTYPE(ct.c_int, *argtypes)
            method = getattr(self, name)

            def call(*args: Any, _m: Callable[..., int] = method, _n: str = name) -> int:
                self.calls.append(_n)
                return _m(*args)

            fptr = proto(call)
            fptr.__name__ = name  # as a DLL's entry points are named
            self._keep.append(fptr)
            setattr(lib, name, fptr)
        return lib

    # ---- library and handles ---------------------------------------------------------------------

    @_guarded
    def AT_InitialiseLibrary(self) -> int:
        self.init_count += 1
        return AT_SUCCESS

    @_guarded
    def AT_FinaliseLibrary(self) -> int:
        if self.init_count == 0:
            return AT_ERR_NOTINITIALISED
        self.init_count -= 1
        return AT_SUCCESS

    @_guarded
    def AT_Open(self, index: int, handle: Any) -> int:
        if not self.init_count:
            return AT_ERR_NOTINITIALISED
        if not handle:
            return AT_ERR_NULL_HANDLE
        if not 0 <= index < len(self.cameras):
            return AT_ERR_DEVICENOTFOUND
        if index in self._open.values():
            return 38  # AT_ERR_DEVICEINUSE
        self._next_handle += 1
        self._open[self._next_handle] = index
        self._cam = self.cameras[index]
        self._features = self._make_features(self._cam)
        self._io_invert = {s: False for s in _IO_SELECTOR}
        handle[0] = self._next_handle
        return AT_SUCCESS

    @_guarded
    def AT_Close(self, h: int) -> int:
        if h not in self._open:
            return AT_ERR_INVALIDHANDLE
        self._stop()
        self._queue.clear()
        self._filled.clear()
        del self._open[h]
        return AT_SUCCESS

    def _make_features(self, cam: FakeCamera) -> dict[str, _Feature]:
        rows, cols = cam.sensor
        f = {
            "CameraModel": _Feature("string", cam.model, True),
            "CameraFamily": _Feature("string", "Andor sCMOS", True),
            "SerialNumber": _Feature("string", cam.serial, True),
            "FirmwareVersion": _Feature("string", cam.firmware, True),
            "InterfaceType": _Feature("string", "USB3", True),
            "SensorWidth": _Feature("int", cols, True),
            "SensorHeight": _Feature("int", rows, True),
            "PixelWidth": _Feature("float", cam.pixel_size_um, True),
            "PixelHeight": _Feature("float", cam.pixel_size_um, True),
            "AOIWidth": _Feature("int", cols),
            "AOILeft": _Feature("int", 1),
            "AOIHeight": _Feature("int", rows),
            "AOITop": _Feature("int", 1),
            "AOIStride": _Feature("int", 0, True),
            "ImageSizeBytes": _Feature("int", 0, True),
            "PixelEncoding": _Feature("enum", "Mono12", options=_ENCODINGS),
            "SimplePreAmpGainControl": _Feature("enum", _GAIN_MODES[0], options=_GAIN_MODES),
            "BitDepth": _Feature("enum", "12 Bit", True, options=("12 Bit", "16 Bit")),
            "ExposureTime": _Feature("float", 0.01),
            "FrameRate": _Feature("float", 10.0),
            "ReadoutTime": _Feature("float", 0.0, True),
            "CycleMode": _Feature("enum", "Fixed", options=("Fixed", "Continuous")),
            "FrameCount": _Feature("int", 1),
            "TriggerMode": _Feature("enum", "Internal", options=_TRIGGER_MODES),
            "IOSelector": _Feature("enum", "Fire 1", options=_IO_SELECTOR),
            "IOInvert": _Feature("bool", False),
            "MetadataEnable": _Feature("bool", False),
            "MetadataTimestamp": _Feature("bool", False),
            "TimestampClockFrequency": _Feature("int", cam.tick_hz, True),
            "CameraAcquiring": _Feature("bool", False, True),
            "SensorCooling": _Feature("bool", False),
            "SensorTemperature": _Feature("float", 20.0, True),
            "TemperatureStatus": _Feature("enum", "Cooler Off", True, options=_TEMPERATURE_STATUS),
            "AcquisitionStart": _Feature("command"),
            "AcquisitionStop": _Feature("command"),
            "SoftwareTrigger": _Feature("command"),
        }
        for name in cam.extra.get("not_implemented", ()):
            f.pop(name, None)
        return f

    def _feature(self, h: int, name: str | None, kind: str | None) -> tuple[int, _Feature | None]:
        """The feature ``name`` on handle ``h`` if it exists with ``kind``; else the code to return."""
        if not self.init_count:
            return AT_ERR_NOTINITIALISED, None
        if name is None:
            return AT_ERR_NULL_FEATURE, None
        if h == AT_HANDLE_SYSTEM:  # the system handle offers DeviceCount and SoftwareVersion (A2)
            system = {
                "DeviceCount": _Feature("int", len(self.cameras), True),
                "SoftwareVersion": _Feature("string", "3.15.30092.0", True),
            }.get(name)
            if system is None or (kind is not None and system.kind != kind):
                return AT_ERR_NOTIMPLEMENTED, None
            return AT_SUCCESS, system
        if h not in self._open:
            return AT_ERR_INVALIDHANDLE, None
        self._refresh()
        feat = self._features.get(name)
        if feat is None or (kind is not None and feat.kind != kind):
            return AT_ERR_NOTIMPLEMENTED, None
        return AT_SUCCESS, feat

    def _writable(self, name: str, feat: _Feature) -> int:
        if feat.readonly:
            return AT_ERR_READONLY
        if self._acquiring and name not in _WRITABLE_WHILE_ACQUIRING:
            return AT_ERR_NOTWRITABLE
        return AT_SUCCESS

    # ---- derived values (what the camera computes from the settings) ------------------------------

    @property
    def _acquiring(self) -> bool:
        return bool(self._features.get("CameraAcquiring", _Feature("bool", False)).value)

    def _bytes_per_pixel(self) -> float:
        encoding = self._features["PixelEncoding"].value
        return {"Mono12": 2, "Mono12Packed": 1.5, "Mono16": 2, "Mono32": 4}[encoding]

    def _limits(self, name: str) -> tuple[float, float]:
        f, cam = self._features, self._cam
        rows, cols = cam.sensor
        if name == "AOIWidth":
            return 1, cols - f["AOILeft"].value + 1
        if name == "AOILeft":
            return 1, cols - f["AOIWidth"].value + 1
        if name == "AOIHeight":
            return 1, rows - f["AOITop"].value + 1
        if name == "AOITop":
            return 1, rows - f["AOIHeight"].value + 1
        if name == "ExposureTime":
            return cam.exposure_min_s, cam.exposure_max_s
        if name == "FrameRate":
            return 1e-3, 1.0 / max(f["ExposureTime"].value, f["ReadoutTime"].value)
        if name == "FrameCount":
            return 1, 2**31 - 1
        return -math.inf, math.inf

    def _refresh(self) -> None:
        """Recompute the read-only values the settings imply (stride, size, readout, bit depth)."""
        f = self._features
        if not f:
            return
        width, height = f["AOIWidth"].value, f["AOIHeight"].value
        raw = math.ceil(width * self._bytes_per_pixel())
        align = self._cam.stride_align
        stride = (raw // align + 1) * align  # always wider than the pixels: padding a reader must skip
        f["AOIStride"].value = stride
        size = stride * height
        if self._flag("MetadataEnable"):
            size += 8  # frame-data chunk: CID + length
            if self._flag("MetadataTimestamp"):
                size += 16  # 8 bytes of ticks + CID + length
        f["ImageSizeBytes"].value = size
        f["ReadoutTime"].value = height * self._cam.row_time_s
        sixteen = f["SimplePreAmpGainControl"].value.startswith("16")
        f["BitDepth"].value = "16 Bit" if sixteen else "12 Bit"
        rate = f["FrameRate"]
        rate.value = min(rate.value, self._limits("FrameRate")[1])

    def _flag(self, name: str) -> bool:
        """A boolean feature's value; False where this camera does not implement it."""
        feat = self._features.get(name)
        return bool(feat and feat.value)

    def _enum_available(self, name: str, option: str) -> bool:
        f = self._features
        if name == "PixelEncoding":
            if option == "Mono32":
                return False
            if f["SimplePreAmpGainControl"].value.startswith("16") and option.startswith("Mono12"):
                return False  # 16-bit data does not fit a 12-bit encoding
        return True

    # ---- introspection ---------------------------------------------------------------------------

    def _bool_out(self, h: int, name: str, out: Any, what: str) -> int:
        code, feat = self._feature(h, name, None)
        if code == AT_ERR_NOTIMPLEMENTED and what == "implemented":
            out[0] = 0
            return AT_SUCCESS
        if code:
            return code
        if not out:
            return 22
        assert feat is not None
        out[0] = {
            "implemented": 1,
            "readable": int(feat.kind != "command"),
            "writable": int(self._writable(name, feat) == AT_SUCCESS),
            "readonly": int(feat.readonly),
        }[what]
        return AT_SUCCESS

    @_guarded
    def AT_IsImplemented(self, h: int, name: str, out: Any) -> int:
        return self._bool_out(h, name, out, "implemented")

    @_guarded
    def AT_IsReadable(self, h: int, name: str, out: Any) -> int:
        return self._bool_out(h, name, out, "readable")

    @_guarded
    def AT_IsWritable(self, h: int, name: str, out: Any) -> int:
        return self._bool_out(h, name, out, "writable")

    @_guarded
    def AT_IsReadOnly(self, h: int, name: str, out: Any) -> int:
        return self._bool_out(h, name, out, "readonly")

    # ---- numbers ---------------------------------------------------------------------------------

    def _set_number(self, h: int, name: str, value: float, kind: str) -> int:
        code, feat = self._feature(h, name, kind)
        if code:
            return code
        assert feat is not None
        if code := self._writable(name, feat):
            return code
        low, high = self._limits(name)
        if not (math.isfinite(value) and low <= value <= high):
            return AT_ERR_OUTOFRANGE
        if name == "ExposureTime":  # the sensor exposes whole row times
            value = max(low, round(value / self._cam.row_time_s) * self._cam.row_time_s)
        feat.value = int(value) if kind == "int" else float(value)
        self._refresh()
        return AT_SUCCESS

    def _get_number(self, h: int, name: str, out: Any, kind: str, which: str) -> int:
        code, feat = self._feature(h, name, kind)
        if code:
            return code
        if not out:
            return AT_ERR_NULL_VALUE
        assert feat is not None
        if which == "value":
            out[0] = feat.value
        else:
            low, high = self._limits(name) if not feat.readonly else (feat.value, feat.value)
            out[0] = low if which == "min" else high
        return AT_SUCCESS

    @_guarded
    def AT_SetInt(self, h: int, name: str, value: int) -> int:
        return self._set_number(h, name, value, "int")

    @_guarded
    def AT_GetInt(self, h: int, name: str, out: Any) -> int:
        return self._get_number(h, name, out, "int", "value")

    @_guarded
    def AT_GetIntMax(self, h: int, name: str, out: Any) -> int:
        return self._get_number(h, name, out, "int", "max")

    @_guarded
    def AT_GetIntMin(self, h: int, name: str, out: Any) -> int:
        return self._get_number(h, name, out, "int", "min")

    @_guarded
    def AT_SetFloat(self, h: int, name: str, value: float) -> int:
        return self._set_number(h, name, value, "float")

    @_guarded
    def AT_GetFloat(self, h: int, name: str, out: Any) -> int:
        return self._get_number(h, name, out, "float", "value")

    @_guarded
    def AT_GetFloatMax(self, h: int, name: str, out: Any) -> int:
        return self._get_number(h, name, out, "float", "max")

    @_guarded
    def AT_GetFloatMin(self, h: int, name: str, out: Any) -> int:
        return self._get_number(h, name, out, "float", "min")

    @_guarded
    def AT_SetBool(self, h: int, name: str, value: int) -> int:
        code, feat = self._feature(h, name, "bool")
        if code:
            return code
        assert feat is not None
        if code := self._writable(name, feat):
            return code
        if value not in (0, 1):
            return AT_ERR_OUTOFRANGE
        if name == "IOInvert":
            self._io_invert[self._features["IOSelector"].value] = bool(value)
        feat.value = bool(value)
        self._refresh()
        return AT_SUCCESS

    @_guarded
    def AT_GetBool(self, h: int, name: str, out: Any) -> int:
        code, feat = self._feature(h, name, "bool")
        if code:
            return code
        assert feat is not None
        if name == "IOInvert":
            feat.value = self._io_invert[self._features["IOSelector"].value]
        out[0] = int(bool(feat.value))
        return AT_SUCCESS

    # ---- enums -----------------------------------------------------------------------------------

    def _set_enum(self, h: int, name: str, option: str) -> int:
        code, feat = self._feature(h, name, "enum")
        if code:
            return code
        assert feat is not None
        if code := self._writable(name, feat):
            return code
        if option not in feat.options:
            return AT_ERR_STRINGNOTIMPLEMENTED
        if not self._enum_available(name, option):
            return AT_ERR_STRINGNOTAVAILABLE
        feat.value = option
        if name == "SimplePreAmpGainControl" and option.startswith("16"):
            self._features["PixelEncoding"].value = "Mono16"
        self._refresh()
        return AT_SUCCESS

    @_guarded
    def AT_SetEnumString(self, h: int, name: str, option: str | None) -> int:
        if option is None:
            return AT_ERR_NULL_STRING
        return self._set_enum(h, name, option)

    @_guarded
    def AT_SetEnumIndex(self, h: int, name: str, index: int) -> int:
        code, feat = self._feature(h, name, "enum")
        if code:
            return code
        assert feat is not None
        if not 0 <= index < len(feat.options):
            return AT_ERR_INDEXNOTIMPLEMENTED
        if not self._enum_available(name, feat.options[index]):
            return AT_ERR_INDEXNOTAVAILABLE
        return self._set_enum(h, name, feat.options[index])

    @_guarded
    def AT_GetEnumIndex(self, h: int, name: str, out: Any) -> int:
        code, feat = self._feature(h, name, "enum")
        if code:
            return code
        assert feat is not None
        out[0] = feat.options.index(feat.value)
        return AT_SUCCESS

    @_guarded
    def AT_GetEnumCount(self, h: int, name: str, out: Any) -> int:
        code, feat = self._feature(h, name, "enum")
        if code:
            return code
        assert feat is not None
        out[0] = len(feat.options)
        return AT_SUCCESS

    @_guarded
    def AT_IsEnumIndexAvailable(self, h: int, name: str, index: int, out: Any) -> int:
        code, feat = self._feature(h, name, "enum")
        if code:
            return code
        assert feat is not None
        if not 0 <= index < len(feat.options):
            return AT_ERR_INDEXNOTIMPLEMENTED
        out[0] = int(self._enum_available(name, feat.options[index]))
        return AT_SUCCESS

    @_guarded
    def AT_IsEnumIndexImplemented(self, h: int, name: str, index: int, out: Any) -> int:
        code, feat = self._feature(h, name, "enum")
        if code:
            return code
        assert feat is not None
        out[0] = int(0 <= index < len(feat.options))
        return AT_SUCCESS

    def _write_string(self, text: str, address: int | None, length: int) -> int:
        if not address:
            return AT_ERR_NULL_STRING
        if len(text) + 1 > length:
            return AT_ERR_EXCEEDEDMAXSTRINGLENGTH
        src = ct.create_unicode_buffer(text, len(text) + 1)
        ct.memmove(address, src, ct.sizeof(src))
        return AT_SUCCESS

    @_guarded
    def AT_GetEnumStringByIndex(self, h: int, name: str, index: int, address: int | None, length: int) -> int:
        code, feat = self._feature(h, name, "enum")
        if code:
            return code
        assert feat is not None
        if not 0 <= index < len(feat.options):
            return AT_ERR_INDEXNOTIMPLEMENTED
        return self._write_string(feat.options[index], address, length)

    # ---- strings and commands --------------------------------------------------------------------

    @_guarded
    def AT_GetString(self, h: int, name: str, address: int | None, length: int) -> int:
        code, feat = self._feature(h, name, "string")
        if code:
            return code
        assert feat is not None
        return self._write_string(str(feat.value), address, length)

    @_guarded
    def AT_GetStringMaxLength(self, h: int, name: str, out: Any) -> int:
        code, _ = self._feature(h, name, "string")
        if code:
            return code
        out[0] = _STRING_MAX
        return AT_SUCCESS

    @_guarded
    def AT_SetString(self, h: int, name: str, text: str) -> int:
        code, feat = self._feature(h, name, "string")
        if code:
            return code
        assert feat is not None
        return self._writable(name, feat) or AT_SUCCESS

    @_guarded
    def AT_Command(self, h: int, name: str) -> int:
        code, _ = self._feature(h, name, "command")
        if code:
            return code
        if name == "AcquisitionStart":
            if self._acquiring:
                return AT_ERR_NOTWRITABLE
            if any(size < self._features["ImageSizeBytes"].value for _, size in self._queue):
                return AT_ERR_INVALIDSIZE  # a buffer queued for an older, smaller frame
            self._start()
        elif name == "AcquisitionStop":
            self._stop()
        elif name == "SoftwareTrigger":
            if not self._acquiring or self._features["TriggerMode"].value != "Software":
                return AT_ERR_NOTWRITABLE
            self._trigger(self.now_s, self._features["ExposureTime"].value)
        return AT_SUCCESS

    # ---- buffers ---------------------------------------------------------------------------------

    @_guarded
    def AT_QueueBuffer(self, h: int, address: int | None, size: int) -> int:
        if h not in self._open:
            return AT_ERR_INVALIDHANDLE
        if not address:
            return AT_ERR_NULL_QUEUE_PTR
        if address % 8:
            return AT_ERR_INVALIDALIGNMENT
        self._refresh()
        if size < self._features["ImageSizeBytes"].value:
            return AT_ERR_INVALIDSIZE
        self._queue.append((address, size))
        self._transfer()
        return AT_SUCCESS

    @_guarded
    def AT_WaitBuffer(self, h: int, out_ptr: Any, out_size: Any, timeout_ms: int) -> int:
        if h not in self._open:
            return AT_ERR_INVALIDHANDLE
        if not out_ptr:
            return AT_ERR_NULL_WAIT_PTR
        if not out_size:
            return AT_ERR_NULL_PTRSIZE
        if fault := self.faults.pop("wait_code", None):
            return fault
        timeout_s = math.inf if timeout_ms == AT_INFINITE else timeout_ms / 1e3
        deadline = self.now_s + timeout_s
        while not self._filled:
            ready = self._next_event_s()
            if ready is None or ready > deadline:
                break
            self.advance(max(0.0, ready - self.now_s))
        if not self._filled:
            if self._overflowed:
                self._overflowed = False
                return AT_ERR_HARDWARE_OVERFLOW
            if math.isfinite(deadline):
                self.advance(deadline - self.now_s)
            return AT_ERR_TIMEDOUT
        address, size = self._filled.popleft()
        if self.faults.pop("foreign_pointer", False):
            address += 4096
        if self.faults.pop("truncate", False):
            size //= 2
        out_ptr[0] = address
        out_size[0] = size
        return AT_SUCCESS

    @_guarded
    def AT_Flush(self, h: int) -> int:
        if h not in self._open:
            return AT_ERR_INVALIDHANDLE
        self._queue.clear()
        self._filled.clear()
        return AT_SUCCESS

    # ---- the camera ------------------------------------------------------------------------------

    def _start(self) -> None:
        self._features["CameraAcquiring"].value = True
        self._frames_made = 0
        self._busy_until = -math.inf
        self._internal_next = self.now_s
        self._onhead.clear()
        self._pending.clear()
        self._triggers.clear()
        self._overflowed = False
        self._fall_waiting = None

    def _stop(self) -> None:
        if self._features:
            self._features["CameraAcquiring"].value = False
        self._pending.clear()
        self._triggers.clear()
        self._onhead.clear()

    def _next_event_s(self) -> float | None:
        """When the next frame could land in a buffer (a pending readout or a trigger to come)."""
        f = self._features
        readout = f["ReadoutTime"].value
        times = [t for t, _ in self._pending] + [t.start_s + t.exposure_s + readout for t in self._triggers]
        finished = f["CycleMode"].value == "Fixed" and self._frames_made >= f["FrameCount"].value
        if self._acquiring and f["TriggerMode"].value == "Internal" and not finished:
            times.append(self._internal_next + f["ExposureTime"].value + readout)
        return min(times) if times else None

    def advance(self, dt_s: float) -> None:
        """Let ``dt_s`` of camera time pass: frames expose, read out and land in buffers."""
        end = self.now_s + dt_s
        f = self._features
        while self._acquiring and f["TriggerMode"].value == "Internal" and self._internal_next <= end:
            if f["CycleMode"].value == "Fixed" and self._frames_made >= f["FrameCount"].value:
                break
            # Overlap: the next exposure starts while the last one reads out, one period later.
            self._trigger(self._internal_next, f["ExposureTime"].value, internal=True)
            self._internal_next += 1.0 / f["FrameRate"].value
        for tr in sorted(self._triggers, key=lambda t: t.start_s):
            if tr.start_s <= end:
                self._triggers.remove(tr)
                self._trigger(tr.start_s, tr.exposure_s)
        self.now_s = end
        done = [p for p in self._pending if p[0] <= end]
        self._pending = [p for p in self._pending if p[0] > end]
        for _, frame in sorted(done, key=lambda p: p[0]):
            self._land(frame)
        if (
            self._acquiring
            and f["CycleMode"].value == "Fixed"
            and self._frames_made >= f["FrameCount"].value
            and not self._pending
        ):
            f["CameraAcquiring"].value = False

    def _trigger(self, start_s: float, exposure_s: float, internal: bool = False) -> None:
        """One trigger: expose from ``start_s``; ignored while the previous frame is busy (A14)."""
        f = self._features
        if not internal and start_s < self._busy_until:
            self.ignored_triggers += 1
            return
        if f["CycleMode"].value == "Fixed" and self._frames_made >= f["FrameCount"].value:
            return
        readout = f["ReadoutTime"].value
        self._busy_until = start_s + exposure_s + readout
        self._frames_made += 1
        frame = self._render(start_s, exposure_s)
        self._pending.append((start_s + exposure_s + readout, frame))

    def pulse(self, rise_s: float, width_s: float) -> None:
        """A pulse on the external trigger input: high at ``rise_s`` (camera clock) for ``width_s``."""
        f = self._features
        mode = f["TriggerMode"].value if f else ""
        if not self._acquiring or mode not in ("External", "External Exposure", "External Start"):
            self.ignored_pulses_not_acquiring += 1
            return
        inverted = self._io_invert.get("External Trigger", False)
        fall_s = rise_s + width_s
        if mode == "External Exposure":
            if not inverted:
                self._triggers.append(_Trigger(rise_s, width_s))
            else:  # the inverted input is active from this fall to the next rise
                if self._fall_waiting is not None:
                    self._triggers.append(_Trigger(self._fall_waiting, rise_s - self._fall_waiting))
                self._fall_waiting = fall_s
            return
        self._triggers.append(_Trigger(fall_s if inverted else rise_s, f["ExposureTime"].value))

    def _land(self, frame: bytes) -> None:
        if self._queue or len(self._onhead) < self._cam.onhead_frames:
            self._onhead.append(frame)
            self._transfer()
            return
        self._overflowed = True  # on-head memory full: the camera aborts the acquisition (A13)
        self._stop()

    def _transfer(self) -> None:
        while self._onhead and self._queue:
            address, size = self._queue.popleft()
            frame = self._onhead.popleft()
            ct.memmove(address, frame, len(frame))
            self._filled.append((address, size))

    def _render(self, start_s: float, exposure_s: float) -> bytes:
        f = self._features
        rows, cols = f["AOIHeight"].value, f["AOIWidth"].value
        top, left = f["AOITop"].value - 1, f["AOILeft"].value - 1
        scene = self._cam.scene or default_scene
        full = np.asarray(scene(self._cam.sensor, exposure_s, start_s), float)
        bits = 16 if f["BitDepth"].value.startswith("16") else 12
        aoi = full[top : top + rows, left : left + cols]
        counts = np.clip(np.rint(aoi), 0, 2**bits - 1).astype(np.uint16)
        stride = f["AOIStride"].value
        encoding = f["PixelEncoding"].value
        if encoding == "Mono12Packed":
            row_bytes = _pack12(counts)
        else:
            row_bytes = counts.astype("<u2").view(np.uint8).reshape(rows, -1)
        image = np.full((rows, stride), 0xAB, np.uint8)
        image[:, : row_bytes.shape[1]] = row_bytes
        data = image.tobytes()
        if self.faults.pop("garbage_pixels", False):
            data = bytes(len(data))
        if not self._flag("MetadataEnable"):
            return data
        chunks = data + struct.pack("<II", 0, len(data) + 4)
        if self._flag("MetadataTimestamp"):
            ticks = int(round(start_s * self._cam.tick_hz))
            length = 12 if not self.faults.pop("corrupt_metadata", False) else 0xFFFFFF
            chunks += struct.pack("<qII", ticks, 1, length)
        return chunks


def _pack12(counts: np.ndarray) -> np.ndarray:
    """Mono12Packed: two 12-bit pixels in three bytes (A11): [a>>4, (a&0xF)|((b&0xF)<<4), b>>4]."""
    rows, cols = counts.shape
    padded = np.zeros((rows, cols + cols % 2), np.uint16)
    padded[:, :cols] = counts
    a, b = padded[:, 0::2], padded[:, 1::2]
    out = np.empty((rows, a.shape[1], 3), np.uint8)
    out[..., 0] = a >> 4
    out[..., 1] = (a & 0xF) | ((b & 0xF) << 4)
    out[..., 2] = b >> 4
    return out.reshape(rows, -1)[:, : math.ceil(cols * 1.5)]
