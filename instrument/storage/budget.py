"""How much disk a run will need, checked against what is free before the run opens."""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from pathlib import Path

from instrument.storage.errors import StorageError

FRAME_BYTES_PER_PIXEL = 4  # float32 frames; lzf gains little on noisy images, so count them whole
ROW_BYTES = 256  # one QCoDeS result row with its index, generously
MARGIN_BYTES = 64 * 1024 * 1024  # the database, metadata, the disk reserve, the analysis files


def run_bytes(n_steps: int, image_shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Bytes a run of ``n_steps`` steps with one image of each shape per step will take, about."""
    pixels = sum(math.prod(shape) for shape in image_shapes.values())
    return int(n_steps) * (pixels * FRAME_BYTES_PER_PIXEL + ROW_BYTES)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def check_run_fits(out_dir: Path, n_steps: int, image_shapes: Mapping[str, tuple[int, ...]],
                   duration_s: float | None = None) -> int:
    """Refuse a run whose data cannot fit on the disk of ``out_dir``; returns the estimate in bytes.

    ``duration_s``, the run's estimated length, goes into the message (what the operator weighs).

    Raises:
        StorageError: the estimate (plus a margin) exceeds the free space; says both, and what to change.
    """
    need = run_bytes(n_steps, image_shapes)
    free = shutil.disk_usage(out_dir).free
    if need + MARGIN_BYTES > free:
        shapes = ", ".join(f"{name} {'x'.join(map(str, s))}" for name, s in image_shapes.items())
        shapes = shapes or "no images"
        took = ""
        if duration_s:
            span = f"{duration_s / 60:.0f} min" if duration_s < 5400 else f"{duration_s / 3600:.1f} h"
            took = f", about {span} of measuring"
        raise StorageError(
            f"the run would need about {_size(need + MARGIN_BYTES)} "
            f"({n_steps} steps, {shapes} per step{took}; "
            f"{_size(MARGIN_BYTES)} of it for the database and the analysis) but only "
            f"{_size(free)} are free at {out_dir}; use fewer points (or frames), a smaller image, or an "
            "output folder on a larger disk")
    return need
