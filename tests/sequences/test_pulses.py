"""Pulse-sequence compiler: instruction lists and the simulated timelines, edge by edge (ns)."""

import pytest

from drivers.pulseblaster import PulseBlaster
from instrument.protocols import ESR_PRO_500, Opcode
from sequences.pulses import (
    DEFAULT_CHANNELS,
    Block,
    ChannelMap,
    Pulse,
    PulseSequence,
    PulseSequenceError,
    compile_sequence,
    lockin_modulation_frequency_hz,
    lockin_modulation_program,
)
from sim.spinapi import SIM_WIRING, SimSpinAPI
from sim.world import World

NS = 1e-9
LASER, MW, CAM, SPAD = 0, 1, 2, 3


def words(program):
    return [(i.flags, i.opcode, i.data, round(i.duration_s / NS)) for i in program.instructions]


def run(program):
    """Load a program through the driver on the simulated board; return the timeline."""
    lib = SimSpinAPI(World(shape=(4, 4)))
    pb = PulseBlaster("pb", library=lib)
    pb.load(program)
    pb.start()
    return lib.timeline


def seq(*blocks, loop_forever=False, delays=None):
    return PulseSequence(tuple(blocks), ChannelMap(dict(DEFAULT_CHANNELS), delays or {}), loop_forever)


def test_default_channels_match_the_sim_wiring():
    assert dict(DEFAULT_CHANNELS) == SIM_WIRING


def test_overlapping_channels_split_into_segments():
    s = seq(Block(1000 * NS, (Pulse("laser", 0, 600 * NS), Pulse("mw_switch", 200 * NS, 100 * NS))))
    p = compile_sequence(s)
    assert words(p) == [
        (0b01, Opcode.CONTINUE, 0, 200),
        (0b11, Opcode.CONTINUE, 0, 100),
        (0b01, Opcode.CONTINUE, 0, 300),
        (0b00, Opcode.CONTINUE, 0, 400),
        (0, Opcode.STOP, 0, 10),
    ]
    t = run(p)
    assert t.edges_ns(LASER) == [(0.0, True), (600.0, False)]
    assert t.edges_ns(MW) == [(200.0, True), (300.0, False)]


def test_repetition_becomes_loop_and_edges_repeat():
    block = Block(100 * NS, (Pulse("mw_switch", 0, 20 * NS, "pi"),), repetitions=3, name="train")
    tail = Block(50 * NS, (Pulse("laser", 0, 50 * NS),))
    p = compile_sequence(seq(block, tail))
    assert words(p) == [
        (0b10, Opcode.LOOP, 3, 20),
        (0b00, Opcode.END_LOOP, 0, 80),
        (0b01, Opcode.CONTINUE, 0, 50),
        (0, Opcode.STOP, 0, 10),
    ]
    t = run(p)
    assert t.edges_ns(MW) == [(0.0, True), (20.0, False), (100.0, True), (120.0, False),
                              (200.0, True), (220.0, False)]
    assert t.edges_ns(LASER) == [(300.0, True), (350.0, False)]


def test_constant_blocks_merge_and_repeat_without_loop():
    a = Block(100 * NS, (Pulse("laser", 0, 100 * NS),), repetitions=5)
    b = Block(40 * NS, (Pulse("laser", 0, 40 * NS),))
    assert words(compile_sequence(seq(a, b))) == [(1, Opcode.CONTINUE, 0, 540), (0, Opcode.STOP, 0, 10)]


def test_long_wait_uses_long_delay_and_keeps_its_length():
    wait_s = 20.0  # beyond the 32-bit counter (8.6 s at 500 MHz)
    p = compile_sequence(seq(Block(20 * NS, (Pulse("laser", 0, 20 * NS),)), Block(wait_s)))
    ops = [w[1] for w in words(p)]
    assert Opcode.LONG_DELAY in ops
    total = sum(i.duration_s * (i.data if i.opcode == Opcode.LONG_DELAY else 1)
                for i in p.instructions if i.opcode != Opcode.STOP)
    assert total == pytest.approx(wait_s + 20 * NS, abs=1e-12)
    assert all(i.duration_s * 500e6 <= ESR_PRO_500.max_cycles for i in p.instructions)
    assert run(p).duration_s == pytest.approx(wait_s + 20 * NS, abs=1e-12)


def test_long_wait_inside_a_loop_keeps_loop_words_plain():
    s = seq(Block(20.0, (Pulse("laser", 0, 20 * NS),), repetitions=2), Block(20 * NS))
    p = compile_sequence(s)
    assert p.instructions[0].opcode == Opcode.LOOP
    end = [i for i in p.instructions if i.opcode == Opcode.END_LOOP]
    assert len(end) == 1
    assert run(p).duration_s == pytest.approx(40.0 + 20 * NS, abs=1e-12)


def test_loop_forever_branches_and_unrolls_a_trailing_loop():
    init = Block(100 * NS, (Pulse("laser", 0, 100 * NS),))
    train = Block(100 * NS, (Pulse("mw_switch", 0, 20 * NS),), repetitions=4)
    p = compile_sequence(seq(init, train, loop_forever=True))
    w = words(p)
    assert w[-1][1] == Opcode.BRANCH and w[-1][2] == 0
    assert [x[1] for x in w].count(Opcode.LOOP) == 1 and w[1][2] == 3
    t = run(p)
    assert t.periodic and t.period_s == pytest.approx(500 * NS)
    assert [e for e, lvl in t.edges_ns(MW) if lvl] == [100.0, 200.0, 300.0, 400.0]


def test_channel_delay_moves_edges_earlier():
    s = seq(Block(1000 * NS, (Pulse("laser", 500 * NS, 300 * NS), Pulse("mw_switch", 100 * NS, 50 * NS))),
            delays={"laser": 120 * NS, "mw_switch": 30 * NS})
    t = run(compile_sequence(s))
    assert t.edges_ns(LASER) == [(380.0, True), (680.0, False)]
    assert t.edges_ns(MW) == [(70.0, True), (120.0, False)]


def test_lockin_program_is_two_words_at_6250_hz():
    p = lockin_modulation_program()
    assert words(p) == [(0b111, Opcode.CONTINUE, 0, 80_000), (0b001, Opcode.BRANCH, 0, 80_000)]
    lib = SimSpinAPI(World(shape=(4, 4)))
    pb = PulseBlaster("pb", library=lib)
    pb.load(p)
    pb.start()
    assert lib.world.mw_gate_modulation_hz == pytest.approx(6250.0)
    assert lib.world.laser_on
    assert lib.timeline.edges_ns(CAM) == lib.timeline.edges_ns(MW) == [(0.0, True), (80_000.0, False)]


def test_lockin_with_switch_delay_wraps_the_square_wave():
    cmap = ChannelMap(dict(DEFAULT_CHANNELS), {"mw_switch": 1000 * NS})
    t = run(lockin_modulation_program(6250.0, cmap))
    assert t.edges_ns(MW) == [(0.0, True), (79_000.0, False), (159_000.0, True)]
    assert t.square_wave_hz(MW) == pytest.approx(6250.0)


def test_lockin_frequency_rounds_to_the_clock():
    assert lockin_modulation_frequency_hz(6250.0) == 6250.0
    f = lockin_modulation_frequency_hz(7001.0)
    assert f == pytest.approx(7001.0, rel=1e-4) and (500e6 / f / 2) == pytest.approx(round(500e6 / f / 2))
    with pytest.raises(PulseSequenceError, match="> 0 Hz"):
        lockin_modulation_program(0.0)
    with pytest.raises(PulseSequenceError, match="at least 5"):
        lockin_modulation_program(100e6)


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (Block(100 * NS, (Pulse("mw_switch", 0, 8 * NS, "pi"),)), "pulse 'pi'.*4 clock cycles"),
        (Block(100 * NS, (Pulse("mw_switch", 3 * NS, 20 * NS, "pi"),)),
         "pulse 'pi'.*not on the 2 ns clock grid"),
        (Block(100 * NS, (Pulse("rf", 0, 20 * NS, "pi"),)),
         "pulse 'pi'.*channel 'rf' is not in the channel map"),
        (Block(100 * NS, (Pulse("laser", 0, 50 * NS, "a"), Pulse("laser", 40 * NS, 20 * NS, "b"))),
         "pulse 'b' overlaps pulse 'a'"),
        (Block(100 * NS, (Pulse("laser", 90 * NS, 20 * NS, "late"),)), "pulse 'late'.*does not fit"),
        (Block(100 * NS, (Pulse("laser", 0, 20 * NS, "a"), Pulse("mw_switch", 24 * NS, 20 * NS, "b"))),
         "change twice within 2 clock cycles.*pulse 'b'"),
        (Block(100 * NS, repetitions=0), "repetitions"),
        (Block(100 * NS, repetitions=2**20), "repetitions"),
        (Block(5 * NS), "not on the 2 ns clock grid"),
        (Block(float("nan")), "not a finite time"),
    ],
)
def test_bad_input_refused_naming_the_pulse(block, match):
    with pytest.raises(PulseSequenceError, match=match):
        compile_sequence(seq(block))


def test_delay_pushing_a_pulse_before_its_block_is_refused():
    s = seq(Block(100 * NS, (Pulse("laser", 10 * NS, 20 * NS, "early"),)), delays={"laser": 50 * NS})
    with pytest.raises(PulseSequenceError, match="pulse 'early'.*before its block"):
        compile_sequence(s)


def test_program_over_memory_is_refused():
    pulses = tuple(Pulse("laser", i * 40 * NS, 20 * NS) for i in range(60))
    with pytest.raises(PulseSequenceError, match="needs 121 instructions but the board holds 100"):
        compile_sequence(seq(Block(2400 * NS, pulses, name="comb")), memory_words=100)


@pytest.mark.parametrize(
    ("bits", "delays", "match"),
    [
        ({"laser": 21}, {}, "bits 0-20"),
        ({"laser": 0, "mw": 0}, {}, "both mapped to bit 0"),
        ({"laser": 0}, {"mw": 1e-9}, "not in the channel map"),
        ({"laser": 0}, {"laser": -1e-9}, ">= 0 s"),
    ],
)
def test_bad_channel_maps(bits, delays, match):
    with pytest.raises(PulseSequenceError, match=match):
        ChannelMap(bits, delays)


def test_empty_sequence_refused():
    with pytest.raises(PulseSequenceError, match="no blocks"):
        compile_sequence(PulseSequence(()))


def test_touching_pulses_on_one_channel_merge_into_one_high():
    s = seq(Block(100 * NS, (Pulse("laser", 10 * NS, 20 * NS), Pulse("laser", 30 * NS, 40 * NS))))
    assert words(compile_sequence(s)) == [
        (0, Opcode.CONTINUE, 0, 10), (1, Opcode.CONTINUE, 0, 60), (0, Opcode.CONTINUE, 0, 30),
        (0, Opcode.STOP, 0, 10),
    ]


def test_long_comb_compiles_edge_exact():
    pulses = tuple(Pulse("mw_switch", i * 40 * NS, 20 * NS) for i in range(1000))
    p = compile_sequence(seq(Block(40_000 * NS, pulses)))
    assert len(p.instructions) == 2001
    edges = run(p).edges_ns(MW)
    assert edges[:4] == [(0.0, True), (20.0, False), (40.0, True), (60.0, False)]
    assert edges[-1] == (39_980.0, False) and len(edges) == 2000
