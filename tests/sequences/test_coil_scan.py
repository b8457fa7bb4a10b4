"""Coil scans: every configuration exactly once, open coils marked, resume after any interruption,
health checks, and a real kill -9 of a scanning process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from instrument.protocols import InstrumentError
from instrument.storage.runs import RunWriter, Step, load_run
from instrument.storage.scan_ledger import LedgerMismatch, read_ledger
from sequences.coil_scan import ScanInterrupted, all_masks, config_label, parse_configs
from sequences.scan_health import HealthLimits, HealthSample, health_from_spectra
from tests.sequences.coil_scan_fakes import HealthScript, make_scan

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["L1C1", "L1C2", "L1C4"]


def run_scan(out, **kw):
    scan, world, board = make_scan(out, **kw)
    ledger = scan.open_ledger()
    try:
        return scan.run(ledger), ledger, world
    finally:
        board.stop()


def assert_each_config_once(out, n):
    rows = read_ledger(out)
    assert sorted(r.mask for r in rows) == list(range(n))
    done = [r for r in rows if r.status == "done"]
    assert len({r.run_id for r in done}) == len(done)
    for r in done:
        assert load_run(out, r.run_id).metadata["status"] == "completed"
    return rows


def test_full_scan_measures_every_configuration_once_and_marks_open_coil_configs(tmp_path):
    seen = []
    outcome, ledger, world = run_scan(tmp_path, on_config=seen.append)
    assert outcome.status == "completed" and outcome.next_position is None
    rows = assert_each_config_once(tmp_path, 8)
    # channel 3 (L1C4) is a dead coil of the sample: its four configurations are marked, not measured
    assert [r.status for r in rows] == ["done"] * 4 + ["open_coil"] * 4
    assert all("open coil L1C4" in r.note and r.run_id is None for r in rows[4:])
    assert ledger.get_meta("open_coils") == [3]
    assert any(kind == "open_coil" and "L1C4 reads" in msg for _, _, kind, msg in ledger.events())
    # field maps: all-off is zero, a single live coil gives a real field range
    assert rows[0].summary["b_nv_range_t"] == [0.0, 0.0]
    assert rows[1].summary["b_nv_range_t"][1] > 1e-6
    assert np.all(world.coil_currents_a == 0)
    assert [p.finished for p in seen] == list(range(1, 9))
    assert np.isfinite(seen[-2].eta_s) and seen[-1].eta_s == 0


def test_ctrl_c_pauses_safely_and_the_same_scan_resumes_where_it_stopped(tmp_path):
    def interrupt(index, calls=[0]):  # noqa: B006 - counts steps across configurations
        calls[0] += 1
        if calls[0] == 14:  # third configuration, in its I-on sweep
            raise KeyboardInterrupt

    scan, world, board = make_scan(tmp_path, channels=(0, 1), fail=interrupt)
    ledger = scan.open_ledger()
    with pytest.raises(ScanInterrupted) as info:
        scan.run(ledger)
    board.stop()
    assert info.value.position == 2 and info.value.label == "L1C2"
    assert np.all(world.coil_currents_a == 0)
    rows = read_ledger(tmp_path)
    assert [r.status for r in rows[:2]] == ["done", "done"] and rows[2].status == "running"
    aborted_run = rows[2].run_id
    assert load_run(tmp_path, aborted_run).metadata["status"] == "aborted"

    outcome, ledger, _ = run_scan(tmp_path, channels=(0, 1))
    assert outcome.status == "completed"
    rows = assert_each_config_once(tmp_path, 4)
    assert rows[2].run_id != aborted_run and rows[2].attempts == 2
    assert [r.run_id for r in rows[:2]] == [1, 2]  # nothing finished was measured again


def test_instrument_error_pauses_with_cause_logged_and_resume_retries(tmp_path):
    def camera_dies(index, calls=[0]):  # noqa: B006
        calls[0] += 1
        if calls[0] == 8:
            raise InstrumentError("camera", "acquire", "frame timeout")

    outcome, ledger, world = run_scan(tmp_path, channels=(0, 3), fail=camera_dies)
    assert outcome.status == "paused" and "camera: acquire: frame timeout" in outcome.reason
    assert outcome.next_position == 1
    assert np.all(world.coil_currents_a == 0)
    assert read_ledger(tmp_path)[1].status == "failed"
    assert any(kind == "paused" and "frame timeout" in msg for _, _, kind, msg in ledger.events())
    outcome, _, _ = run_scan(tmp_path, channels=(0, 3))
    assert outcome.status == "completed"
    rows = assert_each_config_once(tmp_path, 4)
    assert [r.status for r in rows] == ["done", "done", "open_coil", "open_coil"]


def test_crash_leftovers_are_adopted_or_abandoned_on_resume(tmp_path):
    outcome, ledger, _ = run_scan(tmp_path, channels=(0, 1))
    assert outcome.status == "completed"
    first = read_ledger(tmp_path)
    # Pretend the process died twice: once after configuration 1's run completed but before it was
    # recorded, once in the middle of configuration 3's run (its run stays 'running' on disk).
    ledger.start(1, first[1].run_id)
    ledger.start(3)
    writer = RunWriter(tmp_path, "coil_scan", "test", {"config": "", "point": ""}, ("config", "point"))
    dead_run = writer.open({}, {"signal": (12, 12)}, 6)
    writer.write(Step(0, {"config": 0, "point": 0}, {"signal": np.zeros((12, 12))}))
    writer._h5.close()  # the writer dies without closing the run
    ledger.attach_run(3, dead_run)
    analyse = HealthScript()
    outcome, ledger, _ = run_scan(tmp_path, channels=(0, 1), analyse=analyse)
    rows = assert_each_config_once(tmp_path, 4)
    assert rows[1].run_id == first[1].run_id and analyse.calls[0] == first[1].run_id  # adopted
    assert rows[3].run_id not in (dead_run, first[3].run_id)  # re-measured
    assert load_run(tmp_path, dead_run).metadata["status"] == "abandoned"
    kinds = [kind for _, _, kind, _ in ledger.events()]
    assert "adopted" in kinds and "abandoned" in kinds


def test_different_plan_in_the_same_directory_is_refused(tmp_path):
    run_scan(tmp_path, channels=(0,))
    scan, _, board = make_scan(tmp_path, channels=(0, 1))
    board.stop()
    with pytest.raises(LedgerMismatch, match="differs in: channels, coils, masks.*choose a new `out` folder"):
        scan.open_ledger()


@pytest.mark.parametrize("action", ["warn", "re-reference", "pause"])
def test_health_drift_actions(tmp_path, action):
    ok, drifted = HealthSample(1.0, 1.0, 2.8e9), HealthSample(0.5, 1.05, 2.8e9 + 200e3)
    analyse = HealthScript([ok, drifted, drifted, drifted])
    outcome, ledger, _ = run_scan(tmp_path, channels=(0, 1), analyse=analyse,
                                  health=HealthLimits(action=action))
    rows = read_ledger(tmp_path)
    problems = rows[1].summary["health_problems"]
    assert any("contrast drifted -50%" in p for p in problems)
    assert any("bias field drifted 7.14 uT" in p for p in problems)
    assert not any("count rate" in p for p in problems)
    if action == "pause":
        assert outcome.status == "paused" and outcome.next_position == 2 and "health check" in outcome.reason
        assert rows[1].status == "done"  # the data are kept
    elif action == "warn":
        assert outcome.status == "completed" and rows[2].summary["health_problems"]
    else:
        assert outcome.status == "completed" and rows[2].summary["health_problems"] == []
        assert ledger.get_meta("health_reference")["position"] == 1


def test_health_from_lockin_spectra_tracks_rate_and_contrast():
    rng = np.random.default_rng(1)
    f = np.linspace(-5e6, 5e6, 41) + 2.79e9

    def spectra(rate, contrast):
        peak = contrast * rate / (1 + ((f - 2.79e9) / 0.5e6) ** 2)
        return peak + np.sqrt(rate) * rng.standard_normal((20, 20, f.size))

    ref = health_from_spectra(spectra(100.0, 1.0), np.full((20, 20), 2.79e9))
    dim = health_from_spectra(spectra(50.0, 1.0), np.full((20, 20), 2.79e9))
    low = health_from_spectra(spectra(100.0, 0.5), np.full((20, 20), 2.79e9 + 1e5))
    assert dim.count_rate / ref.count_rate == pytest.approx(0.5, rel=0.1)
    assert dim.contrast / ref.contrast == pytest.approx(1.0, rel=0.15)
    assert low.contrast / ref.contrast == pytest.approx(0.5, rel=0.15)
    assert low.bias_hz - ref.bias_hz == pytest.approx(1e5)


def test_configuration_parsing_and_bad_input():
    assert all_masks(3) == list(range(8))
    assert parse_configs("L1C1+L1C4,off,2", NAMES) == [5, 0, 2]
    assert config_label(5, NAMES) == "L1C1+L1C4" and config_label(0, NAMES) == "all off"
    for text, message in [("L9C9", "unknown coil 'L9C9'"), ("9", "mask 9"), ("1,L1C1", "listed twice"),
                          (" , ", "no configurations")]:
        with pytest.raises(ValueError, match=message):
            parse_configs(text, NAMES)
    with pytest.raises(ValueError, match="1 to 16 coils"):
        all_masks(0)
    with pytest.raises(ValueError, match="health action must be one of"):
        HealthLimits(action="panic")


def _progress(out):
    try:
        rows = read_ledger(out)
    except FileNotFoundError:
        return (0, 0)
    return (sum(r.status == "done" for r in rows), sum(r.attempts for r in rows))


@pytest.mark.slow
def test_kill_9_at_any_moment_then_the_same_command_resumes(tmp_path):
    """SIGKILL the scanning process at several moments (mid-run, just after a configuration finished),
    re-run the same command, and check that the results hold every configuration exactly once."""
    command = [sys.executable, "-m", "tests.sequences.coil_scan_fakes", str(tmp_path), "0.01"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    for extra_s in (0.0,):  # the moment an attempt starts; the CLI test kills mid-run
        before = _progress(tmp_path)
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while _progress(tmp_path) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(extra_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 1
    finished_before = {r.position: r.run_id for r in read_ledger(tmp_path) if r.status == "done"}
    assert any(r.status == "running" for r in read_ledger(tmp_path))
    final = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "completed" in final.stdout
    rows = assert_each_config_once(tmp_path, 8)
    assert [r.status for r in rows] == ["done"] * 4 + ["open_coil"] * 4
    for position, run_id in finished_before.items():  # nothing completed was lost or re-measured
        assert rows[position].run_id == run_id
    assert sum(r.attempts for r in rows) == 5  # the killed attempt, then each configuration once


def test_a_failing_analysis_keeps_the_run_and_the_scan_goes_on(tmp_path):
    script = HealthScript()

    def analyse(out_dir, run_id):
        if run_id == 2:
            raise RuntimeError("fit diverged")
        return script(out_dir, run_id)

    outcome, ledger, world = run_scan(tmp_path, channels=(0, 1), analyse=analyse)
    assert outcome.status == "completed"
    rows = assert_each_config_once(tmp_path, 4)
    assert [r.status for r in rows] == ["done"] * 4
    bad = next(r for r in rows if r.run_id == 2)
    assert bad.summary["analysis_error"] == "RuntimeError: fit diverged"
    events = ledger.events()
    assert any(kind == "analysis_failed" and "acquire analyse 2" in msg for _, _, kind, msg in events)
    assert np.all(world.coil_currents_a == 0)
