"""The lock-in capture streams: each second is a stored step while the capture runs, so a SIGTERM or an
operator's abort mid-capture keeps the seconds already captured in the run database."""

import os
import signal

import h5py
import numpy as np

from instrument.cli import main
from instrument.services.lockin import LockInRequest, overflow_policy, plan_lockin
from instrument.station import build_station
from instrument.storage import runs as run_storage
from instrument.storage.runs import load_run
from sequences.temporal import SecondTally

SECONDS = 6  # long enough that the capture is still running when it is stopped after two seconds


def test_sigterm_mid_capture_keeps_the_stored_seconds_and_closes_the_run_aborted(tmp_path, monkeypatch,
                                                                                  capsys):
    real_write, stored = run_storage.RunWriter.write, []

    def write(self, step):
        real_write(self, step)
        stored.append(step.values["second"])
        if len(stored) == 2:  # the engine defers it until the step is stored, then stops between seconds
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(run_storage.RunWriter, "write", write)
    code = main(["--sim", "--image-shape", "16x16", "--out", str(tmp_path), "lockin",
                 "--seconds", str(SECONDS)])
    assert code == 143, capsys.readouterr().err
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "aborted" and "SIGTERM" in run.metadata["end_reason"]
    assert run.scalars["second"].tolist() == [0.0, 1.0]
    # each stored second holds its frames (one 208-frame volume a second) and a finite lock-in signal
    assert run.scalars["frames"].tolist() == [208.0, 208.0]
    assert np.all(np.isfinite(run.scalars["mean_signal"]))
    # the capture was stopped mid-way, and its frame file closed readable with what was written
    with h5py.File(run.run_dir / "frames.h5") as f:
        assert 2 * 208 <= f["frames"].shape[0] < SECONDS * 208


def test_an_engine_abort_between_seconds_stops_the_capture_and_leaves_the_station_safe(tmp_path):
    from instrument.services.runs import prepare_run
    from sequences.temporal import TemporalCapture

    with build_station(simulated=True, image_shape=(16, 16), seed=3) as st:
        plan = plan_lockin(st, LockInRequest(float(SECONDS)))
        holder = {}
        sequence = TemporalCapture(SECONDS, plan.center_hz, plan.waveforms, lambda: holder["run"].run_dir,
                                   on_overflow=overflow_policy(st))
        prepared = prepare_run(st, sequence, tmp_path, "test",
                               on_progress=lambda progress: holder["run"].engine.abort())
        holder["run"] = prepared
        outcome = prepared.run()
        world = st.world
        assert np.all(world.coil_currents_a == 0) and not world.mw_output
        assert st["camera"].get_setting("AcqStop") == 1
    assert outcome.status == "aborted" and outcome.steps_done == 1
    run = load_run(tmp_path, prepared.run_id)
    assert run.metadata["status"] == "aborted"
    assert run.scalars["second"].tolist() == [0.0]
    assert sequence.result is None  # no field movie from an aborted run: the frames stay in frames.h5
    with h5py.File(run.run_dir / "frames.h5") as f:
        assert 208 <= f["frames"].shape[0] < SECONDS * 208


def test_the_tally_completes_a_second_only_once_a_later_frame_is_written():
    tally = SecondTally()
    frames = np.ones((4, 2, 2, 2), np.int16)
    tally(frames, np.array([10.0, 10.5, 10.9, 11.2]), np.arange(4))
    (second, n, mean), = tally.pop_complete()
    assert (second, n) == (0, 3) and np.all(mean == 1.0)
    assert tally.pop_complete() == []  # second 1 may still get frames
    tally(2 * frames[:1], np.array([11.6]), np.arange(4, 5))
    (second, n, mean), = tally.pop_complete(final=True)
    assert (second, n) == (1, 2) and np.all(mean == 1.5)
    assert tally.pop_complete(final=True) == []
