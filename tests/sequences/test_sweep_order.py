"""Plans of repeated CW sweeps: every point once per sweep, reproducible random orders, drift balance."""

import numpy as np
import pytest

from sequences.sweep_order import ORDERS, SweepRunner, plan_from_metadata, plan_sweeps, sweeps_within

F = 7


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("repeats", [1, 2, 5])
def test_every_configuration_and_frequency_is_visited_once_per_sweep(order, repeats):
    plan = plan_sweeps(order, repeats, 2, F, seed=3)
    visits = plan.visits
    assert visits.shape == (repeats * 2 * F, 3) == (plan.n_steps, 3)
    for sweep in range(repeats):
        mine = visits[visits[:, 0] == sweep]
        assert sorted(map(tuple, mine[:, 1:])) == [(c, i) for c in range(2) for i in range(F)]
    # Sweeps run one after the other and each pass is one configuration's contiguous block.
    assert np.all(np.diff(visits[:, 0]) >= 0)
    assert [p.first_step for p in plan.passes] == list(range(0, plan.n_steps, F))
    assert [p.sweep for p in plan.passes] == [s for s in range(repeats) for _ in range(2)]


def test_sequential_is_the_historical_sweep_repeated():
    plan = plan_sweeps("sequential", 3, 2, F)
    assert all(p.frequency_indices == tuple(range(F)) for p in plan.passes)
    assert [p.config for p in plan.passes] == [0, 1] * 3
    assert plan.seed is None and not plan.balanced
    one = plan_sweeps("sequential", 1, 2, F).visits
    np.testing.assert_array_equal(one, [(0, c, i) for c in range(2) for i in range(F)])


def test_a_random_order_is_rebuilt_from_its_seed_and_differs_with_another():
    a = plan_sweeps("random", 4, 2, 20, seed=12345)
    again = plan_from_metadata(a.metadata(), 2, 20)
    np.testing.assert_array_equal(a.visits, again.visits)
    other = plan_sweeps("random", 4, 2, 20, seed=12346)
    assert not np.array_equal(a.visits, other.visits)
    # The passes are real permutations, not the sweep order, and differ from pass to pass.
    orders = {p.frequency_indices for p in a.passes}
    assert len(orders) == len(a.passes) and tuple(range(20)) not in orders


def test_a_random_order_without_a_seed_draws_one_and_records_it():
    plan = plan_sweeps("random", 2, 2, F)
    assert isinstance(plan.seed, int)
    assert plan.metadata()["order_seed"] == plan.seed
    np.testing.assert_array_equal(plan_from_metadata(plan.metadata(), 2, F).visits, plan.visits)


def test_interleaved_alternates_direction_per_pass_and_configurations_per_sweep():
    plan = plan_sweeps("interleaved", 4, 2, F)
    up, down = tuple(range(F)), tuple(reversed(range(F)))
    assert [p.frequency_indices for p in plan.passes] == [up, down] * 4
    assert [p.config for p in plan.passes] == [0, 1, 1, 0, 0, 1, 1, 0]
    assert plan.balanced and not plan_sweeps("interleaved", 3, 2, F).balanced


def mean_visit_times(plan):
    """(configs, F) mean step number at which each (configuration, frequency) is visited."""
    times = np.zeros((plan.n_configs, plan.n_frequencies))
    for t, (_, config, i) in enumerate(plan.visits):
        times[config, i] += t / plan.repeats
    return times


def test_interleaved_pairs_cancel_a_linear_drift_exactly_and_sequential_does_not():
    balanced = mean_visit_times(plan_sweeps("interleaved", 2, 2, F))
    assert np.ptp(balanced) == 0  # every point measured at the same mean time
    sequential = mean_visit_times(plan_sweeps("sequential", 2, 2, F))
    assert np.all(sequential[1] - sequential[0] == F)  # I-on always one pass later
    random = mean_visit_times(plan_sweeps("random", 2, 2, F, seed=1))
    assert np.allclose(random[1].mean(), random[0].mean())  # alternation: no I-on/I-off offset


@pytest.mark.parametrize(("order", "repeats", "match"), [
    ("zigzag", 1, r"`order` must be one of sequential, random, interleaved, got 'zigzag'"),
    ("random", 0, r"`repeats` must be a whole number of sweeps >= 1, got 0"),
    ("random", -2, r"`repeats` must be a whole number"),
    ("random", 1.5, r"`repeats` must be a whole number"),
])
def test_bad_orders_and_repeat_counts_are_refused_naming_the_setting(order, repeats, match):
    with pytest.raises(ValueError, match=match):
        plan_sweeps(order, repeats, 2, F)


def test_the_runtime_limit_keeps_the_whole_sweeps_that_fit():
    assert sweeps_within(None, 10.0, 5) == 5
    assert sweeps_within(35.0, 10.0, 5) == 3
    assert sweeps_within(1e6, 10.0, 5) == 5
    assert sweeps_within(10.0, 10.0, 5) == 1
    with pytest.raises(ValueError, match=r"`max_runtime` of 9 s is shorter than one sweep \(about 10 s\); "
                       r"raise `max_runtime`"):
        sweeps_within(9.0, 10.0, 5)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"`max_runtime` must be a positive time"):
            sweeps_within(bad, 10.0, 5)


def test_truncating_a_plan_keeps_its_first_sweeps():
    plan = plan_sweeps("random", 5, 2, F, seed=9)
    first = plan.truncated(2)
    np.testing.assert_array_equal(first.visits, plan.visits[: 2 * 2 * F])
    np.testing.assert_array_equal(first.visits, plan_sweeps("random", 2, 2, F, seed=9).visits)


def test_a_run_stored_before_repeats_is_one_sequential_sweep():
    plan = plan_from_metadata({"frequencies_hz": [1, 2, 3]}, 2, 3)
    assert (plan.order, plan.repeats) == ("sequential", 1)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_the_runner_switches_configurations_per_pass_and_stops_before_a_sweep_past_the_limit():
    plan = plan_sweeps("interleaved", 4, 2, F)
    clock = Clock()
    runner = SweepRunner(plan, requested=6, sweep_s=10.0, max_runtime_s=45.0, clock=clock)
    switched, ran = [], []
    for visit in runner.passes(switched.append):
        ran.append((visit.sweep, visit.config))
        clock.t += 7.0  # each pass takes 7 s: 14 s a sweep, more than the 10 s estimate
    # After 3 sweeps (42 s) a fourth (14 s at this pace) would end at 56 s > 45 s: it never starts.
    assert ran == [(0, 0), (0, 1), (1, 1), (1, 0), (2, 0), (2, 1)]
    assert switched == [0, 1, 0, 1]  # only when the configuration changes (ABBA saves two ramps)
    assert runner.note.startswith("3 of 6 sweeps ran (4 planned): after 42 s")
    assert "would end after `max_runtime` (45 s)" in runner.note


def test_the_runner_says_how_many_sweeps_ran_without_a_limit():
    runner = SweepRunner(plan_sweeps("random", 2, 2, F, seed=1), requested=2, sweep_s=1.0)
    assert len(list(runner.passes(lambda config: None))) == 4
    assert runner.note == "2 of 2 sweeps ran (random order)"
    single = SweepRunner(plan_sweeps("sequential", 1, 2, F), requested=1, sweep_s=1.0)
    assert len(list(single.passes(lambda config: None))) == 2 and single.note == ""
