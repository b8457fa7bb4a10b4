"""Lock-in capture pipeline: camera thread -> bounded ring buffer -> writer thread -> frame file.

The camera cannot wait: a free-running lock-in camera keeps integrating whether or not the host
reads it. So the acquisition thread never blocks on storage. It copies each volume into a ring
buffer of fixed size; when the writer falls behind and the ring is full, the frames that do not fit
are dropped, counted and recorded in the file (or, with ``on_overflow="stop"``, the capture ends
with that reason). A viewer reads the latest frame through ``latest()`` without any lock the
acquisition waits on.

The capture ends when the frame count or duration is reached, ``stop()`` is called, the camera
fails, or the storage fails; ``CaptureResult.end_reason`` says which, and the same text is stored
in the frame file. The camera is stopped on every exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from instrument.protocols import LockInCamera, LockInSettings

log = logging.getLogger(__name__)


class FrameSink(Protocol):
    """Where captured frames go (``instrument.storage.frames.FrameFileWriter``)."""

    def append(self, frames: np.ndarray, timestamps_s: np.ndarray, frame_index: np.ndarray) -> None: ...

    def record_drop(self, first_index: int, count: int) -> None: ...

    def close(self, end_reason: str, summary: dict[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class LiveFrame:
    """The newest captured frame, for viewers."""

    index: int
    timestamp_s: float
    raw: np.ndarray


class FrameRing:
    """Bounded single-producer / single-consumer ring of raw frames with their metadata.

    ``put`` never blocks: it stores what fits and returns how many frames it took. ``get`` hands
    the consumer a contiguous view of waiting frames; ``release`` frees them once written.
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], dtype: Any = np.int16) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least one frame, got {capacity}")
        self.capacity = int(capacity)
        self._frames = np.empty((self.capacity, *frame_shape), dtype)
        self._times = np.empty(self.capacity, np.float64)
        self._index = np.empty(self.capacity, np.int64)
        self._head = 0  # next slot to write (monotonic count)
        self._tail = 0  # next slot to read (monotonic count)
        self._cond = threading.Condition()
        self._closed = False
        self.high_water = 0

    @property
    def size(self) -> int:
        return self._head - self._tail

    def put(self, frames: np.ndarray, times_s: np.ndarray, index: np.ndarray) -> int:
        """Copy as many leading frames as fit; returns that number (the rest are the caller's drops)."""
        with self._cond:
            free = self.capacity - (self._head - self._tail)
        k = min(len(frames), free)
        done = 0
        while done < k:  # at most two pieces around the wrap
            slot = (self._head + done) % self.capacity
            m = min(k - done, self.capacity - slot)
            self._frames[slot:slot + m] = frames[done:done + m]
            self._times[slot:slot + m] = times_s[done:done + m]
            self._index[slot:slot + m] = index[done:done + m]
            done += m
        with self._cond:
            self._head += k
            self.high_water = max(self.high_water, self._head - self._tail)
            self._cond.notify()
        return k

    def get(self, max_frames: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Views of up to ``max_frames`` waiting frames (contiguous), or None after the timeout."""
        with self._cond:
            if self._head == self._tail and not self._closed:
                self._cond.wait(timeout_s)
            n = self._head - self._tail
            if n == 0:
                return None
            slot = self._tail % self.capacity
            m = min(n, max_frames, self.capacity - slot)
        return self._frames[slot:slot + m], self._times[slot:slot + m], self._index[slot:slot + m]

    def release(self, n: int) -> None:
        with self._cond:
            self._tail += n
            self._cond.notify_all()

    def wait_for_space(self, timeout_s: float) -> None:
        """Block until the consumer frees a slot (or the timeout passes)."""
        with self._cond:
            if self._head - self._tail >= self.capacity:
                self._cond.wait(timeout_s)

    def close(self) -> None:
        """No more frames will come; a waiting consumer wakes up."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass
class CaptureResult:
    """How a capture went."""

    path: Path | None
    settings: LockInSettings
    end_reason: str
    completed: bool
    frames_acquired: int
    frames_written: int
    frames_dropped: int
    dropped_runs: list[tuple[int, int]] = field(default_factory=list)
    camera_gaps: list[tuple[int, float]] = field(default_factory=list)
    """(frame index, seconds) where consecutive volumes were further apart than expected."""
    camera_time_s: float = 0.0
    wall_time_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    ring_high_water: int = 0

    def summary(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k not in ("settings", "path")}
        d["settings"] = vars(self.settings)
        d["path"] = str(self.path) if self.path else None
        return d


def merge_runs(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join (first, count) runs that continue each other (whole volumes dropped in a row)."""
    merged: list[tuple[int, int]] = []
    for first, count in runs:
        if merged and merged[-1][0] + merged[-1][1] == first:
            merged[-1] = (merged[-1][0], merged[-1][1] + count)
        else:
            merged.append((first, count))
    return merged


class LockInCapture:
    """Captures raw lock-in frames to a sink through a bounded ring buffer.

    Args:
        camera: the lock-in camera (configured by ``start``).
        sink: where frames go; ``close(end_reason, summary)`` is called exactly once.
        modulation_frequency_hz, frame_rate_hz, frames_per_volume: camera settings.
        n_frames: stop after this many frames (``None``: until ``duration_s`` or ``stop``).
        duration_s: stop after this much camera time.
        ring_frames: ring buffer capacity in frames.
        on_overflow: ``"drop"`` (count and record drops, go on), ``"stop"`` (end the capture) or
            ``"wait"`` (hold the camera until the writer catches up: only for a simulated camera on
            a virtual clock, which loses nothing by waiting; a real camera would lose the frames).
        write_batch: most frames per sink append.
        path: the sink's file, reported in the result.
        max_volume_gap_s: volumes further apart than one volume plus this are reported as gaps.
        on_written: called from the writer thread with each batch (frames, times, index) once the
            sink took it, before its ring slots are freed (the views are valid only during the call);
            a failing observer is logged and dropped, the frames still reach the sink.
    """

    def __init__(
        self,
        camera: LockInCamera,
        sink: FrameSink,
        modulation_frequency_hz: float,
        frame_rate_hz: float,
        frames_per_volume: int,
        n_frames: int | None = None,
        duration_s: float | None = None,
        ring_frames: int = 512,
        on_overflow: str = "drop",
        write_batch: int = 32,
        path: Path | None = None,
        max_volume_gap_s: float = 0.05,
        on_written: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    ) -> None:
        if on_overflow not in ("drop", "stop", "wait"):
            raise ValueError(f"on_overflow must be 'drop', 'stop' or 'wait', got {on_overflow!r}")
        if n_frames is not None and n_frames < 1:
            raise ValueError(f"n_frames must be positive, got {n_frames}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        if ring_frames < frames_per_volume:
            raise ValueError(f"the ring buffer ({ring_frames} frames) must hold at least one camera volume "
                             f"({frames_per_volume} frames); raise ring_frames or lower frames_per_volume")
        self.camera = camera
        self.sink = sink
        self.request = (modulation_frequency_hz, frame_rate_hz, frames_per_volume)
        self.n_frames = n_frames
        self.duration_s = duration_s
        self.ring_frames = ring_frames
        self.on_overflow = on_overflow
        self.write_batch = write_batch
        self.path = path
        self.max_volume_gap_s = max_volume_gap_s
        self.on_written = on_written
        self._stop = threading.Event()
        self._reason_lock = threading.Lock()
        self._end_reason: str | None = None
        self._error = False
        self._latest: LiveFrame | None = None
        self._threads: list[threading.Thread] = []
        self._cpu: dict[str, float] = {}
        self._acquired = 0
        self._dropped_runs: list[tuple[int, int]] = []
        self._gaps: list[tuple[int, float]] = []
        self._camera_t0: float | None = None
        self._camera_t: float = 0.0
        self.ring: FrameRing | None = None
        self.settings: LockInSettings | None = None
        self._result: CaptureResult | None = None

    # ---- control -------------------------------------------------------------------------------

    def start(self) -> LockInSettings:
        """Configure the camera and start the acquisition and writer threads."""
        self.settings = self.camera.configure(*self.request)
        rows, cols = self.camera.shape
        self.ring = FrameRing(self.ring_frames, (rows, cols, 2))
        self._wall0 = time.monotonic()
        self._threads = [threading.Thread(target=self._acquire_loop, name="capture-acquire", daemon=True),
                         threading.Thread(target=self._write_loop, name="capture-write", daemon=True)]
        for t in self._threads:
            t.start()
        return self.settings

    def stop(self, reason: str = "stopped by the operator") -> None:
        """Ask the capture to end; frames already in the ring are still written."""
        self._end(reason)

    def wait(self, timeout_s: float | None = None) -> CaptureResult:
        """Wait for the capture to end and return its result."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            raise TimeoutError("capture still running; call stop() first or wait longer")
        if self._result is None:  # the writer thread died before it could record the end
            raise RuntimeError("the capture's writer thread ended without a result; see the log above")
        return self._result

    def run(self) -> CaptureResult:
        """Start, wait, and stop cleanly on Ctrl-C."""
        self.start()
        try:
            return self.wait()
        except KeyboardInterrupt:
            self.stop("interrupted (Ctrl-C)")
            return self.wait()

    @property
    def finished(self) -> bool:
        """Whether the capture has ended and its result is ready (``wait`` returns at once)."""
        return self._result is not None and not any(t.is_alive() for t in self._threads)

    def latest(self) -> LiveFrame | None:
        """The newest frame (a private copy); never blocks the capture."""
        return self._latest

    @property
    def frames_acquired(self) -> int:
        return self._acquired

    @property
    def frames_dropped(self) -> int:
        return sum(c for _, c in self._dropped_runs)

    def _end(self, reason: str, error: bool = False) -> None:
        with self._reason_lock:
            # the first reason wins, except that a failure outranks a normal end: frames still in
            # the ring when the writer fails are lost, whatever ended the acquisition
            if self._end_reason is None or (error and not self._error):
                self._end_reason, self._error = reason, error
        self._stop.set()

    # ---- threads -------------------------------------------------------------------------------

    def _next_volume(self) -> tuple[np.ndarray, np.ndarray]:
        """One volume and the start time of each of its frames."""
        n = self.settings.frames_per_volume
        grab = getattr(self.camera, "acquire_volume", None)
        raw = grab() if grab is not None else self.camera.acquire(n)
        info = getattr(self.camera, "last_volume", None)
        if info is not None:
            times = info.frame_times_s()
        else:  # a camera without volume bookkeeping: host time at arrival, spaced by the frame period
            period = 1 / self.settings.frame_rate_hz
            times = time.monotonic() - period * np.arange(len(raw), 0, -1)
        return raw, np.asarray(times, float)

    def _acquire_loop(self) -> None:
        period = 1 / self.settings.frame_rate_hz
        index = 0
        last_end: float | None = None
        try:
            while not self._stop.is_set():
                raw, times = self._next_volume()
                if self._camera_t0 is None:
                    self._camera_t0 = float(times[0])
                if last_end is not None and times[0] - last_end > self.max_volume_gap_s:
                    self._gaps.append((index, float(times[0] - last_end)))
                last_end = float(times[-1] + period)
                want = len(raw)
                if self.n_frames is not None:
                    want = min(want, self.n_frames - index)
                if self.duration_s is not None:
                    want = min(want, int(np.searchsorted(times, self._camera_t0 + self.duration_s)))
                idx = np.arange(index, index + want)
                taken = self.ring.put(raw[:want], times[:want], idx)
                while self.on_overflow == "wait" and taken < want and not self._stop.is_set():
                    self.ring.wait_for_space(0.05)
                    taken += self.ring.put(raw[taken:want], times[taken:want], idx[taken:])
                if want:
                    self._latest = LiveFrame(int(idx[want - 1]), float(times[want - 1]), raw[want - 1].copy())
                if taken < want:
                    self._dropped_runs.append((index + taken, want - taken))
                    if self.on_overflow == "stop":
                        self._end(f"consumer stalled: ring buffer of {self.ring.capacity} frames full, "
                                  f"{want - taken} frames dropped", error=True)
                index += want
                self._acquired = index
                self._camera_t = float(times[want - 1] + period - self._camera_t0) if want else self._camera_t
                if self.n_frames is not None and index >= self.n_frames:
                    self._end("completed: frame count reached")
                elif want < len(raw):
                    self._end("completed: duration reached")
        except Exception as exc:  # noqa: BLE001 - any camera failure ends the capture with its reason
            self._end(f"camera error: {type(exc).__name__}: {exc}", error=True)
        finally:
            try:
                self.camera.safe_state()
            except Exception as exc:  # noqa: BLE001 - recorded as the end reason, never lost in a thread
                self._end(f"camera not stopped: {exc}", error=True)
            finally:
                self._cpu["acquire"] = time.thread_time()
                self.ring.close()

    def _observe(self, frames: np.ndarray, times: np.ndarray, idx: np.ndarray) -> None:
        if self.on_written is None:
            return
        try:
            self.on_written(frames, times, idx)
        except Exception as exc:  # noqa: BLE001 - an observer must never cost frames: drop it, keep writing
            log.error("capture observer failed and was dropped: %s: %s", type(exc).__name__, exc)
            self.on_written = None

    def _write_loop(self) -> None:
        ring = self.ring
        written = 0
        drops_recorded = 0
        try:
            while True:
                pending = self._dropped_runs[drops_recorded:]  # a snapshot: the camera keeps adding
                for first, count in merge_runs(pending):
                    self.sink.record_drop(first, count)
                drops_recorded += len(pending)
                batch = ring.get(self.write_batch, timeout_s=0.1)
                if batch is None:
                    if ring.closed and ring.size == 0 and drops_recorded == len(self._dropped_runs):
                        break
                    continue
                frames, times, idx = batch
                self.sink.append(frames, times, idx)
                self._observe(frames, times, idx)
                ring.release(len(frames))
                written += len(frames)
            sync = getattr(self.sink, "sync", None)  # a sink that writes behind: wait for the last batch
            if sync is not None:
                sync()
        except Exception as exc:  # noqa: BLE001 - storage failure: stop the camera, keep what is written
            self._end(f"storage error: {type(exc).__name__}: {exc}", error=True)
        finally:
            written = int(getattr(self.sink, "frames_written", written))
            self._cpu["write"] = time.thread_time()
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join()
            reason = self._end_reason or "completed"
            self._result = CaptureResult(
                path=self.path, settings=self.settings, end_reason=reason,
                completed=reason.startswith("completed") and not self._dropped_runs,
                frames_acquired=self._acquired, frames_written=written,
                frames_dropped=self.frames_dropped, dropped_runs=merge_runs(self._dropped_runs),
                camera_gaps=list(self._gaps), camera_time_s=self._camera_t,
                wall_time_s=time.monotonic() - self._wall0, cpu_s=dict(self._cpu),
                ring_high_water=ring.high_water,
            )
            try:
                self.sink.close(reason, self._result.summary())
            except Exception as exc:  # noqa: BLE001 - the last frames may not be on disk: say so
                log.error("closing the frame file failed: %s", exc)
                self._result.completed = False
                failure = f"closing the frame file failed: {type(exc).__name__}: {exc}"
                self._result.end_reason = f"{reason}; {failure}"
            child_cpu = getattr(self.sink, "child_cpu_s", None)
            if child_cpu is not None:
                self._result.cpu_s["writer_process"] = child_cpu


def open_capture(
    camera: LockInCamera,
    path: str | Path,
    *,
    modulation_frequency_hz: float = 6250.0,
    frame_rate_hz: float = 208.0,
    frames_per_volume: int = 208,
    n_frames: int | None = None,
    duration_s: float | None = None,
    metadata: dict[str, Any] | None = None,
    compression: str = "blosc-lz4-bitshuffle",
    writer: str = "process",
    **options: Any,
) -> LockInCapture:
    """Start capturing raw lock-in frames into a new frame file; returns the running capture.

    The caller owns the capture: ``wait()`` for its result, ``stop()`` it on any early exit (the
    frame file is closed by the capture's writer thread either way).

    Args:
        writer: ``"process"`` writes from a child process (a storage failure cannot take the
            capture down, see ``instrument.storage.frame_process``); ``"thread"`` writes in-process.
        options: passed to ``LockInCapture`` (ring size, overflow policy, batch size, ``on_written``).
    """
    from instrument.storage.frame_process import ProcessFrameWriter
    from instrument.storage.frames import FrameFileWriter

    rows, cols = camera.shape
    meta = {"camera": getattr(camera, "name", "camera"), "modulation_frequency_hz": modulation_frequency_hz,
            "frame_rate_hz": frame_rate_hz, "frames_per_volume": frames_per_volume, **(metadata or {})}
    if writer == "process":
        sink: FrameSink = ProcessFrameWriter(path, (rows, cols, 2), meta, compression=compression,
                                             batch_frames=options.get("write_batch", 32))
    elif writer == "thread":
        sink = FrameFileWriter(path, (rows, cols, 2), meta, compression=compression)
    else:
        raise ValueError(f"writer must be 'process' or 'thread', got {writer!r}")
    try:
        capture = LockInCapture(camera, sink, modulation_frequency_hz, frame_rate_hz, frames_per_volume,
                                n_frames=n_frames, duration_s=duration_s, path=Path(path), **options)
        capture.start()
    except BaseException as exc:  # refused or failed to start: the writer (process, file) must not linger
        sink.close(f"failed to start: {exc}")
        raise
    return capture


def capture_to_file(
    camera: LockInCamera,
    path: str | Path,
    *,
    on_live: Callable[[LockInCapture], None] | None = None,
    **options: Any,
) -> CaptureResult:
    """Capture raw lock-in frames into a new frame file (``open_capture``); returns when it has ended.

    Args:
        on_live: receives the running capture (a viewer polls ``latest()``, or calls ``stop()``).
        options: passed to ``open_capture`` (camera settings, length, writer, ring, overflow policy).
    """
    capture = open_capture(camera, path, **options)
    try:
        if on_live is not None:
            on_live(capture)
        return capture.wait()
    except KeyboardInterrupt:
        capture.stop("interrupted (Ctrl-C)")
        return capture.wait()
    except BaseException as exc:  # a viewer failing or SIGTERM: close the file cleanly, then report
        capture.stop(f"stopped: {exc}")
        capture.wait()
        raise
