"""Repeated CW-ODMR sweeps on the bundled sim station: visiting order, list re-arming, runtime limit."""

from unittest import mock

import numpy as np
import pytest

from instrument.protocols import SafetyLimits
from instrument.station import build_station
from sequences.cw_odmr import CwOdmrSweep
from sequences.engine import Engine
from sequences.sweep_order import plan_sweeps
from tests.sequences.test_cw_list_stepping import ListSink

SHAPE = (4, 4)


@pytest.fixture
def station():
    with build_station(None, simulated=True, image_shape=SHAPE, seed=2) as st:
        yield st


def make_sweep(station, n_points=5, span_hz=16e6, **options):
    centre = station.world.resonance_estimate_hz()
    freqs = centre + np.linspace(-span_hz / 2, span_hz / 2, n_points)
    return CwOdmrSweep(freqs, -10.0, np.zeros(station["coils"].n_channels), image_shape=SHAPE,
                       frames_per_point=options.pop("frames_per_point", 1), **options)


def by_frequency(sink, sweep, config):
    """One pass's mean signal in frequency order, from the steps' recorded frequency index."""
    steps = [s for s in sink.steps if s.values["sweep"] == sweep and s.values["config"] == config]
    out = np.full(len(steps), np.nan)
    for s in steps:
        out[s.values["frequency_index"]] = s.values["mean_signal"]
    return out


def peaks(spectrum):
    """Indices of the two strongest points (the 15N doublet, resolved in this sweep)."""
    return set(np.argsort(spectrum)[-2:])


def test_list_mode_arms_each_pass_in_its_random_order_and_finds_the_same_spectrum(station):
    reference = make_sweep(station, n_points=21, stepping="software", repeats=2, order="random", order_seed=7,
                           frames_per_point=2)
    soft = ListSink()
    assert Engine(station.instruments, station.limits, [soft]).run(reference).status == "completed"

    sweep = make_sweep(station, n_points=21, stepping="list", repeats=2, order="random", order_seed=7,
                       frames_per_point=2)
    mw = station["mw"]
    sink = ListSink()
    with mock.patch.object(mw, "arm_list", wraps=mw.arm_list) as arm:
        outcome = Engine(station.instruments, station.limits, [sink]).run(sweep)
    assert outcome.status == "completed", outcome.reason
    plan = sink.metadata["sequence"]["plan"]
    assert plan["mw_stepping_mode"] == "list"
    assert "armed for every pass in its random visiting order" in plan["mw_stepping_reason"]
    expected = plan_sweeps("random", 2, 2, 21, seed=7)
    assert sink.metadata["sequence"]["order_seed"] == 7
    assert arm.call_count == 4  # one list per pass, each in that pass's order
    for call, visit in zip(arm.call_args_list, expected.passes, strict=True):
        np.testing.assert_allclose(call.args[0], sweep.frequencies_hz[list(visit.frequency_indices)])
    recorded = np.array([[s.values[k] for k in ("sweep", "config", "frequency_index")] for s in sink.steps])
    np.testing.assert_array_equal(recorded, expected.visits)
    assert [s.index for s in sink.steps] == list(range(expected.n_steps))
    for s in sink.steps:  # the frequency a step says is the frequency of its index
        assert s.values["frequency_hz"] == sweep.frequencies_hz[s.values["frequency_index"]]
    for repeat in range(2):  # reordered by index, each list pass is the software-stepped spectrum
        for config in range(2):
            listed, stepped = by_frequency(sink, repeat, config), by_frequency(soft, repeat, config)
            assert np.corrcoef(listed, stepped)[0, 1] > 0.95
            assert peaks(listed) == peaks(stepped)
    assert station.world.mw_output is False


def test_a_sequential_list_is_armed_once_and_restarted_as_before(station):
    sweep = make_sweep(station, stepping="list", repeats=3)
    mw = station["mw"]
    with mock.patch.object(mw, "arm_list", wraps=mw.arm_list) as arm, \
            mock.patch.object(mw, "restart_list", wraps=mw.restart_list) as restart:
        outcome = Engine(station.instruments, station.limits, [ListSink()]).run(sweep)
    assert outcome.status == "completed", outcome.reason
    assert (arm.call_count, restart.call_count) == (1, 5)
    assert outcome.reason == "3 of 3 sweeps ran (sequential order)"


class FakeClock:
    """Wall time the test moves: ``per_step_s`` after every stored step."""

    def __init__(self, per_step_s):
        self.t, self.per_step_s = 1000.0, per_step_s

    def __call__(self):
        return self.t

    def step(self, progress):
        self.t += self.per_step_s


def test_the_runtime_limit_plans_the_sweeps_that_fit_and_ends_completed(station):
    clock = FakeClock(0.0)
    probe = make_sweep(station, stepping="software")
    sweep = make_sweep(station, stepping="software", repeats=5, max_runtime_s=3.2 * probe.sweep_duration_s,
                       clock=clock)
    assert sweep.planned_sweeps == 3 and sweep.n_steps == 3 * 10
    sink = ListSink()
    outcome = Engine(station.instruments, station.limits, [sink], on_progress=clock.step).run(sweep)
    assert outcome.status == "completed"
    assert outcome.steps_done == 30
    assert outcome.reason.startswith("3 of 5 sweeps ran: only 3 sweeps of about")
    assert "`max_runtime`" in outcome.reason
    assert sink.metadata["sequence"]["repeats"] == 3 and sink.metadata["sequence"]["repeats_requested"] == 5


def test_a_run_slower_than_estimated_stops_after_its_last_whole_sweep(station):
    probe = make_sweep(station, stepping="software")
    per_step = 1.5 * probe.sweep_duration_s / 10  # every sweep takes 1.5 times the estimate
    clock = FakeClock(per_step)
    sweep = make_sweep(station, stepping="software", repeats=5, max_runtime_s=3.2 * probe.sweep_duration_s,
                       clock=clock)
    sink = ListSink()
    outcome = Engine(station.instruments, station.limits, [sink], on_progress=clock.step).run(sweep)
    assert outcome.status == "completed"
    # After two sweeps (3.0 estimates) a third (1.5 at this pace) would end past 3.2: it never starts.
    assert outcome.steps_done == 20 and {s.values["sweep"] for s in sink.steps} == {0, 1}
    assert outcome.reason.startswith("2 of 5 sweeps ran (3 planned)")
    assert "would end after `max_runtime`" in outcome.reason
    assert station.world.mw_output is False and not station.world.coil_currents_a.any()


@pytest.mark.parametrize(("options", "match"), [
    ({"repeats": 0}, r"`repeats` must be a whole number of sweeps >= 1, got 0"),
    ({"order": "backwards"}, r"`order` must be one of sequential, random, interleaved"),
    ({"max_runtime_s": 1e-3}, r"`max_runtime` of 0.001 s is shorter than one sweep"),
    ({"max_runtime_s": -5.0}, r"`max_runtime` must be a positive time"),
])
def test_bad_repeat_settings_are_refused_before_anything_moves(station, options, match):
    sweep = make_sweep(station, **options)
    sink = ListSink()
    with pytest.raises(ValueError, match=match):
        Engine(station.instruments, station.limits, [sink]).run(sweep)
    assert not hasattr(sink, "metadata")  # no run was opened
    with pytest.raises(ValueError, match=match):
        sweep.check(SafetyLimits())


def test_an_abort_mid_sweep_keeps_whole_steps_and_the_complete_sweeps_still_fit(station, tmp_path):
    from instrument.services.cw import analyse_cw
    from instrument.services.runs import prepare_run
    from instrument.storage.runs import load_run

    sweep = make_sweep(station, n_points=9, stepping="software", repeats=3, order="interleaved")
    sweep.check(station.limits)
    holder = {}

    def abort_in_second_sweep(progress):
        if progress.done == 18 + 5:  # 5 steps into the second sweep
            holder["run"].engine.abort()

    prepared = prepare_run(station, sweep, tmp_path, "test", on_progress=abort_in_second_sweep)
    holder["run"] = prepared
    outcome = prepared.run()
    assert outcome.status == "aborted" and outcome.steps_done == 23
    result = analyse_cw(tmp_path, prepared.run_id)
    assert result.sweeps["complete"] == [0]
    assert result.sweeps["excluded"] == {"1": 5} and result.sweeps["not_run"] == 1
    assert load_run(tmp_path, prepared.run_id).metadata["sweeps"]["excluded"] == {"1": 5}
