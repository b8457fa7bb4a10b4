"""A fake of the parts of NI's ``nidaqmx`` package the gated counter uses, written from NI's
nidaqmx-python documentation (Task, CIChannel, Timing, PauseTrigger, constants, DaqError).

It is strict where DAQmx is: a counter that does not exist is an error, a read of more samples than
the hardware clocked times out with DAQmx error -200284, a buffered count needs its sample clock.
The "hardware": the photons of every executed gate window (``photons``), delivered as the running
count latched at each gate falling edge, once the pulse program starts after the task was armed.
"""

from __future__ import annotations

import enum
import types

import numpy as np


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
    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


constants = types.SimpleNamespace(Edge=Edge, CountDirection=CountDirection, AcquisitionType=AcquisitionType,
                                  Level=Level, TriggerType=TriggerType)
errors = types.SimpleNamespace(DaqError=DaqError)


class Hardware:
    """The card and what reaches its terminals."""

    def __init__(self, device: str = "Dev1", counters: int = 4) -> None:
        self.device = device
        self.counters = [f"{device}/ctr{k}" for k in range(counters)]
        self.photons: list[int] = []  # photons of each executed gate window, set by the test
        self.tasks: list[Task] = []
        self.events: list[str] = []

    def program_started(self) -> None:
        """The pulse generator runs its program: every armed task sees its gate windows."""
        self.events.append("program started")
        for task in self.tasks:
            if task.running:
                task.acquired = np.cumsum(self.photons).astype(np.uint32)


class CIChannel:
    def __init__(self, counter: str) -> None:
        self.name = counter
        self.ci_count_edges_term = f"/{counter.split('/')[0]}/PFI8"  # the device's default input
        self.ci_count_edges_gate_enable = False
        self.ci_count_edges_gate_term = ""
        self.ci_count_edges_gate_when = Level.LOW


class _CIChannels(list):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def add_ci_count_edges_chan(self, counter, name_to_assign_to_channel="", edge=Edge.RISING,
                                initial_count=0, count_direction=CountDirection.COUNT_UP):
        if counter not in self.task.hw.counters:
            raise DaqError(f"Device identifier is invalid: {counter}", -200220)
        if self:
            raise DaqError("a task holds one counter input channel", -200147)
        self.task.channel_args = {"edge": edge, "initial_count": initial_count,
                                  "count_direction": count_direction}
        channel = CIChannel(counter)
        self.append(channel)
        return channel


class _PauseTrigger:
    def __init__(self) -> None:
        self.trig_type = TriggerType.NONE
        self.dig_lvl_src = ""
        self.dig_lvl_when = Level.HIGH


class _Timing:
    def __init__(self) -> None:
        self.sample_clock: dict | None = None

    def cfg_samp_clk_timing(self, rate, source="", active_edge=Edge.RISING,
                            sample_mode=AcquisitionType.FINITE, samps_per_chan=1000):
        if rate <= 0:
            raise DaqError("sample clock rate must be positive", -200077)
        self.sample_clock = {"rate": rate, "source": source, "active_edge": active_edge,
                             "sample_mode": sample_mode, "samps_per_chan": samps_per_chan}


class Task:
    hardware: Hardware | None = None  # the card this fake module talks to

    def __init__(self, new_task_name: str = "") -> None:
        assert Task.hardware is not None, "set fake_nidaqmx.Task.hardware first"
        self.hw = Task.hardware
        self.ci_channels = _CIChannels(self)
        self.timing = _Timing()
        self.triggers = types.SimpleNamespace(pause_trigger=_PauseTrigger())
        self.running = False
        self.closed = False
        self.acquired: np.ndarray | None = None
        self.hw.tasks.append(self)

    def start(self) -> None:
        if not self.ci_channels:
            raise DaqError("task contains no channels", -200478)
        self.running = True
        self.hw.events.append("task started")

    def read(self, number_of_samples_per_channel=-1, timeout=10.0):
        if not self.running:
            raise DaqError("task not running", -200473)
        if self.timing.sample_clock is None:
            raise DaqError("buffered read needs a sample clock", -200100)
        got = self.acquired if self.acquired is not None else np.zeros(0, np.uint32)
        if number_of_samples_per_channel > len(got):
            raise DaqError("Some or all of the samples requested have not yet been acquired.", -200284)
        return [int(v) for v in got[:number_of_samples_per_channel]]

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.running = False
        self.closed = True

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Device:
    def __init__(self, hw: Hardware) -> None:
        self.name = hw.device
        self.product_type = "PCIe-6321"
        self.ci_physical_chans = [types.SimpleNamespace(name=c) for c in hw.counters]


class _Devices(list):
    def __getitem__(self, key):
        if isinstance(key, str):
            for d in self:
                if d.name == key:
                    return d
            raise KeyError(key)
        return super().__getitem__(key)


class _System:
    @staticmethod
    def local():
        hw = Task.hardware
        return types.SimpleNamespace(devices=_Devices([_Device(hw)] if hw else []))


system = types.SimpleNamespace(System=_System)
