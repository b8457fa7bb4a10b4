import subprocess
import sys
import textwrap

import numpy as np
import pytest

from instrument.storage.runs import RunWriter, Step, StorageError, check_writable, load_run


def open_writer(tmp_path, n=4):
    w = RunWriter(tmp_path, "test_kind", "sample", {"i": "", "v": "V"}, ("i",))
    run_id = w.open({"station_snapshot": {"mw": {"power": 1}}, "simulated": True}, {"img": (3, 2)}, n)
    return w, run_id


def test_round_trip_with_metadata_written_at_open(tmp_path):
    w, run_id = open_writer(tmp_path)
    for i in range(4):
        w.write(Step(i, {"i": i, "v": 2.0 * i}, {"img": np.full((3, 2), i)}))
    w.close("completed")
    run = load_run(tmp_path, run_id)
    assert run.metadata["status"] == "completed"
    assert run.metadata["station_snapshot"] == {"mw": {"power": 1}}
    assert run.metadata["simulated"] is True
    assert "software_version" in run.metadata and "started_at" in run.metadata
    assert run.scalars["v"].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert run.images("img")[:, 0, 0].tolist() == [0, 1, 2, 3]
    assert run.steps_done == 4


def test_snapshots_with_non_string_keys_are_stored(tmp_path):
    # QCoDeS snapshots carry val_mapping dicts keyed by bools and ints.
    w = RunWriter(tmp_path, "k", "s", {"i": ""}, ("i",))
    run_id = w.open({"station_snapshot": {"map": {True: 1, False: 0, "x": 2}}}, {}, 1)
    w.close("completed")
    assert load_run(tmp_path, run_id).metadata["station_snapshot"]["map"] == {"true": 1, "false": 0, "x": 2}


def test_process_killed_mid_run_keeps_every_flushed_step(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from instrument.storage.runs import RunWriter, Step
        w = RunWriter({str(tmp_path)!r}, "crash", "s", {{"i": ""}}, ("i",))
        w.open({{}}, {{"img": (4, 4)}}, 10)
        for i in range(3):
            w.write(Step(i, {{"i": i}}, {{"img": np.full((4, 4), i)}}))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=".", capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "running"  # it never closed: the crash is visible
    assert run.scalars["i"].tolist() == [0, 1, 2]
    images = run.images("img")
    assert images[:3, 0, 0].tolist() == [0, 1, 2]
    assert np.isnan(images[3:]).all()
    assert run.steps_done == 3


def test_unwritable_output_is_refused_without_creating_anything(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot write to output directory .*`out`"):
        check_writable(blocker / "runs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_missing_database_or_run_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="no runs database"):
        load_run(tmp_path, 1)
    w, run_id = open_writer(tmp_path)
    w.close("completed")
    with pytest.raises(StorageError, match="run 99 is not in"):
        load_run(tmp_path, 99)


def test_write_before_open_is_an_error(tmp_path):
    w = RunWriter(tmp_path, "k", "s", {"i": ""}, ("i",))
    with pytest.raises(StorageError, match="before open"):
        w.write(Step(0, {"i": 0}, {}))


def test_a_run_that_fails_to_open_its_files_is_closed_as_failed(tmp_path):
    w = RunWriter(tmp_path, "exp", "sample", {"x": "Hz"}, ("x",))
    with pytest.raises(OverflowError):
        w.open({}, {"img": (-1, 4)}, 3)  # no such image shape: h5py refuses after the run began
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "failed"
    assert "could not open the run's files" in run.metadata["end_reason"]
    w2 = RunWriter(tmp_path, "exp", "sample", {"x": "Hz"}, ("x",))
    assert w2.open({}, {"img": (2, 2)}, 1) == 2  # the database is not left locked or half-open
    w2.close("completed")


def test_close_still_releases_the_files_when_recording_the_end_fails(tmp_path, monkeypatch):
    w = RunWriter(tmp_path, "exp", "sample", {"x": "Hz"}, ("x",))
    w.open({}, {"img": (2, 2)}, 1)
    h5 = w._h5

    def locked(tag, value):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(w, "add_metadata", locked)
    with pytest.raises(RuntimeError, match="locked"):
        w.close("completed")
    assert not h5.id.valid and w._h5 is None and w._saver is None


def test_storage_never_switches_the_process_wide_qcodes_database(tmp_path):
    import qcodes

    before = qcodes.config.core.db_location
    writer = RunWriter(tmp_path / "scan", "exp", "sample", {"x": "Hz"}, ("x",))
    writer.open({}, {}, 1)
    other = RunWriter(tmp_path / "browser", "exp", "sample", {"x": "Hz"}, ("x",))
    other.open({}, {}, 1)
    other.close("completed")
    load_run(tmp_path / "browser", 1)  # a run browser reading elsewhere while the scan writes
    writer.write(Step(0, {"x": 1.0}, {}))
    writer.close("completed")
    assert qcodes.config.core.db_location == before
    assert load_run(tmp_path / "scan", 1).scalars["x"].tolist() == [1.0]
    with pytest.raises(StorageError, match="no runs database"):
        load_run(tmp_path / "empty", 1)
    assert not (tmp_path / "empty" / "runs.db").exists()
