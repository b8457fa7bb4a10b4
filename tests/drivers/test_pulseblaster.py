"""PulseBlaster driver on the simulated spinapi and on a misbehaving fake library."""

import ctypes

import pytest

from drivers import pulseblaster as pbmod
from drivers.pulseblaster import PulseBlaster, PulseBlasterError
from instrument.protocols import (
    InstrumentError,
    Opcode,
    PulseGenerator,
    PulseInstruction,
    PulseProgram,
    SafetyLimits,
)
from sim.spinapi import SimSpinAPI
from sim.world import World


@pytest.fixture
def world():
    return World(shape=(8, 8))


@pytest.fixture
def lib(world):
    return SimSpinAPI(world)


@pytest.fixture
def pb(lib):
    with PulseBlaster("pb", library=lib) as pb:
        yield pb


def prog(*words):
    return PulseProgram(tuple(PulseInstruction(f, Opcode(o), d, t) for f, o, d, t in words))


BLINK = prog((1, 0, 0, 100e-9), (0, Opcode.BRANCH, 0, 100e-9))


def test_satisfies_protocol_and_sets_up_board(pb, lib):
    assert isinstance(pb, PulseGenerator)
    assert pb.clock_hz == 500e6
    assert lib.calls[:4] == ["pb_count_boards", "pb_select_board", "pb_init", "pb_core_clock"]
    assert lib.declared_clock_mhz == 500.0


def test_load_start_stop_drives_the_sim(pb, lib, world):
    pb.load(BLINK)
    pb.start()
    assert lib.timeline.edges_ns(0) == [(0.0, True), (100.0, False)]
    assert world.laser_on
    pb.stop()
    assert not world.laser_on


def test_driver_sets_esr_pro_on_bits(pb, lib):
    pb.load(prog((0b101, 0, 0, 20e-9), (0, Opcode.STOP, 0, 10e-9)))
    assert lib._program[0].flags == (0x7 << 21) | 0b101
    assert lib._program[1].flags == 0  # all low stays all low
    raw = PulseBlaster("raw", library=SimSpinAPI(World(shape=(4, 4))), short_pulse_bits=False)
    raw.load(prog((0b101, 0, 0, 20e-9), (0, Opcode.STOP, 0, 10e-9)))
    raw.close()


@pytest.mark.parametrize(
    ("program", "match"),
    [
        (prog((1, 0, 0, 8e-9), (0, 1, 0, 10e-9)), "shorter than the board's minimum"),
        (prog((1, 0, 0, 15e-9), (0, 1, 0, 10e-9)), "not a multiple of the 2 ns clock"),
        (prog((2**24, 0, 0, 20e-9), (0, 1, 0, 10e-9)), "24 bits"),
        (prog((1, Opcode.LOOP, 0, 20e-9), (0, 1, 0, 10e-9)), "LOOP count"),
        (prog((1, Opcode.LONG_DELAY, 1, 20e-9), (0, 1, 0, 10e-9)), "LONG_DELAY multiplier"),
        (prog((1, 0, 2**20, 20e-9), (0, 1, 0, 10e-9)), "20 bits"),
        (prog((1, Opcode.BRANCH, 5, 20e-9)), "beyond the last instruction"),
        (prog((1, 0, 0, 10.0), (0, 1, 0, 10e-9)), "LONG_DELAY"),
        (PulseProgram(()), "no instructions"),
    ],
)
def test_bad_programs_refused_before_the_board(pb, lib, program, match):
    before = len(lib.calls)
    with pytest.raises(PulseBlasterError, match=match):
        pb.load(program)
    assert lib.calls[before:] == []


def test_memory_and_lab_limits(world):
    lib = SimSpinAPI(world)
    small = PulseBlaster("pb", library=lib, memory_words=2)
    with pytest.raises(PulseBlasterError, match="exceed the board's memory of 2"):
        small.load(prog(*[(1, 0, 0, 20e-9)] * 2, (0, 1, 0, 10e-9)))
    small.close()
    strict = PulseBlaster("pb", library=SimSpinAPI(world), limits=SafetyLimits(pulse_min_s=50e-9))
    with pytest.raises(PulseBlasterError, match="pulse_min_s"):
        strict.load(prog((1, 0, 0, 20e-9), (0, 1, 0, 50e-9)))
    strict.close()


def test_library_error_raises_with_error_text(pb, lib):
    lib.memory_words = 1  # the board is smaller than the driver believes
    with pytest.raises(PulseBlasterError, match="pb_inst_pbonly.*memory full"):
        pb.load(prog((1, 0, 0, 20e-9), (0, 1, 0, 10e-9)))
    assert not lib._programming  # programming mode left even after the failure


def test_init_failure_and_missing_board(world):
    lib = SimSpinAPI(world)
    lib.pb_init()  # somebody else holds the board
    with pytest.raises(PulseBlasterError, match="pb_init.*already initialised"):
        PulseBlaster("pb", library=lib)
    with pytest.raises(PulseBlasterError, match="only 1 board"):
        PulseBlaster("pb", library=SimSpinAPI(world), board=1)


def test_start_without_program_and_after_close(pb):
    with pytest.raises(PulseBlasterError, match="no program loaded"):
        pb.start()
    pb.close()
    pb.close()
    with pytest.raises(PulseBlasterError, match="closed"):
        pb.load(BLINK)


class BrokenLib:
    """A library whose every call returns garbage or raises: safe_state must still not raise."""

    def __init__(self):
        self.fail = False

    def __getattr__(self, name):
        def call(*args):
            if name == "pb_count_boards":
                return 1
            if name == "pb_get_error":
                raise OSError("device unplugged")
            if self.fail:
                return "garbage" if name == "pb_stop" else -7
            return 0
        return call


def test_garbage_returns_and_a_failed_safe_state_is_reported():
    lib = BrokenLib()
    pb = PulseBlaster("pb", library=lib)
    lib.fail = True
    with pytest.raises(PulseBlasterError, match="not an integer"):
        pb.stop()
    with pytest.raises(PulseBlasterError, match=r"spinapi error -7: \(pb_get_error unavailable\)"):
        pb.program = BLINK
        pb.start()
    with pytest.raises(InstrumentError, match="outputs may still be high.*power-cycle"):
        pb.safe_state()
    with pytest.raises(InstrumentError):
        pb.close()  # reports, and still releases the board
    pb.close()


def test_safe_state_drives_outputs_low(pb, lib, world):
    pb.load(BLINK)
    pb.start()
    pb.safe_state()
    assert not world.laser_on and world.mw_gate_modulation_hz == 0.0
    assert lib.timeline.final_outputs == 0


def test_missing_library_lists_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv(pbmod.LIBRARY_ENV, str(tmp_path / "nope.so"))
    monkeypatch.setattr(pbmod.ctypes.util, "find_library", lambda name: None)

    def refuse(path):
        raise OSError(f"cannot open {path}")

    monkeypatch.setattr(pbmod.ctypes, "CDLL", refuse)
    with pytest.raises(InstrumentError, match="nope.so") as err:
        PulseBlaster("pb")
    assert "libspinapi.so" in str(err.value) and pbmod.LIBRARY_ENV in str(err.value)


def test_windows_candidates(monkeypatch):
    monkeypatch.setattr(pbmod.sys, "platform", "win32")
    monkeypatch.delenv(pbmod.LIBRARY_ENV, raising=False)
    names = pbmod.library_candidates()
    assert any(n.endswith(r"SpinCore\SpinAPI\lib\spinapi64.dll") for n in names)


def test_ctypes_binding_sets_signatures_and_errcheck(monkeypatch):
    """A ctypes library gets argtypes, restype and an errcheck that raises on negative codes."""

    class FakeFunc:
        def __init__(self, result):
            self.result = result

        def __call__(self, *args):
            out = self.result
            if getattr(self, "errcheck", None) is not None:
                return self.errcheck(out, self, args)
            return out

    class FakeCDLL(ctypes.CDLL):
        def __init__(self):
            self.funcs = {}

        def __getattr__(self, name):
            if name.startswith("pb_"):
                return self.funcs.setdefault(name, FakeFunc(b"bad clock" if name == "pb_get_error" else 1))
            raise AttributeError(name)

    fake = FakeCDLL()
    pb = PulseBlaster("pb", library=fake)
    inst = fake.funcs["pb_inst_pbonly"]
    assert inst.argtypes == [ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_double]
    assert inst.restype is ctypes.c_int
    assert fake.funcs["pb_core_clock"].restype is None
    fake.funcs["pb_start"].result = -91
    pb.program = BLINK
    with pytest.raises(PulseBlasterError, match="spinapi error -91: bad clock"):
        pb.start()


# ---- facts of docs/hardware/pulseblaster.md -----------------------------------------------------


def test_p4_safe_state_is_a_running_all_low_branch_even_if_stop_holds_outputs(world):
    # spinapi.h: pb_stop may leave the TTL outputs as they were; the sim takes that branch here
    lib = SimSpinAPI(world, pessimistic_stop=True)
    pb = PulseBlaster("pb", library=lib)
    pb.load(prog((1, 0, 0, 100e-9), (1, Opcode.BRANCH, 0, 100e-9)))  # laser on, forever
    pb.start()
    assert world.laser_on
    # the old safe state (pb_stop, then a lone STOP word) leaves the laser on under this reading
    lib.pb_stop()
    pb._write_words([(0, int(Opcode.STOP), 0, 10)])
    lib.pb_start()
    assert world.laser_on
    pb.safe_state()
    assert not world.laser_on and world.mw_gate_modulation_hz == 0.0
    assert lib.running and lib.timeline.periodic  # the all-low program keeps running
    assert [(i.flags, i.opcode, i.data) for i in lib._program] == [(0, Opcode.BRANCH, 0)]
    assert pb.status_names() == ["running"]
    pb.close()
    assert not world.laser_on


def test_p3_status_is_unsigned_and_only_bits_0_to_4_count(world):
    lib = SimSpinAPI(world, reserved_status_bits=0xFFFFFFE0)
    pb = PulseBlaster("pb", library=lib)
    assert pb.status() == 0x1 and pb.status_names() == ["stopped"]
    pb.load(BLINK)
    pb.start()
    assert pb.status() == 0x4 and pb.status_names() == ["running"]
    pb.close()


def test_p1_six_period_short_pulse_is_accepted_by_board_and_driver(pb, lib):
    pb.load(prog(((6 << 21) | 1, 0, 0, 20e-9), (0, Opcode.STOP, 0, 10e-9)))
    assert lib._program[0].flags == (6 << 21) | 1  # the driver keeps a short-pulse field it is given
    pb.start()
    assert lib.timeline.edges_ns(0) == [(0.0, True), (12.0, False)]


def test_constraints_are_reported_and_drive_the_compiler(world):
    from instrument.protocols import ESR_PRO_500
    from sequences.pulses import Block, ChannelMap, Pulse, PulseSequence, PulseSequenceError, compile_sequence

    pb = PulseBlaster("pb", library=SimSpinAPI(world), memory_words=3)
    c = pb.constraints
    assert (c.clock_hz, c.memory_words, c.min_cycles, c.max_data, c.output_bits) == (
        500e6, 3, ESR_PRO_500.min_cycles, ESR_PRO_500.max_data, 21)
    comb = Block(100e-9, tuple(Pulse("laser", t * 1e-9, 10e-9) for t in (0, 20, 40, 60)))
    seq = PulseSequence((comb,), ChannelMap(), loop_forever=True)
    with pytest.raises(PulseSequenceError, match="board holds 3"):
        compile_sequence(seq, constraints=c)
    assert len(compile_sequence(seq).instructions) > 3  # the reference board holds it
    pb.close()


def test_station_checks_report_the_safe_state_program(pb, world):
    checks = {r.check: r for r in pb.station_checks()}
    assert checks["identity"].ok and "500 MHz" in checks["identity"].detail
    assert checks["safe-state program"].ok and "running" in checks["safe-state program"].detail
    lib = BrokenLib()
    broken = PulseBlaster("pb", library=lib)
    lib.fail = True
    bad = {r.check: r for r in broken.station_checks()}["safe-state program"]
    assert bad.ok is False and "power-cycle" in bad.fix
