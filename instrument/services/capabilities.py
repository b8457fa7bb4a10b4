"""Which measurements a station can run: each measurement's required roles and capabilities.

The requirements are the sequences' own ``requires`` (role -> protocol), which the engine checks
again before anything moves; the GUI offers a measurement's panel only where nothing is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def requirements() -> dict[str, Mapping[str, type]]:
    """Role -> protocol that each measurement needs, by measurement."""
    from instrument.protocols import (
        Instrument,
        IntensityCamera,
        LockInCamera,
        MicrowaveSource,
        PulseGenerator,
    )
    from sequences.cw_odmr import CW_REQUIRES
    from sequences.pulsed import GatedCounter
    from sequences.spad_odmr import SpadOdmrSweep

    return {
        "cw_odmr": CW_REQUIRES,
        "coil_scan": CW_REQUIRES,  # every configuration is a CW-ODMR sweep
        "pulsed": {"mw": MicrowaveSource, "pulser": PulseGenerator, "counter": GatedCounter},
        "widefield_pulsed": {"mw": MicrowaveSource, "pulser": PulseGenerator, "camera": IntensityCamera},
        "spad_odmr": dict(SpadOdmrSweep([], 0.0).requires),
        "lockin": {"mw": MicrowaveSource, "pulser": PulseGenerator, "camera": LockInCamera,
                   "stimulus": Instrument},
    }


def missing(station: Any) -> dict[str, list[str]]:
    """What the station lacks for each measurement (an empty list: it can run)."""
    from sequences.engine import missing_requirements

    return {kind: missing_requirements(station.instruments, needs) for kind, needs in requirements().items()}
