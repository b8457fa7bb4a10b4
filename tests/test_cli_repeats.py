"""``acquire odmr --repeats/--order/--max-runtime``: repeated sweeps end to end, and bad input refused."""

import argparse

import numpy as np
import pytest

from instrument.cli import main
from instrument.commands.common import SWEEP_ORDERS, parse_duration
from instrument.storage.runs import load_run
from sequences.sweep_order import ORDERS, plan_sweeps

SMALL = ["--sim", "--image-shape", "8x8"]


def test_acquire_odmr_runs_two_random_sweeps_and_averages_them(tmp_path, capsys):
    out = tmp_path / "o"
    code = main([*SMALL, "--out", str(out), "odmr", "--points", "15", "--frames-per-point", "1",
                 "--repeats", "2", "--order", "random", "--order-seed", "5", "--no-figure"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "60 (15 frequencies x I-off/I-on x 2 sweeps)" in printed
    assert "sweeps     2 averaged, random order (seed 5)" in printed
    run = load_run(out, 1)
    md = run.metadata
    assert md["status"] == "completed" and md["end_reason"] == "2 of 2 sweeps ran (random order)"
    sequence = md["sequence"]
    assert (sequence["order"], sequence["order_seed"], sequence["repeats"]) == ("random", 5, 2)
    assert md["sweeps"]["complete"] == [0, 1]
    # The stored order is the one the seed gives (reconstructible), step by step.
    stored = np.stack([run.scalars[k] for k in ("sweep", "config", "frequency_index")], axis=1)
    np.testing.assert_array_equal(stored, plan_sweeps("random", 2, 2, 15, seed=5).visits)
    assert run.steps_done == 60


def test_a_runtime_limit_keeps_the_whole_sweeps_that_fit(tmp_path, capsys):
    # 2 x (5 points of 1 frame at 208 fps + 2 ms settle, and a 600 uA coil ramp at 10 mA/s) = 188 ms
    # a sweep: 0.5 s holds two.
    code = main([*SMALL, "--out", str(tmp_path / "o"), "odmr", "--points", "5", "--frames-per-point", "1",
                 "--repeats", "5", "--order", "interleaved", "--max-runtime", "0.5s", "--no-figure"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "2 of 5 sweeps ran: only 2 sweeps of about 0.188 s fit in --max-runtime (0.5 s)" in printed
    run = load_run(tmp_path / "o", 1)
    assert run.metadata["sequence"]["repeats"] == 2 and run.steps_done == 20
    assert run.metadata["sweeps"]["complete"] == [0, 1] and run.metadata["sweeps"]["excluded"] == {}


def test_a_runtime_limit_of_one_sweep_says_so(tmp_path, capsys):
    code = main([*SMALL, "--out", str(tmp_path / "o"), "odmr", "--points", "5", "--frames-per-point", "1",
                 "--repeats", "3", "--max-runtime", "0.2", "--no-figure"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    expected = "sweeps     1 of 3 sweeps ran: only 1 sweep of about 0.188 s fit in --max-runtime (0.2 s)"
    assert expected in printed


@pytest.mark.parametrize(("options", "message"), [
    (["--repeats", "0"], "--repeats must be a whole number of sweeps >= 1, got 0"),
    (["--max-runtime", "0.01"], "--max-runtime of 0.01 s is shorter than one sweep"),
])
def test_bad_repeat_settings_are_refused_before_a_run_opens(tmp_path, capsys, options, message):
    out = tmp_path / "o"
    assert main([*SMALL, "--out", str(out), "odmr", "--points", "5", *options]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "runs.db").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--order", "zigzag"], "invalid choice: 'zigzag'"),
    (["--max-runtime", "two hours"], "'two hours' is not a time: give seconds or e.g. 90s, 20m, 2h, 1h30m"),
    (["--max-runtime", "-5"], "'-5' is not a positive, finite time"),
])
def test_unreadable_order_or_runtime_is_a_usage_error(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as info:
        main([*SMALL, "--out", str(tmp_path / "o"), "odmr", *options])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_durations_read_as_seconds():
    assert [parse_duration(t) for t in ("7200", "2h", "1h30m", "20m", "90s", "1.5h")] == \
        [7200, 7200, 5400, 1200, 90, 5400]
    for bad in ("", "h", "2x", "inf", "nan", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


def test_the_cli_offers_the_orders_the_plans_know():
    assert SWEEP_ORDERS == ORDERS
