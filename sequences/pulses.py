"""Pulse sequences in physical terms, compiled to PulseBlaster programs.

A :class:`PulseSequence` is a list of :class:`Block` objects, each a fixed-length window holding
:class:`Pulse` objects on named channels and repeated ``repetitions`` times. :func:`compile_sequence`
turns it into the fewest instructions the board can run: one instruction per stretch of constant
outputs, LOOP/END_LOOP for repetitions, LONG_DELAY for waits longer than the 32-bit delay counter,
BRANCH back to the start for sequences that run forever. Everything the board would refuse is
refused here first, naming the pulse: lengths off the clock grid or shorter than 5 cycles,
overlapping pulses on one channel, unknown channels, programs over the instruction memory.

Channel delays (AOM rise, MW switch latency) are given per channel: a channel with a delay of
``d`` gets its TTL edges ``d`` earlier, so the physical effect lands where the sequence says.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from instrument.protocols import (
    ESR_PRO_500,
    Opcode,
    PulseGeneratorConstraints,
    PulseInstruction,
    PulseProgram,
)

DEFAULT_CHANNELS: Mapping[str, int] = MappingProxyType(
    {"laser": 0, "mw_switch": 1, "camera_trigger": 2, "spad_gate": 3, "mw_trigger": 4, "camera_start": 5}
)
"""Output bit of each line in the standard QDM wiring."""

GRID_TOLERANCE_CYCLES = 1e-3
# The board's limits come from the pulse generator (``PulseGenerator.constraints``); without one
# in hand the reference board ``ESR_PRO_500`` is assumed.


def board_constraints(
    clock_hz: float = ESR_PRO_500.clock_hz, memory_words: int | None = None,
    constraints: PulseGeneratorConstraints | None = None,
) -> PulseGeneratorConstraints:
    """The constraints to compile for: ``constraints`` if given, else the reference board at ``clock_hz``."""
    if constraints is not None:
        return constraints
    memory = ESR_PRO_500.memory_words if memory_words is None else memory_words
    return dataclasses.replace(ESR_PRO_500, clock_hz=float(clock_hz), memory_words=memory)


class PulseSequenceError(ValueError):
    """A sequence cannot run on the board; the message names the pulse or block and the fix."""


@dataclass(frozen=True)
class ChannelMap:
    """Channel names to output bits, with per-channel delays (s) between TTL edge and effect."""

    bits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    delays_s: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for name, bit in self.bits.items():
            if not isinstance(bit, int) or not 0 <= bit < ESR_PRO_500.output_bits:
                raise PulseSequenceError(
                    f"channel '{name}' is mapped to bit {bit!r}; "
                    f"the ESR-PRO outputs are bits 0-{ESR_PRO_500.output_bits - 1}"
                )
            if bit in seen:
                raise PulseSequenceError(f"channels '{seen[bit]}' and '{name}' are both mapped to bit {bit}")
            seen[bit] = name
        for name, delay in self.delays_s.items():
            if name not in self.bits:
                raise PulseSequenceError(f"delay given for channel '{name}', which is not in the channel map")
            if not math.isfinite(delay) or delay < 0:
                raise PulseSequenceError(f"delay of channel '{name}' must be >= 0 s, got {delay!r}")

    @classmethod
    def of(cls, channels: ChannelMap | Mapping[str, int]) -> ChannelMap:
        return channels if isinstance(channels, ChannelMap) else cls(bits=dict(channels))

    def bit(self, channel: str, who: str) -> int:
        if channel not in self.bits:
            raise PulseSequenceError(
                f"{who}: channel '{channel}' is not in the channel map ({', '.join(sorted(self.bits))})"
            )
        return self.bits[channel]

    def delay_s(self, channel: str) -> float:
        return float(self.delays_s.get(channel, 0.0))


@dataclass(frozen=True)
class Pulse:
    """A TTL high on ``channel`` from ``start_s`` (relative to its block) for ``duration_s``."""

    channel: str
    start_s: float
    duration_s: float
    name: str = ""

    @property
    def label(self) -> str:
        return f"pulse '{self.name}'" if self.name else (
            f"{self.channel} pulse at {self.start_s * 1e9:g} ns"
        )


@dataclass(frozen=True)
class Block:
    """A window of ``duration_s`` holding pulses, played ``repetitions`` times back to back.

    With ``wrap`` a pulse moved out of the window by its channel delay re-enters at the other end,
    which is right for a block that repeats back to back (a modulation period).
    """

    duration_s: float
    pulses: tuple[Pulse, ...] = ()
    repetitions: int = 1
    name: str = ""
    wrap: bool = False


@dataclass(frozen=True)
class PulseSequence:
    """Blocks played in order, once (ending in STOP) or forever (BRANCH back to the start)."""

    blocks: tuple[Block, ...]
    channels: ChannelMap = field(default_factory=ChannelMap)
    loop_forever: bool = False
    description: str = ""

    @property
    def duration_s(self) -> float:
        """Length of one pass through all blocks."""
        return sum(b.duration_s * b.repetitions for b in self.blocks)


@dataclass
class _Group:
    """Consecutive segments (flags, cycles) played ``repetitions`` times."""

    segments: list[tuple[int, int]]
    repetitions: int
    name: str


def _cycles(value_s: float, clock_hz: float, what: str) -> int:
    if not math.isfinite(value_s):
        raise PulseSequenceError(f"{what} is {value_s!r}, not a finite time")
    exact = value_s * clock_hz
    n = round(exact)
    if abs(exact - n) > GRID_TOLERANCE_CYCLES:
        step = 1e9 / clock_hz
        raise PulseSequenceError(
            f"{what} = {value_s * 1e9:.6g} ns is not on the {step:g} ns clock grid; "
            f"use {n * step:g} ns"
        )
    return n


def block_segments(block: Block, index: int, channels: ChannelMap, clock_hz: float,
                   constraints: PulseGeneratorConstraints | None = None) -> list[tuple[int, int]]:
    """Constant-output stretches (flags, clock cycles) of one pass through a block, delays applied.

    Raises PulseSequenceError naming the pulse for anything the board cannot run.
    """
    c = board_constraints(clock_hz, constraints=constraints)
    min_cycles, max_data, output_bits = c.min_cycles, c.max_data, c.output_bits  # the board's limits
    bname = f"block '{block.name}'" if block.name else f"block {index}"
    for p in block.pulses:  # name the pulse, not the block, when a pulse is off the grid
        who = f"{p.label} in {bname}"
        channels.bit(p.channel, who)
        _cycles(p.start_s, clock_hz, f"{who}: start")
        _cycles(p.duration_s, clock_hz, f"{who}: duration")
    length = _cycles(block.duration_s, clock_hz, f"{bname} duration")
    if length < min_cycles:
        raise PulseSequenceError(
            f"{bname} lasts {length} clock cycles, less than the minimum of {min_cycles}"
        )
    if not isinstance(block.repetitions, int) or not 1 <= block.repetitions <= max_data:
        raise PulseSequenceError(
            f"{bname}: repetitions must be an integer from 1 to {max_data}, got {block.repetitions!r}"
        )
    # (start, end, bit, pulse) intervals in cycles after the channel delay.
    intervals: list[tuple[int, int, int, Pulse]] = []
    for p in block.pulses:
        who = f"{p.label} in {bname}"
        bit = channels.bit(p.channel, who)
        start = _cycles(p.start_s, clock_hz, f"{who}: start")
        dur = _cycles(p.duration_s, clock_hz, f"{who}: duration")
        if dur < min_cycles:
            raise PulseSequenceError(
                f"{who} lasts {dur} clock cycles ({p.duration_s * 1e9:g} ns); the board's minimum is "
                f"{min_cycles} cycles ({min_cycles * 1e9 / clock_hz:g} ns)"
            )
        if start < 0 or start + dur > length:
            raise PulseSequenceError(
                f"{who} ({p.start_s * 1e9:g} ns + {p.duration_s * 1e9:g} ns) does not fit in the "
                f"{block.duration_s * 1e9:g} ns block"
            )
        if start == 0 and dur == length:
            intervals.append((0, length, bit, p))  # a level held all block: no edge to delay
            continue
        shift = _cycles(channels.delay_s(p.channel), clock_hz, f"delay of channel '{p.channel}'")
        s, e = start - shift, start + dur - shift
        if s < 0 and block.wrap:
            if e > 0:
                intervals += [(s + length, length, bit, p), (0, e, bit, p)]
            else:
                intervals.append((s + length, e + length, bit, p))
        elif s < 0:
            raise PulseSequenceError(
                f"{who} would start {-s * 1e9 / clock_hz:g} ns before its block once the "
                f"{shift * 1e9 / clock_hz:g} ns delay of channel '{p.channel}' is applied; start it later"
            )
        else:
            intervals.append((s, e, bit, p))
    by_bit: dict[int, list[tuple[int, int, int, Pulse]]] = {}
    for iv in intervals:
        by_bit.setdefault(iv[2], []).append(iv)
    for ivs in by_bit.values():
        ivs.sort(key=lambda iv: iv[0])
        for a, b in zip(ivs, ivs[1:], strict=False):
            if b[0] < a[1]:
                raise PulseSequenceError(
                    f"{b[3].label} overlaps {a[3].label} on channel '{b[3].channel}' in {bname}"
                )
    # Sweep the edges in time order; pulses on one bit do not overlap (checked above), so a
    # bit is high between its rising and falling edge, and touching pulses merge.
    changes: dict[int, list[tuple[int, int]]] = {}
    for s, e, bit, _ in intervals:
        changes.setdefault(s, []).append((bit, +1))
        changes.setdefault(e, []).append((bit, -1))
    level = [0] * output_bits
    segments: list[tuple[int, int]] = []
    bounds = sorted(set(changes) | {0, length})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        for bit, step in changes.get(lo, ()):
            level[bit] += step
        flags = sum(1 << b for b in range(output_bits) if level[b] > 0)
        if segments and segments[-1][0] == flags:
            segments[-1] = (flags, segments[-1][1] + hi - lo)
        else:
            segments.append((flags, hi - lo))
    # Every stretch between output changes becomes one instruction: it must be long enough.
    t = 0
    for _, n in segments:
        if n < min_cycles:
            near = [iv[3].label for iv in intervals if {iv[0], iv[1]} & {t, t + n}]
            raise PulseSequenceError(
                f"{bname}: outputs change twice within {n} clock cycles at {t * 1e9 / clock_hz:g} ns "
                f"({', '.join(dict.fromkeys(near))}); edges must be at least {min_cycles} cycles apart"
            )
        t += n
    return segments


def _merge(segments: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for flags, n in segments:
        if out and out[-1][0] == flags:
            out[-1] = (flags, out[-1][1] + n)
        else:
            out.append((flags, n))
    return out


def _long(cycles: int, c: PulseGeneratorConstraints) -> list[tuple[int, Opcode, int]]:
    """A stretch as few words as possible: one CONTINUE, or LONG_DELAY (length x k) + remainder."""
    min_cycles, max_cycles, max_data = c.min_cycles, c.max_cycles, c.max_data
    if cycles <= max_cycles:
        return [(cycles, Opcode.CONTINUE, 0)]
    k = -(-cycles // max_cycles)
    while True:
        if k > max_data:
            raise PulseSequenceError(f"a wait of {cycles} clock cycles is too long even for LONG_DELAY")
        base, rest = divmod(cycles, k)
        if rest == 0:
            return [(base, Opcode.LONG_DELAY, k)]
        if rest >= min_cycles:
            return [(base, Opcode.LONG_DELAY, k), (rest, Opcode.CONTINUE, 0)]
        if base + rest <= max_cycles:
            head = [(base, Opcode.LONG_DELAY, k - 1)] if k > 2 else [(base, Opcode.CONTINUE, 0)]
            return head + [(base + rest, Opcode.CONTINUE, 0)]
        k += 1


def _split(cycles: int, c: PulseGeneratorConstraints, head: bool = False,
           tail: bool = False) -> list[tuple[int, Opcode, int]]:
    """A stretch as (cycles, opcode, data) words; ``head``/``tail`` force a CONTINUE at that end.

    LOOP and END_LOOP replace the first and last word of a repeated group, and BRANCH the last
    word of a program that runs forever, so those words must be plain CONTINUEs.
    """
    max_cycles = c.max_cycles
    first: list[tuple[int, Opcode, int]] = []
    last: list[tuple[int, Opcode, int]] = []
    if head and cycles > max_cycles:
        first = [(max_cycles // 2, Opcode.CONTINUE, 0)]
        cycles -= max_cycles // 2
    if tail and cycles > max_cycles:
        last = [(max_cycles // 2, Opcode.CONTINUE, 0)]
        cycles -= max_cycles // 2
    return first + _long(cycles, c) + last


def _emit(groups: list[_Group], loop_forever: bool,
          c: PulseGeneratorConstraints) -> list[tuple[int, Opcode, int, int]]:
    """(flags, opcode, data, cycles) words for the groups."""
    words: list[tuple[int, Opcode, int, int]] = []
    for gi, g in enumerate(groups):
        last_group = gi == len(groups) - 1
        first_at = len(words)
        for si, (flags, n) in enumerate(g.segments):
            head = si == 0 and g.repetitions > 1
            tail = si == len(g.segments) - 1 and (g.repetitions > 1 or (last_group and loop_forever))
            words += [(flags, op, data, n_) for n_, op, data in _split(n, c, head, tail)]
        if g.repetitions > 1:
            f, _, _, n_ = words[first_at]
            words[first_at] = (f, Opcode.LOOP, g.repetitions, n_)
            f, _, _, n_ = words[-1]
            words[-1] = (f, Opcode.END_LOOP, first_at, n_)
    if loop_forever:
        f, _, _, n_ = words[-1]
        words[-1] = (f, Opcode.BRANCH, 0, n_)
    else:
        words.append((0, Opcode.STOP, 0, c.min_cycles))
    return words


def _group_blocks(sequence: PulseSequence, c: PulseGeneratorConstraints) -> list[_Group]:
    channels = sequence.channels
    groups: list[_Group] = []
    for i, block in enumerate(sequence.blocks):
        segs = block_segments(block, i, channels, c.clock_hz, c)
        reps = block.repetitions
        if len(segs) == 1 or (sequence.loop_forever and len(sequence.blocks) == 1):
            # A constant block repeated is one longer stretch; a lone block looping forever
            # needs no counter.
            segs = [(f, n * (reps if len(segs) == 1 else 1)) for f, n in segs]
            reps = 1
        if reps == 1 and groups and groups[-1].repetitions == 1:
            groups[-1].segments = _merge(groups[-1].segments + segs)
        else:
            groups.append(_Group(list(segs), reps, block.name or f"block {i}"))
    if sequence.loop_forever and groups and groups[-1].repetitions > 1:
        # The BRANCH back must sit on a word of its own after the loop: unroll the last pass.
        g = groups.pop()
        if g.repetitions > 2:
            groups.append(_Group(g.segments, g.repetitions - 1, g.name))
            groups.append(_Group(list(g.segments), 1, g.name))
        else:
            groups.append(_Group(_merge(g.segments + g.segments), 1, g.name))
    return groups


def compile_sequence(
    sequence: PulseSequence, clock_hz: float = ESR_PRO_500.clock_hz, memory_words: int | None = None,
    constraints: PulseGeneratorConstraints | None = None,
) -> PulseProgram:
    """Compile a sequence to a pulse program, refusing anything the board cannot run.

    ``constraints`` (a pulse generator's own) override ``clock_hz`` and ``memory_words``.
    """
    c = board_constraints(clock_hz, memory_words, constraints)
    if not sequence.blocks:
        raise PulseSequenceError("the sequence has no blocks")
    groups = _group_blocks(sequence, c)
    words = _emit(groups, sequence.loop_forever, c)
    if len(words) > c.memory_words:
        worst = max(groups, key=lambda g: len(g.segments))
        raise PulseSequenceError(
            f"the program needs {len(words)} instructions but the board holds {c.memory_words}; "
            f"{worst.name} alone has {len(worst.segments)} output changes; use repetitions or fewer points"
        )
    period = 1.0 / c.clock_hz
    instructions = tuple(PulseInstruction(f, op, d, n * period) for f, op, d, n in words)
    return PulseProgram(instructions, dict(sequence.channels.bits), sequence.description)


def lockin_modulation_period_cycles(modulation_hz: float, clock_hz: float = 500e6) -> int:
    """Half period of the lock-in modulation in clock cycles (the square wave is exactly symmetric)."""
    if not math.isfinite(modulation_hz) or modulation_hz <= 0:
        raise PulseSequenceError(f"modulation frequency must be > 0 Hz, got {modulation_hz!r}")
    half = round(clock_hz / modulation_hz / 2)
    min_cycles = ESR_PRO_500.min_cycles
    if half < min_cycles:
        raise PulseSequenceError(
            f"modulation at {modulation_hz:g} Hz needs half periods of {clock_hz / modulation_hz / 2:.3g} "
            f"clock cycles; the board needs at least {min_cycles}"
        )
    return half


def lockin_modulation_frequency_hz(modulation_hz: float, clock_hz: float = 500e6) -> float:
    """The modulation frequency the board really produces (half period rounded to the clock)."""
    return clock_hz / (2 * lockin_modulation_period_cycles(modulation_hz, clock_hz))


def _modulation_period(modulation_hz: float, clock_hz: float) -> tuple[float, tuple[Pulse, ...]]:
    """One lock-in modulation period on this clock: its length (s) and its pulses (laser on; MW
    switch and camera reference high for the first half)."""
    half_s = lockin_modulation_period_cycles(modulation_hz, clock_hz) / clock_hz
    period_s = 2 * half_s
    return period_s, (Pulse("laser", 0.0, period_s, "laser"), Pulse("mw_switch", 0.0, half_s, "MW on"),
                      Pulse("camera_trigger", 0.0, half_s, "camera reference"))


def lockin_modulation_sequence(
    modulation_hz: float = 6250.0,
    channels: ChannelMap | Mapping[str, int] = DEFAULT_CHANNELS,
    clock_hz: float = 500e6,
) -> PulseSequence:
    """The CW lock-in sequence: laser on, MW switch and camera reference square waves, forever.

    The MW switch is on for the first half of every modulation period; ``camera_trigger`` carries
    the same square wave. The heliCam driver selects internal demodulation (``ExtTqp = 0``): the
    camera demodulates against its own reference at the same frequency, not against this line, so
    the phase between the MW gating and the camera's reference is measured (``measure_phase``),
    not assumed; at phase 0 the in-phase signal is (MW off) - (MW on).
    """
    cmap = ChannelMap.of(channels)
    period_s, pulses = _modulation_period(modulation_hz, clock_hz)
    f = lockin_modulation_frequency_hz(modulation_hz, clock_hz)
    return PulseSequence(
        (Block(period_s, pulses, name="modulation period", wrap=True),),
        cmap, loop_forever=True,
        description=f"lock-in modulation {f:.6g} Hz: laser CW, MW switch and camera reference square waves",
    )


def lockin_modulation_program(
    modulation_hz: float = 6250.0,
    channels: ChannelMap | Mapping[str, int] = DEFAULT_CHANNELS,
    clock_hz: float = 500e6,
) -> PulseProgram:
    """Compiled :func:`lockin_modulation_sequence` (two instructions, BRANCH back forever)."""
    return compile_sequence(lockin_modulation_sequence(modulation_hz, channels, clock_hz), clock_hz)


TRIGGER_PULSE_S = 1e-6
"""Width of the TTL pulse that steps the MW list (well above the sources' trigger minimum widths)."""

CAMERA_START_PULSE_S = 20e-6
"""Width of the ``camera_start`` pulse. The heliCam C3 starts a volume on the falling edge of its
external trigger and needs the pulse wider than 10 us (C3 user manual, external triggering):
twice that, so cable and input filtering cannot bring it under the limit."""


POINT_TAIL_PERIODS = 2
"""Modulation periods a hardware-timed point runs on after its volume's last planned period, so the
camera's reference and the MW gating cover the whole volume even if it ends a little late."""


@dataclass(frozen=True)
class SteppedPointTiming:
    """Length of each part of one hardware-timed sweep point, in whole modulation periods.

    A point opens with the ``mw_trigger`` pulse that steps the source (none for the first point of
    a list: arming puts point 0 on the output), waits ``settle`` periods (source settling), raises
    ``camera_start`` (the camera's external trigger starts one volume), lets the volume run for
    ``volume`` periods and the modulation go on for ``tail`` more; then the program stops.
    """

    settle: int
    volume: int
    tail: int = POINT_TAIL_PERIODS

    @property
    def periods(self) -> int:
        return self.settle + self.volume + self.tail


def stepped_point_timing(modulation_hz: float, volume_s: float, settle_s: float,
                         clock_hz: float = 500e6) -> SteppedPointTiming:
    """Whole modulation periods covering a settle time of ``settle_s`` and a volume of ``volume_s``."""
    period_s = 2 * lockin_modulation_period_cycles(modulation_hz, clock_hz) / clock_hz
    for name, value in (("volume", volume_s), ("settle", settle_s)):
        if not math.isfinite(value) or value <= 0:
            raise PulseSequenceError(f"stepped sweep: {name} time must be > 0 s, got {value!r}")
    return SteppedPointTiming(settle=math.ceil(settle_s / period_s - 1e-9),
                              volume=math.ceil(volume_s / period_s - 1e-9))


def stepped_point_sequence(
    timing: SteppedPointTiming,
    step: bool,
    modulation_hz: float = 6250.0,
    channels: ChannelMap | Mapping[str, int] = DEFAULT_CHANNELS,
    clock_hz: float = 500e6,
) -> PulseSequence:
    """One hardware-timed sweep point under the lock-in modulation, run once and ending in STOP.

    With ``step`` the point opens with the ``mw_trigger`` pulse that steps the MW list; after
    ``timing.settle`` modulation periods a ``camera_start`` pulse of ``CAMERA_START_PULSE_S`` starts
    the camera's volume on its falling edge (see :class:`SteppedPointTiming`). Software starts the
    program once per point and reads the volume
    and the list index while the board is stopped, so its latency cannot shift the timing inside
    a point, and a pause between points leaves source and camera waiting.
    """
    cmap = ChannelMap.of(channels)
    for line in ("mw_trigger", "camera_start"):
        cmap.bit(line, "stepped sweep")
    if timing.settle < 1 or timing.volume < 1 or timing.tail < 0:
        raise PulseSequenceError(f"stepped sweep: a point needs settle and volume periods >= 1, got {timing}")
    period_s, modulation = _modulation_period(modulation_hz, clock_hz)

    def period(*extra: Pulse, repetitions: int = 1, name: str = "") -> Block:
        return Block(period_s, modulation + extra, repetitions, name, wrap=True)

    blocks = [period(Pulse("mw_trigger", 0.0, TRIGGER_PULSE_S, "MW list step"), name="step") if step
              else period(name="settle")]
    if timing.settle > 1:
        blocks.append(period(repetitions=timing.settle - 1, name="settle"))
    blocks.append(period(Pulse("camera_start", 0.0, CAMERA_START_PULSE_S, "camera volume start"),
                         name="camera start"))
    if timing.volume + timing.tail > 1:
        blocks.append(period(repetitions=timing.volume + timing.tail - 1, name="volume"))
    f = lockin_modulation_frequency_hz(modulation_hz, clock_hz)
    return PulseSequence(
        tuple(blocks), cmap, loop_forever=False,
        description=f"stepped lock-in point: {timing.periods} periods at {f:.6g} Hz, "
        + ("MW list stepped on mw_trigger, " if step else "")
        + "one camera volume on camera_start, then STOP",
    )


def stepped_point_program(
    timing: SteppedPointTiming,
    step: bool,
    modulation_hz: float = 6250.0,
    channels: ChannelMap | Mapping[str, int] = DEFAULT_CHANNELS,
    clock_hz: float = 500e6,
    memory_words: int | None = None,
) -> PulseProgram:
    """Compiled :func:`stepped_point_sequence` (a dozen instructions).

    Programs are cached: a coil scan runs the same sweep hundreds of times.
    """
    cmap = ChannelMap.of(channels)
    return _stepped_point_program(timing, bool(step), modulation_hz, tuple(sorted(cmap.bits.items())),
                                  tuple(sorted(cmap.delays_s.items())), clock_hz, memory_words)


@functools.lru_cache(maxsize=16)
def _stepped_point_program(timing: SteppedPointTiming, step: bool, modulation_hz: float, bits: tuple,
                           delays: tuple, clock_hz: float, memory_words: int | None) -> PulseProgram:
    cmap = ChannelMap(dict(bits), dict(delays))
    sequence = stepped_point_sequence(timing, step, modulation_hz, cmap, clock_hz)
    return compile_sequence(sequence, clock_hz, memory_words)
