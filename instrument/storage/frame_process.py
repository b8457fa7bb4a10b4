"""A frame-file writer in its own process, fed through shared memory.

Why a process: HDF5 cannot recover from a failed write (disk full, quota, I/O error): the file's
handles can then be neither flushed nor closed, and the interpreter crashes when it frees them
(h5py issues 914, 2160). In a child process that crash costs only the child: the capture sees the
pipe close, stops the camera and reports the reason, and the SWMR file stays readable up to the
last flushed batch. The child also compresses and writes outside the capture process's GIL.

``ProcessFrameWriter`` has the interface of ``FrameFileWriter``. ``append`` copies the frames into
a ring of shared staging slots (only the slot number and the frames' times and indices go through
the pipe) and returns while the child writes them. Several batches are in flight at once, so the
child never waits for the capture process between batches (a capture thread holding the GIL for a
few milliseconds would otherwise idle the writer); a crash loses at most the batches in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from instrument.storage.frames import MIN_FREE_BYTES, FrameFileError, _checked_batch, _json

START_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 120.0


def _child(conn_in: Any, conn_out: Any, shm_name: str, capacity: int, frame_shape: tuple[int, ...], path: str,
           metadata: dict[str, Any], compression: str, min_free_bytes: int) -> None:
    from multiprocessing import resource_tracker

    from instrument.storage.frames import FrameFileWriter

    shm = shared_memory.SharedMemory(name=shm_name)
    # The parent owns the segment; this process's own tracker must not unlink it at exit.
    resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001
    staging = np.ndarray((capacity, *frame_shape), np.int16, buffer=shm.buf)
    try:
        writer = FrameFileWriter(path, frame_shape, metadata, compression, min_free_bytes)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn_out.send(("error", str(exc)))
        return
    conn_out.send(("ready", None))
    _serve(writer, staging, conn_in, conn_out)


def _serve(writer: Any, staging: np.ndarray, conn_in: Any, conn_out: Any) -> None:
    """Answer the parent's requests in order until it closes the file or goes away."""
    try:
        _answer(writer, staging, conn_in, conn_out)
    except (BrokenPipeError, ConnectionResetError):  # the parent went away mid-answer: keep what is written
        writer.close("capture process ended without closing the file")


def _answer(writer: Any, staging: np.ndarray, conn_in: Any, conn_out: Any) -> None:
    failed: str | None = None  # after a failure, batches already sent are refused, never written
    while True:
        try:
            msg = conn_in.recv()
        except EOFError:  # the capture process is gone: keep what is written
            writer.close("capture process ended without closing the file")
            return
        kind = msg[0]
        try:
            if kind in ("append", "drop") and failed is not None:
                conn_out.send(("error", failed))
            elif kind == "append":
                _, start, k, times, index = msg
                writer.append(staging[start:start + k], times, index)
                conn_out.send(("ok", writer.frames_written))
            elif kind == "drop":
                writer.record_drop(msg[1], msg[2])
                conn_out.send(("ok", writer.frames_written))
            elif kind == "close":
                writer.close(msg[1], msg[2])
                conn_out.send(("closed", time.process_time()))
                return
        except FrameFileError as exc:
            failed = str(exc)
            conn_out.send(("error", failed))
            if "disk nearly full" not in failed:
                # a failed HDF5 write leaves handles that crash on close: leave without touching them
                os._exit(3)
        except Exception as exc:  # noqa: BLE001
            failed = f"{type(exc).__name__}: {exc}"
            conn_out.send(("error", failed))


def _child_main() -> None:
    """Entry point of the writer process: ``python -c`` with the arguments as JSON in argv[1].

    Ctrl-C and SIGTERM sent to the whole process group are the parent's to handle: it stops the
    capture and closes the file through the pipe, and if the parent dies the pipe's end closes the
    file here. Dying on the signal instead would cut the file mid-write and leave tracebacks.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    args = json.loads(sys.argv[1])
    conn_in = Connection(args.pop("fd_in"), writable=False)
    conn_out = Connection(args.pop("fd_out"), readable=False)
    _child(conn_in, conn_out, args["shm_name"], args["capacity"], tuple(args["frame_shape"]), args["path"],
           args["metadata"], args["compression"], args["min_free_bytes"])


class ProcessFrameWriter:
    """Frame-file writer running in a child process (see the module docstring).

    Args:
        path, frame_shape, metadata, compression, min_free_bytes: as ``FrameFileWriter``.
        batch_frames: frames per staging slot (the most the child writes in one go).
        slots: staging slots, i.e. batches in flight at most.
    """

    def __init__(self, path: str | Path, frame_shape: tuple[int, ...],
                 metadata: Mapping[str, Any] | None = None,
                 compression: str = "blosc-lz4-bitshuffle", min_free_bytes: int = MIN_FREE_BYTES,
                 batch_frames: int = 32, slots: int = 4) -> None:
        if batch_frames < 1 or slots < 1:
            raise ValueError(f"batch_frames and slots must be positive, got {batch_frames} and {slots}")
        self.path = Path(path)
        self.frame_shape = tuple(int(n) for n in frame_shape)
        self.batch_frames = int(batch_frames)
        self.slots = int(slots)
        self.frames_written = 0
        self.frames_dropped = 0
        self.child_cpu_s: float | None = None
        self._broken: str | None = None
        self._closed = False
        if self.path.exists():
            raise FrameFileError(f"frame file {self.path} exists already; frame files are never overwritten")
        frame_bytes = int(np.prod(self.frame_shape)) * 2
        # the parent fills one slot while the child writes the others
        self._shm = shared_memory.SharedMemory(create=True, size=self.slots * self.batch_frames * frame_bytes)
        self._staging = np.ndarray((self.slots, self.batch_frames, *self.frame_shape), np.int16,
                                   buffer=self._shm.buf)
        self._slot = 0
        self._in_flight: deque[str] = deque()  # requests sent, oldest first; the child answers in order
        self._proc: subprocess.Popen | None = None
        try:
            # A fresh interpreter (not multiprocessing's spawn, which re-runs the caller's main script)
            # talking over two pipes.
            to_child_r, to_child_w = os.pipe()
            from_child_r, from_child_w = os.pipe()
            args = {"fd_in": to_child_r, "fd_out": from_child_w, "shm_name": self._shm.name,
                    "capacity": self.slots * self.batch_frames, "frame_shape": list(self.frame_shape),
                    "path": str(self.path),
                    "metadata": json.loads(_json(dict(metadata or {}))), "compression": compression,
                    "min_free_bytes": int(min_free_bytes)}
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
            entry = "from instrument.storage.frame_process import _child_main; _child_main()"
            self._proc = subprocess.Popen(
                [sys.executable, "-c", entry, json.dumps(args)],
                pass_fds=(to_child_r, from_child_w), env=env, stdin=subprocess.DEVNULL)
            os.close(to_child_r)
            os.close(from_child_w)
            self._send_conn = Connection(to_child_w, readable=False)
            self._conn = Connection(from_child_r, writable=False)
            kind, detail = self._reply("start", START_TIMEOUT_S)
            if kind != "ready":
                self._shutdown()
                raise FrameFileError(detail)
        except BaseException:
            # Refused, or a signal (SIGTERM, Ctrl-C) while the child starts: leave no child and no
            # shared-memory segment behind (the resource tracker would report it leaked).
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Best-effort cleanup of a writer that never got going."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(Exception):
                self._proc.kill()
                self._proc.wait(5)
        with contextlib.suppress(Exception):
            del self._staging
        with contextlib.suppress(Exception):
            self._shm.close()
        with contextlib.suppress(Exception):
            self._shm.unlink()

    def _reply(self, what: str, timeout_s: float = REPLY_TIMEOUT_S) -> tuple[str, Any]:
        try:
            if not self._conn.poll(timeout_s):
                raise FrameFileError(
                    f"frame writer for {self.path} did not answer {what} within {timeout_s:g} s")
            return self._conn.recv()
        except (EOFError, OSError):
            code = self._wait(5)
            raise FrameFileError(
                f"frame writer process for {self.path} died during {what} (exit code {code}); "
                "the file is readable up to the last flushed batch") from None

    def _send(self, msg: tuple, what: str) -> None:
        if self._broken:
            raise FrameFileError(self._broken)
        try:
            self._send_conn.send(msg)
        except OSError:
            code = self._wait(5)
            self._broken = (f"frame writer process for {self.path} died before {what} (exit code {code}); "
                            "the file is readable up to the last flushed batch")
            raise FrameFileError(self._broken) from None
        self._in_flight.append(what)

    def _collect(self) -> None:
        """Wait for the child's answer to every request in flight."""
        while self._in_flight:
            self._collect_oldest()

    def _collect_oldest(self) -> None:
        what = self._in_flight.popleft()
        try:
            kind, detail = self._reply(what)
        except FrameFileError as exc:  # died or hung: no further answers can be told apart
            self._broken = str(exc)
            self._in_flight.clear()
            raise
        if kind == "error":
            self._broken = detail
            raise FrameFileError(detail)
        self.frames_written = int(detail)

    def append(self, frames: np.ndarray, timestamps_s: np.ndarray, frame_index: np.ndarray) -> None:
        """Hand frames to the child, in batches of ``batch_frames``.

        Returns once the frames are copied; up to ``slots`` batches are written while the caller
        goes on (``sync`` waits for them) and a failure of one is raised by a later call.
        """
        k = _checked_batch(frames, timestamps_s, frame_index, self.frame_shape)
        for start in range(0, k, self.batch_frames):
            stop = min(k, start + self.batch_frames)
            if len(self._in_flight) >= self.slots:  # the oldest batch in flight holds this slot
                self._collect_oldest()
            if self._broken:
                raise FrameFileError(self._broken)
            self._staging[self._slot, : stop - start] = frames[start:stop]
            self._send(("append", self._slot * self.batch_frames, stop - start,
                        np.asarray(timestamps_s[start:stop], float),
                        np.asarray(frame_index[start:stop], np.int64)),
                       f"frames {int(frame_index[start])}-{int(frame_index[stop - 1])}")
            self._slot = (self._slot + 1) % self.slots

    def sync(self) -> None:
        """Wait until everything appended is on disk."""
        self._collect()

    def record_drop(self, first_index: int, count: int) -> None:
        if count > 0:
            self._collect()
            self._send(("drop", int(first_index), int(count)), "a drop record")
            self._collect()
            self.frames_dropped += count

    def close(self, end_reason: str, summary: Mapping[str, Any] | None = None) -> None:
        """Record the end reason (if the child still can) and stop the child. Never raises."""
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:  # also after "disk nearly full": the file is intact, record why
            try:
                while self._in_flight:  # every answer still due, failures included
                    with contextlib.suppress(FrameFileError):
                        self._collect_oldest()
                self._send_conn.send(("close", end_reason, dict(summary or {})))
                kind, detail = self._reply("close")
                if kind == "closed":
                    self.child_cpu_s = float(detail)
            except Exception:  # noqa: BLE001 - the capture's result still carries the reason
                pass
        self._shutdown()

    def _wait(self, timeout_s: float) -> int | None:
        try:
            return self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _shutdown(self) -> None:
        for conn in (self._send_conn, self._conn):
            conn.close()
        if self._wait(10) is None:
            self._proc.kill()
            self._wait(5)
        del self._staging
        self._shm.close()
        self._shm.unlink()
