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
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import instrument

DB_NAME = "runs.db"
IMAGES_NAME = "images.h5"


def run_folder(out_dir: Path, run_id: int) -> Path:
    """The folder of run ``run_id`` in ``out_dir``: the one place the ``run-NNNN`` layout is written."""
    return Path(out_dir) / f"run-{int(run_id):04d}"


class StorageError(RuntimeError):
    """The output location cannot be used; the message says why and what to do."""


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

    @property
    def db_path(self) -> Path:
        return self.out_dir / DB_NAME

    def open(self, metadata: Mapping[str, Any], image_shapes: Mapping[str, tuple[int, ...]],
             n_steps: int) -> int:
        """Start the run: write all metadata now, create the image datasets; returns the run id."""
        from qcodes.dataset import Measurement, load_or_create_experiment

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
        self.run_dir = run_folder(self.out_dir, self.run_id)
        self.run_dir.mkdir(exist_ok=True)
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
        """Store one step and flush it to disk before returning."""
        if self._saver is None or self._h5 is None:
            raise StorageError("RunWriter.write called before open()")
        self._saver.add_result(*[(k, float(v)) for k, v in step.values.items()])
        self._saver.flush_data_to_database(block=True)
        for name, image in step.images.items():
            self._h5[name][step.index] = image
        self._steps += 1
        self._h5["steps_done"][0] = self._steps
        self._h5.flush()

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
                    h5.close()
                if self._conn is not None:
                    conn, self._conn = self._conn, None
                    conn.close()


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
        raise StorageError(f"no runs database in {out_dir} (expected {DB_NAME}); check `out`")
    return connect(str(path))


def _dataset(conn: Any, out_dir: Path, run_id: int) -> Any:
    from qcodes.dataset import load_by_id

    try:
        return load_by_id(run_id, conn=conn)
    except ValueError as exc:
        raise StorageError(f"run {run_id} is not in {Path(out_dir) / DB_NAME}") from exc


def add_run_metadata(out_dir: Path, run_id: int, tags: Mapping[str, Any]) -> None:
    """Attach metadata to a stored run (analysis results, ``status='abandoned'``, ...), as JSON."""
    with contextlib.closing(connect_runs_db(out_dir)) as conn:
        ds = _dataset(conn, out_dir, run_id)
        for tag, value in tags.items():
            ds.add_metadata(tag, _metadata_text(value))


def load_run(out_dir: Path, run_id: int) -> StoredRun:
    """Read a stored run's metadata and scalar data."""
    out_dir = Path(out_dir)
    with contextlib.closing(connect_runs_db(out_dir)) as conn:
        ds = _dataset(conn, out_dir, run_id)
        metadata: dict[str, Any] = {}
        for tag, value in ds.metadata.items():
            try:
                metadata[tag] = json.loads(value)
            except (TypeError, ValueError):
                metadata[tag] = value
        data = ds.get_parameter_data()
    scalars: dict[str, np.ndarray] = {}
    for dependent in data.values():
        scalars.update({k: np.asarray(v) for k, v in dependent.items()})
    return StoredRun(run_id, run_folder(out_dir, run_id), metadata, scalars)
