"""The gated counter role on real hardware: an NI-DAQmx counter input gated by the PulseBlaster.

A single-photon detector's TTL pulses go to a counter's source terminal; the PulseBlaster's gate
line (``spad_gate`` in the standard wiring) goes to a PFI terminal that both pauses the counter
while it is low and, on its falling edge, clocks the running count into the buffer. Sample i is
then the count at the end of the i-th executed gate window, so the difference of two samples is
the photons of one window. The windows of the program text are numbered in order; executions of a
window inside a LOOP are summed, as ``GatedCounter.count_gates`` specifies.

nidaqmx calls used (NI's nidaqmx-python API, imported lazily so nothing else needs it):
``nidaqmx.Task``, ``task.ci_channels.add_ci_count_edges_chan``, ``CIChannel.ci_count_edges_term``,
``task.triggers.pause_trigger.trig_type / dig_lvl_src / dig_lvl_when`` (or the channel's
``ci_count_edges_gate_enable / _term / _when``), ``task.timing.cfg_samp_clk_timing``,
``task.start``, ``task.read``, ``task.stop``, ``task.close``, ``nidaqmx.errors.DaqError``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from instrument.checks import CheckResult
from instrument.protocols import InstrumentError, InstrumentTimeout, Opcode, PulseProgram

log = logging.getLogger(__name__)

MAX_WINDOWS = 10_000_000  # executed gate windows one read may hold (the DAQmx buffer)
DAQMX_TIMEOUT = -200284  # "some or all of the samples requested have not yet been acquired"
GATINGS = ("pause_trigger", "count_gate")


class Pulser(Protocol):
    """What the counter needs from the pulse generator: the loaded program and a restart."""

    name: str
    program: PulseProgram | None

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class GateSchedule:
    """The gate windows a program opens, in execution order."""

    window_of_execution: np.ndarray
    """For each executed window, the index of its window in the program text."""
    n_windows: int
    """Distinct windows in the program text."""
    shortest_period_s: float
    """Shortest time between two gate falling edges (the sample clock's highest rate)."""


def gate_schedule(program: PulseProgram, gate_bit: int) -> GateSchedule:
    """Expand the program's loops and list the gate windows it opens, in order.

    A window is a stretch of instructions with the gate bit high; it closes on a falling edge
    (the sample clock edge). Refuses programs that never stop (a backward BRANCH) or open more
    windows than one read can hold.
    """
    insts = program.instructions
    mask = 1 << gate_bit
    static: dict[int, int] = {}  # instruction index that opens a window -> window number
    order: list[int] = []
    falls: list[float] = []
    loops: list[list[int]] = []  # [loop start index, passes left]
    gate, opened_at, t, i = False, -1, 0.0, 0
    steps = 0
    while 0 <= i < len(insts):
        steps += 1
        if steps > 50 * MAX_WINDOWS:
            raise ValueError("the pulse program does not stop; a gated count needs one that ends in STOP")
        inst = insts[i]
        high = bool(inst.flags & mask)
        if high and not gate:
            opened_at = i
        if gate and not high:
            falls.append(t)
            order.append(static.setdefault(opened_at, len(static)))
            if len(order) > MAX_WINDOWS:
                raise ValueError(f"the program opens more than {MAX_WINDOWS} gate windows; "
                                 "lower the repetitions")
        gate = high
        t += inst.duration_s * (inst.data if inst.opcode == Opcode.LONG_DELAY else 1)
        op = inst.opcode
        if op == Opcode.LOOP:
            if not loops or loops[-1][0] != i:
                loops.append([i, inst.data])
            i += 1
        elif op == Opcode.END_LOOP:
            if not loops:
                raise ValueError(f"instruction {i}: END_LOOP without LOOP")
            loops[-1][1] -= 1
            if loops[-1][1] > 0:
                i = loops[-1][0]
            else:
                loops.pop()
                i += 1
        elif op == Opcode.BRANCH:
            if inst.data <= i:
                raise ValueError("the pulse program branches back forever; a gated count needs it to STOP")
            i = inst.data
        elif op == Opcode.STOP:
            break
        else:
            i += 1
    if gate:  # the outputs hold their last state after STOP: a window left open never closes
        raise ValueError("the gate line is still high when the program stops; close the last gate window")
    if not order:
        raise ValueError("the pulse program opens no gate window on the counter's gate line")
    gaps = np.diff(falls)
    return GateSchedule(np.asarray(order), len(static), float(gaps.min()) if gaps.size else 1e-3)


def _import_nidaqmx() -> Any:
    try:
        import nidaqmx
        import nidaqmx.constants  # noqa: F401 - the submodules the driver uses
        import nidaqmx.errors  # noqa: F401
    except ImportError as exc:
        raise InstrumentError("counter", "import nidaqmx",
                              "the NI-DAQmx Python package is not installed: "
                              "pip install 'qdm-acquire[nidaq]' "
                              "(and NI-DAQmx itself from ni.com), or run with --sim") from exc
    return nidaqmx


class NiGatedCounter:
    """Photon counts per gate window from an NI-DAQmx counter input (a ``GatedCounter``).

    Args:
        name: the role (``counter``).
        pulser: the PulseBlaster driver whose loaded program opens the gates.
        counter: the DAQmx counter, e.g. ``Dev1/ctr0``.
        photon_terminal: where the detector's TTL pulses come in, e.g. ``/Dev1/PFI0``.
        gate_terminal: where the PulseBlaster's gate line comes in, e.g. ``/Dev1/PFI1``.
        gate: the pulse program channel that gates the counter.
        gating: ``pause_trigger`` (the task pauses while the gate is low) or ``count_gate`` (the
            channel's count-edges gate, on devices that have it).
        timeout_s: longest wait for the program's windows after it starts.
        nidaqmx_module: the ``nidaqmx`` package (tests pass a fake); ``None`` imports it.
    """

    shape = (1, 1)

    def __init__(self, name: str, pulser: Pulser, counter: str = "Dev1/ctr0",
                 photon_terminal: str = "/Dev1/PFI0", gate_terminal: str = "/Dev1/PFI1",
                 gate: str = "spad_gate", gating: str = "pause_trigger", timeout_s: float = 10.0,
                 nidaqmx_module: Any = None) -> None:
        if gating not in GATINGS:
            raise ValueError(f"{name}: 'gating' must be one of {', '.join(GATINGS)}, got {gating!r}")
        self.name = name
        self.pulser = pulser
        self.counter = counter
        self.photon_terminal = photon_terminal
        self.gate_terminal = gate_terminal
        self.gate = gate
        self.gating = gating
        self.timeout_s = float(timeout_s)
        self._nidaqmx = nidaqmx_module or _import_nidaqmx()
        self._task: Any = None

    @property
    def device(self) -> str:
        return self.counter.strip("/").split("/")[0]

    def schedule(self) -> GateSchedule:
        program = self.pulser.program
        if program is None:
            raise InstrumentError(self.name, "count_gates", f"{self.pulser.name} has no program loaded")
        if self.gate not in program.channels:
            raise InstrumentError(self.name, "count_gates", f"the pulse program has no '{self.gate}' line; "
                                  f"it has {', '.join(sorted(program.channels))}")
        try:
            return gate_schedule(program, program.channels[self.gate])
        except ValueError as exc:
            raise InstrumentError(self.name, "count_gates", str(exc)) from exc

    def count_gates(self) -> np.ndarray:
        """Arm the counter, run the loaded program once from its start, return (windows, 1, 1)."""
        sched = self.schedule()
        n = len(sched.window_of_execution)
        nidaqmx = self._nidaqmx
        c = nidaqmx.constants
        try:
            task = self._task = nidaqmx.Task()
            try:
                ch = task.ci_channels.add_ci_count_edges_chan(
                    self.counter, edge=c.Edge.RISING, initial_count=0,
                    count_direction=c.CountDirection.COUNT_UP)
                ch.ci_count_edges_term = self.photon_terminal
                if self.gating == "pause_trigger":
                    pause = task.triggers.pause_trigger
                    pause.trig_type = c.TriggerType.DIGITAL_LEVEL
                    pause.dig_lvl_src = self.gate_terminal
                    pause.dig_lvl_when = c.Level.LOW
                else:
                    ch.ci_count_edges_gate_enable = True
                    ch.ci_count_edges_gate_term = self.gate_terminal
                    ch.ci_count_edges_gate_when = c.Level.LOW
                task.timing.cfg_samp_clk_timing(
                    rate=min(1.0 / sched.shortest_period_s, 20e6), source=self.gate_terminal,
                    active_edge=c.Edge.FALLING, sample_mode=c.AcquisitionType.FINITE, samps_per_chan=n)
                task.start()  # armed before the first window opens
                self.pulser.stop()
                self.pulser.start()  # from the first instruction: every window lands in the buffer
                data = task.read(number_of_samples_per_channel=n, timeout=self.timeout_s)
                task.stop()
            finally:
                self._task = None
                with contextlib.suppress(Exception):
                    task.close()
        except nidaqmx.errors.DaqError as exc:
            code = getattr(exc, "error_code", None)
            if code == DAQMX_TIMEOUT:
                raise InstrumentTimeout(
                    self.name, "read", f"fewer than {n} gate windows arrived within {self.timeout_s:g} s; "
                    f"check the gate cable from {self.pulser.name} ({self.gate}) to {self.gate_terminal}"
                ) from exc
            raise InstrumentError(self.name, "DAQmx", f"{exc}") from exc
        cumulative = np.asarray(data, dtype=np.int64).reshape(-1)
        if cumulative.size != n:
            raise InstrumentError(self.name, "read", f"expected {n} samples, got {cumulative.size}")
        per_window = np.diff(cumulative, prepend=0) % (1 << 32)  # a 32-bit counter may wrap
        counts = np.bincount(sched.window_of_execution, weights=per_window, minlength=sched.n_windows)
        return counts.astype(np.float64).reshape(sched.n_windows, 1, 1)

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "NI-DAQmx gated counter", "counter": self.counter,
                "photon_terminal": self.photon_terminal, "gate_terminal": self.gate_terminal,
                "gate": self.gate, "gating": self.gating}

    def safe_state(self) -> None:
        """A passive input: stop a task left running by an interrupted read."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(Exception):
                task.close()

    def close(self) -> None:
        self.safe_state()

    def station_checks(self) -> list[CheckResult]:
        """The device is present and has the counter (cabling needs the pulser: see the gate test)."""
        try:
            system = self._nidaqmx.system.System.local()
            names = [d.name for d in system.devices]
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the other checks still run
            return [CheckResult(self.name, "identity", False, f"NI-DAQmx cannot list devices: {exc}",
                                "install NI-DAQmx and check the device in NI MAX")]
        if self.device not in names:
            return [CheckResult(self.name, "identity", False, f"no device {self.device!r}; found "
                                f"{', '.join(names) or 'none'}", "set 'counter' in the station file")]
        device = system.devices[self.device]
        counters = [p.name for p in device.ci_physical_chans]
        has = self.counter.strip("/") in counters
        return [CheckResult(self.name, "identity", True, f"{self.device}: {device.product_type}"),
                CheckResult(self.name, "counter input", has, f"{self.counter} among {', '.join(counters)}",
                            "" if has else "name an existing counter in the station file")]
