"""A sweep's camera timing checked against the camera, before anything moves.

Intensity cameras (``IntensityCamera``): the exposure against the camera's exposure range and the
program's frame spacing, the frame spacing against the camera's frame rate (a trigger sooner than
``1 / frame rate`` after the previous one is ignored: docs/hardware/basler.md, BA-12), the frames one
point reads against the frame queue, and the pixel format's bit depth against the contrast an ODMR
sweep resolves. Lock-in cameras: the frame rate and frames per point against the camera's own
register solver (``settings_for``). Each violation is a ``CameraSettingsError`` naming the setting
and the fix; nothing here touches hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from instrument.settings import setting

MIN_BIT_DEPTH = 10
"""Below it a 1 % ODMR contrast spans ~2 grey levels at full scale (Mono8: 256 levels)."""
MAX_QUEUE = 1024
"""The Basler driver's largest frame queue (``arm``)."""


class CameraSettingsError(ValueError):
    """The camera cannot run the sweep as set; the message names the setting and the fix."""


@dataclass(frozen=True)
class CameraTiming:
    """What a camera sweep asks of the camera (s; frames)."""

    exposure_s: float
    frame_period_s: float
    gate_guard_s: float
    frames_per_read: int
    queue_size: int


def check_intensity_camera(camera: Any, timing: CameraTiming, frame_rate_hz: float | None = None) -> None:
    """Refuse a timing the intensity ``camera`` cannot run (its ``constraints`` and ``bit_depth``).

    ``frame_rate_hz``: the rate the camera says it reaches with the sweep's settings applied
    (``resulting_frame_rate_hz``), checked in addition to the constraint's maximum when given.
    """
    c = camera.constraints
    e, period = timing.exposure_s, timing.frame_period_s
    if not c.exposure_min_s <= e <= c.exposure_max_s:
        raise CameraSettingsError(
            f"{setting('exposure_s')} {e:g} s is outside the camera's exposure range "
            f"{c.exposure_min_s:g} .. {c.exposure_max_s:g} s; choose an exposure within it")
    if e + timing.gate_guard_s >= period:
        raise CameraSettingsError(
            f"{setting('exposure_s')} {e:g} s does not fit in {setting('frame_period_s')} {period:g} s "
            f"(the MW switch settles for {timing.gate_guard_s:g} s first); lengthen the frame period or "
            "shorten the exposure")
    top = float(c.frame_rate_max_hz)
    if frame_rate_hz is not None:
        top = min(top, float(frame_rate_hz))
    if 1.0 / period > top * (1 + 1e-9):
        raise CameraSettingsError(
            f"{setting('frame_period_s')} {period:g} s asks for {1 / period:.4g} frames/s but the camera "
            f"manages {top:.4g} frames/s with these settings (it would ignore the extra triggers); "
            f"lengthen the frame period to at least {1 / top:.4g} s or shrink the image or the exposure")
    if timing.frames_per_read > min(timing.queue_size, MAX_QUEUE):
        raise CameraSettingsError(
            f"{setting('frames_per_point')}: a point reads {timing.frames_per_read} frames but the "
            f"camera's frame queue holds {min(timing.queue_size, MAX_QUEUE)}; lower the frames per point "
            f"(the queue holds at most {MAX_QUEUE})")
    bits = int(camera.bit_depth)
    if bits < MIN_BIT_DEPTH:
        raise CameraSettingsError(
            f"the camera's pixel format {camera.pixel_format} has {bits} bits: a 1 % ODMR contrast "
            f"spans ~{0.01 * 2**bits:.1f} grey levels; set pixel_format to a format of at least "
            f"{MIN_BIT_DEPTH} bits (Mono12) in the station file")


def check_saturation(images: Any, bit_depth: int, what: str) -> None:
    """Refuse frames with saturated pixels (the contrast there is lost)."""
    import numpy as np

    top = 2 ** int(bit_depth) - 1
    saturated = int(np.count_nonzero(np.asarray(images) >= top))
    if saturated:
        raise CameraSettingsError(
            f"{what}: {saturated} pixel values at the top of the {bit_depth}-bit range (saturated); "
            f"shorten {setting('exposure_s')}, lower the gain or the laser power")


def check_lockin_camera(camera: Any, modulation_hz: float, frame_rate_hz: float,
                        frames_per_point: int) -> None:
    """Refuse a lock-in sweep the camera's register solver cannot realise (no hardware touched)."""
    settings_for = getattr(camera, "settings_for", None)
    if not callable(settings_for):
        return
    try:
        settings_for(modulation_hz, frame_rate_hz, frames_per_point)
    except (ValueError, RuntimeError) as exc:  # the drivers' setting errors derive from these
        raise CameraSettingsError(
            f"the lock-in camera cannot run {frames_per_point} frames per point at {frame_rate_hz:g} "
            f"frames/s with {modulation_hz:g} Hz modulation ({exc}); change {setting('frames_per_point')} "
            "or the frame rate") from exc
