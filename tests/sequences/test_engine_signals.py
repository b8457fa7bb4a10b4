"""Signals never split a step between its sinks and cannot be swallowed by a catch-all."""

import contextlib
import os
import signal

import pytest

from instrument.protocols import SafetyLimits
from instrument.storage.runs import RunWriter
from sequences.engine import Engine, Terminated
from tests.sequences.test_engine import CountingSequence, FakeInstrument, RecordingSink


class SignalInWrite(RecordingSink):
    """The first sink: sends ``signum`` to this process while it stores step ``at``."""

    def __init__(self, at, signum):
        super().__init__()
        self.at, self.signum = at, signum

    def write(self, step):
        if step.index == self.at:
            os.kill(os.getpid(), self.signum)  # handled at once, in the middle of the step's writes
        super().write(step)


def engine_with(sinks):
    instruments = {"mw": FakeInstrument("mw"), "coils": FakeInstrument("coils")}
    return Engine(instruments, SafetyLimits(), sinks), instruments


@pytest.mark.parametrize("signum, raised", [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_while_a_step_is_stored_waits_until_every_sink_has_it(signum, raised, tmp_path):
    first, second = SignalInWrite(2, signum), RecordingSink()
    writer = RunWriter(tmp_path, "k", "s", {"x": ""}, ("x",))
    engine, inst = engine_with([first, writer, second])
    with pytest.raises(raised) as stopped:
        engine.run(CountingSequence(6))
    assert first.steps == second.steps == [0, 1, 2]  # step 2 reached every sink, step 3 none
    assert stopped.value.outcome.steps_done == 3 and stopped.value.outcome.status == "aborted"
    from instrument.storage.runs import load_run

    run = load_run(tmp_path, writer.run_id)
    assert run.scalars["x"].tolist() == [0, 1, 2] and run.steps_done == 3  # database and frames agree
    assert run.metadata["status"] == "aborted"
    assert all(i.safe_calls == 1 for i in inst.values())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_catch_all_in_the_sequence_cannot_swallow_sigterm():
    def hook(i):
        if i == 2:
            with contextlib.suppress(Exception):  # the catch-all a driver or QCoDeS might have
                os.kill(os.getpid(), signal.SIGTERM)

    sink = RecordingSink()
    engine, _ = engine_with([sink])
    with pytest.raises(Terminated):
        engine.run(CountingSequence(5, hook=hook))
    assert sink.steps == [0, 1] and sink.closed[0] == "aborted"


def test_sigterm_swallowed_even_by_a_bare_except_is_honoured_at_the_next_step():
    def hook(i):
        if i == 2:
            with contextlib.suppress(BaseException):  # the worst catch-all there is
                os.kill(os.getpid(), signal.SIGTERM)

    sink = RecordingSink()
    engine, _ = engine_with([sink])
    with pytest.raises(Terminated):
        engine.run(CountingSequence(5, hook=hook))
    assert sink.steps == [0, 1, 2]  # the step in hand finished; no further step started
    assert sink.closed == ("aborted", "terminated by SIGTERM")
