"""SpadFrameParser throughput against the lab's scan-for-header reader, side by side.

The baseline is the reader the seed-003 lab used: find four 0xFF bytes, take the next 1024 bytes
as the frame, no check of any kind (on damage it returns a wrong frame). The parser confirms every
frame against the next header and the forward step of the cumulative counters. Both read the same
byte streams in the same process, fed in chunks like a serial port delivers them; the numbers are
MB/s and frames/s, and the ratio parser / baseline.

Streams: clean legacy frames; the same with damage (1 % of frames lose bytes, 1 % get bytes
inserted after them); v2 frames (sequence number and CRC).

Run: ``python benchmarks/spad_parser.py [--frames 5000] [--chunk 4096] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from timing import time_calls

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.spad_frames import HEADER, PAYLOAD_BYTES, SpadFrameParser, encode_frame  # noqa: E402


def scan_for_header_reader(chunks: list[bytes]) -> int:
    """The lab's reader: header scan, then 1024 bytes as a frame, no confirmation."""
    buf = bytearray()
    n_frames = 0
    for chunk in chunks:
        buf += chunk
        while True:
            start = buf.find(HEADER)
            if start < 0 or len(buf) < start + 4 + PAYLOAD_BYTES:
                break
            frame = np.frombuffer(bytes(buf[start + 4:start + 4 + PAYLOAD_BYTES]), dtype=">u4")
            frame.astype(np.uint32).reshape(16, 16)
            n_frames += 1
            del buf[:start + 4 + PAYLOAD_BYTES]
    return n_frames


def parser_reader(chunks: list[bytes]) -> int:
    parser = SpadFrameParser()
    n_frames = sum(len(parser.feed(chunk)) for chunk in chunks)
    return n_frames + len(parser.flush())


def make_stream(n_frames: int, damage: float, v2: bool, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    acc = rng.integers(0, 2**32, 256, dtype=np.uint64)
    parts = []
    for i in range(n_frames):
        acc = (acc + rng.poisson(5000, 256).astype(np.uint64)) % 2**32
        raw = encode_frame(acc, sequence=i if v2 else None)
        if rng.random() < damage:
            at = int(rng.integers(0, len(raw) - 8))
            raw = raw[:at] + raw[at + int(rng.integers(1, 8)):]
        if rng.random() < damage:
            raw += rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
        parts.append(raw)
    return b"".join(parts)


def best_time(reader: Callable[[list[bytes]], int], chunks: list[bytes], repeats: int) -> tuple[float, int]:
    frames, times, _ = time_calls(lambda: reader(chunks), repeats)
    return statistics.median(times), frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--chunk", type=int, default=4096, help="bytes per read, like a serial port")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"{'stream':<16}{'reader':<14}{'MB/s':>9}{'frames/s':>12}{'frames':>9}{'ratio':>8}")
    for label, damage, v2 in (("clean", 0.0, False), ("damaged 1%", 0.01, False), ("v2 (CRC)", 0.0, True)):
        data = make_stream(args.frames, damage, v2)
        chunks = [data[i:i + args.chunk] for i in range(0, len(data), args.chunk)]
        t_base, n_base = best_time(scan_for_header_reader, chunks, args.repeats)
        t_pars, n_pars = best_time(parser_reader, chunks, args.repeats)
        mb = len(data) / 1e6
        for name, t, n in (("scan-header", t_base, n_base), ("parser", t_pars, n_pars)):
            ratio = f"{t_base / t:8.2f}"
            print(f"{label:<16}{name:<14}{mb / t:9.1f}{n / t:12.0f}{n:9d}{ratio}")
    print("ratio = parser throughput / scan-for-header throughput (1.00 = as fast as the naive reader)")


if __name__ == "__main__":
    main()
