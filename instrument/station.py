"""Composition root: builds a station of real or simulated instruments from a YAML station file.

This is the only module that imports ``drivers`` and ``sim``. With ``simulated=True`` every
instrument keeps its real driver, and the driver talks to a simulator of its device (SCPI over a
loopback socket, the vendor library's call surface) that is coupled to one shared ``World``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from instrument.protocols import Instrument, SafetyLimits
from instrument.sample import SampleDescription, SampleDescriptionError, read_sample_section

log = logging.getLogger(__name__)

DEFAULT_STATION = "sim.yaml"
MAX_IMAGE_SIDE = 4096  # simulated images: 4096x4096 float64 is 128 MiB a frame, already a lot


class StationFileError(ValueError):
    """The station file is missing, unreadable or describes something that cannot be built."""


@dataclass
class Station:
    """The instruments of one microscope, by role, with the lab's safety limits."""

    name: str
    simulated: bool
    limits: SafetyLimits
    instruments: dict[str, Instrument]
    world: Any = None
    """The simulator's World (simulated stations only). Only this module and the simulators read it;
    the front ends read ``sample``."""
    source: str = ""
    sample: SampleDescription | None = None
    """What the front ends know about the sample (from the station file, or the World in simulation)."""
    realtime: bool = True
    """Time runs at the wall clock's pace (a real station, or ``--realtime``); False: a virtual clock."""
    sim_parts: dict[str, Any] = field(default_factory=dict)
    """Simulators by role, for simulated instruments that need each other (a stimulus is clocked
    by the camera's frames)."""
    station_check: dict[str, Any] | None = None
    """The last ``acquire station check`` report of this station, kept in its snapshot."""
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.sample is None:
            self.sample = SampleDescription(self.name, simulated=self.simulated)

    def __getitem__(self, role: str) -> Instrument:
        try:
            return self.instruments[role]
        except KeyError:
            raise StationFileError(
                f"station {self.name!r} has no instrument with role {role!r}; "
                f"add it under 'instruments:' in {self.source}"
            ) from None

    def now(self) -> float:
        """Seconds on the station's clock: the simulation's own clock in simulation (virtual time runs
        as the simulated instruments take it), the wall clock otherwise. Runtime limits use it."""
        if self.world is not None:
            return float(self.world.clock.now())
        return time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        """Settings of every instrument, for the run's metadata."""
        snap: dict[str, Any] = {"name": self.name, "simulated": self.simulated,
                                "limits": vars(self.limits), "source": self.source, "instruments": {}}
        for role, inst in self.instruments.items():
            take = getattr(inst, "snapshot", None)
            try:
                snap["instruments"][role] = take(update=False) if _is_qcodes(inst) else (
                    take() if take else {"name": inst.name})
            except Exception as exc:  # noqa: BLE001 - a snapshot failure must not stop a run
                snap["instruments"][role] = {"name": inst.name, "snapshot_error": str(exc)}
        if self.station_check is not None:
            snap["station_check"] = self.station_check
        return snap

    def close(self) -> None:
        """Make everything safe, close the drivers, then stop the simulators; failures are logged."""
        for role, inst in self.instruments.items():
            try:
                inst.close()  # every driver's close() makes its hardware safe first
            except Exception as exc:  # noqa: BLE001 - the other instruments must still be closed
                log.error("closing %s (%s) failed; it may not be safe: %s", role, inst.name, exc)
        self.instruments.clear()
        for stop in reversed(self._cleanup):
            with contextlib.suppress(Exception):
                stop()
        self._cleanup.clear()

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_qcodes(inst: object) -> bool:
    return any(c.__module__.startswith("qcodes") for c in type(inst).__mro__)


def bundled_station(name: str) -> str:
    """Path of a station file shipped with the package (``sim.yaml``, ``spad.yaml``)."""
    return str(resources.files("instrument.stations").joinpath(name))


def read_station_file(path: str | Path | None) -> tuple[dict[str, Any], str]:
    """Parse and validate a station file; ``None`` reads the bundled default station."""
    if path is None:
        text = resources.files("instrument.stations").joinpath(DEFAULT_STATION).read_text()
        source = f"instrument/stations/{DEFAULT_STATION}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise StationFileError(
                f"cannot read station file {path}: {exc.strerror}; check the --station path"
            ) from exc
        except UnicodeDecodeError as exc:
            raise StationFileError(
                f"station file {path} is not text (byte {exc.start} is not UTF-8): a station file is "
                "YAML; check the --station path"
            ) from exc
        source = str(path)
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise StationFileError(f"station file {source} is not valid YAML{where}: {problem}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("instruments"), dict):
        raise StationFileError(
            f"station file {source} needs an 'instruments:' mapping of role -> {{driver: ...}}"
        )
    for role, entry in config["instruments"].items():
        if not isinstance(entry, dict) or entry.get("driver") not in BUILDERS:
            raise StationFileError(
                f"station file {source}: instrument {role!r} needs 'driver' set to one of "
                f"{', '.join(sorted(BUILDERS))}"
            )
    return config, source


def load_limits(config: dict[str, Any], source: str) -> SafetyLimits:
    raw = config.get("limits") or {}
    known = set(SafetyLimits.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise StationFileError(
            f"station file {source}: unknown limit(s) {', '.join(sorted(unknown))}; "
            f"known limits are {', '.join(sorted(known))}"
        )
    try:
        limits = SafetyLimits(**{k: float(v) for k, v in raw.items()})
    except (TypeError, ValueError) as exc:
        raise StationFileError(f"station file {source}: limits must be numbers ({exc})") from exc
    for name in ("coil_current_max_a", "coil_ramp_rate_a_per_s", "pulse_min_s"):
        value = getattr(limits, name)
        if not (math.isfinite(value) and value > 0):  # a negative ceiling would refuse nothing sensibly
            raise StationFileError(f"station file {source}: limits.{name} must be a positive number, "
                                   f"got {value:g}")
    if not math.isfinite(limits.mw_power_max_dbm):
        raise StationFileError(f"station file {source}: limits.mw_power_max_dbm must be a finite number")
    return limits


def _check_limits_fit_sources(station: Station) -> None:
    """A lab MW ceiling above what a source can give is a station-file mistake: refuse it now, not when
    a run that already opened asks the source for a power it refuses."""
    import sys

    for role, inst in station.instruments.items():
        # The drivers' device range: the VISA sources' _device_power_max_dbm, else POWER_RANGE_DBM
        device_max = getattr(inst, "_device_power_max_dbm", None)
        if device_max is None and hasattr(inst, "constraints"):
            device_max = (getattr(sys.modules.get(type(inst).__module__), "POWER_RANGE_DBM", None)
                          or (None, None))[1]
        if isinstance(device_max, (int, float)) and station.limits.mw_power_max_dbm > device_max:
            raise StationFileError(
                f"station file {station.source}: limits.mw_power_max_dbm = "
                f"{station.limits.mw_power_max_dbm:g} dBm is above the {role} source's maximum of "
                f"{device_max:g} dBm; set it to at most {device_max:g}")


def check_image_shape(shape: Any, source: str) -> tuple[int, int]:
    """A simulated image shape (``image_shape``): two integers of 2 to 4096 pixels (tests use tiny ones)."""
    try:
        rows, cols = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise StationFileError(f"station file {source}: image_shape must be [rows, cols], got {shape!r}") \
            from None
    if not (2 <= rows <= MAX_IMAGE_SIDE and 2 <= cols <= MAX_IMAGE_SIDE):
        raise StationFileError(f"station file {source}: image_shape must be 2 to {MAX_IMAGE_SIDE} pixels a "
                               f"side, got {rows}x{cols}")
    return rows, cols


def read_limits(path: str | Path | None = None) -> SafetyLimits:
    """The safety limits of a station file, without connecting to anything."""
    config, source = read_station_file(path)
    return load_limits(config, source)


def build_station(
    path: str | Path | None = None,
    *,
    simulated: bool = False,
    realtime: bool = False,
    image_shape: tuple[int, int] | None = None,
    seed: int | None = None,
) -> Station:
    """Build the station described by ``path`` (default: the bundled seed-000 station).

    Args:
        simulated: back every instrument with the simulated microscope.
        realtime: pace the simulation clock to the wall clock.
        image_shape: override the simulated image shape (tests use small images).
        seed: override the simulation's random seed.
    """
    config, source = read_station_file(path)
    limits = load_limits(config, source)
    station = Station(config.get("name", source), simulated, limits, {}, source=source)
    if simulated:
        station.world = _build_world(config.get("sim") or {}, source, realtime, image_shape, seed)
        station.sample = _describe_world(station.world)
        station.realtime = realtime
    else:
        try:
            station.sample = read_sample_section(config.get("sample"), station.name, source)
        except SampleDescriptionError as exc:
            raise StationFileError(str(exc)) from exc
    try:
        for role, entry in config["instruments"].items():
            builder = BUILDERS[entry["driver"]]
            station.instruments[role] = builder(role, entry, station)
        if simulated:
            _cable_sim_triggers(station, config, source)
        _check_limits_fit_sources(station)
    except Exception:
        station.close()
        raise
    return station


def _build_world(sim: dict[str, Any], source: str, realtime: bool,
                 image_shape: tuple[int, int] | None, seed: int | None) -> Any:
    from sim.clock import VirtualClock
    from sim.world import Sample, SampleFileError, World

    try:
        sample = Sample.load(sim.get("sample"))
    except SampleFileError as exc:
        raise StationFileError(f"station file {source}: {exc}") from exc
    shape = check_image_shape(image_shape or sim.get("image_shape") or sample.sensor_shape, source)
    world = World(sample, shape=shape, clock=VirtualClock(realtime=realtime),
                  seed=int(sim.get("seed", 0) if seed is None else seed))
    world.coil_unit_fields_t()  # computed once now, not inside a simulator's first time-critical call
    return world


def _describe_world(world: Any) -> SampleDescription:
    """The simulated sample as the front ends see it: names and reference values, not the simulator."""
    from instrument.physics.nv import HYPERFINE_OFFSETS_HZ

    sample = world.sample
    return SampleDescription(
        sample.name, tuple(c.name for c in sample.coils), float(sample.drive_current_a),
        float(world.resonance_estimate_hz()),
        tuple(float(v) for v in HYPERFINE_OFFSETS_HZ[sample.isotope]), simulated=True)


def simulated_field_maps(station: Station, seed: int = 0) -> Any:
    """Noisy B_NV maps of the simulated sample for reconstruction demos (``sim.field_maps``).

    The maps are the World's field for a drive vector over the live coils, plus white noise, a slow
    background drift and hot pixels: what a measured map looks like, without running the sweeps.
    """
    if station.world is None:
        raise StationFileError("simulated field maps need a simulated station; run with --sim")
    from sim.field_maps import NoisyMicroscope

    return NoisyMicroscope(station.world, seed=seed)


def simulated_measurement_chain(station: Station, seed: int = 0, pixels: int | None = None) -> Any:
    """Seed-000 maps measured through the simulated lock-in ODMR chain (``sim.lockin_chain``).

    Unlike ``simulated_field_maps`` these are not the dictionary's own model: per-pixel ODMR fits on a
    perturbed sample (true standoffs, return leads, coil heating), the dictionary measured on another
    day than the maps. ``pixels`` square pixels cover the paper's 150 um field of view (None: as many
    as the station's image is wide, at most the camera's 129; fewer are binned).
    """
    if station.world is None:
        raise StationFileError("simulated field maps need a simulated station; run with --sim")
    from sim.lockin_chain import ChainConfig, LockInQDM, TwoDayProtocol

    sample = station.world.sample
    camera_pixel_m = sample.fov_width_m / sample.sensor_shape[1]
    full = ChainConfig().roi_pixels
    pixels = min(int(pixels or min(station.world.shape)), full)
    config = ChainConfig(roi_pixels=pixels, pixel_m=camera_pixel_m * full / pixels)
    return TwoDayProtocol(LockInQDM(sample, config, seed=seed))


TRIGGER_LINE = "mw_trigger"
"""The pulse generator output that steps a MW source's list (its trigger input)."""


def _cable_sim_triggers(station: Station, config: dict[str, Any], source: str) -> None:
    """Lay the simulated trigger cables: pulse generator outputs into the sources and the camera.

    A MW source's trigger input takes the ``mw_trigger`` line of the pulse generator named by its
    ``trigger_from`` entry (default ``pulser``; ``null``: no cable); the camera's external trigger
    takes the ``camera_start`` line. Simulated time moves with the camera's frames, so nothing is
    cabled without a simulated camera.
    """
    from sim.helicam import SimLibHeLIC
    from sim.spinapi import SimSpinAPI
    from sim.trigger_link import PulseTriggerLink

    cameras = [part for part in station.sim_parts.values() if isinstance(part, SimLibHeLIC)]
    links: dict[str, PulseTriggerLink] = {}

    def link(pulser_role: str) -> PulseTriggerLink | None:
        board = getattr(station.instruments.get(pulser_role), "library", None)
        if not isinstance(board, SimSpinAPI) or not cameras:
            return None
        if pulser_role not in links:
            links[pulser_role] = PulseTriggerLink(board, cameras[0])
        return links[pulser_role]

    for role, entry in config["instruments"].items():
        if entry["driver"] == "pulseblaster":
            link(role)  # the camera_start cable, even with no source cabled
    for role, entry in config["instruments"].items():
        trigger_input = getattr(station.sim_parts.get(role), "trigger", None)
        pulser_role = entry.get("trigger_from", "pulser")
        if trigger_input is None or pulser_role is None:
            continue
        cable = link(str(pulser_role))
        if cable is None:
            if "trigger_from" in entry:
                raise StationFileError(
                    f"station file {source}: instrument {role!r} takes its trigger from {pulser_role!r}, "
                    "which is not a simulated pulseblaster next to a simulated camera"
                )
            continue
        cable.connect(TRIGGER_LINE, trigger_input)


# ---- builders: one per driver name ----------------------------------------------------------------


def _need(entry: dict[str, Any], key: str, role: str) -> Any:
    if key not in entry:
        raise StationFileError(f"instrument {role!r} ({entry['driver']}) needs '{key}' in the station file")
    return entry[key]


def _serve(station: Station, role: str, server: Any) -> Any:
    """Start a simulated device's server (stopped when the station closes); returns its address."""
    address = server.start()
    station._cleanup.append(server.stop)
    station.sim_parts[role] = server
    return address


def _sg384(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    from drivers.sg384 import SG384Source

    if station.simulated:
        from sim.sg384 import SimSG384

        address = _serve(station, role, SimSG384(station.world, model=entry.get("model", "SG384")))
    else:
        address = _need(entry, "address", role)
    return SG384Source(role, address, station.limits)


def _rohde_schwarz(model: str) -> Callable[[str, dict[str, Any], Station], Instrument]:
    def build(role: str, entry: dict[str, Any], station: Station) -> Instrument:
        from drivers.rohde_schwarz import RohdeSchwarzSource

        if station.simulated:
            from sim.rohde_schwarz import SimRohdeSchwarz

            server = SimRohdeSchwarz(station.world, model, entry.get("frequency_option", "B106"))
            address = _serve(station, role, server)
        else:
            address = _need(entry, "address", role)
        return RohdeSchwarzSource(role, address, station.limits,
                                  frequency_max_hz=entry.get("frequency_max_hz"))

    return build


def _synthhd(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    from drivers.synthhd import SynthHDSource

    channel = int(entry.get("channel", 0))
    if station.simulated:
        from sim.synthhd import SimSynthHD

        device = SimSynthHD(station.world, str(entry.get("hardware_version", "2")), world_channel=channel)
        port = _serve(station, role, device)
    else:
        port = _need(entry, "port", role)
    return SynthHDSource(role, port, station.limits, channel=channel)


def _pulseblaster(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    from drivers.pulseblaster import PulseBlaster

    library = None
    if station.simulated:
        from sim.spinapi import SimSpinAPI

        library = SimSpinAPI(station.world)
    return PulseBlaster(role, library=library, board=int(entry.get("board", 0)), limits=station.limits)


def _helicam(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    from drivers.helicam import HeliCamC3

    library = None
    if station.simulated:
        from sim.helicam import SimLibHeLIC

        library = SimLibHeLIC(station.world)
        station.sim_parts[role] = library
        # The simulated camera images the World's field of view (34x onto the sensor: 349 um).
        return HeliCamC3(role, library=library, clock=station.world.clock.now,
                         field_of_view_m=station.world.sample.fov_width_m)
    return HeliCamC3(role)


def _basler(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    """A Basler camera; in simulation pylon's own emulator, served the World's PL images."""
    from drivers.basler import BaslerCamera

    options: dict[str, Any] = {"pixel_format": entry.get("pixel_format")}
    if not station.simulated:
        shape = entry.get("shape")
        camera = BaslerCamera(role, serial=entry.get("serial"), device_class=entry.get("device_class"),
                              shape=tuple(shape) if shape else None, **options)
        if camera.emulated:  # PYLON_CAMEMU is set in this environment and no serial was given
            camera.close()
            raise StationFileError(
                f"instrument {role!r}: pylon offered its camera emulator, not a camera; set the camera's "
                "serial (or device_class: BaslerUsb / BaslerGigE) in the station file, or run with --sim")
        return camera
    from instrument.protocols import InstrumentError
    from sim.basler_images import EmulatorImageFeed, emulator_serial, enable_emulator

    enable_emulator(1)
    feed = EmulatorImageFeed(station.world)
    station._cleanup.append(feed.close)
    station.sim_parts[role] = feed
    before_trigger: Any = feed
    link = None
    pulser = station.instruments.get(entry.get("pulser", "pulser"))
    board = getattr(pulser, "library", None)
    if board is not None and hasattr(board, "timeline"):  # the simulated PulseBlaster is listed first
        from sim.camera_line import CAMERA_LINE, CameraLineLink

        # The pulser's camera line cabled to Line1: frames come only from its pulses.
        link = CameraLineLink(station.world, board, feed, entry.get("trigger_line", CAMERA_LINE))
        station.sim_parts[f"{role}_line"] = link
        link.renderer = _pulsed_renderer(station, board, link.line, entry.get("spin_block"))
        before_trigger = link.render
    try:
        camera = BaslerCamera(role, serial=emulator_serial(0), device_class="BaslerCamEmu",
                              shape=station.world.shape, before_trigger=before_trigger,
                              clock=station.world.clock.now, emulate_hardware_trigger=True,
                              line_source=link, **options)
    except InstrumentError as exc:
        raise StationFileError(
            f"instrument {role!r}: pylon's camera emulator is not available ({exc}); pylon reads "
            "PYLON_CAMEMU when it first starts in a process, so set PYLON_CAMEMU=1 before starting"
        ) from exc
    camera.serve_image_files(str(feed.folder))
    return camera


def _andor_sdk3(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    """An Andor sCMOS camera on Andor SDK3 (real hardware only; the simulated camera is Basler's)."""
    from drivers.andor_sdk3 import AndorSDK3Camera

    if station.simulated:
        raise StationFileError(
            f"instrument {role!r}: 'andor_sdk3' has no simulator; use driver 'basler' with --sim "
            "(pylon's emulator), the atcore fake is for the driver's tests")
    shape = entry.get("shape")
    return AndorSDK3Camera(role, serial=entry.get("serial"), camera_index=int(entry.get("index", 0)),
                           shape=tuple(shape) if shape else None, pixel_encoding=entry.get("pixel_encoding"),
                           gain_mode=entry.get("gain_mode"), cooling=bool(entry.get("cooling", True)))


def _pulsed_renderer(station: Station, board: Any, line: str, block: Any = None) -> Any:
    """Frames of pulsed programs with per-cell spin dynamics (CW windows keep the CW renderer).

    The sample's spin parameters vary across the field of view in cells of ``block`` pixels (the
    camera entry's ``spin_block``, simulation only); by default the smallest block that gives at
    most 32 x 32 cells (the spin simulation's cost goes with the cells).
    """
    from sim.pulsed_camera import SpinExposureRenderer, truth_for
    from sim.spin import SpinModelError, SpinParameters

    rows, cols = station.world.shape
    if block is None:
        block = next(b for b in range(1, max(rows, cols) + 1)
                     if (rows % b == 0 and cols % b == 0 and rows // b <= 32 and cols // b <= 32)
                     or b == max(rows, cols))
    elif not isinstance(block, int) or isinstance(block, bool):
        raise StationFileError(f"station file {station.source}: spin_block must be a whole number of "
                               f"pixels, got {block!r}")
    try:
        params = SpinParameters.from_sample_source(station.world.sample.source)
        truth = truth_for(station.world, params, block)
    except SpinModelError as exc:
        raise StationFileError(f"station file {station.source}: {exc}") from exc
    renderer = SpinExposureRenderer(station.world, board, truth, params, line=line)
    station.sim_parts["spin_truth"] = renderer
    return renderer


def _spad_bridge(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    from drivers.spad_bridge import SpadArray

    frame_period_s = float(entry.get("frame_period_s", 5e-3))
    if station.simulated:
        from sim.spad_bridge import SimSpadBridge

        port = _serve(station, role, SimSpadBridge(station.world, frame_period_s=frame_period_s))
    else:
        port = _need(entry, "port", role)
    return SpadArray(role, port, int(entry.get("baudrate", 2_000_000)), entry.get("byteorder", "big"),
                     frame_period_s=frame_period_s)


def _require_sim(station: Station, role: str, driver: str, lab_instead: str = "") -> None:
    """Refuse a simulation-only driver on a real station, naming what the lab would use instead."""
    if not station.simulated:
        instead = f" or name {lab_instead} in the station file" if lab_instead else ""
        raise StationFileError(
            f"instrument {role!r}: driver {driver!r} exists only in simulation; run with --sim{instead}")


def _sim_counter(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    _require_sim(station, role, "sim_counter")
    from sim.spin import SimPhotonCounter

    pulser = entry.get("pulser", "pulser")
    if pulser not in station.instruments:
        raise StationFileError(f"instrument {role!r}: list the pulse generator {pulser!r} before it")
    board = station.instruments[pulser].library
    return SimPhotonCounter(role, station.world, board, shape=tuple(entry.get("shape", (16, 16))),
                            photon_rate_hz=float(entry.get("photon_rate_hz", 5e6)),
                            gate=entry.get("gate", "spad_gate"))


def _sim_coils(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    _require_sim(station, role, "sim_coils", "the lab's coil current driver")
    from sim.coil_source import SimCoilSource

    return SimCoilSource(station.world, station.limits, name=role)


def _sim_stimulus(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    _require_sim(station, role, "sim_stimulus", "the lab's coil waveform generator")
    from sim.helicam import SimLibHeLIC
    from sim.stimulus import SimCoilStimulus

    camera_role = entry.get("camera", "camera")
    library = station.sim_parts.get(camera_role)
    if not isinstance(library, SimLibHeLIC):
        raise StationFileError(
            f"instrument {role!r}: the stimulus is clocked by the simulated camera {camera_role!r}; "
            "list that camera (driver helicam_c3) before the stimulus in the station file"
        )
    return SimCoilStimulus(station.world, library, station.limits, name=role)


SIM_TABLE_DEPTH = 1 << 16
"""Waveform segments per channel of the simulated coil board: the whole table fits, so simulated
runs never depend on how fast the streaming thread is (the firmware holds 16; tests stream)."""


def _coil_board(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    from drivers.coil_board import CoilBoard, open_serial

    options: dict[str, Any] = {"ramp_step_a": float(entry.get("ramp_step_a", 50e-6)),
                               "watchdog_s": float(entry.get("watchdog_s", 1.0))}
    if station.simulated:
        from sim.coil_board import SimCoilBoard

        port = _serve(station, role, SimCoilBoard(station.world, depth=SIM_TABLE_DEPTH))
        options.update(sleep=station.world.clock.advance, watchdog_s=10.0,  # a loaded CI box stalls
                       channel_names=[c.name for c in station.world.sample.coils])
    else:
        port = _need(entry, "port", role)
    if "channel_names" in entry:
        options["channel_names"] = entry["channel_names"]
    try:
        return CoilBoard(role, open_serial(port), station.limits, ceilings_a=entry.get("ceilings_a"),
                         **options)
    except (TypeError, ValueError) as exc:
        raise StationFileError(f"instrument {role!r} (coil_board): {exc}") from exc


def _coil_board_stimulus(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    """The stimulus played by the coil role's board, clocked by the camera's frame output."""
    from drivers.coil_board import CoilBoard
    from drivers.coil_stimulus import CoilBoardStimulus

    board_role, camera_role = entry.get("board", "coils"), entry.get("camera", "camera")
    board = station.instruments.get(board_role)
    camera = station.instruments.get(camera_role)
    if not isinstance(board, CoilBoard) or camera is None:
        raise StationFileError(
            f"instrument {role!r}: list the coil board {board_role!r} (driver coil_board) and the camera "
            f"{camera_role!r} before the stimulus in {station.source}")

    def frame_rate_hz() -> float:
        settings = getattr(camera, "settings", None)
        if settings is None:
            raise ValueError(f"{role}: the camera {camera_role!r} is not configured; its frame rate "
                             "clocks the coil tables")
        return float(settings.frame_rate_hz)

    if station.simulated:
        sim_board, library = station.sim_parts.get(board_role), station.sim_parts.get(camera_role)
        if sim_board is None or library is None:
            raise StationFileError(f"instrument {role!r}: the simulated board and camera must come first")
        sim_board.clock_source = library  # the frame output cable
    return CoilBoardStimulus(role, board, frame_rate_hz)


def _nidaq_counter(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    """An NI-DAQmx counter gated by the pulse generator; with --sim the same driver on a simulated card."""
    pulser = entry.get("pulser", "pulser")
    if pulser not in station.instruments:
        raise StationFileError(f"instrument {role!r}: list the pulse generator {pulser!r} before it")
    gate = entry.get("gate", "spad_gate")
    from drivers.nidaq_counter import NiGatedCounter

    photon_terminal = entry.get("photon_terminal", "/Dev1/PFI0")
    gate_terminal = entry.get("gate_terminal", "/Dev1/PFI1")
    counter = entry.get("counter", "Dev1/ctr0")
    library = None
    if station.simulated:
        from sim.nidaqmx import SimNidaqmx

        library = SimNidaqmx(station.world, station.instruments[pulser].library, photon_terminal,
                             {gate_terminal: gate}, float(entry.get("sim_photon_rate_hz", 2e8)),
                             device=counter.strip("/").split("/")[0])
    try:
        driver = NiGatedCounter(
            role, station.instruments[pulser], counter=counter, photon_terminal=photon_terminal,
            gate_terminal=gate_terminal, gate=gate, gating=entry.get("gating", "pause_trigger"),
            timeout_s=float(entry.get("timeout_s", 10.0)), nidaqmx_module=library)
    except ValueError as exc:
        raise StationFileError(f"instrument {role!r} (nidaq_counter): {exc}") from exc
    if library is not None:
        driver.spins = library.spins  # type: ignore[attr-defined]  # the report shows the simulated truth
    return driver


def _keithley2450_coil(role: str, entry: dict[str, Any], station: Station) -> Instrument:
    from qcodes.instrument_drivers.Keithley import Keithley2450

    from drivers.keithley_coil import KeithleyCoilChannel

    if station.simulated:
        raise StationFileError(
            f"instrument {role!r}: 'keithley2450_coil' has no simulator; use driver 'coil_board' with --sim"
        )
    smu = Keithley2450(f"{role}_smu", _need(entry, "address", role))
    try:
        return KeithleyCoilChannel(role, smu, station.limits, ceiling_a=entry.get("ceiling_a"),
                                   voltage_limit_v=float(entry.get("voltage_limit_v", 2.0)))
    except BaseException:
        smu.close()  # unregisters the name, so a corrected station can be built in the same process
        raise


BUILDERS: dict[str, Callable[[str, dict[str, Any], Station], Instrument]] = {
    "sg384": _sg384,
    "smb100a": _rohde_schwarz("SMB100A"),
    "sgs100a": _rohde_schwarz("SGS100A"),
    "synthhd": _synthhd,
    "pulseblaster": _pulseblaster,
    "helicam_c3": _helicam,
    "basler": _basler,
    "andor_sdk3": _andor_sdk3,
    "spad_bridge": _spad_bridge,
    "sim_counter": _sim_counter,
    "sim_coils": _sim_coils,
    "sim_stimulus": _sim_stimulus,
    "coil_board": _coil_board,
    "coil_board_stimulus": _coil_board_stimulus,
    "nidaq_counter": _nidaq_counter,
    "keithley2450_coil": _keithley2450_coil,
}
