"""What the front ends know about the sample under the microscope: the ``SampleDescription``.

A real station describes its sample in the station file's ``sample:`` section; a simulated station
fills the description from the simulator's World. The CLI and the GUI read only this description
(coil names, reference drive current, expected resonance), never the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class SampleDescriptionError(ValueError):
    """The station file's ``sample:`` section is malformed; says which entry and what it needs."""


@dataclass(frozen=True)
class SampleDescription:
    """The sample of one station.

    Args:
        name: the name runs are stored under.
        coil_names: name of each coil channel, in channel order (empty: the sample has no coils or
            they are not named).
        drive_current_a: the reference drive current of a coil that is on (None: not known; the
            operator must give it).
        resonance_hz: the expected NV resonance at the bias field, where sweeps centre (None: not
            known; the operator must give the sweep centre).
        line_offsets_hz: offsets of the hyperfine lines from the resonance (``(0.0,)``: one line).
        simulated: the description comes from the simulated microscope.
    """

    name: str
    coil_names: tuple[str, ...] = ()
    drive_current_a: float | None = None
    resonance_hz: float | None = None
    line_offsets_hz: tuple[float, ...] = (0.0,)
    simulated: bool = False

    @property
    def lowest_line_hz(self) -> float | None:
        """The lowest hyperfine line at the bias field (where pulsed measurements drive), or None."""
        if self.resonance_hz is None:
            return None
        return self.resonance_hz + min(self.line_offsets_hz)

    def coil_index(self, name: str) -> int:
        """Channel of the coil ``name``; ValueError naming the known coils."""
        if name not in self.coil_names:
            known = ", ".join(self.coil_names) or "none named"
            raise ValueError(f"unknown coil {name!r}; the sample's coils are {known}")
        return self.coil_names.index(name)


KNOWN_KEYS = {"name", "coils", "drive_current_a", "resonance_hz", "hyperfine_offsets_hz"}


def read_sample_section(raw: Any, default_name: str, source: str) -> SampleDescription:
    """The description a real station file gives in its optional ``sample:`` section.

    ``sample: {name: ..., coils: [L1C1, ...], drive_current_a: 6e-4, resonance_hz: 2.87e9}``;
    every entry is optional.
    """
    if raw is None:
        return SampleDescription(default_name)
    where = f"station file {source}: sample"
    if not isinstance(raw, Mapping):
        raise SampleDescriptionError(f"{where} must be a mapping of name, coils, drive_current_a, "
                                     "resonance_hz")
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise SampleDescriptionError(f"{where}: unknown entries {', '.join(sorted(unknown))}; "
                                     f"known are {', '.join(sorted(KNOWN_KEYS))}")
    coils = raw.get("coils") or ()
    if isinstance(coils, str) or not all(isinstance(c, str) and c for c in coils):
        raise SampleDescriptionError(f"{where}.coils must be a list of coil names, got {coils!r}")
    if len(set(coils)) != len(coils):
        raise SampleDescriptionError(f"{where}.coils names a coil twice: {list(coils)}")
    numbers: dict[str, float | None] = {}
    for key in ("drive_current_a", "resonance_hz"):
        value = raw.get(key)
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise SampleDescriptionError(f"{where}.{key} must be a number, got {value!r}") from None
            if not (math.isfinite(value) and value > 0):
                raise SampleDescriptionError(f"{where}.{key} must be positive, got {value!r}")
        numbers[key] = value
    offsets = raw.get("hyperfine_offsets_hz", (0.0,))
    try:
        offsets = tuple(float(v) for v in offsets) or (0.0,)
    except (TypeError, ValueError):
        raise SampleDescriptionError(f"{where}.hyperfine_offsets_hz must be a list of numbers, "
                                     f"got {offsets!r}") from None
    return SampleDescription(str(raw.get("name") or default_name), tuple(coils), numbers["drive_current_a"],
                             numbers["resonance_hz"], offsets)
