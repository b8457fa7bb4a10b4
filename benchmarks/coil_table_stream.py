"""How much of the coil board's 115200 baud line the seed-000 stimulus tables need.

Samples ``firing_pattern`` AP trains on every coil at 208 frame/s, encodes each channel's table as
the stimulus driver streams it (run-length segments, 4 a line) and prints the bytes per second
against the line's 11520 bytes/s (8N1). The driver refuses tables above 80 % that do not fit the
board's rings. Run: ``python benchmarks/coil_table_stream.py``.
"""

from __future__ import annotations

import numpy as np

from drivers.coil_stimulus import (
    LINE_BUDGET,
    LINE_BYTES_PER_S,
    SEGMENTS_PER_LINE,
    CoilBoardStimulus,
    encode_segments,
)
from sequences.temporal import firing_pattern

FRAME_RATE_HZ = 208.0
CHANNELS = 12
SECONDS = 60.0


def main() -> None:
    print(f"{CHANNELS} coils, {SECONDS:g} s, {FRAME_RATE_HZ:g} frame/s; line {LINE_BYTES_PER_S:.0f} B/s, "
          f"driver budget {LINE_BUDGET:.0%}")
    for rate_hz in (0.5, 1.0, 2.0, 3.0, 5.0):
        w = firing_pattern(list(range(CHANNELS)), CHANNELS, SECONDS, rate_hz, start_s=0.25, seed=0)
        t = np.arange(int(np.ceil(w.end_s * FRAME_RATE_HZ)) + 1) / FRAME_RATE_HZ
        m = w.matrix(t)
        segments = [encode_segments(m[:, k]) for k in range(CHANNELS)]
        sent = sum(len(CoilBoardStimulus._line(k, s[i:i + SEGMENTS_PER_LINE])) + 1
                   for k, s in enumerate(segments) for i in range(0, len(s), SEGMENTS_PER_LINE))
        per_s = sent / w.end_s
        print(f"  {rate_hz:4.1f} Hz per coil: {sum(map(len, segments)) / w.end_s:6.0f} segments/s, "
              f"{per_s:6.0f} B/s = {per_s / LINE_BYTES_PER_S:4.0%} of the line")


if __name__ == "__main__":
    main()
