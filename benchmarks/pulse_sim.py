"""Pulse programs: compiled size and simulation cost against the straightforward baselines.

Three comparisons, each side by side in this process:

1. Program size: words the compiler emits (LOOP for repetitions) against one word per output
   change with every repetition written out (what a naive sequence-to-instruction translation
   would load; the ESR-PRO holds 4096).
2. Executing a program into a timeline: the simulated board records a LOOP body once and repeats
   it as a run; the baseline steps through every instruction of every repetition.
3. The spin physics of one pulsed point: playing three repetitions and letting the last stand for
   the rest, against playing every repetition; the relative difference of the gate counts says
   what the shortcut costs in accuracy.

Run: ``python benchmarks/pulse_sim.py [--repetitions 1000 10000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instrument.protocols import Opcode  # noqa: E402
from sequences.pulsed import PiPulse, Ramsey, ShotTiming  # noqa: E402
from sequences.pulses import block_segments  # noqa: E402
from sim.spin import SpinEnsemble  # noqa: E402
from sim.spinapi import _Inst, execute  # noqa: E402
from sim.world import World  # noqa: E402

CLOCK = 500e6


def unrolled_words(sequence) -> int:
    """Words with every repetition written out (baseline 1)."""
    n = 0
    for i, block in enumerate(sequence.blocks):
        n += len(block_segments(block, i, sequence.channels, CLOCK)) * block.repetitions
    return n + 1  # STOP


def naive_execute(program: list[_Inst]) -> int:
    """Step through every instruction of every repetition; returns the segment count (baseline 2)."""
    pc, now, loops, segments = 0, 0, [], 0
    while True:
        inst = program[pc]
        op = Opcode(inst.opcode)
        if op == Opcode.STOP:
            return segments
        now += inst.cycles * (inst.data if op == Opcode.LONG_DELAY else 1)
        segments += 1
        if op == Opcode.LOOP:
            loops.append([pc, inst.data])
            pc += 1
        elif op == Opcode.END_LOOP:
            loops[-1][1] -= 1
            if loops[-1][1] > 0:
                pc = loops[-1][0] + 1
            else:
                loops.pop()
                pc += 1
        elif op == Opcode.BRANCH:
            pc = inst.data
        else:
            pc += 1


def board_words(program) -> list[_Inst]:
    return [_Inst(i.flags | (0x7 << 21 if i.flags else 0), int(i.opcode), i.data,
                  round(i.duration_s * CLOCK)) for i in program.instructions]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repetitions", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    world = World(shape=(16, 16), seed=0)
    world.mw_frequency_hz = world.resonance_estimate_hz() - 1.515e6 + 2e6
    world.mw_power_dbm, world.mw_output = 10.0, True
    print(f"{'reps':>7} | {'words':>6} {'unrolled':>9} {'ratio':>7} | {'execute':>9} {'naive':>9} "
          f"{'speed-up':>9} | {'play(3)':>9} {'play(all)':>9} {'speed-up':>9} {'rel. diff':>9}")
    for reps in args.repetitions:
        ramsey = Ramsey(np.arange(5) * 100e-9, world.mw_frequency_hz, 10.0, (16, 16),
                        pi_pulse=PiPulse(52e-9, world.mw_frequency_hz, 10.0),
                        timing=ShotTiming(repetitions=reps))
        seq = ramsey.sequence(400e-9)
        program = ramsey.program(400e-9)
        words, unrolled = len(program.instructions), unrolled_words(seq)
        insts = board_words(program)
        t_exec = median_seconds(lambda insts=insts: execute(insts, CLOCK), args.repeats)
        t_naive = median_seconds(lambda insts=insts: naive_execute(insts), args.repeats)
        timeline = execute(insts, CLOCK)
        spins = SpinEnsemble(world)
        fast = spins.play(timeline)
        t_fast = median_seconds(lambda tl=timeline: SpinEnsemble(world).play(tl), args.repeats)
        slow = SpinEnsemble(world).play(timeline, max_simulated_repeats=reps)
        t_slow = median_seconds(
            lambda tl=timeline, r=reps: SpinEnsemble(world).play(tl, max_simulated_repeats=r), 1)
        diff = float(np.max(np.abs(fast - slow) / slow))
        print(f"{reps:>7} | {words:>6} {unrolled:>9} {unrolled / words:>6.0f}x | {t_exec * 1e3:>7.2f}ms "
              f"{t_naive * 1e3:>7.1f}ms {t_naive / t_exec:>8.0f}x | {t_fast * 1e3:>7.2f}ms "
              f"{t_slow * 1e3:>7.0f}ms {t_slow / t_fast:>8.0f}x {diff:>9.1e}")


if __name__ == "__main__":
    main()
