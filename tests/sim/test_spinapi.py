"""The simulated spinapi: call surface, return codes and the timeline it executes."""

import pytest

from instrument.protocols import Opcode
from sim.spinapi import (
    ERR_TOO_SHORT,
    PULSE_PROGRAM,
    STATUS_RUNNING,
    STATUS_STOPPED,
    SimSpinAPI,
)
from sim.world import World

ON = 0x7 << 21


@pytest.fixture
def world():
    return World(shape=(8, 8))


@pytest.fixture
def lib(world):
    lib = SimSpinAPI(world)
    assert lib.pb_init() == 0
    lib.pb_core_clock(500.0)
    return lib


def program(lib, words):
    assert lib.pb_start_programming(PULSE_PROGRAM) == 0
    addresses = [lib.pb_inst_pbonly(*w) for w in words]
    assert lib.pb_stop_programming() == 0
    return addresses


def test_init_twice_fails_with_error_text(lib):
    assert lib.pb_init() < 0
    assert b"already initialised" in lib.pb_get_error()
    assert lib.pb_close() == 0
    assert lib.pb_init() == 0


def test_calls_before_init_fail(world):
    lib = SimSpinAPI(world)
    assert lib.pb_start_programming(PULSE_PROGRAM) < 0
    assert b"pb_init" in lib.pb_get_error()
    assert lib.pb_start() < 0
    assert lib.pb_select_board(1) < 0
    assert lib.pb_count_boards() == 1


def test_instruction_rules_and_return_codes(lib):
    assert lib.pb_inst_pbonly(ON, 0, 0, 100.0) < 0  # not programming
    assert lib.pb_start_programming(PULSE_PROGRAM) == 0
    assert lib.pb_start_programming(3) < 0  # not the pulse program
    assert lib.pb_inst_pbonly(ON | 1, Opcode.CONTINUE, 0, 10.0) == 0  # 5 cycles: the minimum
    assert lib.pb_inst_pbonly(ON | 1, Opcode.CONTINUE, 0, 8.0) == ERR_TOO_SHORT  # 4 cycles
    assert b"shorter than the minimum" in lib.pb_get_error()
    assert lib.pb_inst_pbonly(ON, Opcode.LOOP, 0, 100.0) < 0
    assert b"LOOP count" in lib.pb_get_error()
    assert lib.pb_inst_pbonly(ON, Opcode.LONG_DELAY, 1, 100.0) < 0
    assert lib.pb_inst_pbonly(ON, Opcode.CONTINUE, 2**20, 100.0) < 0
    assert b"20-bit" in lib.pb_get_error()
    assert lib.pb_inst_pbonly(2**24, Opcode.CONTINUE, 0, 100.0) < 0
    assert b"24-bit" in lib.pb_get_error()
    assert lib.pb_inst_pbonly(ON, 9, 0, 100.0) < 0
    assert lib.pb_inst_pbonly(ON, Opcode.CONTINUE, 0, float("nan")) < 0
    assert lib.pb_inst_pbonly(ON, Opcode.CONTINUE, 0, 2**33 * 2.0) < 0
    assert lib.pb_inst_pbonly((6 << 21) | 1, Opcode.CONTINUE, 0, 100.0) == 1  # P1: SIX_PERIOD is defined
    assert lib.pb_inst_pbonly(ON, Opcode.STOP, 0, 100.0) == 2  # good words still get addresses


def test_memory_limit(world):
    lib = SimSpinAPI(world, memory_words=3)
    lib.pb_init()
    lib.pb_start_programming(PULSE_PROGRAM)
    assert [lib.pb_inst_pbonly(ON, 0, 0, 20.0) for _ in range(3)] == [0, 1, 2]
    assert lib.pb_inst_pbonly(ON, 0, 0, 20.0) < 0
    assert b"memory full" in lib.pb_get_error()


def test_lengths_quantised_to_declared_clock(lib):
    program(lib, [(ON | 1, Opcode.CONTINUE, 0, 21.2), (0, Opcode.STOP, 0, 10.0)])
    assert lib.pb_start() == 0
    assert lib.timeline.edges_ns(0) == [(0.0, True), (22.0, False)]  # 10.6 cycles -> 11


def test_wrong_declared_clock_stretches_the_timeline(world):
    lib = SimSpinAPI(world, clock_hz=500e6)
    lib.pb_init()
    lib.pb_core_clock(250.0)  # the user claims 250 MHz: 100 ns becomes 25 cycles = 50 ns
    program(lib, [(ON | 1, Opcode.CONTINUE, 0, 100.0), (0, Opcode.STOP, 0, 100.0)])
    lib.pb_start()
    assert lib.timeline.edges_ns(0) == [(0.0, True), (50.0, False)]


def test_timeline_edges_loop_and_long_delay(lib):
    program(lib, [
        (ON | 0b01, Opcode.CONTINUE, 0, 20.0),      # 0: laser 20 ns
        (ON | 0b10, Opcode.LOOP, 3, 10.0),          # 1: MW 10 ns  } x3
        (ON | 0b00, Opcode.END_LOOP, 1, 30.0),      # 2: gap 30 ns }
        (ON | 0b01, Opcode.LONG_DELAY, 4, 100.0),   # 3: laser 400 ns
        (0, Opcode.STOP, 0, 10.0),
    ])
    assert lib.pb_start() == 0
    t = lib.timeline
    assert t.edges_ns(0) == [(0.0, True), (20.0, False), (140.0, True), (540.0, False)]
    assert t.edges_ns(1) == [(20.0, True), (30.0, False), (60.0, True), (70.0, False),
                             (100.0, True), (110.0, False)]
    assert t.duration_s == pytest.approx(540e-9)
    assert not t.periodic


def test_short_pulse_bits(lib):
    program(lib, [
        ((3 << 21) | 1, Opcode.CONTINUE, 0, 20.0),  # three periods high (6 ns), then low
        (0, Opcode.CONTINUE, 0, 20.0),
        ((0 << 21) | 1, Opcode.CONTINUE, 0, 20.0),  # field 0: outputs low whatever the flags
        (ON | 1, Opcode.CONTINUE, 0, 10.0),
        (0, Opcode.STOP, 0, 10.0),
    ])
    lib.pb_start()
    assert lib.timeline.edges_ns(0) == [(0.0, True), (6.0, False), (60.0, True), (70.0, False)]


def test_short_pulse_six_period_is_six_clock_periods(lib):
    # P1: spinapi.h defines SIX_PERIOD (bits 21-23 = 110), which the ESR-PRO manual's table omits
    program(lib, [((6 << 21) | 1, Opcode.CONTINUE, 0, 20.0), (0, Opcode.STOP, 0, 10.0)])
    lib.pb_start()
    assert lib.timeline.edges_ns(0) == [(0.0, True), (12.0, False)]


def test_reserved_status_bits_are_set_as_a_board_may(world):
    # P3: bits 5-31 are reserved and "should not be assumed" to be 0
    lib = SimSpinAPI(world, reserved_status_bits=0xFFFFFFE0)
    lib.pb_init()
    assert lib.pb_read_status() == 0xFFFFFFE0 | STATUS_STOPPED


def test_subroutine_and_branch_forever(lib, world):
    program(lib, [
        (ON | 1, Opcode.JSR, 3, 10.0),   # 0: laser, call 3
        (ON | 0, Opcode.BRANCH, 0, 30.0),  # 1: back to start
        (0, Opcode.STOP, 0, 10.0),       # 2: never reached
        (ON | 2, Opcode.RTS, 0, 20.0),   # 3: MW 20 ns, return
    ])
    assert lib.pb_start() == 0
    t = lib.timeline
    assert t.periodic and t.period_s == pytest.approx(60e-9)
    assert t.edges_ns(1) == [(10.0, True), (30.0, False)]
    assert world.laser_on
    assert lib.pb_read_status() == STATUS_RUNNING


def test_bad_program_structure_fails_at_start(lib):
    program(lib, [(ON, Opcode.CONTINUE, 0, 10.0)])
    assert lib.pb_start() < 0
    assert b"past the last instruction" in lib.pb_get_error()
    program(lib, [(ON, Opcode.RTS, 0, 10.0)])
    assert lib.pb_start() < 0
    assert b"RTS without a JSR" in lib.pb_get_error()
    program(lib, [(ON, Opcode.END_LOOP, 0, 10.0), (0, Opcode.STOP, 0, 10.0)])
    assert lib.pb_start() < 0


def test_square_wave_drives_world_and_stop_clears_it(lib, world):
    half = 80_000.0  # ns: 6.25 kHz
    program(lib, [(ON | 0b111, Opcode.CONTINUE, 0, half), (ON | 0b001, Opcode.BRANCH, 0, half)])
    world.laser_on = False
    assert lib.pb_start() == 0
    assert world.laser_on and world.mw_gate_modulation_hz == pytest.approx(6250.0)
    assert lib.pb_stop() == 0
    assert world.mw_gate_modulation_hz == 0.0 and not world.laser_on
    assert lib.pb_read_status() == STATUS_STOPPED


def test_uneven_mw_pattern_is_not_a_modulation(lib, world):
    program(lib, [(ON | 0b011, Opcode.CONTINUE, 0, 1000.0), (ON | 0b001, Opcode.BRANCH, 0, 9000.0)])
    lib.pb_start()
    assert world.mw_gate_modulation_hz == 0.0
    assert world.laser_on


def test_finite_program_runs_for_its_duration_in_virtual_time(lib, world):
    program(lib, [(ON | 1, Opcode.LONG_DELAY, 10, 1000.0), (0, Opcode.STOP, 0, 10.0)])
    lib.pb_start()
    assert lib.pb_read_status() == STATUS_RUNNING
    world.clock.advance(20e-6)
    assert lib.pb_read_status() == STATUS_STOPPED


def test_huge_loop_costs_nothing(lib):
    program(lib, [
        (ON | 1, Opcode.LOOP, 1_000_000, 10.0),
        (ON | 0, Opcode.END_LOOP, 0, 10.0),
        (0, Opcode.STOP, 0, 10.0),
    ])
    assert lib.pb_start() == 0
    t = lib.timeline
    assert t.duration_s == pytest.approx(20e-3)
    assert len(t.runs) == 1 and t.runs[0].repeats == 1_000_000


def test_wait_halts_until_a_trigger_the_sim_never_gives(lib, world):
    from sim.spinapi import STATUS_WAITING

    program(lib, [(ON | 1, Opcode.CONTINUE, 0, 50.0), (ON | 2, Opcode.WAIT, 0, 20.0),
                  (0, Opcode.STOP, 0, 10.0)])
    assert lib.pb_start() == 0
    t = lib.timeline
    assert t.waiting and t.edges_ns(1) == [(50.0, True)]
    world.clock.advance(1e-3)
    assert lib.pb_read_status() == STATUS_WAITING


def test_jsr_nesting_limit(lib):
    program(lib, [(ON, Opcode.JSR, 0, 10.0)])
    assert lib.pb_start() < 0
    assert b"nested deeper" in lib.pb_get_error()


def test_nested_loops_expand_exactly(lib):
    program(lib, [
        (ON | 1, Opcode.LOOP, 3, 10.0),      # 0: outer x3: laser 10 ns
        (ON | 2, Opcode.LOOP, 2, 10.0),      # 1:   inner x2: MW 10 ns
        (ON | 0, Opcode.END_LOOP, 1, 10.0),  # 2:   gap 10 ns
        (ON | 0, Opcode.END_LOOP, 0, 20.0),  # 3: gap 20 ns
        (0, Opcode.STOP, 0, 10.0),
    ])
    assert lib.pb_start() == 0
    t = lib.timeline
    assert t.duration_s == pytest.approx(3 * (10 + 2 * 20 + 20) * 1e-9)
    assert [c for c, lvl in t.edges_ns(1) if lvl] == [10.0, 30.0, 80.0, 100.0, 150.0, 170.0]
    assert [c for c, lvl in t.edges_ns(0) if lvl] == [0.0, 70.0, 140.0]
