"""Which measurements a station can run: each measurement's required roles and capabilities.

The requirements are the sequences' own ``requires`` (role -> protocol), which the engine checks
again before anything moves; the GUI offers a measurement's panel only where nothing is missing.
A measurement with another sequence for another camera (CW ODMR and the coil scan with an
intensity camera: ``CameraCwSweep``) can run where either set is met (``alternatives``).
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


def alternatives() -> dict[str, list[Mapping[str, type]]]:
    """Other role -> protocol sets with which a measurement runs too (another camera type)."""
    from sequences.camera_cw import CAMERA_CW_REQUIRES

    return {"cw_odmr": [CAMERA_CW_REQUIRES], "coil_scan": [CAMERA_CW_REQUIRES]}


def missing(station: Any) -> dict[str, list[str]]:
    """What the station lacks for each measurement (an empty list: it can run)."""
    from sequences.engine import missing_requirements

    others = alternatives()
    out = {}
    for kind, needs in requirements().items():
        lacking = missing_requirements(station.instruments, needs)
        for other in others.get(kind, []):
            if lacking and not missing_requirements(station.instruments, other):
                lacking = []
        out[kind] = lacking
    return out
