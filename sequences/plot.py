"""A picture of a pulse sequence for the user: one digital trace per channel, blocks marked.

The traces are the TTL outputs the compiler produces (channel delays applied). A block repeated
N times is drawn once, shaded and labelled "x N", so a 10^5-shot program stays readable.
Matplotlib is imported inside the function, so importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sequences.pulses import PulseSequence, block_segments

TIME_UNITS = ((1e-9, "ns"), (1e-6, "us"), (1e-3, "ms"), (1.0, "s"))


def _unit(duration_s: float) -> tuple[float, str]:
    for scale, name in TIME_UNITS:
        if duration_s < 2000 * scale:
            return scale, name
    return 1.0, "s"


def sequence_traces(sequence: PulseSequence, clock_hz: float = 500e6
                    ) -> tuple[dict[str, tuple[list[float], list[int]]], list[tuple[float, float, str, int]]]:
    """Step traces per channel and the block spans, over one pass with each block drawn once.

    Returns:
        traces: channel -> (times_s, levels) with levels held from each time to the next.
        blocks: (start_s, end_s, name, repetitions) of each drawn block.
    """
    bits = sequence.channels.bits
    traces: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in bits}
    blocks = []
    t = 0.0
    for i, block in enumerate(sequence.blocks):
        start = t
        for flags, cycles in block_segments(block, i, sequence.channels, clock_hz):
            for name, bit in bits.items():
                times, levels = traces[name]
                times.append(t)
                levels.append((flags >> bit) & 1)
            t += cycles / clock_hz
        blocks.append((start, t, block.name or f"block {i}", block.repetitions))
    for times, levels in traces.values():
        times.append(t)
        levels.append(levels[-1] if levels else 0)
    return traces, blocks


def plot_sequence(sequence: PulseSequence, path: str | Path | None = None, ax: Any = None,
                  clock_hz: float = 500e6, title: str | None = None) -> Any:
    """Draw the sequence; saves a PNG when ``path`` is given. Returns the matplotlib Axes."""
    traces, blocks = sequence_traces(sequence, clock_hz)
    total = blocks[-1][1] if blocks else 0.0
    scale, unit = _unit(total)
    own = ax is None
    if own and path is not None:
        # a figure of its own, saved and dropped: no pyplot, so no backend is chosen or switched
        from matplotlib.figure import Figure

        ax = Figure(figsize=(10, 0.6 * len(traces) + 1.5)).add_subplot()
    elif own:
        import matplotlib.pyplot as plt  # to be shown: pyplot's (the caller's) backend

        _, ax = plt.subplots(figsize=(10, 0.6 * len(traces) + 1.5))
    names = list(traces)
    for row, name in enumerate(names):
        times, levels = traces[name]
        y0 = (len(names) - 1 - row) * 1.5
        ax.step([x / scale for x in times], [y0 + 0.9 * lv for lv in levels], where="post", lw=1.4)
    for start, end, name, reps in blocks:
        if reps > 1:
            ax.axvspan(start / scale, end / scale, color="0.9", zorder=0)
        label = f"{name} x {reps}" if reps > 1 else name
        ax.text((start + end) / 2 / scale, len(names) * 1.5, label, ha="center", va="bottom", fontsize=8)
    ax.set_yticks([(len(names) - 1 - r) * 1.5 + 0.45 for r in range(len(names))], names)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylim(-0.3, len(names) * 1.5 + 0.6)
    base = title or sequence.description or "pulse sequence"
    ax.set_title(base + (" (loops forever)" if sequence.loop_forever else ""))
    if own and path is not None:
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=120)
    return ax
