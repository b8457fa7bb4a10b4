"""Frame files: raw lock-in camera frames in a chunked, compressed HDF5 file, readable while written.

Layout of one file::

    /frames        int16 (n, rows, cols, 2)   raw I/Q, one chunk per frame, compressed
    /timestamp_s   float64 (n,)               frame start on the camera's clock (NaN: not complete)
    /frame_index   int64 (n,)                 running frame number; gaps are dropped frames
    /dropped       int64 (k, 2)               (first frame_index, count) of each dropped run
    /status        bytes                      "running", then the reason the capture ended
    attrs          metadata (JSON) given when the file was opened; summary attrs after close

The file is written in SWMR mode and flushed after every batch, so it stays readable up to the
last complete frame if the writer dies or the disk fills. A frame is complete when its timestamp
is finite: frames are written before their timestamps.

Compression: Blosc with LZ4 and bit shuffle (HDF5 filter 32001 from ``hdf5plugin``). Simulated
lock-in frames shrink to about 0.6 of their size; zlib reaches 0.5 but at about 40 MB/s per core,
half the 75 MB/s of a 208 frame/s stream. With python-blosc installed the writer compresses frames
in threads and writes the chunks directly (the same bytes the filter would write). Readers need
``import hdf5plugin`` (done by ``FrameFile``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

STATUS_LENGTH = 1024
COMPRESSIONS = ("blosc-lz4-bitshuffle", "gzip", "none")
META_CHUNK = 4096
BLOSC_LEVEL = 5
"""LZ4 after bit shuffle: on simulated 300x300 frames level 5 is both faster (0.15 against 0.17 ms a
frame on one core; lower levels split frames into smaller blocks) and a little smaller than level 1."""
MIN_FREE_BYTES = 256 * 1024**2
"""Free space the writer leaves on the disk; it stops cleanly (with that reason) below it."""


class FrameFileError(OSError):
    """A frame file cannot be created, written or read; the message names the file and the cause."""


def _compression(name: str) -> dict[str, Any]:
    if name == "blosc-lz4-bitshuffle":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="lz4", clevel=BLOSC_LEVEL, shuffle=hdf5plugin.Blosc.BITSHUFFLE))
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if name == "none":
        return {}
    raise ValueError(f"unknown frame compression {name!r}; choose one of {', '.join(COMPRESSIONS)}")


def _chunk_compressor(name: str) -> Callable[[np.ndarray], bytes] | None:
    """A function compressing one frame exactly as the HDF5 filter would, or None (use the filter).

    Compressing in Python threads and writing the chunks directly skips HDF5's single-threaded
    filter pipeline, about twice the throughput. Needs python-blosc; without it the filter is used.
    """
    if name != "blosc-lz4-bitshuffle":
        return None
    try:
        import blosc
    except ImportError:
        return None
    blosc.set_nthreads(1)  # parallel over frames instead
    blosc.set_releasegil(True)  # without it the compressing threads take turns holding the GIL

    def compress(frame: np.ndarray) -> bytes:
        return blosc.compress(np.ascontiguousarray(frame), typesize=2, clevel=BLOSC_LEVEL,
                              shuffle=blosc.BITSHUFFLE, cname="lz4")

    return compress


def _json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        return repr(o)

    return json.dumps(obj, default=default, sort_keys=True)


def _checked_batch(frames: np.ndarray, timestamps_s: np.ndarray, frame_index: np.ndarray,
                   frame_shape: tuple[int, ...]) -> int:
    """The number of frames in an ``append`` batch; ValueError when its parts do not match."""
    k = len(frames)
    if frames.shape[1:] != frame_shape or len(timestamps_s) != k or len(frame_index) != k:
        raise ValueError(f"append: frames {frames.shape}, {len(timestamps_s)} timestamps, "
                         f"{len(frame_index)} indices do not match frame shape {frame_shape}")
    return k


class FrameFileWriter:
    """Appends raw frames to an HDF5 frame file; every ``append`` is on disk when it returns.

    Args:
        path: file to create (its directory must exist); an existing file is refused.
        frame_shape: (rows, cols, 2) of one raw I/Q frame.
        metadata: stored as JSON in the ``metadata`` attribute before the first frame.
        compression: one of ``COMPRESSIONS``.
    """

    def __init__(self, path: str | Path, frame_shape: tuple[int, ...],
                 metadata: Mapping[str, Any] | None = None,
                 compression: str = "blosc-lz4-bitshuffle", min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.path = Path(path)
        self.min_free_bytes = int(min_free_bytes)
        self.frame_shape = tuple(int(n) for n in frame_shape)
        filters = _compression(compression)
        if self.path.exists():
            raise FrameFileError(f"frame file {self.path} exists already; frame files are never overwritten")
        try:
            self._f = h5py.File(self.path, "w", libver="latest")
        except OSError as exc:
            raise FrameFileError(f"cannot create frame file {self.path}: {exc}; check the directory "
                                 "exists, is writable and has free space") from exc
        f = self._f
        f.attrs["metadata"] = _json(dict(metadata or {}))
        f.attrs["compression"] = compression
        f.attrs["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        f.create_dataset("frames", shape=(0, *self.frame_shape), maxshape=(None, *self.frame_shape),
                         chunks=(1, *self.frame_shape), dtype="int16", **filters)
        f.create_dataset("timestamp_s", shape=(0,), maxshape=(None,), chunks=(META_CHUNK,),
                         dtype="float64", fillvalue=np.nan)
        f.create_dataset("frame_index", shape=(0,), maxshape=(None,), chunks=(META_CHUNK,), dtype="int64",
                         fillvalue=-1)
        f.create_dataset("dropped", shape=(0, 2), maxshape=(None, 2), chunks=(256, 2), dtype="int64")
        f.create_dataset("status", data=np.bytes_("running".ljust(STATUS_LENGTH)), dtype=f"S{STATUS_LENGTH}")
        f.swmr_mode = True
        f.flush()
        self._compress = _chunk_compressor(compression)
        self._pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) if self._compress else None
        self.frames_written = 0
        self.frames_dropped = 0
        self._closed = False

    def append(self, frames: np.ndarray, timestamps_s: np.ndarray, frame_index: np.ndarray) -> None:
        """Write ``frames`` (k, rows, cols, 2) with their timestamps and indices, then flush.

        Raises:
            FrameFileError: the write failed (disk full, file gone); frames written before stay readable.
        """
        k = _checked_batch(frames, timestamps_s, frame_index, self.frame_shape)
        if k == 0:
            return
        n = self.frames_written
        self._check_free_space(frames.nbytes)
        try:
            ds = self._f["frames"]
            ds.resize(n + k, axis=0)
            if self._pool is not None:
                zeros = (0,) * len(self.frame_shape)
                for i, chunk in enumerate(self._pool.map(self._compress, frames)):
                    ds.id.write_direct_chunk((n + i, *zeros), chunk)
            else:
                ds[n:n + k] = frames
            idx = self._f["frame_index"]
            idx.resize(n + k, axis=0)
            idx[n:n + k] = frame_index
            ts = self._f["timestamp_s"]
            ts.resize(n + k, axis=0)
            ts[n:n + k] = timestamps_s  # last: a frame is complete once its timestamp is written
            self._f.flush()
        except (OSError, RuntimeError) as exc:
            raise FrameFileError(f"writing frames {n}-{n + k - 1} to {self.path} failed: {exc}") from exc
        self.frames_written = n + k

    def _check_free_space(self, batch_bytes: int) -> None:
        # Stop before the disk is full: HDF5 cannot recover from a failed write (the file handle
        # can then neither be flushed nor closed), so a clean stop needs free space left.
        free = shutil.disk_usage(self.path.parent).free
        if free < batch_bytes + self.min_free_bytes:
            raise FrameFileError(
                f"disk nearly full: {free / 1e6:.0f} MB free on the disk of {self.path}, the writer keeps "
                f"{self.min_free_bytes / 1e6:.0f} MB in reserve; free space or capture to another disk")

    def record_drop(self, first_index: int, count: int) -> None:
        """Record ``count`` frames from ``first_index`` on that never reached the file."""
        if count <= 0:
            return
        try:
            d = self._f["dropped"]
            m = d.shape[0]
            d.resize(m + 1, axis=0)
            d[m] = (first_index, count)
            self._f.flush()
        except (OSError, RuntimeError) as exc:
            raise FrameFileError(f"recording dropped frames in {self.path} failed: {exc}") from exc
        self.frames_dropped += count

    def close(self, end_reason: str, summary: Mapping[str, Any] | None = None) -> None:
        """Record why the capture ended and close. Never raises: the reason is kept best-effort."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown()
        try:
            self._f["status"][()] = np.bytes_(end_reason.encode()[:STATUS_LENGTH].ljust(STATUS_LENGTH))
            self._f.flush()
        except Exception:  # noqa: BLE001 - a full disk must not hide the capture's own end reason
            pass
        with contextlib.suppress(Exception):
            self._f.close()
        try:  # summary attributes need a non-SWMR handle
            with h5py.File(self.path, "r+") as f:
                f.attrs["end_reason"] = end_reason
                f.attrs["frames_written"] = self.frames_written
                f.attrs["frames_dropped"] = self.frames_dropped
                f.attrs["summary"] = _json(dict(summary or {}))
        except Exception:  # noqa: BLE001 - the status dataset already holds the reason
            pass


@dataclass
class FrameFile:
    """A frame file opened for reading (also while a capture is still writing it).

    Use as a context manager; ``frames`` is the h5py dataset, read slices of it as needed.
    """

    path: Path

    def __post_init__(self) -> None:
        import hdf5plugin  # noqa: F401 - registers the Blosc filter for reading

        self.path = Path(self.path)
        try:
            self._f = h5py.File(self.path, "r", libver="latest", swmr=True)
        except OSError as exc:
            raise FrameFileError(f"cannot open frame file {self.path}: {exc}") from exc

    def __enter__(self) -> FrameFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    def refresh(self) -> None:
        """See frames appended since opening (SWMR reader)."""
        for name in ("frames", "timestamp_s", "frame_index", "dropped", "status"):
            self._f[name].refresh()

    @property
    def frames(self) -> h5py.Dataset:
        return self._f["frames"]

    @property
    def n_complete(self) -> int:
        """Frames that are fully on disk (frame and timestamp written)."""
        n = min(self._f["frames"].shape[0], self._f["timestamp_s"].shape[0])
        ts = self._f["timestamp_s"][:n]
        bad = np.flatnonzero(~np.isfinite(ts))
        return int(bad[0]) if bad.size else n

    @property
    def timestamps_s(self) -> np.ndarray:
        return self._f["timestamp_s"][: self.n_complete]

    @property
    def frame_index(self) -> np.ndarray:
        return self._f["frame_index"][: self.n_complete]

    @property
    def dropped(self) -> np.ndarray:
        """(first frame_index, count) of each run of dropped frames."""
        return self._f["dropped"][...]

    @property
    def status(self) -> str:
        """"running" while capturing (or if the writer died), else the reason the capture ended."""
        return bytes(self._f["status"][()]).decode(errors="replace").rstrip()

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self._f.attrs.get("metadata", "{}"))

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._f.attrs)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Complete raw frames ``start:stop`` as an int16 array."""
        n = self.n_complete
        stop = n if stop is None else min(stop, n)
        return self._f["frames"][start:stop]


def disk_bytes_per_hour(frame_rate_hz: float, frame_shape: tuple[int, ...],
                        compression_ratio: float) -> float:
    """Disk use of a continuous capture: raw int16 bytes per hour times the compression ratio."""
    return frame_rate_hz * 3600 * math.prod(frame_shape) * 2 * compression_ratio
