"""The results of a coil scan as one file: every configuration's B_NV map and the measured dictionary.

Read from the scan's ledger and the runs' analyses in the scan folder, so it can be (re)written at any
time during a scan as well as after it. Run folders come from ``instrument.storage.runs.run_folder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instrument.analysis.cw_run import ANALYSIS_NAME
from instrument.storage.runs import run_folder
from instrument.storage.scan_ledger import read_ledger

RESULTS_NAME = "coil_scan_results.h5"


def done_maps(out_dir: Path) -> tuple[list[Any], dict[int, np.ndarray]]:
    """The ledger's rows and the B_NV map of every configuration measured and analysed, by position."""
    import h5py

    rows = read_ledger(out_dir)
    maps: dict[int, np.ndarray] = {}
    for row in rows:
        path = run_folder(out_dir, row.run_id) / ANALYSIS_NAME if row.run_id is not None else None
        if row.status == "done" and path is not None and path.exists():
            with h5py.File(path, "r") as f:
                maps[row.position] = f["b_nv_t"][...]
    return rows, maps


def measured_dictionary(out_dir: Path, coil_names: Sequence[str]) -> dict[str, tuple[int, np.ndarray]]:
    """The dictionary a scan has measured so far: coil name -> (run id, its single-coil B_NV map in T).

    Read from the ledger and the runs' analyses, so it is there during a scan as well as after it.
    ``coil_names`` are the scanned coils (bit k of a mask is ``coil_names[k]``).
    """
    out_dir = Path(out_dir)
    rows, maps = done_maps(out_dir)
    found: dict[str, tuple[int, np.ndarray]] = {}
    for row in rows:
        bits = [k for k in range(len(coil_names)) if row.mask >> k & 1]
        if len(bits) == 1 and row.position in maps:
            found[coil_names[bits[0]]] = (int(row.run_id), maps[row.position])
    return found


def export_results(out_dir: Path, coil_names: Sequence[str]) -> Path:
    """Write ``OUT/coil_scan_results.h5``: one entry per configuration, in scan order.

    Datasets: ``mask``, ``label``, ``status``, ``run_id`` (-1 when not measured), ``b_nv_t``
    (configuration, rows, cols; NaN when not measured), ``b_nv_range_t``, ``converged_fraction``, and
    ``dictionary/<coil>``: the single-coil maps, the measured dictionary of the reconstruction.
    Written to a temporary file and renamed, so a reader never sees half a file.
    """
    import h5py

    out_dir = Path(out_dir)
    rows, maps = done_maps(out_dir)
    shape = next(iter(maps.values())).shape if maps else (0, 0)
    stack = np.full((len(rows), *shape), np.nan, dtype=np.float32)
    for position, image in maps.items():
        stack[position] = image
    tmp = out_dir / (RESULTS_NAME + ".tmp")
    with h5py.File(tmp, "w") as f:
        f["mask"] = np.array([r.mask for r in rows], dtype=np.int64)
        f["label"] = np.array([r.label for r in rows], dtype=h5py.string_dtype())
        f["status"] = np.array([r.status for r in rows], dtype=h5py.string_dtype())
        f["run_id"] = np.array([-1 if r.run_id is None or r.status != "done" else r.run_id for r in rows])
        f["b_nv_t"] = stack
        ranges = [(r.summary or {}).get("b_nv_range_t", [np.nan, np.nan]) for r in rows]
        f["b_nv_range_t"] = np.array(ranges, dtype=float)
        fractions = [(r.summary or {}).get("converged_fraction", np.nan) for r in rows]
        f["converged_fraction"] = np.array(fractions, dtype=float)
        f.attrs["coils"] = list(coil_names)
        group = f.create_group("dictionary")
        for name, (_, image) in measured_dictionary(out_dir, coil_names).items():
            group[name] = image
    tmp.replace(out_dir / RESULTS_NAME)
    return out_dir / RESULTS_NAME
