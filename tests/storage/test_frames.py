import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from instrument.storage.frames import FrameFile, FrameFileError, FrameFileWriter, disk_bytes_per_hour

SHAPE = (6, 5, 2)


def _frames(k, seed=0):
    rng = np.random.default_rng(seed)
    return (512 + 8 * rng.standard_normal((k, *SHAPE))).astype(np.int16)


def test_round_trip_with_metadata_and_status(tmp_path):
    path = tmp_path / "f.h5"
    w = FrameFileWriter(path, SHAPE, {"camera": "cam", "simulated": True})
    a, b = _frames(3, 1), _frames(4, 2)
    w.append(a, np.arange(3) * 0.01, np.arange(3))
    w.record_drop(3, 2)
    w.append(b, 0.05 + np.arange(4) * 0.01, np.arange(5, 9))
    w.close("completed: frame count reached", {"frames_written": 7})
    with FrameFile(path) as f:
        assert f.n_complete == 7
        assert np.array_equal(f.read(), np.concatenate([a, b]))
        assert np.array_equal(f.frame_index, [0, 1, 2, 5, 6, 7, 8])
        assert f.dropped.tolist() == [[3, 2]]
        assert f.status == "completed: frame count reached"
        assert f.metadata == {"camera": "cam", "simulated": True}
        assert f.attrs["frames_dropped"] == 2 and f.attrs["end_reason"].startswith("completed")


def test_compression_halves_noisy_10bit_frames(tmp_path):
    path = tmp_path / "f.h5"
    rng = np.random.default_rng(0)
    frames = (512 + 8 * rng.standard_normal((50, 64, 64, 2))).astype(np.int16)
    w = FrameFileWriter(path, (64, 64, 2))
    w.append(frames, np.arange(50.0), np.arange(50))
    w.close("done")
    assert os.path.getsize(path) < 0.65 * frames.nbytes
    with FrameFile(path) as f:
        assert np.array_equal(f.read(), frames)


def test_reader_sees_frames_while_writing(tmp_path):
    path = tmp_path / "f.h5"
    w = FrameFileWriter(path, SHAPE)
    w.append(_frames(2), np.array([0.0, 0.1]), np.arange(2))
    with FrameFile(path) as f:
        assert f.n_complete == 2 and f.status == "running"
        w.append(_frames(3), np.array([0.2, 0.3, 0.4]), np.arange(2, 5))
        f.refresh()
        assert f.n_complete == 5
    w.close("completed")


def test_bad_input_is_refused(tmp_path):
    path = tmp_path / "f.h5"
    w = FrameFileWriter(path, SHAPE)
    with pytest.raises(ValueError, match="do not match"):
        w.append(_frames(2)[:, :3], np.zeros(2), np.arange(2))
    with pytest.raises(ValueError, match="do not match"):
        w.append(_frames(2), np.zeros(3), np.arange(2))
    w.close("x")
    with pytest.raises(FrameFileError, match="exists already"):
        FrameFileWriter(path, SHAPE)
    with pytest.raises(ValueError, match="unknown frame compression"):
        FrameFileWriter(tmp_path / "g.h5", SHAPE, compression="zip")
    with pytest.raises(FrameFileError, match="cannot create"):
        FrameFileWriter(tmp_path / "missing-dir" / "f.h5", SHAPE)
    with pytest.raises(FrameFileError, match="cannot open"):
        FrameFile(tmp_path / "nothing.h5")


def test_unusable_location_is_named(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(FrameFileError, match="not-a-dir/f.h5.*writable"):
        FrameFileWriter(blocker / "f.h5", SHAPE)


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=60, cwd=os.getcwd())


def test_writer_killed_mid_capture_leaves_a_readable_file(tmp_path):
    path = tmp_path / "f.h5"
    res = _run(f"""
        import os, numpy as np
        from instrument.storage.frames import FrameFileWriter
        w = FrameFileWriter({str(path)!r}, (6, 5, 2))
        for i in range(5):
            t = np.array([2 * i, 2 * i + 1.0])
            w.append(np.full((2, 6, 5, 2), i, np.int16), t, np.arange(2 * i, 2 * i + 2))
        os._exit(9)  # no close: like kill -9
    """)
    assert res.returncode == 9, res.stderr
    with FrameFile(path) as f:
        assert f.n_complete == 10 and f.status == "running"
        assert np.array_equal(f.read()[:, 0, 0, 0], np.repeat(np.arange(5), 2))


def test_disk_full_mid_write_raises_and_keeps_earlier_frames(tmp_path):
    path = tmp_path / "f.h5"
    res = _run(f"""
        import resource, signal, numpy as np
        from instrument.storage.frames import FrameFileWriter, FrameFileError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))
        w = FrameFileWriter({str(path)!r}, (100, 100, 2), compression="none")
        rng = np.random.default_rng(0)
        n = 0
        try:
            while True:
                w.append(rng.integers(0, 1023, (5, 100, 100, 2), dtype=np.int16), np.arange(n, n + 5.0),
                         np.arange(n, n + 5))
                n += 5
        except FrameFileError as exc:
            print("FAILED", n, exc)
        w.close("storage error: disk full")
    """)
    assert "FAILED" in res.stdout, res.stdout + res.stderr
    written = int(res.stdout.split()[1])
    assert written > 0
    with FrameFile(path) as f:
        assert f.n_complete >= written - 5  # everything flushed before the failing batch
        f.read()  # every complete frame decodes


def test_disk_use_per_hour_at_208_fps():
    raw = disk_bytes_per_hour(208, (300, 300, 2), 1.0)
    assert raw == pytest.approx(208 * 3600 * 360_000)
    assert disk_bytes_per_hour(208, (300, 300, 2), 0.5) == pytest.approx(raw / 2)


def test_writer_process_refuses_batches_in_flight_after_a_failure(tmp_path, monkeypatch):
    # batches sent before the child reported "disk nearly full" must not land after the gap
    import shutil
    from multiprocessing import Pipe

    import instrument.storage.frames as frames_module
    from instrument.storage.frame_process import _serve

    real = shutil.disk_usage
    free = [None]

    def disk_usage(path):
        u = real(path)
        return u if free[0] is None else type(u)(u.total, u.used, free[0])

    monkeypatch.setattr(frames_module.shutil, "disk_usage", disk_usage)
    path = tmp_path / "f.h5"
    writer = FrameFileWriter(path, SHAPE, min_free_bytes=1000)
    staging = _frames(8)
    to_child, child_in = Pipe()
    child_out, from_child = Pipe()
    to_child.send(("append", 0, 2, np.array([0.0, 0.1]), np.arange(2)))
    child = threading.Thread(target=_serve, args=(writer, staging, child_in, child_out))
    child.start()
    assert from_child.recv() == ("ok", 2)
    free[0] = 10  # the disk fills up
    to_child.send(("append", 2, 2, np.array([0.2, 0.3]), np.arange(2, 4)))
    kind, detail = from_child.recv()
    assert kind == "error" and "disk nearly full" in detail
    free[0] = None  # space comes back: the next batch in flight is still refused
    to_child.send(("append", 4, 2, np.array([0.4, 0.5]), np.arange(4, 6)))
    to_child.send(("drop", 6, 2))
    assert from_child.recv() == ("error", detail) and from_child.recv() == ("error", detail)
    to_child.send(("close", "storage error: " + detail, {}))
    assert from_child.recv()[0] == "closed"
    child.join(5)
    assert not child.is_alive()
    with FrameFile(path) as f:
        assert f.n_complete == 2 and np.array_equal(f.read(), staging[:2])
        assert f.dropped.size == 0 and "disk nearly full" in f.status


def test_writer_process_keeps_order_with_several_batches_in_flight(tmp_path):
    from instrument.storage.frame_process import ProcessFrameWriter

    path = tmp_path / "f.h5"
    w = ProcessFrameWriter(path, SHAPE, {"camera": "cam"}, batch_frames=3, slots=2)
    a, b = _frames(11, 1), _frames(4, 2)
    w.append(a, np.arange(11) * 0.01, np.arange(11))  # four batches through two slots
    w.record_drop(11, 3)
    w.append(b, 0.2 + np.arange(4) * 0.01, np.arange(14, 18))
    w.sync()
    assert w.frames_written == 15
    w.close("completed")
    with FrameFile(path) as f:
        assert f.n_complete == 15 and np.array_equal(f.read(), np.concatenate([a, b]))
        assert np.array_equal(f.frame_index, [*range(11), *range(14, 18)])
        assert f.dropped.tolist() == [[11, 3]] and f.status == "completed"
    with pytest.raises(ValueError, match="slots"):
        ProcessFrameWriter(tmp_path / "g.h5", SHAPE, slots=0)
