"""Basler machine-vision cameras through pypylon, Basler's own Python binding of pylon.

Facts this driver relies on (node names, units, trigger order, grab strategies) and their sources
are in ``docs/hardware/basler.md``. pypylon is imported when a camera is opened, never at module
import, so the package works without it (``pip install -e .[basler]``).

The driver reads the camera's own limits when it opens (``constraints``) and refuses a setting
outside them before anything is written. Frames wait in pylon's output queue, bounded with the
``LatestImages`` strategy: when it is full pylon drops the oldest frame, and the driver counts it
(pylon's skipped-image count, and gaps in the camera's frame counter for frames lost on the way).

Simulation: the same driver runs against Basler's camera emulator (device class ``BaslerCamEmu``).
The emulator cannot see a hardware input, so with ``emulate_hardware_trigger`` a requested
``Line1`` trigger runs as a software trigger (logged and kept in the snapshot's ``sim_gaps``);
``before_trigger`` lets the simulation render the image the emulator serves for that frame. With a
``line_source`` (the simulated cable from the pulse generator, ``sim.camera_line``) the driver asks
it, while frames are awaited, for the exposures the line started, and fires one software trigger for
each: no pulse on the line, no frame, and ``read_frames`` times out as with a missing cable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.intensity_camera import IntensityCameraSettings
from instrument.checks import CheckResult
from instrument.protocols import (
    CameraConstraints,
    CameraFrames,
    CameraTrigger,
    InstrumentError,
    InstrumentTimeout,
)

log = logging.getLogger(__name__)

EMULATOR_DEVICE_CLASS = "BaslerCamEmu"
BIT_DEPTH = {"Mono8": 8, "Mono10": 10, "Mono12": 12, "Mono16": 16}
_EDGES = {"rising": "RisingEdge", "falling": "FallingEdge"}
_EXPOSURE_MODES = {"timed": "Timed", "trigger_width": "TriggerWidth"}
_US = 1e-6  # ExposureTime / ExposureTimeAbs are in microseconds


class BaslerError(InstrumentError):
    """pylon refused or failed a call; the message carries pylon's own description."""


def load_pylon() -> tuple[Any, Any]:
    """Import pypylon (``pylon``, ``genicam``), naming the fix when it is not installed."""
    try:
        from pypylon import genicam, pylon
    except ImportError as exc:
        raise InstrumentError(
            "basler",
            "import pypylon",
            f"pypylon is not installed ({exc}); install it with pip install -e .[basler]",
        ) from exc
    return pylon, genicam


class BaslerCamera(IntensityCameraSettings):
    """One Basler camera (``IntensityCamera``), chosen by serial number or the first one found.

    Args:
        name: the station role.
        serial: the camera's serial number; ``None`` takes the first camera pylon finds.
        device_class: restrict the search (``BaslerUsb``, ``BaslerGigE``, ``BaslerCamEmu``).
        shape: (rows, cols) region of interest from the sensor's origin; ``None`` keeps the camera's.
        pixel_format: ``Mono8`` .. ``Mono16``; ``None`` keeps the camera's.
        before_trigger: called before each software trigger with the frame's settings (simulation).
        clock: stand-in time source (s) for cameras that report no timestamps (the emulator).
        emulate_hardware_trigger: run a hardware-input trigger as a software one (emulator only).
        line_source: emulator only: ``line_source(trigger, exposure_s, max_frames, min_period_s)``
            returns the exposure windows (``start_s``, ``end_s``) the simulated input line started
            since the last call; each is rendered (``before_trigger(window=...)``) and triggered.
    """

    def __init__(
        self,
        name: str,
        *,
        serial: str | None = None,
        device_class: str | None = None,
        shape: tuple[int, int] | None = None,
        pixel_format: str | None = None,
        before_trigger: Callable[..., None] | None = None,
        clock: Callable[[], float] | None = None,
        emulate_hardware_trigger: bool = False,
        line_source: Callable[..., Any] | None = None,
    ) -> None:
        self.name = name
        self._pylon, self._genicam = load_pylon()
        self._before_trigger = before_trigger
        self._clock = clock
        self._emulate_hw = emulate_hardware_trigger
        self._line_source = line_source
        self._trigger = CameraTrigger()
        self._running_source = "free"
        self._armed = False
        self._dropped = 0
        self._last_block: int | None = None
        self._trigger_times: dict[int, float] = {}  # emulator: stand-in timestamps by frame counter
        self._triggers_sent = 0
        self._gaps_logged: set[str] = set()
        self.sim_gaps: list[str] = []
        self._info, self._camera = self._open(serial, device_class)
        try:
            self.emulated = self._info.GetDeviceClass() == EMULATOR_DEVICE_CLASS
            if emulate_hardware_trigger and not self.emulated:
                raise InstrumentError(
                    name,
                    "open",
                    "emulate_hardware_trigger is for the pylon emulator only; "
                    "a real camera takes its hardware trigger on its input line",
                )
            if line_source is not None and not emulate_hardware_trigger:
                raise InstrumentError(
                    name, "open", "line_source needs emulate_hardware_trigger (emulator only)"
                )
            self._exposure_node = self._first_node("ExposureTime", "ExposureTimeAbs")
            self._rate_node = self._first_node("AcquisitionFrameRate", "AcquisitionFrameRateAbs")
            self._gain_node = self._node("Gain")
            self._tick_hz = self._timestamp_tick_hz()
            if pixel_format is not None:
                self.set_pixel_format(pixel_format)
            if shape is not None:
                self.set_shape(shape)
            self._constraints = self._read_constraints()
            self.set_trigger(CameraTrigger())
            if self.emulated and before_trigger is not None:
                self._gap(
                    "the emulator integrates no light and keeps no exposure timing: the simulation "
                    "renders each frame for the exposure and gain set and advances its own clock"
                )
            if line_source is not None:
                self._gap(str(getattr(line_source, "description", "")) or
                          "the simulation reads the pulser's line and fires one software trigger per pulse")
        except BaseException:
            self._camera.DestroyDevice()
            raise

    # ---- opening and node access -----------------------------------------------------------------

    def _open(self, serial: str | None, device_class: str | None) -> tuple[Any, Any]:
        pylon = self._pylon
        factory = pylon.TlFactory.GetInstance()
        found = list(factory.EnumerateDevices())
        chosen = [
            d
            for d in found
            if (serial is None or d.GetSerialNumber() == str(serial))
            and (device_class is None or d.GetDeviceClass() == device_class)
        ]
        if not chosen:
            seen = (
                ", ".join(f"{d.GetModelName()} {d.GetSerialNumber()} ({d.GetDeviceClass()})" for d in found)
                or "none"
            )
            raise InstrumentError(
                self.name,
                "open",
                f"no Basler camera with serial {serial!r}"
                f"{f' and device class {device_class}' if device_class else ''}; pylon found: {seen}. "
                "Check the cable and power, or the serial in the station file",
                serial,
            )
        camera = pylon.InstantCamera(factory.CreateDevice(chosen[0]))
        self._call("Open", camera.Open)
        return chosen[0], camera

    def _call(self, command: str, fn: Callable[..., Any], *args: Any, value: Any = None) -> Any:
        """Run one pylon call; a GenICam exception becomes a ``BaslerError`` naming the call."""
        try:
            return fn(*args)
        except self._genicam.GenericException as exc:
            detail = str(exc).split(" : ")[0]
            raise BaslerError(self.name, command, f"pylon refused it: {detail}", value) from exc

    def _node(self, name: str) -> Any | None:
        node = self._camera.GetNodeMap().GetNode(name)
        try:
            return node if self._genicam.IsAvailable(node) else None
        except self._genicam.GenericException:
            return None

    def _first_node(self, *names: str) -> Any:
        for n in names:
            node = self._node(n)
            if node is not None:
                return node
        raise BaslerError(
            self.name,
            "open",
            f"the camera has none of the nodes {', '.join(names)}; "
            "this driver supports SFNC cameras (ace, ace 2, boost, dart)",
        )

    def _set(self, name: str, value: Any) -> None:
        node = self._node(name)
        if node is None:
            raise BaslerError(self.name, name, "the camera has no such node", value)
        self._call(name, setattr, node, "Value", value, value=value)

    def _get(self, name: str, default: Any = None) -> Any:
        node = self._node(name)
        return default if node is None else self._call(name, getattr, node, "Value")

    def _symbolics(self, name: str) -> tuple[str, ...]:
        node = self._node(name)
        return tuple(node.GetSymbolics()) if node is not None else ()

    def _timestamp_tick_hz(self) -> float:
        # GigE cameras state their tick; USB 3 ace cameras count 1 ns ticks (docs/hardware/basler.md).
        tick = self._get("GevTimestampTickFrequency")
        return float(tick) if tick else 1e9

    def _read_constraints(self) -> CameraConstraints:
        exp, rate = self._exposure_node, self._rate_node
        gain_min, gain_max = (
            (self._gain_node.GetMin(), self._gain_node.GetMax()) if self._gain_node else (0, 0)
        )
        burst = self._node("AcquisitionBurstFrameCount")
        return CameraConstraints(
            exposure_min_s=exp.GetMin() * _US,
            exposure_max_s=exp.GetMax() * _US,
            gain_min_db=float(gain_min),
            gain_max_db=float(gain_max),
            frame_rate_min_hz=float(rate.GetMin()),
            frame_rate_max_hz=float(rate.GetMax()),
            width_max=int(self._get("WidthMax")),
            height_max=int(self._get("HeightMax")),
            pixel_formats=tuple(f for f in self._symbolics("PixelFormat") if f in BIT_DEPTH),
            trigger_inputs=tuple(s for s in self._symbolics("TriggerSource") if s.startswith("Line")),
            max_frames_per_trigger=int(burst.GetMax()) if burst is not None else 1,
        )

    def _gap(self, what: str) -> None:
        """Record once where the simulation stands in for something the emulator cannot do."""
        if what not in self._gaps_logged:
            self._gaps_logged.add(what)
            self.sim_gaps.append(what)
            log.warning("%s (pylon emulator): %s", self.name, what)

    # ---- identity and state ----------------------------------------------------------------------

    @property
    def model(self) -> str:
        return str(self._info.GetModelName())

    @property
    def serial(self) -> str:
        return str(self._info.GetSerialNumber())

    @property
    def constraints(self) -> CameraConstraints:
        return self._constraints

    @property
    def shape(self) -> tuple[int, int]:
        return int(self._get("Height")), int(self._get("Width"))

    @property
    def pixel_format(self) -> str:
        return str(self._get("PixelFormat"))

    @property
    def bit_depth(self) -> int:
        # From the format name: the emulator's PixelDynamicRangeMax stays 255 in Mono16.
        return BIT_DEPTH[self.pixel_format]

    @property
    def exposure_s(self) -> float:
        return float(self._exposure_node.Value) * _US

    @property
    def gain_db(self) -> float:
        return float(self._gain_node.Value) if self._gain_node is not None else 0.0

    @property
    def frame_rate_hz(self) -> float:
        return float(self._rate_node.Value)

    @property
    def resulting_frame_rate_hz(self) -> float:
        """The frame rate the camera says it can reach with its present settings (exposure, ROI,
        format): ``ResultingFrameRate`` (SFNC 2) or ``ResultingFrameRateAbs``; a trigger sooner than
        its reciprocal after the previous one is ignored (docs/hardware/basler.md, BA-12)."""
        value = self._get("ResultingFrameRate", None)
        if value is None:
            value = self._get("ResultingFrameRateAbs", None)
        return float(value) if value else self.frame_rate_hz

    # ---- settings --------------------------------------------------------------------------------

    def set_pixel_format(self, pixel_format: str) -> None:
        self._refuse_while_armed("PixelFormat")
        offered = [f for f in self._symbolics("PixelFormat") if f in BIT_DEPTH]
        if pixel_format not in offered:
            raise InstrumentError(
                self.name,
                "PixelFormat",
                f"not a mono format this camera offers ({', '.join(offered)})",
                pixel_format,
            )
        self._set("PixelFormat", pixel_format)

    def set_shape(self, shape: tuple[int, int]) -> None:
        """Region of interest (rows, cols) from the sensor's origin."""
        self._refuse_while_armed("Width/Height")
        rows, cols = (int(v) for v in shape)
        for node, value, limit in (("Width", cols, "WidthMax"), ("Height", rows, "HeightMax")):
            n = self._node(node)
            top = int(self._get(limit))
            if not 1 <= value <= top or (value - n.GetMin()) % n.GetInc():
                raise InstrumentError(self.name, node, f"must be 1 .. {top} in steps of {n.GetInc()}", value)
        for axis in ("OffsetX", "OffsetY"):
            if self._node(axis) is not None:
                self._set(axis, 0)
        self._set("Width", cols)
        self._set("Height", rows)

    def set_exposure(self, exposure_s: float) -> float:
        c = self._constraints
        self._check_range("ExposureTime", exposure_s, c.exposure_min_s, c.exposure_max_s, "s")
        self._call("ExposureTime", setattr, self._exposure_node, "Value", exposure_s / _US, value=exposure_s)
        return self.exposure_s

    def set_gain(self, gain_db: float) -> float:
        if self._gain_node is None:
            raise InstrumentError(
                self.name,
                "Gain",
                "this camera has no Gain node in dB; set its raw gain in pylon Viewer",
                gain_db,
            )
        c = self._constraints
        self._check_range("Gain", gain_db, c.gain_min_db, c.gain_max_db, "dB")
        self._call("Gain", setattr, self._gain_node, "Value", float(gain_db), value=gain_db)
        return self.gain_db

    def set_frame_rate(self, frame_rate_hz: float) -> float:
        """Frame rate of free-running acquisition (``CameraTrigger(source="free")``)."""
        c = self._constraints
        self._check_range(
            "AcquisitionFrameRate", frame_rate_hz, c.frame_rate_min_hz, c.frame_rate_max_hz, "Hz"
        )
        if self._node("AcquisitionFrameRateEnable") is not None:
            self._set("AcquisitionFrameRateEnable", True)
        self._call(
            "AcquisitionFrameRate",
            setattr,
            self._rate_node,
            "Value",
            float(frame_rate_hz),
            value=frame_rate_hz,
        )
        return self.frame_rate_hz

    def set_trigger(self, trigger: CameraTrigger) -> None:
        """Configure the frame-start (or burst-start) trigger; checked whole before anything is sent."""
        self._refuse_while_armed("TriggerMode")
        c = getattr(self, "_constraints", None)
        inputs = c.trigger_inputs if c else ()
        if trigger.source not in ("free", "software", *inputs):
            raise InstrumentError(
                self.name,
                "TriggerSource",
                "unknown trigger source; use free, software or "
                f"one of the camera's inputs {', '.join(inputs)}",
                trigger.source,
            )
        if trigger.edge not in _EDGES:
            raise InstrumentError(self.name, "TriggerActivation", "use rising or falling", trigger.edge)
        if trigger.exposure not in _EXPOSURE_MODES:
            raise InstrumentError(self.name, "ExposureMode", "use timed or trigger_width", trigger.exposure)
        hardware = trigger.source in inputs
        if trigger.exposure == "trigger_width" and not hardware:
            raise InstrumentError(
                self.name,
                "ExposureMode",
                "trigger-width exposure needs a hardware trigger input (the pulse's width sets the exposure)",
                trigger.source,
            )
        if trigger.exposure == "trigger_width" and not trigger.width_s > 0:
            raise InstrumentError(
                self.name, "ExposureMode", "give the gate pulse's width_s (> 0)", trigger.width_s
            )
        top = c.max_frames_per_trigger if c else 1
        fpt = trigger.frames_per_trigger
        emulated_line = hardware and self._emulate_hw
        if fpt < 1 or (fpt > top and not emulated_line):
            raise InstrumentError(
                self.name,
                "AcquisitionBurstFrameCount",
                f"frames per trigger must be 1 .. {top} on this camera",
                fpt,
            )
        running = (
            "Software"
            if emulated_line
            else {"free": None, "software": "Software"}.get(trigger.source, trigger.source)
        )
        burst = fpt > 1 and not emulated_line
        for selector in ("FrameBurstStart", "FrameStart"):
            if selector in self._symbolics("TriggerSelector"):
                self._set("TriggerSelector", selector)
                self._set("TriggerMode", "Off")
        if running is not None:
            # Manual order: TriggerMode and TriggerSource before ExposureMode (docs/hardware/basler.md).
            self._set("TriggerSelector", "FrameBurstStart" if burst else "FrameStart")
            self._set("TriggerMode", "On")
            self._set("TriggerSource", running)
            if running != "Software":
                self._set("TriggerActivation", _EDGES[trigger.edge])
            if burst:
                self._set("AcquisitionBurstFrameCount", fpt)
        if self._node("ExposureMode") is not None and not emulated_line:
            self._set("ExposureMode", _EXPOSURE_MODES[trigger.exposure])
        if emulated_line and self._line_source is None:
            self._gap(
                f"the emulator cannot see {trigger.source}: each {trigger.source} edge is a software "
                f"trigger ({fpt} per edge), the edge and exposure mode are not applied"
            )
        self._trigger = trigger
        self._running_source = (
            "free" if running is None else ("software" if running == "Software" else "line")
        )

    def serve_image_files(self, folder: str) -> None:
        """Emulator only: serve the image files in ``folder`` in turn instead of a test pattern."""
        if not self.emulated:
            raise InstrumentError(
                self.name, "ImageFilename", "image-file mode exists only on the pylon emulator"
            )
        self._refuse_while_armed("ImageFilename")
        if self._node("TestImageSelector") is not None:
            self._set("TestImageSelector", "Off")  # else the test pattern wins over the files
        self._set("ImageFileMode", "On")
        self._set("ImageFilename", str(folder))

    # ---- acquisition -----------------------------------------------------------------------------

    def arm(self, queue_size: int = 16) -> None:
        """Start grabbing with a bounded queue: the oldest frames beyond ``queue_size`` are dropped."""
        if not 1 <= int(queue_size) <= 1024:
            raise InstrumentError(self.name, "OutputQueueSize", "queue size must be 1 .. 1024", queue_size)
        if self._armed:
            self.disarm()
        cam = self._camera
        # MaxNumBuffer >= OutputQueueSize; two spare buffers keep the camera filling while one waits.
        self._call("MaxNumBuffer", setattr, cam.MaxNumBuffer, "Value", int(queue_size) + 2, value=queue_size)
        self._call(
            "OutputQueueSize", setattr, cam.OutputQueueSize, "Value", int(queue_size), value=queue_size
        )
        self._call("StartGrabbing", cam.StartGrabbing, self._pylon.GrabStrategy_LatestImages)
        self._armed = True
        self._last_block = None
        self._trigger_times.clear()
        self._triggers_sent = 0  # the emulator's frame counter (BlockID) restarts at 0 with each grab

    def trigger(self, timeout_s: float = 1.0) -> None:
        """One software trigger (or, on the emulator, one stand-in edge of the hardware input)."""
        if not self._armed:
            raise InstrumentError(self.name, "TriggerSoftware", "not armed; call arm() first")
        if self._running_source != "software":
            raise InstrumentError(
                self.name,
                "TriggerSoftware",
                f"the trigger source is {self._trigger.source}; "
                "software triggers need CameraTrigger(source='software')",
            )
        t = self._trigger
        if self._line_source is not None and t.source not in ("free", "software"):
            raise InstrumentError(
                self.name,
                "TriggerSoftware",
                f"frames start on the pulse generator's pulses on {t.source}; start the pulse program",
            )
        n = t.frames_per_trigger if self._emulate_hw and t.source not in ("free", "software") else 1
        exposure = t.width_s if t.exposure == "trigger_width" else self.exposure_s
        for _ in range(n):
            self._fire(exposure, None, timeout_s)

    def _fire(self, exposure_s: float, window: Any, timeout_s: float = 1.0) -> None:
        """Render (simulation) and issue one software trigger; ``window``: a simulated line's exposure."""
        if self._clock is not None:
            stamp = float(self._clock()) if window is None else float(window.start_s)
            self._trigger_times[self._triggers_sent] = stamp
        if self._before_trigger is not None:
            extra = {} if window is None else {"window": window}
            self._before_trigger(
                exposure_s=exposure_s,
                gain_db=self.gain_db,
                shape=self.shape,
                bit_depth=self.bit_depth,
                pixel_format=self.pixel_format,
                **extra,
            )
        ready = self._call(
            "WaitForFrameTriggerReady",
            self._camera.WaitForFrameTriggerReady,
            int(timeout_s * 1000),
            self._pylon.TimeoutHandling_Return,
        )
        if not ready:
            raise InstrumentTimeout(
                self.name, "TriggerSoftware", f"camera not ready for a trigger within {timeout_s:g} s"
            )
        self._call("TriggerSoftware", self._camera.ExecuteSoftwareTrigger)
        self._triggers_sent += 1

    def read_frames(self, n: int, timeout_s: float = 5.0) -> CameraFrames:
        """The next ``n`` frames; on a timeout the frames already read travel on the exception."""
        if not self._armed:
            raise InstrumentError(self.name, "RetrieveResult", "not armed; call arm() first")
        images: list[np.ndarray] = []
        numbers: list[int] = []
        stamps: list[float] = []
        dropped = 0
        failures = 0
        source = "camera"
        while len(images) < n:
            # One exposure at a time: the emulator reads its image file some time after the software
            # trigger returns, so the next frame is rendered only once this one has come.
            self._pull_line(1)
            # Wait on pylon's wait object, then take the result without blocking: a RetrieveResult
            # with a timeout was seen to block past it on the emulator (docs/hardware/basler.md).
            ready = self._call(
                "GrabResultWaitObject", self._camera.GetGrabResultWaitObject().Wait, int(timeout_s * 1000)
            )
            result = (
                self._call(
                    "RetrieveResult", self._camera.RetrieveResult, 0, self._pylon.TimeoutHandling_Return
                )
                if ready
                else None
            )
            if result is None or not result.IsValid():
                # Release even an empty result: a grab result kept alive (by a traceback holding this
                # frame) stalls the next RetrieveResult of a later camera object on the same device.
                if result is not None:
                    result.Release()
                del result
                self._dropped += dropped
                exc = InstrumentTimeout(
                    self.name,
                    "RetrieveResult",
                    f"got {len(images)} of {n} frames within {timeout_s:g} s per frame; "
                    "check the trigger cable and that the pulse program is running",
                )
                exc.frames = self._frames(images, numbers, stamps, dropped, source)  # type: ignore[attr-defined]
                raise exc
            try:
                dropped += self._count_lost(result)
                if not result.GrabSucceeded():
                    failures += 1
                    dropped += 1
                    error = str(result.GetErrorDescription())
                    log.warning("%s: frame lost: %s", self.name, error)
                    if failures > n:
                        self._dropped += dropped
                        raise BaslerError(self.name, "RetrieveResult", f"every grab fails: {error}")
                    continue
                images.append(np.array(result.GetArray(), copy=True))
                numbers.append(int(result.BlockID))
                stamp, source = self._timestamp(int(result.TimeStamp), int(result.BlockID))
                stamps.append(stamp)
            finally:
                result.Release()
        self._dropped += dropped
        return self._frames(images, numbers, stamps, dropped, source)

    def _pull_line(self, wanted: int) -> None:
        """Simulation: trigger the exposures the simulated input line started (none: nothing comes)."""
        t = self._trigger
        if self._line_source is None or t.source in ("free", "software"):
            return
        rate = self.resulting_frame_rate_hz
        for window in self._line_source(t, self.exposure_s, wanted, 1.0 / rate if rate > 0 else 0.0):
            self._fire(float(window.end_s - window.start_s), window)

    def _count_lost(self, result: Any) -> int:
        """Frames lost before this one: pylon's skipped count, or the gap in the camera's counter."""
        skipped = int(result.GetNumberOfSkippedImages())
        block = int(result.BlockID)
        gap = 0
        if self._last_block is not None and block > self._last_block:
            gap = block - self._last_block - 1
        self._last_block = block
        return max(skipped, gap)

    def _timestamp(self, ticks: int, block: int) -> tuple[float, str]:
        if ticks:
            return ticks / self._tick_hz, "camera"
        if self._clock is not None and self.emulated:
            self._gap(
                "the emulator reports no timestamps: frames carry the simulation clock's time at "
                "their trigger"
            )
            stamp = self._trigger_times.pop(block, None)
            return (float(self._clock()) if stamp is None else stamp), "simulation"
        return (float(self._clock()) if self._clock else time.monotonic()), "host"

    def _frames(
        self, images: list[np.ndarray], numbers: list[int], stamps: list[float], dropped: int, source: str
    ) -> CameraFrames:
        rows, cols = self.shape
        dtype = np.uint8 if self.bit_depth == 8 else np.uint16
        stack = np.stack(images).astype(dtype, copy=False) if images else np.zeros((0, rows, cols), dtype)
        return CameraFrames(stack, np.array(numbers, np.int64), np.array(stamps, float), dropped, source)

    def acquire(self, n: int, timeout_s: float = 5.0) -> CameraFrames:
        """Software-trigger and read ``n`` frames one by one (armed before, left armed)."""
        if not self._armed:
            self.arm()
        images, numbers, stamps, dropped, source = [], [], [], 0, "camera"
        for _ in range(n):
            self.trigger()
            f = self.read_frames(1, timeout_s)
            images.append(f.images[0])
            numbers.append(int(f.frame_numbers[0]))
            stamps.append(float(f.timestamps_s[0]))
            dropped += f.dropped
            source = f.timestamp_source
        return self._frames(images, numbers, stamps, dropped, source)

    def disarm(self) -> None:
        if self._armed:
            self._armed = False
            self._call("StopGrabbing", self._camera.StopGrabbing)

    # ---- Instrument ------------------------------------------------------------------------------

    def safe_state(self) -> None:
        """The camera's safe state is stopped: no acquisition left running."""
        self.disarm()

    def close(self) -> None:
        """Stop, close and destroy the pylon device now.

        Destroyed here, not when Python collects this object: a late destructor would tear down the
        device under a camera object opened since on the same device (seen on the emulator).
        """
        if not self._camera.IsPylonDeviceAttached():
            return
        try:
            if self._camera.IsOpen():
                self.safe_state()
        finally:
            self._call("DestroyDevice", self._camera.DestroyDevice)

    def station_checks(self, trigger_input: str = "Line1") -> list[CheckResult]:
        """Identity, the trigger input the pulser is cabled to, and one frame at a safe setting."""
        c = self._constraints
        checks = [
            CheckResult(
                self.name,
                "identity",
                True,
                f"{self._info.GetVendorName()} {self.model}, serial {self.serial} "
                f"({self._info.GetDeviceClass()}), firmware {self._get('DeviceFirmwareVersion', '?')}",
            ),
            CheckResult(
                self.name,
                f"trigger input {trigger_input}",
                trigger_input in c.trigger_inputs,
                f"frame-start trigger sources: {', '.join(c.trigger_inputs) or 'none'}",
                f"cable the pulser's camera line to one of {', '.join(c.trigger_inputs)} and name "
                "it in the sequence",
            ),
        ]
        checks.append(self._test_frame_check("check the camera's cable and power in pylon Viewer"))
        return checks

    def snapshot(self) -> dict[str, Any]:
        """Identity as pylon reports it and every setting, for the run's metadata."""
        t = self._trigger
        snap: dict[str, Any] = {
            "name": self.name,
            "driver": "basler",
            "vendor": str(self._info.GetVendorName()),
            "model": self.model,
            "serial": self.serial,
            "device_class": str(self._info.GetDeviceClass()),
            "firmware": str(self._get("DeviceFirmwareVersion", "")),
            "emulated": self.emulated,
            "shape": list(self.shape),
            "pixel_format": self.pixel_format,
            "bit_depth": self.bit_depth,
            "exposure_s": self.exposure_s,
            "gain_db": self.gain_db,
            "frame_rate_hz": self.frame_rate_hz,
            "trigger": {
                "source": t.source,
                "edge": t.edge,
                "exposure": t.exposure,
                "width_s": t.width_s,
                "frames_per_trigger": t.frames_per_trigger,
                "running_as": self._running_source,
            },
            "dropped_frames": self._dropped,
        }
        if self.emulated:
            snap["sim_gaps"] = list(self.sim_gaps)
        return snap
