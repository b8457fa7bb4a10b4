"""Runs on disk: a QCoDeS dataset per run for metadata and scalars, an HDF5 file for images.

Layout of an output directory::

    OUT/runs.db                 QCoDeS SQLite database, one dataset per run
    OUT/run-0007/images.h5      per-step images (chunked, one chunk per step, flushed per step)
    OUT/run-0007/analysis.h5    fitted maps, written by the analysis after the sweep
    OUT/run-0007/figure.png     the summary figure

Everything the run needs to be understood later is written when it opens (station snapshot, sequence
parameters, software version, start time) and each step is flushed before the next one starts, so a
crash loses at most the step in flight. The HDF5 file is written in SWMR mode, which keeps it
readable up to the last flushed step even if the writer dies.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import instrument
from instrument.storage.errors import CorruptDatabase, StorageError, StorageWriteFailed, is_disk_full
from instrument.storage.paths import run_folder

DB_NAME = "runs.db"
IMAGES_NAME = "images.h5"
RESERVE_NAME = ".disk-reserve"
# Kept free beside each run while it writes: a full disk then still lets the run record how it ended.
RESERVE_BYTES = 2 * 1024 * 1024

__all__ = ["CorruptDatabase", "StorageError", "StorageWriteFailed", "RunWriter", "Step", "StoredRun",
           "add_run_metadata", "check_writable", "connect_runs_db", "load_run"]

_open_here: set[tuple[str, int]] = set()  # (database, run id) of runs this process is writing now


class _FlushFailureFilter(logging.Filter):
    """Drops QCoDeS's "Could not commit to database" warnings: RunWriter.write raises that failure
    itself, once, with what was kept (QCoDeS would log it at every later flush, hundreds of lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Could not commit to database", "Could not enqueue result"))


logging.getLogger("qcodes.dataset.data_set").addFilter(_FlushFailureFilter())


def check_writable(out_dir: Path) -> Path:
    """Create ``out_dir`` if needed and prove it is writable, without leaving anything behind."""
    out_dir = Path(out_dir).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StorageError(
            f"cannot write to output directory {out_dir}: {reason}; choose a writable one (`out`)"
        ) from exc
    return out_dir


def _json(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


def _metadata_text(value: Any) -> str:
    """A QCoDeS metadata value: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else _json(value)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


@dataclass(frozen=True)
class Step:
    """One step of a sequence: scalar values for the dataset, optional images for the HDF5 file."""

    index: int
    values: Mapping[str, float]
    images: Mapping[str, np.ndarray]
    label: str = ""


class RunWriter:
    """Stores one run. Use as a sink of the sequence engine: ``open``, ``write`` per step, ``close``.

    Args:
        out_dir: output directory (created if missing).
        experiment: QCoDeS experiment name (the measurement kind, e.g. ``cw_odmr``).
        sample_name: sample name recorded with the experiment.
        scalars: names and units of the scalar values each step writes; the first ones that are
            listed in ``setpoints`` are the independent variables.
        setpoints: names among ``scalars`` that are independent variables.
    """

    def __init__(
        self,
        out_dir: Path,
        experiment: str,
        sample_name: str,
        scalars: Mapping[str, str],
        setpoints: tuple[str, ...],
    ) -> None:
        self.out_dir = check_writable(out_dir)
        self.experiment = experiment
        self.sample_name = sample_name
        self.scalars = dict(scalars)
        self.setpoints = setpoints
        self.run_id: int | None = None
        self.run_dir: Path | None = None
        self._runner: Any = None
        self._saver: Any = None
        self._h5: h5py.File | None = None
        self._conn: Any = None
        self._steps = 0
        self._failed: StorageWriteFailed | None = None

    @property
    def db_path(self) -> Path:
        return self.out_dir / DB_NAME

    def open(self, metadata: Mapping[str, Any], image_shapes: Mapping[str, tuple[int, ...]],
             n_steps: int) -> int:
        """Start the run: write all metadata now, create the image datasets; returns the run id."""
        from qcodes.dataset import Measurement, load_or_create_experiment

        from instrument.storage.budget import check_run_fits
        from instrument.storage.recovery import recover_interrupted_runs

        check_run_fits(self.out_dir, n_steps, image_shapes)  # before the run exists, not when the disk fills
        recover_interrupted_runs(self.out_dir)
        self._conn = connect_runs_db(self.out_dir, create=True)
        exp = load_or_create_experiment(self.experiment, sample_name=self.sample_name, conn=self._conn)
        meas = Measurement(exp=exp, name=self.experiment)
        for name in self.setpoints:
            meas.register_custom_parameter(name, unit=self.scalars[name])
        for name, unit in self.scalars.items():
            if name not in self.setpoints:
                meas.register_custom_parameter(name, unit=unit, setpoints=self.setpoints)
        meas.write_period = 0.001
        self._runner = meas.run()
        with contextlib.redirect_stdout(io.StringIO()):  # QCoDeS prints the run id; we report it ourselves
            self._saver = self._runner.__enter__()
        try:
            return self._open_files(metadata, image_shapes, n_steps)
        except BaseException as exc:
            # The engine only closes sinks that opened: close this half-open run here, as failed.
            with contextlib.suppress(Exception):
                self.close("failed", f"could not open the run's files: {exc}")
            raise

    def _open_files(self, metadata: Mapping[str, Any], image_shapes: Mapping[str, tuple[int, ...]],
                    n_steps: int) -> int:
        assert self._saver is not None
        self.run_id = int(self._saver.run_id)
        _open_here.add((str(self.db_path.resolve()), self.run_id))
        self.run_dir = run_folder(self.out_dir, self.run_id)
        self.run_dir.mkdir(exist_ok=True)
        _make_reserve(self.run_dir / RESERVE_NAME)
        full = {
            **metadata,
            "software_version": instrument.__version__,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "images_file": str(self.run_dir / IMAGES_NAME),
            "status": "running",
        }
        for tag, value in full.items():
            self.add_metadata(tag, value)
        self._h5 = h5py.File(self.run_dir / IMAGES_NAME, "w", libver="latest")
        self._h5.attrs["run_id"] = self.run_id
        self._h5.attrs["metadata"] = _json(full)
        for name, shape in image_shapes.items():
            self._h5.create_dataset(
                name, shape=(n_steps, *shape), dtype="float32", chunks=(1, *shape),
                fillvalue=np.nan, compression="lzf",
            )
        self._h5.create_dataset("steps_done", shape=(1,), dtype="int64", data=[0])
        self._h5.swmr_mode = True
        return self.run_id

    def write(self, step: Step) -> None:
        """Store one step in all its places (database row, image frames) or in none, flushed to disk.

        QCoDeS's own flush catches every exception and only logs it, so this checks that the row
        really left QCoDeS's buffer. A step that fails is undone where it can be (its frames back to
        NaN) and is not counted.

        Raises:
            StorageWriteFailed: the step could not be stored (``disk full at OUT: N steps kept``);
                the run must stop. Nothing after it is written.
        """
        if self._saver is None or self._h5 is None:
            raise StorageError("RunWriter.write called before open()")
        if self._failed is not None:
            raise self._failed
        written: list[str] = []
        row_added = False
        try:
            for name, image in step.images.items():
                self._h5[name][step.index] = image
                written.append(name)
            self._h5.flush()  # the frames are on disk before the row says the step exists
            self._add_row(step)
            row_added = True
            self._h5["steps_done"][0] = self._steps + 1
            self._h5.flush()
        except Exception as exc:  # noqa: BLE001 - every write failure ends the run the same way
            if row_added:
                self._remove_last_row()
            with contextlib.suppress(Exception):
                self._h5["steps_done"][0] = self._steps
            self._undo_frames(step.index, written)
            raise self._write_failed(exc) from exc
        self._steps += 1

    def _add_row(self, step: Step) -> None:
        ds = self._saver.dataset
        self._saver.add_result(*[(k, float(v)) for k, v in step.values.items()])
        self._saver.flush_data_to_database(block=True)
        pending = list(getattr(ds, "_results", []))
        if pending:
            # QCoDeS logged and kept the row; write it ourselves to learn why, and never leave it
            # buffered (its exit would write it later, a row without its frames).
            ds._results = []
            ds.add_results(pending)

    def _remove_last_row(self) -> None:
        """Undo the row of a step whose frames could not be stored (best effort: the disk may be full)."""
        ds = self._saver.dataset
        with contextlib.suppress(Exception):
            table = ds.table_name
            ds.conn.execute(f'DELETE FROM "{table}" WHERE id = (SELECT max(id) FROM "{table}")')
            ds.conn.commit()

    def _undo_frames(self, index: int, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(Exception):
                self._h5[name][index] = np.nan

    def _write_failed(self, exc: BaseException) -> StorageWriteFailed:
        full = is_disk_full(exc)
        if full:
            # Free the reserve so that closing the run can still record its end.
            with contextlib.suppress(OSError):
                (self.run_dir / RESERVE_NAME).unlink()  # type: ignore[operator]
            message = f"disk full at {self.out_dir}: {self._steps} steps kept"
        else:
            message = (f"could not store step {self._steps + 1} in {self.out_dir} "
                       f"({type(exc).__name__}: {exc}): {self._steps} steps kept")
        self._failed = StorageWriteFailed(message, self._steps, full)
        return self._failed

    @property
    def steps_stored(self) -> int:
        """Steps stored completely so far."""
        return self._steps

    def add_metadata(self, tag: str, value: Any) -> None:
        if self._saver is not None:
            self._saver.dataset.add_metadata(tag, _metadata_text(value))

    def close(self, status: str, reason: str = "") -> None:
        """End the run, recording how it ended (``completed``, ``aborted`` or ``failed``).

        The image file is closed and the QCoDeS run ended even if recording the end fails (a locked
        database, a full disk); that failure is then raised.
        """
        try:
            if self._saver is not None:
                self.add_metadata("status", status)
                self.add_metadata("end_reason", reason)
                self.add_metadata("ended_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                self.add_metadata("steps_done", self._steps)
        finally:
            try:
                if self._runner is not None and self._saver is not None:
                    self._saver = None
                    self._runner.__exit__(None, None, None)
            finally:
                if self._h5 is not None:
                    h5, self._h5 = self._h5, None
                    with contextlib.suppress(Exception) if self._failed else contextlib.nullcontext():
                        h5.close()
                if self._conn is not None:
                    conn, self._conn = self._conn, None
                    conn.close()
                if self.run_dir is not None:
                    with contextlib.suppress(OSError):
                        (self.run_dir / RESERVE_NAME).unlink()
                if self.run_id is not None:
                    _open_here.discard((str(self.db_path.resolve()), self.run_id))


def _make_reserve(path: Path) -> None:
    """A file of ``RESERVE_BYTES`` that a full disk can give back (best effort: a full disk at open
    already fails elsewhere)."""
    with contextlib.suppress(OSError), open(path, "wb") as f:
        f.truncate(RESERVE_BYTES)
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(f.fileno(), 0, RESERVE_BYTES)


def runs_open_here(out_dir: Path) -> set[int]:
    """Run ids this process is writing now in ``out_dir`` (recovery must leave them alone)."""
    db = str((Path(out_dir) / DB_NAME).resolve())
    return {run_id for path, run_id in _open_here if path == db}


@dataclass
class StoredRun:
    """A run read back from disk."""

    run_id: int
    run_dir: Path
    metadata: dict[str, Any]
    scalars: dict[str, np.ndarray]

    def images(self, name: str) -> np.ndarray:
        """Image stack of ``name`` (steps not yet written are NaN)."""
        with h5py.File(self.run_dir / IMAGES_NAME, "r", libver="latest", swmr=True) as f:
            return f[name][...]

    @property
    def steps_done(self) -> int:
        with h5py.File(self.run_dir / IMAGES_NAME, "r", libver="latest", swmr=True) as f:
            return int(f["steps_done"][0])


def connect_runs_db(out_dir: Path, create: bool = False) -> Any:
    """A connection of its own to ``OUT/runs.db``.

    QCoDeS's default database is one global setting per process; a run browser reading one folder
    while a scan writes another would switch it under the writer, so every call here connects
    explicitly instead.
    """
    from qcodes.dataset import connect

    path = Path(out_dir) / DB_NAME
    if not create and not path.exists():
        raise StorageError(f"no runs database in {out_dir} (expected {DB_NAME}); check the output folder")
    header = b""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        header = f.read(16)
    if header and header != b"SQLite format 3\x00":  # before QCoDeS logs a traceback about it
        raise corrupt_database(path, sqlite3.DatabaseError("file is not a database: no SQLite header"))
    try:
        conn = connect(str(path))
        conn.execute("SELECT count(*) FROM runs").fetchone()
    except (sqlite3.DatabaseError, RuntimeError) as exc:  # QCoDeS wraps it in a RuntimeError
        if _is_corrupt(exc):
            raise corrupt_database(path, _sqlite_cause(exc)) from exc
        raise
    return conn


def corrupt_database(path: Path, exc: BaseException) -> CorruptDatabase:
    """The error for a runs database SQLite cannot read: what is damaged and how to recover."""
    path = Path(path)
    return CorruptDatabase(
        f"the runs database {path} is damaged ({exc}): the run index and the runs' scalar data and "
        f"metadata in it cannot be read. The image frames in {path.parent}/run-*/{IMAGES_NAME} are "
        f"separate and kept (each holds its run's metadata). To recover: move the damaged file aside "
        f"(mv {path} {path}.damaged), then re-register the runs from their files with "
        f"'python -m instrument.storage.recovery {path.parent}'; new runs start a new database")


def _sqlite_cause(exc: BaseException) -> BaseException:
    """The sqlite3 error inside ``exc`` (QCoDeS re-raises them as RuntimeError), else ``exc``."""
    e: BaseException | None = exc
    while e is not None:
        if isinstance(e, sqlite3.DatabaseError):
            return e
        e = e.__cause__ or e.__context__
    return exc


def _is_corrupt(exc: BaseException) -> bool:
    """Damage, as opposed to a locked or full database (``OperationalError``s that pass)."""
    exc = _sqlite_cause(exc)
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    text = str(exc).lower()
    return not isinstance(exc, sqlite3.OperationalError) or "malformed" in text or "not a database" in text


def _dataset(conn: Any, out_dir: Path, run_id: int) -> Any:
    from qcodes.dataset import load_by_id

    try:
        return load_by_id(run_id, conn=conn)
    except ValueError as exc:
        raise StorageError(f"run {run_id} is not in {Path(out_dir) / DB_NAME}") from exc


def add_run_metadata(out_dir: Path, run_id: int, tags: Mapping[str, Any]) -> None:
    """Attach metadata to a stored run (analysis results, ``status='abandoned'``, ...), as JSON."""
    with contextlib.closing(connect_runs_db(out_dir)) as conn:
        try:
            ds = _dataset(conn, out_dir, run_id)
            for tag, value in tags.items():
                ds.add_metadata(tag, _metadata_text(value))
        except (sqlite3.DatabaseError, RuntimeError) as exc:
            if _is_corrupt(exc):
                raise corrupt_database(Path(out_dir) / DB_NAME, _sqlite_cause(exc)) from exc
            raise


def load_run(out_dir: Path, run_id: int) -> StoredRun:
    """Read a stored run's metadata and scalar data."""
    out_dir = Path(out_dir)
    with contextlib.closing(connect_runs_db(out_dir)) as conn:
        try:
            ds = _dataset(conn, out_dir, run_id)
            metadata: dict[str, Any] = {}
            for tag, value in ds.metadata.items():
                try:
                    metadata[tag] = json.loads(value)
                except (TypeError, ValueError):
                    metadata[tag] = value
            data = ds.get_parameter_data()
        except (sqlite3.DatabaseError, RuntimeError) as exc:
            if _is_corrupt(exc):
                raise corrupt_database(out_dir / DB_NAME, _sqlite_cause(exc)) from exc
            raise
    scalars: dict[str, np.ndarray] = {}
    for dependent in data.values():
        scalars.update({k: np.asarray(v) for k, v in dependent.items()})
    return StoredRun(run_id, run_folder(out_dir, run_id), metadata, scalars)
