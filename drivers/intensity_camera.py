"""Settings plumbing shared by the intensity-camera drivers (``drivers.basler``, ``drivers.andor_sdk3``).

Only what is the same for every vendor lives here: refusing a change while armed, range checks,
the dropped-frame / trigger-setting state and the station check's test frame. Vendor calls stay in
each driver.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from instrument.checks import CheckResult
from instrument.protocols import CameraTrigger, InstrumentError

TEST_FRAME = "software-triggered frame"


class IntensityCameraSettings:
    """Mixin for an ``IntensityCamera`` driver; the driver sets ``name``, ``_armed``, ``_dropped``
    and ``_trigger`` in its ``__init__``."""

    name: str
    _armed: bool
    _dropped: int
    _trigger: CameraTrigger
    bit_depth: int
    pixel_format: str

    if TYPE_CHECKING:  # the driver's own acquisition calls, which the test frame uses
        def set_trigger(self, trigger: CameraTrigger) -> None: ...
        def acquire(self, n: int, timeout_s: float = 5.0) -> Any: ...
        def disarm(self) -> None: ...

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    @property
    def trigger_setting(self) -> CameraTrigger:
        return self._trigger

    def _refuse_while_armed(self, setting: str) -> None:
        if self._armed:
            raise InstrumentError(self.name, setting, "cannot change while armed; call disarm() first")

    def _check_range(self, setting: str, value: float, low: float, high: float, unit: str) -> None:
        # A bool or a non-number is refused like an out-of-range value (not a TypeError deep in a
        # vendor call): ``True`` would otherwise pass as 1.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not low <= value <= high:
            raise InstrumentError(
                self.name, setting, f"out of the camera's range {low:g} .. {high:g} {unit}", value
            )

    def _test_frame_check(self, failure_fix: str) -> CheckResult:
        """One software-triggered frame (not tried while armed), then the trigger as it was.

        ``failure_fix`` is the vendor's advice when no frame comes (its viewer program, cabling).
        """
        if self._armed:
            return CheckResult(self.name, TEST_FRAME, None, "armed; not tried")
        previous = self._trigger
        try:
            self.set_trigger(CameraTrigger(source="software"))
            frames = self.acquire(1, timeout_s=2.0)
            top = int(frames.images.max()) if frames.images.size else 0
            saturated = top >= 2**self.bit_depth - 1
            return CheckResult(
                self.name, TEST_FRAME, not saturated,
                f"1 frame {frames.images.shape[1:]} {self.pixel_format}, max {top}, "
                f"timestamps from {frames.timestamp_source}",
                "saturated: shorten the exposure or lower the laser power" if saturated else "",
            )
        except InstrumentError as exc:
            return CheckResult(self.name, TEST_FRAME, False, str(exc), failure_fix)
        finally:
            self.disarm()
            self.set_trigger(previous)
