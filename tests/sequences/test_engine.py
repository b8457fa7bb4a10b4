import os
import signal
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from instrument.protocols import SafetyLimitError, SafetyLimits
from instrument.storage.runs import Step
from sequences.engine import Engine, LiveSink, RunAborted, Terminated


@dataclass
class FakeInstrument:
    name: str
    safe_calls: int = 0
    fail_safe: bool = False

    def safe_state(self):
        self.safe_calls += 1
        if self.fail_safe:
            raise RuntimeError("relay stuck")

    def close(self):
        pass


@dataclass
class RecordingSink:
    opened: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    closed: tuple | None = None

    def open(self, metadata, image_shapes, n_steps):
        self.opened = {"metadata": metadata, "shapes": image_shapes, "n": n_steps}

    def write(self, step):
        self.steps.append(step.index)

    def close(self, status, reason=""):
        self.closed = (status, reason)


@dataclass
class CountingSequence:
    n: int = 5
    fail_at: int | None = None
    interrupt_at: int | None = None
    hook: object = None
    power_dbm: float = 0.0
    name: str = "counting"
    scalars: dict = field(default_factory=lambda: {"x": ""})
    setpoints: tuple = ("x",)

    @property
    def n_steps(self):
        return self.n

    @property
    def image_shapes(self):
        return {"img": (2, 2)}

    def parameters(self):
        return {"n": self.n}

    def check(self, limits):
        limits.check_mw_power(self.power_dbm)

    def run(self, instruments):
        for i in range(self.n):
            if i == self.fail_at:
                raise OSError("camera cable unplugged")
            if i == self.interrupt_at:
                raise KeyboardInterrupt
            if self.hook:
                self.hook(i)
            yield Step(i, {"x": i}, {"img": np.full((2, 2), i, np.float32)})


def make_engine(sinks, **kw):
    instruments = {"mw": FakeInstrument("mw"), "coils": FakeInstrument("coils", **kw)}
    return Engine(instruments, SafetyLimits(), sinks, {"simulated": True}), instruments


def test_completed_run_feeds_every_sink_and_leaves_hardware_safe():
    sink, live = RecordingSink(), LiveSink()
    engine, inst = make_engine([sink, live])
    outcome = engine.run(CountingSequence(5))
    assert outcome.status == "completed" and outcome.steps_done == 5
    assert sink.steps == [0, 1, 2, 3, 4]
    assert sink.opened["metadata"]["sequence"] == {"name": "counting", "n": 5}
    assert sink.closed == ("completed", "")
    assert live.latest()[0] == 5 and live.latest()[1].index == 4
    assert all(i.safe_calls == 1 for i in inst.values())


def test_failure_keeps_measured_steps_and_records_reason():
    sink = RecordingSink()
    engine, inst = make_engine([sink])
    outcome = engine.run(CountingSequence(5, fail_at=3))
    assert outcome.status == "failed"
    assert sink.steps == [0, 1, 2]
    assert "camera cable unplugged" in sink.closed[1]
    assert isinstance(outcome.error, OSError)
    assert all(i.safe_calls == 1 for i in inst.values())


def test_ctrl_c_makes_safe_closes_as_aborted_and_reraises():
    sink = RecordingSink()
    engine, inst = make_engine([sink])
    with pytest.raises(KeyboardInterrupt):
        engine.run(CountingSequence(5, interrupt_at=2))
    assert sink.steps == [0, 1]
    assert sink.closed == ("aborted", "interrupted by Ctrl-C")
    assert all(i.safe_calls == 1 for i in inst.values())


def test_sigterm_aborts_cleanly():
    sink = RecordingSink()
    engine, inst = make_engine([sink])

    def hook(i):
        if i == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    # Re-raised after the run is closed (so every command exits 143), carrying how the run ended.
    with pytest.raises(Terminated) as stopped:
        engine.run(CountingSequence(5, hook=hook))
    outcome = stopped.value.outcome
    assert outcome.status == "aborted" and "SIGTERM" in outcome.reason
    assert sink.closed[0] == "aborted" and outcome.steps_done == len(sink.steps)
    assert sink.steps == [0, 1]
    assert all(i.safe_calls == 1 for i in inst.values())
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_safety_limit_refused_before_anything_opens_or_moves():
    sink = RecordingSink()
    engine, inst = make_engine([sink])
    with pytest.raises(SafetyLimitError, match="MW power = 20 dBm exceeds"):
        engine.run(CountingSequence(5, power_dbm=20.0))
    assert sink.opened == {} and sink.closed is None
    assert all(i.safe_calls == 0 for i in inst.values())


def test_one_instrument_failing_to_go_safe_does_not_skip_the_others():
    sink = RecordingSink()
    engine, inst = make_engine([sink], fail_safe=True)
    outcome = engine.run(CountingSequence(3))
    assert inst["mw"].safe_calls == 1
    assert "not made safe: coils: relay stuck" in outcome.reason


def test_abort_and_pause_from_another_thread():
    sink = RecordingSink()
    engine, _ = make_engine([sink])
    reached = threading.Event()

    def hook(i):
        if i == 1:
            engine.pause()
            reached.set()

    t = threading.Thread(target=lambda: (reached.wait(5), engine.abort()))
    t.start()
    outcome = engine.run(CountingSequence(5, hook=hook))
    t.join()
    assert outcome.status == "aborted"
    assert sink.steps == [0, 1]


def test_run_aborted_is_an_exception_with_reason():
    assert str(RunAborted("why")) == "why"


def test_abort_requested_before_the_run_starts_is_not_lost():
    sink = RecordingSink()
    engine, _ = make_engine([sink])
    engine.abort()
    outcome = engine.run(CountingSequence(5))
    assert outcome.status == "aborted" and sink.steps == []  # no step ran, no hardware moved
    assert engine.run(CountingSequence(2)).status == "completed"  # the request was spent


@dataclass
class SignalDuringSafeState(FakeInstrument):
    signum: int = signal.SIGTERM
    order: list = field(default_factory=list)

    def safe_state(self):
        self.order.append("safe_state")
        os.kill(os.getpid(), self.signum)  # a supervisor escalating while the coils ramp down
        super().safe_state()


class CleanupSequence(CountingSequence):
    def __init__(self, order, **kw):
        super().__init__(**kw)
        self.order = order

    def run(self, instruments):
        try:
            yield from super().run(instruments)
        finally:
            self.order.append("sequence cleanup")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_making_safe_is_held_off_until_every_instrument_is_safe(signum):
    order: list = []
    first = SignalDuringSafeState("coils", signum=signum, order=order)
    second = FakeInstrument("mw")
    sink = RecordingSink()
    engine = Engine({"coils": first, "mw": second}, SafetyLimits(), [sink])

    def hook(i):
        if i == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Terminated) as stopped:
        engine.run(CleanupSequence(order, n=5, hook=hook))
    outcome = stopped.value.outcome
    assert outcome.status == "aborted" and "SIGTERM" in outcome.reason
    assert first.safe_calls == 1 and second.safe_calls == 1
    assert sink.closed is not None and sink.closed[0] == "aborted"
    assert order == ["sequence cleanup", "safe_state"]  # the sequence's finally ran before making safe
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
