"""Simulated SpinCore spinapi library for a PulseBlaster ESR-PRO (500 MHz, 4096 instructions).

``SimSpinAPI`` offers the call surface of the real shared library (same function names, argument
order and units, integer return codes, ``pb_get_error`` text), so ``drivers.pulseblaster`` runs on
it unchanged. On ``pb_start`` the loaded program is executed into a :class:`Timeline` of output
levels with clock-cycle resolution; the timeline drives the shared :class:`~sim.world.World`
(laser and MW gating) and stays available for the pulsed-measurement physics.

Board facts reproduced (``docs/hardware/pulseblaster.md``; SpinCore ESR-PRO manual and spinapi.h),
strictly:

* P1 24-bit output/control word: bits 0-20 outputs, bits 21-23 the short-pulse field (7 = outputs
  follow the word for the whole instruction, 1-6 = high for that many clock periods then low --
  6 is SIX_PERIOD, defined in spinapi.h though not in the manual --, 0 = all low).
* P2 20-bit data field; opcodes 0-8; LOOP count >= 1; LONG_DELAY multiplier >= 2; instructions of
  at least 5 and at most 2**32 - 1 clock cycles (``instrument.protocols.ESR_PRO_500``); lengths in
  ns, quantised to the clock stated with ``pb_core_clock``.
* P3 ``pb_read_status``: bits 0-4 stopped, reset, running, waiting, scanning; bits 5-31 reserved
  and not guaranteed 0 (``reserved_status_bits`` sets some, as a board may).
* P4 ``pb_stop``/``pb_reset``: "TTL outputs will either remain in the same state ... or return to
  ground" (spinapi.h). By default the sim returns them to ground; ``pessimistic_stop=True`` takes
  the other branch (outputs hold, and a lone STOP word drives nothing), so only a running program
  with all flags off proves the outputs low.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from instrument.protocols import ESR_PRO_500, Opcode
from sim.world import World

OK = 0
ERR_GENERIC = -1
ERR_TOO_SHORT = -91

PULSE_PROGRAM = 0
"""``pb_start_programming`` device code for the pulse program memory."""

OUTPUT_MASK = 0x1FFFFF
SHORT_PULSE_SHIFT = 21
SHORT_PULSE_ON = 7
MIN_CYCLES = ESR_PRO_500.min_cycles
MAX_CYCLES = ESR_PRO_500.max_cycles
MAX_DATA = ESR_PRO_500.max_data
MAX_FLAGS = 2**24 - 1

STATUS_STOPPED = 0x1
STATUS_RESET = 0x2
STATUS_RUNNING = 0x4
STATUS_WAITING = 0x8
STATUS_SCANNING = 0x10

SIM_WIRING = {"laser": 0, "mw_switch": 1, "camera_trigger": 2, "spad_gate": 3, "mw_trigger": 4,
              "camera_start": 5}
"""Which output bit of the simulated board drives which part of the simulated microscope."""

MAX_TIMELINE_SEGMENTS = 2_000_000
SQUARE_DUTY_TOLERANCE = 0.05


class SimTimelineError(RuntimeError):
    """The loaded program cannot be executed (bad jump, unmatched loop, too long to expand)."""


@dataclass(frozen=True)
class Run:
    """A stretch of the timeline: ``segments`` (relative start cycle, outputs) repeated ``repeats`` times.

    Attributes:
        start_cycles: absolute start of the first repetition.
        rel_cycles: start of each segment relative to the repetition start (first is 0).
        outputs: output bits (0-20) during each segment.
        length_cycles: length of one repetition.
        repeats: number of back-to-back repetitions.
    """

    start_cycles: int
    rel_cycles: np.ndarray
    outputs: np.ndarray
    length_cycles: int
    repeats: int = 1

    @property
    def end_cycles(self) -> int:
        return self.start_cycles + self.length_cycles * self.repeats


@dataclass
class Timeline:
    """What the board's outputs did, in clock cycles of the board's real oscillator.

    Attributes:
        clock_hz: the board oscillator; one cycle lasts ``1 / clock_hz``.
        runs: consecutive runs covering ``[0, end_cycles)``.
        end_cycles: where execution stopped (STOP, WAIT, or end of the first period).
        period_start_cycles: for a program that loops forever, the timeline from here to
            ``end_cycles`` repeats forever; ``None`` for a program that ends.
        final_outputs: the outputs held after the program ended (STOP instruction's word).
        waiting: execution halted at a WAIT instruction.
    """

    clock_hz: float
    runs: list[Run] = field(default_factory=list)
    end_cycles: int = 0
    period_start_cycles: int | None = None
    final_outputs: int = 0
    waiting: bool = False

    @property
    def periodic(self) -> bool:
        return self.period_start_cycles is not None

    @property
    def duration_s(self) -> float:
        """Length of the executed program (one period for a program that loops forever)."""
        return self.end_cycles / self.clock_hz

    @property
    def period_s(self) -> float | None:
        if self.period_start_cycles is None:
            return None
        return (self.end_cycles - self.period_start_cycles) / self.clock_hz

    def segments(self, max_segments: int = MAX_TIMELINE_SEGMENTS) -> tuple[np.ndarray, np.ndarray]:
        """All segments expanded: (start cycles, outputs), consecutive equal outputs merged."""
        total = sum(len(r.rel_cycles) * r.repeats for r in self.runs)
        if total > max_segments:
            raise SimTimelineError(
                f"timeline has {total} segments, more than the {max_segments} that can be expanded; "
                "use Run objects (timeline.runs) for long repeated programs"
            )
        starts, outs = [], []
        for r in self.runs:
            offsets = r.start_cycles + r.length_cycles * np.arange(r.repeats, dtype=np.int64)
            starts.append((offsets[:, None] + r.rel_cycles[None, :]).ravel())
            outs.append(np.tile(r.outputs, r.repeats))
        if not starts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        s, o = np.concatenate(starts), np.concatenate(outs)
        keep = np.ones(len(o), bool)
        keep[1:] = o[1:] != o[:-1]
        return s[keep], o[keep]

    def edges(self, bit: int) -> list[tuple[int, bool]]:
        """Level changes of one output bit as (cycle, new level), starting from low at cycle 0."""
        starts, outs = self.segments()
        level = (outs >> bit) & 1
        prev = np.concatenate([[0], level[:-1]])
        idx = np.nonzero(level != prev)[0]
        result = [(int(starts[i]), bool(level[i])) for i in idx]
        final = bool((self.final_outputs >> bit) & 1)
        current = bool(level[-1]) if len(level) else False
        if not self.periodic and final != current:
            result.append((self.end_cycles, final))
        return result

    def edges_ns(self, bit: int) -> list[tuple[float, bool]]:
        """``edges`` in nanoseconds."""
        return [(c * 1e9 / self.clock_hz, lvl) for c, lvl in self.edges(bit)]

    def high_intervals_s(self, bit: int) -> np.ndarray:
        """(n, 2) array of [start, end) in seconds where the bit was high within the timeline."""
        e = self.edges(bit)
        out, start = [], None
        for c, lvl in e:
            if lvl and start is None:
                start = c
            elif not lvl and start is not None:
                out.append((start, c))
                start = None
        if start is not None:
            out.append((start, self.end_cycles))
        return np.asarray(out, float).reshape(-1, 2) / self.clock_hz

    def ever_high(self, bit: int, periodic_part_only: bool = True) -> bool:
        """Whether the bit is high anywhere (in the repeating part of a periodic program)."""
        lo = self.period_start_cycles if (periodic_part_only and self.periodic) else 0
        for r in self.runs:
            if r.end_cycles <= lo:
                continue
            if np.any((r.outputs >> bit) & 1):
                return True
        if not self.periodic:
            return bool((self.final_outputs >> bit) & 1)
        return False

    def square_wave_hz(self, bit: int) -> float:
        """Repetition frequency if the bit is a ~50 % duty square wave, else 0.0.

        A program that loops forever is judged on its repeating part; a finite one (a hardware-timed
        sweep point, run once) on all of it: equal pulses at equal spacing, at least two of them.
        """
        if not self.periodic:
            return self._finite_square_wave_hz(bit)
        starts, outs = self.segments()
        lo, hi = self.period_start_cycles, self.end_cycles
        # Levels inside one period, as (start, level) with the period's own boundaries.
        level = (outs >> bit) & 1
        inside = (starts >= lo) & (starts < hi)
        s = starts[inside]
        lv = level[inside]
        if len(s) == 0 or s[0] != lo:
            before = np.nonzero(starts < lo)[0]
            first = level[before[-1]] if len(before) else 0
            s = np.concatenate([[lo], s])
            lv = np.concatenate([[first], lv])
        keep = np.ones(len(lv), bool)
        keep[1:] = lv[1:] != lv[:-1]
        s, lv = s[keep], lv[keep]
        durations = np.diff(np.concatenate([s, [hi]]))
        # The period wraps: merge the last interval with the first when their levels agree.
        if len(lv) > 1 and lv[0] == lv[-1]:
            durations[0] += durations[-1]
            durations, lv = durations[:-1], lv[:-1]
        highs, lows = durations[lv == 1], durations[lv == 0]
        if len(highs) == 0 or len(lows) == 0 or len(highs) != len(lows):
            return 0.0
        return self._square_hz(highs, lows)

    def _finite_square_wave_hz(self, bit: int) -> float:
        intervals = np.rint(self.high_intervals_s(bit) * self.clock_hz)
        if len(intervals) < 2:
            return 0.0
        highs = intervals[:, 1] - intervals[:, 0]
        lows = intervals[1:, 0] - intervals[:-1, 1]
        return self._square_hz(highs, lows)

    def _square_hz(self, highs: np.ndarray, lows: np.ndarray) -> float:
        """Repetition frequency of equal highs and equal lows (cycles) at ~50 % duty, else 0.0."""
        if np.ptp(highs) > 0 or np.ptp(lows) > 0:
            return 0.0
        duty = highs[0] / (highs[0] + lows[0])
        if abs(duty - 0.5) > SQUARE_DUTY_TOLERANCE:
            return 0.0
        return float(self.clock_hz / (highs[0] + lows[0]))


@dataclass(frozen=True)
class _Inst:
    flags: int
    opcode: int
    data: int
    cycles: int


class SimSpinAPI:
    """The spinapi call surface on a simulated PulseBlaster ESR-PRO.

    Args:
        world: the simulated microscope the board's outputs drive.
        clock_hz: the board's real oscillator frequency.
        n_boards: how many boards ``pb_count_boards`` reports.
        memory_words: instruction memory size (4096 on the ESR-PRO).
        wiring: output bit of each simulated line (laser, mw_switch, camera_trigger, ...).
        latency_s: delay between a line's TTL edge and its physical effect (AOM rise, MW switch
            latency), used by the spin physics; the sequences' channel delays compensate it.
        pessimistic_stop: P4's other branch: stopping leaves the outputs as they were.
        reserved_status_bits: bits 5-31 ``pb_read_status`` also sets (P3).
    """

    def __init__(
        self,
        world: World,
        clock_hz: float = 500e6,
        n_boards: int = 1,
        memory_words: int = ESR_PRO_500.memory_words,
        wiring: dict[str, int] | None = None,
        latency_s: dict[str, float] | None = None,
        pessimistic_stop: bool = False,
        reserved_status_bits: int = 0,
    ) -> None:
        self.pessimistic_stop = pessimistic_stop
        self.reserved_status_bits = int(reserved_status_bits) & ~0x1F & 0xFFFFFFFF
        self.world = world
        self.latency_s = dict(latency_s or {})
        self.board_clock_hz = float(clock_hz)
        self.n_boards = n_boards
        self.memory_words = memory_words
        self.wiring = dict(SIM_WIRING if wiring is None else wiring)
        self.calls: list[str] = []
        self.declared_clock_mhz = clock_hz / 1e6
        self.timeline: Timeline | None = None
        self.started_at_s: float | None = None
        self.start_count = 0
        """Programs started so far; tells a new run from an old one."""
        self.simulation_cpu_s = 0.0
        """CPU time spent executing programs into timelines and finding their edges (the real
        board does this in hardware)."""
        self._selected = 0
        self._initialised = False
        self._programming = False
        self._program: list[_Inst] = []
        self._staging: list[_Inst] = []
        self._stopped_by_user = True
        self._error = ""
        self._edge_cache: tuple[Timeline | None, dict[int, tuple[np.ndarray, np.ndarray]]] = (None, {})

    # ---- helpers -------------------------------------------------------------------------------

    def _fail(self, message: str, code: int = ERR_GENERIC) -> int:
        self._error = message
        return code

    def _ok(self) -> int:
        self._error = ""
        return OK

    def _log(self, name: str) -> None:
        self.calls.append(name)

    # ---- board management ----------------------------------------------------------------------

    def pb_get_version(self) -> bytes:
        self._log("pb_get_version")
        return b"SimSpinAPI (simulated spinapi for the QDM suite)"

    def pb_get_error(self) -> bytes:
        self._log("pb_get_error")
        return self._error.encode()

    def pb_count_boards(self) -> int:
        self._log("pb_count_boards")
        return self.n_boards

    def pb_select_board(self, board_num: int) -> int:
        self._log("pb_select_board")
        if not 0 <= board_num < self.n_boards:
            return self._fail(f"board {board_num} does not exist ({self.n_boards} board(s) found)")
        self._selected = board_num
        return self._ok()

    def pb_init(self) -> int:
        self._log("pb_init")
        if self._initialised:
            return self._fail("board already initialised; call pb_close before pb_init")
        self._initialised = True
        return self._ok()

    def pb_close(self) -> int:
        self._log("pb_close")
        if not self._initialised:
            return self._fail("board not initialised")
        self._initialised = False
        self._programming = False
        return self._ok()

    def pb_core_clock(self, clock_mhz: float) -> None:
        """Tell the library the board clock in MHz (void in spinapi: lengths are converted with it)."""
        self._log("pb_core_clock")
        self.declared_clock_mhz = float(clock_mhz)

    def pb_read_status(self) -> int:
        self._log("pb_read_status")
        if not self._initialised:
            return self._fail("board not initialised")
        return self._status() | self.reserved_status_bits

    def _status(self) -> int:
        if self.timeline is None or self._stopped_by_user:
            return STATUS_STOPPED
        if self.timeline.waiting and not self._finite_running():
            return STATUS_WAITING
        if self.timeline.periodic or self._finite_running():
            return STATUS_RUNNING
        return STATUS_STOPPED

    def _finite_running(self) -> bool:
        assert self.timeline is not None and self.started_at_s is not None
        return self.world.clock.now() < self.started_at_s + self.timeline.duration_s

    # ---- programming ---------------------------------------------------------------------------

    def pb_start_programming(self, device: int) -> int:
        self._log("pb_start_programming")
        if not self._initialised:
            return self._fail("board not initialised; call pb_init first")
        if device != PULSE_PROGRAM:
            return self._fail(f"device {device} is not supported by the ESR-PRO (PULSE_PROGRAM = 0)")
        self._programming = True
        self._staging = []
        return self._ok()

    def pb_inst_pbonly(self, flags: int, inst: int, inst_data: int, length: float) -> int:
        """Add one instruction; ``length`` in ns. Returns its address, or a negative error code."""
        self._log("pb_inst_pbonly")
        address = len(self._staging)
        where = f"instruction {address}"
        if not self._programming:
            return self._fail("not in programming mode; call pb_start_programming(PULSE_PROGRAM) first")
        if address >= self.memory_words:
            return self._fail(f"{where}: instruction memory full ({self.memory_words} words)")
        if not 0 <= flags <= MAX_FLAGS:
            return self._fail(f"{where}: flags 0x{flags:X} do not fit the 24-bit output/control word")
        try:
            opcode = Opcode(inst)
        except ValueError:
            return self._fail(f"{where}: opcode {inst} is not a PulseBlaster opcode (0-8)")
        if not 0 <= inst_data <= MAX_DATA:
            return self._fail(f"{where}: data {inst_data} does not fit the 20-bit data field")
        if opcode == Opcode.LOOP and inst_data < 1:
            return self._fail(f"{where}: LOOP count must be >= 1, got {inst_data}")
        if opcode == Opcode.LONG_DELAY and inst_data < 2:
            return self._fail(f"{where}: LONG_DELAY multiplier must be >= 2, got {inst_data}")
        if opcode in (Opcode.END_LOOP, Opcode.JSR, Opcode.BRANCH) and inst_data >= self.memory_words:
            return self._fail(f"{where}: target address {inst_data} is beyond instruction memory")
        if not np.isfinite(length) or length < 0:
            return self._fail(f"{where}: length {length} ns is not a valid duration")
        cycles = int(round(length * self.declared_clock_mhz / 1e3))
        if cycles < MIN_CYCLES:
            return self._fail(
                f"{where}: {length:g} ns is {cycles} clock cycles, shorter than the minimum of "
                f"{MIN_CYCLES} cycles", ERR_TOO_SHORT,
            )
        if cycles > MAX_CYCLES:
            return self._fail(f"{where}: {length:g} ns exceeds the 32-bit delay count; use LONG_DELAY")
        self._staging.append(_Inst(flags, int(opcode), inst_data, cycles))
        self._error = ""
        return address

    def pb_stop_programming(self) -> int:
        self._log("pb_stop_programming")
        if not self._programming:
            return self._fail("not in programming mode")
        self._programming = False
        self._program = list(self._staging)
        return self._ok()

    # ---- running -------------------------------------------------------------------------------

    def pb_start(self) -> int:
        self._log("pb_start")
        if not self._initialised:
            return self._fail("board not initialised")
        if not self._program:
            return self._fail("no program loaded")
        cpu0 = time.thread_time()
        try:
            timeline = execute(self._program, self.board_clock_hz, self.memory_words)
        except SimTimelineError as exc:
            return self._fail(str(exc))
        self.timeline = timeline
        self.started_at_s = self.world.clock.now()
        self.start_count += 1
        self._stopped_by_user = False
        if not (self.pessimistic_stop and all(i.opcode == Opcode.STOP for i in self._program)):
            self._drive_world(timeline)  # P4 pessimistic: a lone STOP word drives nothing
        self.simulation_cpu_s += time.thread_time() - cpu0
        return self._ok()

    def pb_stop(self) -> int:
        return self._halt("pb_stop")

    def pb_reset(self) -> int:
        return self._halt("pb_reset")

    def _halt(self, call: str) -> int:
        """``pb_stop`` and ``pb_reset`` do the same here: the program stops and every output goes low."""
        self._log(call)
        if not self._initialised:
            return self._fail("board not initialised")
        self._stopped_by_user = True
        if not self.pessimistic_stop:  # P4: outputs return to ground (or, pessimistic, hold)
            self._outputs_low()
        return self._ok()

    @property
    def running(self) -> bool:
        """A program was started and not stopped (it may have reached its STOP since)."""
        return self.timeline is not None and not self._stopped_by_user

    def drives(self, line: str) -> bool:
        """Whether the running program ever raises ``line`` (a wired output name)."""
        if not self.running or line not in self.wiring:
            return False
        cpu0 = time.thread_time()
        first, repeating = self._rising_cycles(self.wiring[line])
        self.simulation_cpu_s += time.thread_time() - cpu0
        return bool(len(first) or len(repeating))

    def rising_edges_s(self, line: str, after_s: float, until_s: float) -> np.ndarray:
        """World-clock times in ``(after_s, until_s]`` of the rising edges on ``line``, in order.

        Nothing while the board is stopped; a program that loops forever repeats its edges every
        period. Other simulated instruments use this to see the TTL edges wired to their inputs.
        """
        if not self.running or line not in self.wiring or until_s <= after_s:
            return np.zeros(0)
        cpu0 = time.thread_time()
        try:
            return self._rising_edges_s(self.wiring[line], after_s, until_s)
        finally:
            self.simulation_cpu_s += time.thread_time() - cpu0

    def pulses_s(self, line: str, after_s: float, until_s: float) -> np.ndarray:
        """(n, 2) world-clock (rise, fall) of the pulses on ``line`` falling in ``(after_s, until_s]``.

        An instrument that triggers on the falling edge and needs a minimum width (the heliCam's
        external trigger) reads its input through this. Nothing while the board is stopped.
        """
        if not self.running or line not in self.wiring or until_s <= after_s:
            return np.zeros((0, 2))
        assert self.timeline is not None and self.started_at_s is not None
        tl, t0 = self.timeline, self.started_at_s
        cpu0 = time.thread_time()
        try:
            intervals = tl.high_intervals_s(self.wiring[line]) + t0
            if tl.periodic:
                assert tl.period_start_cycles is not None and tl.period_s is not None
                ps = t0 + tl.period_start_cycles / tl.clock_hz
                repeating = intervals[intervals[:, 0] >= ps]
                k_max = int(np.ceil((until_s - t0 - tl.duration_s) / tl.period_s)) + 1
                if len(repeating) and k_max >= 1:
                    k = np.arange(1, k_max + 1)[:, None, None]
                    extra = (repeating[None] + k * tl.period_s).reshape(-1, 2)
                    intervals = np.concatenate([intervals, extra])
            falls = intervals[:, 1]
            return intervals[(falls > after_s) & (falls <= until_s)]
        finally:
            self.simulation_cpu_s += time.thread_time() - cpu0

    def _rising_edges_s(self, bit: int, after_s: float, until_s: float) -> np.ndarray:
        assert self.timeline is not None and self.started_at_s is not None
        tl = self.timeline
        first, repeating = self._rising_cycles(bit)
        clock = tl.clock_hz
        lo = (after_s - self.started_at_s) * clock
        hi = (until_s - self.started_at_s) * clock
        times = [first[(first > lo) & (first <= hi)]]
        if tl.periodic and len(repeating):
            assert tl.period_start_cycles is not None
            period = tl.end_cycles - tl.period_start_cycles
            # Repetition k >= 1 of the periodic part starts at end_cycles + (k - 1) * period.
            k_lo = max(1, int(np.floor((lo - tl.end_cycles - repeating[-1]) / period)) + 1)
            k_hi = int(np.floor((hi - tl.end_cycles - repeating[0]) / period)) + 1
            if k_hi >= k_lo:
                k = np.arange(k_lo, k_hi + 1)
                c = (tl.end_cycles + (k[:, None] - 1) * period + repeating[None, :]).ravel()
                times.append(c[(c > lo) & (c <= hi)])
        cycles = np.concatenate(times)
        return self.started_at_s + cycles / clock

    def _rising_cycles(self, bit: int) -> tuple[np.ndarray, np.ndarray]:
        """(rising edges of the first pass, rising edges of each later period relative to its start)."""
        assert self.timeline is not None
        tl = self.timeline
        if self._edge_cache[0] is not tl:
            self._edge_cache = (tl, {})
        cached = self._edge_cache[1].get(bit)
        if cached is not None:
            return cached
        starts, outs = tl.segments()
        level = (outs >> bit) & 1
        before = np.concatenate([[0], level[:-1]])
        first = starts[(level == 1) & (before == 0)].astype(float)
        if not tl.periodic and bool((tl.final_outputs >> bit) & 1) and (not len(level) or level[-1] == 0):
            first = np.append(first, float(tl.end_cycles))
        repeating = np.zeros(0)
        if tl.periodic:
            ps = tl.period_start_cycles
            inside = (starts > ps) & (starts < tl.end_cycles)
            at_start = level[starts <= ps][-1]  # the segment holding the period's first cycle
            rel = np.concatenate([[0], starts[inside] - ps])
            lv = np.concatenate([[at_start], level[inside]])
            prev = np.concatenate([[level[starts < tl.end_cycles][-1]], lv[:-1]])  # the end wraps round
            repeating = rel[(lv == 1) & (prev == 0)].astype(float)
        self._edge_cache[1][bit] = (first, repeating)
        return first, repeating

    def follow_to(self, t_s: float) -> None:
        """Let the World see a finite program's outputs go to its STOP word once it has ended by ``t_s``.

        Simulated instruments call this as simulated time passes (the camera before each frame), so
        a volume that outlasts its program loses the laser and the MW gating, as in the lab.
        """
        tl, t0 = self.timeline, self.started_at_s
        if not self.running or tl is None or t0 is None or tl.periodic or t_s < t0 + tl.duration_s:
            return
        laser = bool((tl.final_outputs >> self.wiring["laser"]) & 1)
        if self.world.laser_on != laser or self.world.mw_gate_modulation_hz:
            with self.world.lock:
                self.world.laser_on = laser
                self.world.mw_gate_modulation_hz = 0.0

    def _drive_world(self, timeline: Timeline) -> None:
        laser = timeline.ever_high(self.wiring["laser"])
        gate_hz = timeline.square_wave_hz(self.wiring["mw_switch"])
        with self.world.lock:
            self.world.laser_on = laser
            self.world.mw_gate_modulation_hz = gate_hz

    def _outputs_low(self) -> None:
        with self.world.lock:
            self.world.laser_on = False
            self.world.mw_gate_modulation_hz = 0.0


def _instruction_outputs(inst: _Inst, cycles: int) -> list[tuple[int, int]]:
    """Segments (length, outputs) one instruction produces, short-pulse mode included."""
    mode = inst.flags >> SHORT_PULSE_SHIFT
    outputs = inst.flags & OUTPUT_MASK
    if mode == SHORT_PULSE_ON:
        return [(cycles, outputs)]
    if mode == 0 or outputs == 0:
        return [(cycles, 0)]
    high = min(mode, cycles)
    return [(high, outputs)] + ([(cycles - high, 0)] if cycles > high else [])


def execute(program: list[_Inst], clock_hz: float,
            memory_words: int = ESR_PRO_500.memory_words) -> Timeline:
    """Run a program into a timeline.

    A LOOP body is executed once and recorded as a :class:`Run` repeated ``count`` times, so long
    repetitions cost nothing; a program that returns to a state it has been in (BRANCH back to
    the start) is periodic, and its timeline ends after the first period.
    """
    timeline = Timeline(clock_hz=clock_hz)
    open_rel: list[int] = []
    open_out: list[int] = []
    open_start = 0
    now = 0
    loops: list[list[int]] = []  # [loop address, remaining, start cycle, first pass]
    calls: list[int] = []
    seen: dict[tuple, int] = {}
    pc = 0
    steps = 0

    def flush() -> None:
        nonlocal open_rel, open_out, open_start
        if open_rel:
            rel = np.asarray(open_rel, np.int64) - open_start
            timeline.runs.append(Run(open_start, rel, np.asarray(open_out, np.int64), now - open_start))
        open_rel, open_out, open_start = [], [], now

    while True:
        if not 0 <= pc < len(program):
            raise SimTimelineError(
                f"execution ran to address {pc}, past the last instruction ({len(program) - 1}); "
                "end the program with STOP or BRANCH"
            )
        state = (pc, tuple((a, r) for a, r, _, _ in loops), tuple(calls))
        if state in seen:
            flush()
            timeline.period_start_cycles = seen[state]
            timeline.end_cycles = now
            return timeline
        seen[state] = now
        steps += 1
        if steps > 50 * memory_words + 1000:
            raise SimTimelineError("program did not settle into a STOP or a repeating pattern")
        inst = program[pc]
        op = Opcode(inst.opcode)
        if op == Opcode.STOP:
            flush()
            timeline.end_cycles = now
            timeline.final_outputs = _instruction_outputs(inst, inst.cycles)[0][1]
            return timeline
        cycles = inst.cycles * (inst.data if op == Opcode.LONG_DELAY else 1)
        if op == Opcode.LOOP:
            flush()
            loops.append([pc, inst.data, now, 1])
        for length, outputs in _instruction_outputs(inst, cycles):
            open_rel.append(now)
            open_out.append(outputs)
            now += length
        if op == Opcode.WAIT:
            # Execution halts until a hardware trigger (the simulator has none), outputs held.
            flush()
            timeline.end_cycles = now
            timeline.waiting = True
            timeline.final_outputs = _instruction_outputs(inst, cycles)[-1][1]
            return timeline
        if op in (Opcode.CONTINUE, Opcode.LONG_DELAY, Opcode.LOOP):
            pc += 1
        elif op == Opcode.BRANCH:
            pc = inst.data
        elif op == Opcode.JSR:
            if len(calls) >= 8:
                raise SimTimelineError(f"instruction {pc}: JSR nested deeper than the board's 8 levels")
            calls.append(pc + 1)
            pc = inst.data
        elif op == Opcode.RTS:
            if not calls:
                raise SimTimelineError(f"instruction {pc}: RTS without a JSR")
            pc = calls.pop()
        elif op == Opcode.END_LOOP:
            if not loops or loops[-1][0] != inst.data:
                raise SimTimelineError(
                    f"instruction {pc}: END_LOOP to {inst.data} does not close the open LOOP "
                    f"({loops[-1][0] if loops else 'none'})"
                )
            address, remaining, start, _ = loops.pop()
            if remaining > 1:
                _repeat_since(timeline, open_rel, open_out, start, now, remaining)
                now = start + (now - start) * remaining
                open_rel, open_out, open_start = [], [], now
            pc += 1
        else:  # pragma: no cover - Opcode() above admits nothing else
            raise SimTimelineError(f"instruction {pc}: opcode {op} not executable")


def _repeat_since(
    timeline: Timeline, open_rel: list[int], open_out: list[int], start: int, now: int, count: int
) -> None:
    """Replace everything recorded since ``start`` by one Run repeated ``count`` times."""
    inner = [r for r in timeline.runs if r.start_cycles >= start]
    timeline.runs = [r for r in timeline.runs if r.start_cycles < start]
    rel_parts, out_parts = [], []
    for r in inner:
        offsets = r.start_cycles - start + r.length_cycles * np.arange(r.repeats, dtype=np.int64)
        rel_parts.append((offsets[:, None] + r.rel_cycles[None, :]).ravel())
        out_parts.append(np.tile(r.outputs, r.repeats))
    if open_rel:
        rel_parts.append(np.asarray(open_rel, np.int64) - start)
        out_parts.append(np.asarray(open_out, np.int64))
    rel = np.concatenate(rel_parts)
    if len(rel) > MAX_TIMELINE_SEGMENTS:
        raise SimTimelineError(
            f"a loop body expands to {len(rel)} segments (nested loops); the simulator keeps at most "
            f"{MAX_TIMELINE_SEGMENTS}"
        )
    timeline.runs.append(Run(start, rel, np.concatenate(out_parts), now - start, count))
