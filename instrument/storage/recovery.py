"""Recovery of an output folder after a crash: runs left ``running`` and a damaged runs database.

``recover_interrupted_runs`` marks every run that a dead process left ``running`` (kill -9, power cut)
as ``interrupted``, with what was stored. It only does so when no other process holds the folder's
lock, so a run another process is writing is never touched.

``python -m instrument.storage.recovery OUT`` re-registers the runs of a folder whose ``runs.db`` was
damaged and moved aside: a new database gets one run per ``run-NNNN/images.h5`` with the metadata
that file holds, keeping the run ids.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from instrument.storage.errors import StorageError
from instrument.storage.folder_lock import LOCK_NAME, folder_is_free, held_here
from instrument.storage.paths import run_folder

INTERRUPTED = "interrupted"


def _steps_in_file(run_dir: Path) -> int | None:
    import h5py

    try:
        with h5py.File(run_dir / "images.h5", "r", libver="latest", swmr=True) as f:
            return int(f["steps_done"][0])
    except (OSError, KeyError, ValueError):
        return None


def recover_interrupted_runs(out_dir: Path) -> list[tuple[int, str]]:
    """Mark runs left ``running`` by a dead process as ``interrupted``; returns (run id, reason) of each.

    Runs this process is writing, and every run while another process holds the folder's lock, are
    left alone.
    """
    from qcodes.dataset import load_by_id

    from instrument.storage.runs import DB_NAME, connect_runs_db, runs_open_here

    out_dir = Path(out_dir)
    if not (out_dir / DB_NAME).exists():
        return []
    if not (held_here(out_dir / LOCK_NAME) or folder_is_free(out_dir)):
        return []
    skip = runs_open_here(out_dir)
    found: list[tuple[int, str]] = []
    with contextlib.closing(connect_runs_db(out_dir)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)").fetchall()}
        where = "status IS NULL OR status = 'running'" if "status" in columns else "1"
        ids = [int(r[0]) for r in conn.execute(f"SELECT run_id FROM runs WHERE {where}").fetchall()]
        for run_id in ids:
            if run_id in skip:
                continue
            ds = load_by_id(run_id, conn=conn)
            rows = int(ds.number_of_results)
            run_dir = run_folder(out_dir, run_id)
            if "status" not in ds.metadata:
                reason = ("the process stopped before the run was set up (no metadata was written); "
                          f"nothing stored ({rows} rows)")
                steps = 0
            else:
                in_file = _steps_in_file(run_dir)
                steps = min(rows, in_file) if in_file is not None else rows
                what = (f"{steps} steps stored ({rows} database rows, "
                        + (f"{in_file} frames in {run_dir / 'images.h5'})" if in_file is not None
                           else "image file unreadable)"))
                reason = f"the process ended without closing the run (crash, kill -9 or power cut): {what}"
            for tag, value in (("status", INTERRUPTED), ("end_reason", reason), ("steps_done", str(steps)),
                               ("interrupted_found_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))):
                ds.add_metadata(tag, value)
            with contextlib.suppress(Exception):
                ds.mark_completed()
            found.append((run_id, reason))
    return found


def interrupted_note(stored: Any) -> str:
    """A line for a stored run that did not end normally (interrupted, failed, aborted), else ''."""
    status = stored.metadata.get("status")
    if status in (None, "completed"):
        return ""
    reason = stored.metadata.get("end_reason") or "no reason recorded"
    return f"run {stored.run_id} is {status}, not completed: {reason}"


def reregister_runs(out_dir: Path) -> list[int]:
    """A new ``runs.db`` holding one run per ``run-NNNN/images.h5`` (its stored metadata, same run id).

    The scalar data of the damaged database are lost; the frames stay where they are. Run ids whose
    folder is missing get a placeholder run marked ``lost`` so the ids keep matching the folders.

    Raises:
        StorageError: ``runs.db`` still exists (move it aside first) or no run folder was found.
    """
    import h5py
    from qcodes.dataset import Measurement, load_or_create_experiment

    from instrument.storage.runs import DB_NAME, connect_runs_db

    out_dir = Path(out_dir)
    if (out_dir / DB_NAME).exists():
        raise StorageError(f"{out_dir / DB_NAME} exists; move it aside first (mv {out_dir / DB_NAME} "
                           f"{out_dir / DB_NAME}.damaged)")
    folders = {int(p.name.split("-")[1]): p for p in out_dir.glob("run-[0-9]*") if p.is_dir()}
    if not folders:
        raise StorageError(f"no run folders (run-NNNN) in {out_dir} to re-register")
    done: list[int] = []
    with contextlib.closing(connect_runs_db(out_dir, create=True)) as conn:
        for run_id in range(1, max(folders) + 1):
            metadata: dict[str, Any] = {}
            folder = folders.get(run_id)
            if folder is not None:
                with contextlib.suppress(OSError, KeyError, ValueError), \
                        h5py.File(folder / "images.h5", "r", libver="latest", swmr=True) as f:
                    metadata = json.loads(f.attrs["metadata"])
            kind = str((metadata.get("sequence") or {}).get("name") or "unknown")
            exp = load_or_create_experiment(kind, sample_name="re-registered", conn=conn)
            meas = Measurement(exp=exp, name=kind)
            with contextlib.redirect_stdout(None), meas.run() as saver:
                ds = saver.dataset
                for tag, value in metadata.items():
                    ds.add_metadata(tag, value if isinstance(value, str) else json.dumps(value))
                status = "re-registered" if metadata else "lost"
                ds.add_metadata("status", status)
                ds.add_metadata("end_reason", "re-registered from its files after the runs database was "
                                "damaged; its scalar data were lost with it" if metadata else
                                "no readable run folder for this id")
            if int(ds.run_id) != run_id:  # an experiment table out of step: stop before ids drift
                folder = run_folder(out_dir, run_id).name
                raise StorageError(f"re-registering gave run id {ds.run_id} for folder {folder}")
            done.append(run_id)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m instrument.storage.recovery",
                                     description="re-register a folder's runs after its runs.db was damaged")
    parser.add_argument("out", type=Path, help="the output folder (runs.db moved aside)")
    args = parser.parse_args(argv)
    try:
        ids = reregister_runs(args.out)
    except StorageError as exc:
        print(f"recovery: error: {exc}", file=sys.stderr)
        return 1
    print(f"re-registered {len(ids)} runs in {args.out / 'runs.db'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
