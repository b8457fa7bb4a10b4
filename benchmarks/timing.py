"""Repeat-and-time helpers shared by the benchmark scripts.

The scripts run as ``python benchmarks/x.py``, so this folder is ``sys.path[0]`` and they import it
as ``from timing import ...``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def time_calls(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float], list[float]]:
    """Call ``fn`` ``repeats`` times: its last result, and the wall-clock and CPU seconds of each call.

    CPU seconds count all threads of this process.
    """
    out, walls, cpus = None, [], []
    for _ in range(repeats):
        c = time.process_time()
        t = time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return out, walls, cpus


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn``."""
    return statistics.median(time_calls(fn, repeats)[1])


def best_seconds(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Shortest wall-clock seconds of ``repeats`` calls of ``fn``."""
    return min(time_calls(fn, repeats)[1])
