"""A simulated NI-DAQmx card for the gated counter: the ``nidaqmx`` call surface, coupled to the World.

``drivers/nidaq_counter.py`` runs unchanged against it under ``--sim``: the driver's task (count
edges, pause trigger or count gate, sample clock on the gate's falling edge) is checked against the
cabling given here, and once the simulated PulseBlaster has run its program after the task was
started, the buffer holds the running count at the end of every executed gate window: Poisson
photons of the NV ensemble (``sim.spin.SpinEnsemble``) at one detector's ``photon_rate_hz``.

Strict where the card is: an unknown counter or terminal, a read before the program ran (no
sample clock edges: DAQmx error -200284), a read with no sample clock, or an ungated count (the
simulator models gated counting only) are errors.
"""

from __future__ import annotations

import enum
import types
from typing import Any

import numpy as np

from sim.spin import SpinEnsemble, SpinParameters
from sim.spinapi import SimSpinAPI
from sim.world import World

DAQMX_TIMEOUT = -200284


class Edge(enum.Enum):
    RISING = 10280
    FALLING = 10171


class CountDirection(enum.Enum):
    COUNT_UP = 10128
    COUNT_DOWN = 10124


class AcquisitionType(enum.Enum):
    FINITE = 10178
    CONTINUOUS = 10123


class Level(enum.Enum):
    HIGH = 10192
    LOW = 10214


class TriggerType(enum.Enum):
    DIGITAL_LEVEL = 10152
    NONE = 10230


class DaqError(Exception):
    """As ``nidaqmx.errors.DaqError``: a message and a negative DAQmx error code."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


class SimNidaqmx:
    """The ``nidaqmx`` module as the counter driver uses it, for one simulated card.

    Args:
        world: the simulated microscope.
        board: the simulated PulseBlaster whose outputs are cabled to the card.
        photon_terminal: where the detector's pulses come in.
        gate_wiring: card terminal -> the PulseBlaster line cabled to it (``{"/Dev1/PFI1": "spad_gate"}``).
        photon_rate_hz: detected photons per second with every NV in ms=0 under the whole spot.
        device: the card's name; it has counters ``<device>/ctr0`` .. ``ctr3``.
        params: spin parameters; ``None`` reads the sample file.
    """

    def __init__(self, world: World, board: SimSpinAPI, photon_terminal: str = "/Dev1/PFI0",
                 gate_wiring: dict[str, str] | None = None, photon_rate_hz: float = 2e8, device: str = "Dev1",
                 params: SpinParameters | None = None) -> None:
        self.world = world
        self.board = board
        self.photon_terminal = photon_terminal
        self.gate_wiring = dict(gate_wiring or {f"/{device}/PFI1": "spad_gate"})
        self.photon_rate_hz = float(photon_rate_hz)
        self.device = device
        self.counters = [f"{device}/ctr{k}" for k in range(4)]
        self.spins = SpinEnsemble(world, params)
        self.constants = types.SimpleNamespace(Edge=Edge, CountDirection=CountDirection,
                                               AcquisitionType=AcquisitionType, Level=Level,
                                               TriggerType=TriggerType)
        self.errors = types.SimpleNamespace(DaqError=DaqError)
        card = self

        class Task(_SimTask):
            def __init__(self, new_task_name: str = "") -> None:
                super().__init__(card)

        self.Task = Task
        self.system = types.SimpleNamespace(System=types.SimpleNamespace(local=self._local))

    def _local(self) -> Any:
        chans = [types.SimpleNamespace(name=c) for c in self.counters]
        device = types.SimpleNamespace(name=self.device, product_type="PCIe-6321 (simulated)",
                                       ci_physical_chans=chans)
        return types.SimpleNamespace(devices=_Devices([device]))

    def expected_windows(self, gate: str) -> tuple[np.ndarray, np.ndarray]:
        """Expected photons of each executed gate window and its window of the program text."""
        timeline = self.board.timeline
        if timeline is None:
            raise DaqError("the pulse generator has not run a program", DAQMX_TIMEOUT)
        totals = self.spins.play(timeline, self.board.wiring, gate, latency_s=self.board.latency_s)
        bit = self.board.wiring[gate]
        order: list[np.ndarray] = []
        per_exec: list[np.ndarray] = []
        first = 0
        for run in timeline.runs:
            g = (np.asarray(run.outputs) >> bit) & 1
            opens = int(np.sum((g[1:] == 1) & (g[:-1] == 0)) + g[0]) if len(g) else 0
            index = np.arange(first, first + opens)
            order.append(np.tile(index, run.repeats))
            per_exec.append(np.tile(totals[index] / run.repeats, run.repeats))
            first += opens
        rate = self.photon_rate_hz * float(self.world.illumination().mean())
        return np.concatenate(per_exec) * rate, np.concatenate(order)


class _Devices(list):
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for d in self:
                if d.name == key:
                    return d
            raise KeyError(key)
        return super().__getitem__(key)


class _CIChannel:
    def __init__(self, counter: str, device: str) -> None:
        self.name = counter
        self.ci_count_edges_term = f"/{device}/PFI8"  # not where the detector is cabled
        self.ci_count_edges_gate_enable = False
        self.ci_count_edges_gate_term = ""
        self.ci_count_edges_gate_when = Level.LOW


class _SimTask:
    def __init__(self, card: SimNidaqmx) -> None:
        self._card = card
        self.ci_channels = _CIChannels(card)
        self.timing = _Timing()
        self.triggers = types.SimpleNamespace(pause_trigger=types.SimpleNamespace(
            trig_type=TriggerType.NONE, dig_lvl_src="", dig_lvl_when=Level.HIGH))
        self._starts_when_armed: int | None = None

    def start(self) -> None:
        if not self.ci_channels:
            raise DaqError("the task contains no channels", -200478)
        self._starts_when_armed = self._card.board.start_count  # the program must start after this

    def _gate_line(self) -> str:
        ch = self.ci_channels[0]
        pause = self.triggers.pause_trigger
        if pause.trig_type == TriggerType.DIGITAL_LEVEL and pause.dig_lvl_when == Level.LOW:
            term = pause.dig_lvl_src
        elif ch.ci_count_edges_gate_enable and ch.ci_count_edges_gate_when == Level.LOW:
            term = ch.ci_count_edges_gate_term
        else:
            raise DaqError("the simulated card models gated counting only: set a pause trigger or the "
                           "count-edges gate, paused while the gate is low", -200452)
        if term not in self._card.gate_wiring:
            raise DaqError(f"nothing is cabled to {term!r}; the gate comes in on "
                           f"{', '.join(self._card.gate_wiring)}", DAQMX_TIMEOUT)
        return self._card.gate_wiring[term]

    def read(self, number_of_samples_per_channel: int = -1, timeout: float = 10.0) -> list[int]:
        card = self._card
        clock = self.timing.sample_clock
        if self._starts_when_armed is None:
            raise DaqError("the task is not running", -200473)
        if clock is None:
            raise DaqError("a buffered count needs a sample clock", -200100)
        gate = self._gate_line()
        if clock["source"] not in card.gate_wiring or card.gate_wiring[clock["source"]] != gate \
                or clock["active_edge"] != Edge.FALLING:
            raise DaqError("no sample clock edges at the end of the gate windows", DAQMX_TIMEOUT)
        if card.board.timeline is None or card.board.start_count == self._starts_when_armed:
            raise DaqError("Some or all of the samples requested have not yet been acquired "
                           "(the pulse program did not run after the task started)", DAQMX_TIMEOUT)
        expected, _ = card.expected_windows(gate)
        if self.ci_channels[0].ci_count_edges_term != card.photon_terminal:
            expected = np.zeros_like(expected)  # counting a terminal nothing is cabled to
        n = len(expected) if number_of_samples_per_channel < 0 else int(number_of_samples_per_channel)
        if n > len(expected):
            raise DaqError("Some or all of the samples requested have not yet been acquired.", DAQMX_TIMEOUT)
        card.world.clock.advance(card.board.timeline.duration_s)
        with card.world.lock:
            photons = card.world.rng.poisson(expected[:n])
        return [int(v) for v in np.cumsum(photons) % (1 << 32)]

    def stop(self) -> None:
        self._starts_when_armed = None

    def close(self) -> None:
        self._starts_when_armed = None


class _CIChannels(list):
    def __init__(self, card: SimNidaqmx) -> None:
        super().__init__()
        self._card = card

    def add_ci_count_edges_chan(self, counter: str, name_to_assign_to_channel: str = "",
                                edge: Edge = Edge.RISING, initial_count: int = 0,
                                count_direction: CountDirection = CountDirection.COUNT_UP) -> _CIChannel:
        if counter not in self._card.counters:
            raise DaqError(f"Device identifier is invalid: {counter}", -200220)
        if self:
            raise DaqError("a task holds one counter input channel", -200147)
        channel = _CIChannel(counter, self._card.device)
        self.append(channel)
        return channel


class _Timing:
    def __init__(self) -> None:
        self.sample_clock: dict[str, Any] | None = None

    def cfg_samp_clk_timing(self, rate: float, source: str = "", active_edge: Edge = Edge.RISING,
                            sample_mode: AcquisitionType = AcquisitionType.FINITE,
                            samps_per_chan: int = 1000) -> None:
        if not rate > 0:
            raise DaqError("the sample clock rate must be positive", -200077)
        self.sample_clock = {"rate": rate, "source": source, "active_edge": active_edge,
                             "sample_mode": sample_mode, "samps_per_chan": samps_per_chan}
