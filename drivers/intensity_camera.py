"""Settings plumbing shared by the intensity-camera drivers (``drivers.basler``, ``drivers.andor_sdk3``).

Only what is the same for every vendor lives here: refusing a change while armed, range checks,
and the dropped-frame / trigger-setting state. Vendor calls stay in each driver.
"""

from __future__ import annotations

import math

from instrument.protocols import CameraTrigger, InstrumentError


class IntensityCameraSettings:
    """Mixin for an ``IntensityCamera`` driver; the driver sets ``name``, ``_armed``, ``_dropped``
    and ``_trigger`` in its ``__init__``."""

    name: str
    _armed: bool
    _dropped: int
    _trigger: CameraTrigger

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
