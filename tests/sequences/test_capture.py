import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from drivers.helicam import HeliCamC3, HeliCamSettingError
from instrument.storage.frames import FrameFile, FrameFileError, FrameFileWriter
from sequences.capture import FrameRing, LockInCapture, capture_to_file
from sim.helicam import SimLibHeLIC
from sim.world import World


@pytest.fixture
def rig():
    world = World(shape=(10, 12), seed=2)
    lib = SimLibHeLIC(world)
    cam = HeliCamC3("cam", lib, clock=world.clock.now)
    yield world, lib, cam
    cam.close()


# ---- ring buffer -------------------------------------------------------------------------------


def test_ring_wraps_and_refuses_what_does_not_fit():
    ring = FrameRing(5, (2,))
    frames = np.arange(8 * 2).reshape(8, 2)
    assert ring.put(frames[:3], np.arange(3.0), np.arange(3)) == 3
    got, t, idx = ring.get(10, 0.0)
    assert idx.tolist() == [0, 1, 2]
    ring.release(2)
    assert ring.put(frames[3:8], np.arange(3.0, 8), np.arange(3, 8)) == 4  # one slot short
    seen = []
    while (b := ring.get(10, 0.0)) is not None:
        seen += b[2].tolist()
        assert np.array_equal(b[0], frames[b[2]])
        ring.release(len(b[2]))
    assert seen == [2, 3, 4, 5, 6]
    assert ring.high_water == 5
    with pytest.raises(ValueError):
        FrameRing(0, (2,))


# ---- normal captures ---------------------------------------------------------------------------


def test_capture_writes_every_frame_with_timestamps(rig, tmp_path):
    world, lib, cam = rig
    path = tmp_path / "cap.h5"
    res = capture_to_file(cam, path, frames_per_volume=40, n_frames=100, on_overflow="wait")
    assert res.end_reason == "completed: frame count reached" and res.completed
    assert res.frames_written == res.frames_acquired == 100 and res.frames_dropped == 0
    with FrameFile(path) as f:
        assert f.n_complete == 100 and f.status == res.end_reason
        assert np.array_equal(f.frame_index, np.arange(100))
        dt = np.diff(f.timestamps_s)
        period = 1 / res.settings.frame_rate_hz
        assert np.allclose(dt[:39], period)
        assert dt[39] == pytest.approx(period + lib.readout_dead_time_s)  # readout between volumes
        assert f.read().shape == (100, 10, 12, 2)
    assert cam.get_setting("AcqStop") == 1  # camera stopped at the end


def test_capture_by_duration(rig, tmp_path):
    world, lib, cam = rig
    res = capture_to_file(cam, tmp_path / "cap.h5", frames_per_volume=50, duration_s=0.5, on_overflow="wait")
    assert res.end_reason == "completed: duration reached"
    assert abs(res.frames_written - 0.5 * 208) <= 2


def test_live_view_and_operator_stop(rig, tmp_path):
    world, lib, cam = rig
    seen = []

    def viewer(capture):
        def poll():
            while True:
                if (live := capture.latest()) is not None:
                    seen.append(live.index)
                if capture.frames_acquired >= 60 and seen:
                    break
            capture.stop()
        threading.Thread(target=poll, daemon=True).start()

    res = capture_to_file(cam, tmp_path / "cap.h5", frames_per_volume=20, on_live=viewer, on_overflow="wait")
    assert res.end_reason == "stopped by the operator" and not res.completed
    assert res.frames_written == res.frames_acquired >= 60
    assert seen and seen == sorted(seen) and seen[-1] <= res.frames_acquired - 1


def test_bad_options_are_refused(rig, tmp_path):
    world, lib, cam = rig
    sink = FrameFileWriter(tmp_path / "x.h5", (10, 12, 2))
    for kw in ({"on_overflow": "block"}, {"n_frames": 0}, {"duration_s": -1}):
        with pytest.raises(ValueError):
            LockInCapture(cam, sink, 6250, 208, 10, **kw)
    sink.close("unused")
    with pytest.raises(HeliCamSettingError, match="frame_rate_hz"):
        capture_to_file(cam, tmp_path / "y.h5", frame_rate_hz=10_000, n_frames=5)
    with FrameFile(tmp_path / "y.h5") as f:
        assert f.status.startswith("failed to start") and "frame_rate_hz" in f.status


# ---- faults --------------------------------------------------------------------------------------


class SlowSink(FrameFileWriter):
    """A writer that stalls until released (a hung disk or NFS server)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.gate = threading.Event()

    def append(self, *a):
        self.gate.wait(10)
        super().append(*a)


def test_stalled_consumer_drops_with_a_count(rig, tmp_path):
    world, lib, cam = rig
    sink = SlowSink(tmp_path / "cap.h5", (10, 12, 2))
    cap = LockInCapture(cam, sink, 6250, 208, 10, n_frames=100, ring_frames=25, path=tmp_path / "cap.h5")
    cap.start()
    while cap.frames_acquired < 100:
        threading.Event().wait(0.01)
    sink.gate.set()
    res = cap.wait(20)
    assert res.frames_dropped > 0 and not res.completed
    assert res.frames_written + res.frames_dropped == res.frames_acquired == 100
    with FrameFile(tmp_path / "cap.h5") as f:
        assert f.dropped[:, 1].sum() == res.frames_dropped
        written = set(f.frame_index.tolist())
        dropped = {int(a) + i for a, c in f.dropped for i in range(c)}
        assert written.isdisjoint(dropped) and written | dropped == set(range(100))


def test_wait_policy_holds_a_simulated_camera_instead_of_dropping(rig, tmp_path):
    world, lib, cam = rig
    sink = SlowSink(tmp_path / "cap.h5", (10, 12, 2))
    cap = LockInCapture(cam, sink, 6250, 208, 10, n_frames=100, ring_frames=25, on_overflow="wait")
    cap.start()
    threading.Event().wait(0.2)
    assert cap.frames_acquired <= 30  # held at the ring's capacity plus the volume in flight
    sink.gate.set()
    res = cap.wait(20)
    assert res.frames_dropped == 0 and res.frames_written == 100 and res.completed


def test_stalled_consumer_can_stop_the_capture(rig, tmp_path):
    world, lib, cam = rig
    sink = SlowSink(tmp_path / "cap.h5", (10, 12, 2))
    cap = LockInCapture(cam, sink, 6250, 208, 10, ring_frames=15, on_overflow="stop")
    cap.start()
    while cap.frames_dropped == 0:
        threading.Event().wait(0.01)
    sink.gate.set()
    res = cap.wait(20)
    assert res.end_reason.startswith("consumer stalled") and "15 frames" in res.end_reason
    assert cam.get_setting("AcqStop") == 1


def test_camera_error_mid_capture_ends_cleanly(rig, tmp_path):
    world, lib, cam = rig
    count = [0]

    def fail_later(t):
        count[0] += 1
        if count[0] == 30:
            lib.inject_fault("HE_Acquire", -7)

    lib.frame_hook = fail_later
    res = capture_to_file(cam, tmp_path / "cap.h5", frames_per_volume=10, n_frames=100, on_overflow="wait")
    assert res.end_reason.startswith("camera error") and "-7" in res.end_reason
    assert res.frames_written == 30 and not res.completed
    with FrameFile(tmp_path / "cap.h5") as f:
        assert f.n_complete == 30 and "camera error" in f.status


class FailingSink(FrameFileWriter):
    def __init__(self, *a, fail_after, **kw):
        super().__init__(*a, **kw)
        self.fail_after = fail_after

    def append(self, frames, *a):
        if self.frames_written + len(frames) > self.fail_after:
            raise FrameFileError(f"writing to {self.path} failed: [Errno 28] No space left on device")
        super().append(frames, *a)


def test_storage_error_stops_the_camera_and_keeps_the_file(rig, tmp_path):
    world, lib, cam = rig
    sink = FailingSink(tmp_path / "cap.h5", (10, 12, 2), fail_after=40)
    res = LockInCapture(cam, sink, 6250, 208, 10, write_batch=10).run()
    assert res.end_reason.startswith("storage error") and "No space left" in res.end_reason
    assert res.frames_written == 40
    assert cam.get_setting("AcqStop") == 1
    with FrameFile(tmp_path / "cap.h5") as f:
        assert f.n_complete == 40 and "No space left" in f.status


def test_real_disk_full_mid_capture(tmp_path):
    # RLIMIT_FSIZE makes the kernel refuse writes past a size, as a full disk does
    path = tmp_path / "cap.h5"
    script = f"""
        import resource, signal
        from drivers.helicam import HeliCamC3
        from sequences.capture import capture_to_file
        from sim.helicam import SimLibHeLIC
        from sim.world import World
        world = World(shape=(100, 100), seed=1)
        cam = HeliCamC3("cam", SimLibHeLIC(world), clock=world.clock.now)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8_000_000, 8_000_000))  # above the 5.1 MB staging
        res = capture_to_file(cam, {str(path)!r}, frames_per_volume=20, n_frames=2000, compression="none",
                              on_overflow="wait")
        print("RESULT", res.frames_written, res.end_reason)
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                         timeout=60, cwd=os.getcwd())
    assert "RESULT" in out.stdout, out.stdout + out.stderr
    written = int(out.stdout.split("RESULT")[1].split()[0])
    assert "storage error" in out.stdout and 0 < written < 2000
    with FrameFile(path) as f:
        assert f.n_complete >= written - 32  # at most the batch in flight is lost
        f.read()


def test_disk_nearly_full_stops_cleanly_and_records_why(rig, tmp_path, monkeypatch):
    import shutil

    import instrument.storage.frames as frames_module

    world, lib, cam = rig
    real = shutil.disk_usage
    calls = [0]

    def shrinking(path):
        calls[0] += 1
        u = real(path)
        free = u.free if calls[0] <= 3 else 10 * 1024**2  # 10 MB left after three batches
        return type(u)(u.total, u.used, free)

    monkeypatch.setattr(frames_module.shutil, "disk_usage", shrinking)
    res = capture_to_file(cam, tmp_path / "cap.h5", frames_per_volume=10, n_frames=200, writer="thread",
                          on_overflow="wait",
                          write_batch=10)
    assert res.end_reason.startswith("storage error") and "disk nearly full" in res.end_reason
    assert res.frames_written == 30 and cam.get_setting("AcqStop") == 1
    with FrameFile(tmp_path / "cap.h5") as f:
        assert f.n_complete == 30 and "disk nearly full" in f.status


def test_writer_process_killed_mid_capture(rig, tmp_path):
    import signal

    from instrument.storage.frame_process import ProcessFrameWriter

    world, lib, cam = rig
    path = tmp_path / "cap.h5"
    sink = ProcessFrameWriter(path, (10, 12, 2), batch_frames=10)
    cap = LockInCapture(cam, sink, 6250, 208, 10, write_batch=10, path=path, ring_frames=20,
                        on_overflow="wait")
    count = [0]

    def kill_writer(t):
        if sink.frames_written >= 20 and not count[0]:
            count[0] = 1
            os.kill(sink.pid, signal.SIGKILL)

    lib.frame_hook = kill_writer
    cap.start()
    res = cap.wait(30)
    assert res.end_reason.startswith("storage error") and "died" in res.end_reason
    assert cam.get_setting("AcqStop") == 1 and not res.completed
    with FrameFile(path) as f:
        assert 0 < f.n_complete <= res.frames_acquired
        f.read()


def test_gaps_between_volumes_are_reported(tmp_path):
    world = World(shape=(10, 12), seed=2)
    lib = SimLibHeLIC(world, readout_dead_time_s=0.2)  # a camera that pauses 200 ms between volumes
    cam = HeliCamC3("cam", lib, clock=world.clock.now)
    res = capture_to_file(cam, tmp_path / "cap.h5", frames_per_volume=20, n_frames=60, on_overflow="wait",
                          writer="thread", max_volume_gap_s=0.05)
    assert [i for i, _ in res.camera_gaps] == [20, 40]
    assert all(g == pytest.approx(0.2) for _, g in res.camera_gaps)


class CloseFailsSink(FrameFileWriter):
    def close(self, *a, **kw):
        super().close(*a, **kw)
        raise OSError(28, "No space left on device")


def test_a_frame_file_that_fails_to_close_is_not_reported_complete(rig, tmp_path):
    world, lib, cam = rig
    sink = CloseFailsSink(tmp_path / "cap.h5", (10, 12, 2))
    res = LockInCapture(cam, sink, 6250, 208, 10, n_frames=20).run()
    assert not res.completed
    assert "closing the frame file failed: OSError" in res.end_reason and "No space left" in res.end_reason


def test_a_ring_smaller_than_a_volume_is_refused(rig, tmp_path):
    world, lib, cam = rig
    with pytest.raises(ValueError, match=r"ring buffer \(8 frames\) must hold at least one camera volume"):
        LockInCapture(cam, FrameFileWriter(tmp_path / "cap.h5", (10, 12, 2)), 6250, 208, 10, ring_frames=8)


def test_refused_arguments_leave_no_writer_process_nor_file_behind(rig, tmp_path):
    import multiprocessing

    world, lib, cam = rig
    before = set(multiprocessing.active_children())
    with pytest.raises(ValueError, match="ring buffer"):
        capture_to_file(cam, tmp_path / "x.h5", frames_per_volume=40, n_frames=40, ring_frames=8)
    assert set(multiprocessing.active_children()) <= before  # the writer process was stopped
    # the camera is free for the next capture at once
    assert capture_to_file(cam, tmp_path / "y.h5", frames_per_volume=10, n_frames=10).frames_written == 10


def test_the_written_observer_sees_every_frame_and_a_failing_one_costs_none(rig, tmp_path):
    world, lib, cam = rig
    seen = []
    res = capture_to_file(cam, tmp_path / "seen.h5", frames_per_volume=40, n_frames=100, on_overflow="wait",
                          writer="thread", on_written=lambda frames, t, idx: seen.extend(idx.tolist()))
    assert seen == list(range(100)) and res.frames_written == 100

    def fails(frames, t, idx):
        raise RuntimeError("observer broke")

    res = capture_to_file(cam, tmp_path / "broken.h5", frames_per_volume=40, n_frames=100,
                          on_overflow="wait", writer="thread", on_written=fails)
    assert res.completed and res.frames_written == 100  # the observer was dropped, the frames kept
    with FrameFile(tmp_path / "broken.h5") as f:
        assert f.n_complete == 100
