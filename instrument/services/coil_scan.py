"""Combinatorial coil scans as a service: coils and configurations chosen by name or count, the
``CoilScan`` built for the station (``acquire coil-scan`` and the GUI's coil-scan panel call it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instrument.services.errors import RequestError
from instrument.services.runs import channel_names, drive_current_a, sample_name
from instrument.settings import setting

COIL_SCAN_ROLES = ("mw", "pulser", "camera", "coils")


def coil_names(station: Any) -> list[str]:
    """Names of the coil driver's channels (the sample's coils in simulation)."""
    return channel_names(station, "coils")


def select_channels(text: str, names: list[str]) -> list[int]:
    """``N`` (the first N channels) or comma-separated coil names -> driver channels."""
    text = text.strip()
    if text.isdigit():
        n = int(text)
        if not 1 <= n <= min(16, len(names)):
            raise RequestError(f"{setting('coils')} {n}: the station has {len(names)} coils and a scan "
                               f"takes 1 to {min(16, len(names))}")
        return list(range(n))
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in names]
    if unknown or not chosen:
        raise RequestError(f"{setting('coils')}: unknown coil(s) {', '.join(unknown) or repr(text)}; "
                         f"the station's coils are {', '.join(names)}")
    if len(set(chosen)) != len(chosen):
        raise RequestError(f"{setting('coils')} lists a coil twice")
    return [names.index(s) for s in chosen]


def build_coil_scan(station: Any, out: Path, coils: str, configs: str | None, current_a: float | None,
                    frequencies_hz: Any, power_dbm: float, frames_per_point: int, health: Any,
                    metadata: dict[str, Any], on_config: Any = None, stepping: str = "auto") -> Any:
    """The ``CoilScan`` the options describe (not yet checked against the limits: ``scan.check()``).

    Shared by ``acquire coil-scan`` and the GUI's coil-scan panel, so both pick coils,
    configurations and the drive current the same way. ``metadata`` goes into every configuration's
    run (station snapshot, simulated flag, command). ``stepping`` is the MW stepping of every sweep
    (``auto``, ``list`` or ``software``). It is not part of the scan's identity: how the MW steps
    does not change what is measured, so a scan stalled in list mode can be resumed in software
    stepping; each run records the mode it ran in.

    Raises:
        RequestError: an unknown coil or configuration, or no drive current to use.
    """
    from instrument.services.coil_scan_runner import cw_measurement
    from sequences.coil_scan import CoilScan, all_masks, parse_configs
    from sequences.mw_stepping import STEPPING_MODES

    if stepping not in STEPPING_MODES:
        raise RequestError(f"{setting('mw_stepping')} must be one of {', '.join(STEPPING_MODES)}, "
                           f"got {stepping!r}")
    names = coil_names(station)
    channels = select_channels(coils, names)
    scanned = [names[c] for c in channels]
    try:
        masks = parse_configs(configs, scanned) if configs else all_masks(len(channels))
    except ValueError as exc:
        raise RequestError(f"{setting('configs')}: {exc}") from exc
    drive = drive_current_a(station, current_a)
    shape = tuple(station["camera"].shape)
    measurement = cw_measurement(
        out, station.instruments, station.limits, frequencies_hz, power_dbm, shape, frames_per_point,
        sample_name(station), metadata, stepping=stepping)
    plan_extra = {"frequencies_hz": [float(f) for f in frequencies_hz], "power_dbm": power_dbm,
                  "frames_per_point": frames_per_point, "image_shape": list(shape)}
    return CoilScan(station["coils"], channels, names, masks, drive, measurement, health, plan_extra,
                    on_config=on_config)
