"""Frame format of the seed-003 SPAD bridge and a parser that never emits a corrupt frame.

Legacy framing (what the FPGA sends, seed 003 section IV): a 0xFFFFFFFF header, then 256 uint32
counters, row-major, most significant byte first by default, frames back to back. The counters
are cumulative photon counts that wrap at 2**32.

Framing v2 (optional, auto-detected per frame): header 0xFFFFFFFF, the magic ``b"SPD2"``, a
uint32 sequence number, the 256 counters and a CRC-32 (zlib polynomial) over magic, sequence
number and counters; integers use the stream's byte order.

A 0xFFFFFFFF word may also be a legitimate counter value, so a header match proves nothing by
itself. A legacy frame is emitted only when the header of the *next* frame sits exactly one
frame length later (so a short or padded frame is caught), and, for cumulative counters, only
when every counter moved forward by less than 2**31 since the last good frame (a byte-shifted
frame fails this for practically every pixel). A v2 frame is emitted only when its CRC checks.

Lock acquisition needs three headers one frame length apart, and the two frames between them must
step forward. One case is ambiguous in principle with legacy framing: a counter stuck at
0xFFFFFFFF in *every* frame repeats with the frame period exactly like the header. The parser
then takes the earliest candidate, which is right when the stream starts at a frame boundary
(the bridge firmware starts forwarding at a frame start after its banner); once it has a good
frame, a re-lock onto the stuck counter fails the forward-step check and is rejected. Framing v2
removes the ambiguity.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass

import numpy as np

ROWS = COLS = 16
N_PIXELS = ROWS * COLS
HEADER = b"\xff\xff\xff\xff"
PAYLOAD_BYTES = 4 * N_PIXELS
LEGACY_FRAME_BYTES = len(HEADER) + PAYLOAD_BYTES
V2_MAGIC = b"SPD2"
V2_FRAME_BYTES = len(HEADER) + len(V2_MAGIC) + 4 + PAYLOAD_BYTES + 4
BANNER = b"Setup complete"
_ALL_ONES = b"\xff" * PAYLOAD_BYTES
_NOT_ONES = re.compile(rb"[^\xff]")
# A pixel saturates near 3 Mcps, so 2**24 counts between two frames means a frame gap of 5.6 s.
DEFAULT_MAX_COUNTS_PER_FRAME = 1 << 24
NOT_CUMULATIVE_HINT_FRAMES = 300
"""Frames' worth of bytes discarded, with headers in place but counters not stepping forward, after
which the parser says the counters look per-frame (a firmware variant) and names ``cumulative``."""
NOT_CUMULATIVE_HINT = (
    "{n} bytes discarded although frame headers sit one frame apart: the counters do not step "
    "forward as cumulative counters do. If this firmware sends per-frame counts (not cumulative), "
    "parse with SpadFrameParser(cumulative=False) (station file: cumulative: false)"
)

log = logging.getLogger(__name__)


def _dtype(byteorder: str) -> np.dtype:
    if byteorder not in ("big", "little"):
        raise ValueError(f"byteorder must be 'big' or 'little', not {byteorder!r}")
    return np.dtype(">u4" if byteorder == "big" else "<u4")


def encode_frame(counts: np.ndarray, byteorder: str = "big", sequence: int | None = None) -> bytes:
    """Bytes of one frame as the bridge sends it; ``sequence`` given selects framing v2.

    Args:
        counts: 256 cumulative counters (any shape with 256 elements, row-major).
        byteorder: "big" (the FPGA's MSB-first shift) or "little".
        sequence: frame sequence number for framing v2; ``None`` writes the legacy format.
    """
    values = np.asarray(counts)
    if values.size != N_PIXELS:
        raise ValueError(f"a SPAD frame holds {N_PIXELS} counters, got {values.size}")
    payload = values.astype(np.uint64).astype(np.uint32).astype(_dtype(byteorder)).tobytes()
    if sequence is None:
        return HEADER + payload
    body = V2_MAGIC + int(sequence % (1 << 32)).to_bytes(4, byteorder) + payload
    return HEADER + body + zlib.crc32(body).to_bytes(4, byteorder)


def per_frame_counts(cumulative: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Photon counts per frame from cumulative 32-bit counters, wraparound included.

    Args:
        cumulative: frames (n, 16, 16) of cumulative uint32 counters in stream order.
        previous: the frame before ``cumulative[0]``; without it the result has n - 1 frames.

    Returns:
        int64 counts, shape (n, 16, 16) with ``previous`` or (n - 1, 16, 16) without.
    """
    frames = np.asarray(cumulative, dtype=np.uint32)
    if previous is not None:
        frames = np.concatenate([np.asarray(previous, dtype=np.uint32)[None], frames])
    # uint32 subtraction is modulo 2**32, which is exactly the counter wraparound.
    return np.diff(frames, axis=0).astype(np.int64)


@dataclass
class ParserCounters:
    """What the parser did with the stream so far."""

    frames_emitted: int = 0
    bytes_discarded: int = 0
    resyncs: int = 0
    frames_rejected: int = 0
    v2_frames: int = 0
    v2_sequence_gaps: int = 0
    banners: int = 0
    ambiguous_locks: int = 0  # legacy locks between look-alike starts (counters stuck at all ones)
    not_cumulative_starts: int = 0  # frame starts whose headers fit but whose counters went backwards
    hint: str = ""  # what the stream looks like when nothing can be emitted (and the option to use)


class SpadFrameParser:
    """Turns a damaged byte stream from the SPAD bridge into verified 16x16 frames.

    Args:
        byteorder: byte order of the counters, "big" (FPGA default) or "little".
        cumulative: counters are cumulative (the FPGA's); enables the forward-step check that
            rejects byte-shifted frames whose boundaries happen to look right.
        max_counts_per_frame: largest plausible count of one pixel between two good frames; the
            default (2**24) is 5.6 s at the 3 Mcps SPAD saturation, far longer than a frame.
        rebaseline_after: implausible frames in a row after which the counters are taken to
            have been reset (FPGA restart) and the forward-step reference is dropped.
    """

    def __init__(
        self,
        byteorder: str = "big",
        cumulative: bool = True,
        max_counts_per_frame: int = DEFAULT_MAX_COUNTS_PER_FRAME,
        rebaseline_after: int = 8,
    ) -> None:
        self.byteorder = byteorder
        self.max_counts_per_frame = max_counts_per_frame
        self.rebaseline_after = rebaseline_after
        self._dtype = _dtype(byteorder)
        self.cumulative = cumulative
        self.counters = ParserCounters()
        self._buf = bytearray()
        self._locked = False  # the buffer starts at a confirmed frame boundary
        self._reference: np.ndarray | None = None  # last good frame, for the forward-step check
        self._last_sequence: int | None = None
        self._ever_locked = False
        self._implausible_streak = 0
        self._discard_tail = bytearray()
        # Whether bytes were lost since the last emitted frame (start, discard, reset, v2 gap): the
        # next frame then may not directly follow the last one.
        self._broken = True
        self._follows: list[bool] = []
        self.last_continuous = np.zeros(0, dtype=bool)
        self._discarded_since_emit = 0

    # Counters as attributes, the names other tools use.
    @property
    def frames_emitted(self) -> int:
        return self.counters.frames_emitted

    @property
    def bytes_discarded(self) -> int:
        return self.counters.bytes_discarded

    @property
    def resyncs(self) -> int:
        return self.counters.resyncs

    @property
    def frames_rejected(self) -> int:
        return self.counters.frames_rejected

    @property
    def pending_bytes(self) -> int:
        """Bytes held back until the frame they belong to is confirmed."""
        return len(self._buf)

    def feed(self, data: bytes) -> np.ndarray:
        """Add bytes from the stream; return the frames confirmed so far, shape (n, 16, 16) uint32.

        ``last_continuous`` then says, per returned frame, whether it directly follows the frame
        emitted before it (False after discarded bytes, a rejected frame, a v2 sequence gap or
        ``reset``): only then is the difference of their counters one frame's photons.
        """
        self._buf += data
        return self._parse(final=False)

    def flush(self) -> np.ndarray:
        """End of stream: return a last complete frame if it can be trusted, discard the rest."""
        frames = self._parse(final=True)
        self._discard(len(self._buf))
        self._locked = False
        return frames

    def reset(self) -> None:
        """Forget buffered bytes (after a reconnect); the counters persist.

        The forward-step reference is dropped too: the counters moved on while disconnected.
        """
        self._discard(len(self._buf))
        self._locked = False
        self._reference = None
        self._last_sequence = None
        self._broken = True

    # ---- internals ------------------------------------------------------------------------------

    def _discard(self, n: int) -> None:
        if n <= 0:
            return
        # Bytes are discarded a few at a time, so keep a tail to see a banner split across calls.
        window = self._discard_tail + self._buf[:n]
        self.counters.banners += window.count(BANNER) - self._discard_tail.count(BANNER)
        self._discard_tail = window[-(len(BANNER) + 2):]
        self.counters.bytes_discarded += n
        self._discarded_since_emit += n
        if (self.cumulative and not self.counters.hint and self.counters.not_cumulative_starts
                and self._discarded_since_emit >= NOT_CUMULATIVE_HINT_FRAMES * LEGACY_FRAME_BYTES):
            self.counters.hint = NOT_CUMULATIVE_HINT.format(n=self._discarded_since_emit)
            log.warning("SPAD parser: %s", self.counters.hint)
        self._broken = True
        del self._buf[:n]

    def _is_header(self, pos: int) -> bool:
        return self._buf[pos:pos + 4] == HEADER

    def _try_v2(self, pos: int) -> tuple[bool | None, np.ndarray | None]:
        """(None, None) if more bytes are needed; (False, None) if not a valid v2 frame."""
        buf = self._buf
        if len(buf) < pos + 8:
            return None, None
        if buf[pos:pos + 4] != HEADER or buf[pos + 4:pos + 8] != V2_MAGIC:
            return False, None
        if len(buf) < pos + V2_FRAME_BYTES:
            return None, None
        body = bytes(buf[pos + 4:pos + V2_FRAME_BYTES - 4])
        crc = int.from_bytes(buf[pos + V2_FRAME_BYTES - 4:pos + V2_FRAME_BYTES], self.byteorder)
        if zlib.crc32(body) != crc:
            return False, None
        sequence = int.from_bytes(body[4:8], self.byteorder)
        if self._last_sequence is not None and sequence != (self._last_sequence + 1) % (1 << 32):
            self.counters.v2_sequence_gaps += 1
            self._broken = True
        self._last_sequence = sequence
        return True, np.frombuffer(body, dtype=self._dtype, offset=8)

    def _plausible(self, frame: np.ndarray) -> bool:
        """Forward-step check against the last good frame, and no all-ones idle frame."""
        ref = self._reference
        return self._step_ok(frame if ref is None else ref, frame)

    def _after_banner(self) -> bool:
        """Whether the bytes just discarded end with the bridge's boot banner."""
        tail = bytes(self._discard_tail).rstrip(b"\r\n")
        return tail.endswith(BANNER)

    def _step_ok(self, before: np.ndarray, after: np.ndarray) -> bool:
        """Whether ``after`` can follow ``before``: not an idle line, counters stepping forward."""
        if np.all(after == 0xFFFFFFFF):
            return False  # an idle or floating data line reads all ones
        if not self.cumulative:
            return True
        return bool(np.all((after - before) < self.max_counts_per_frame))

    def _counters_at(self, pos: int) -> np.ndarray:
        return np.frombuffer(bytes(self._buf[pos + 4:pos + LEGACY_FRAME_BYTES]), dtype=self._dtype)

    def _acquire_legacy(self, final: bool) -> bool | None:
        """Lock onto the best legacy frame start among the headers in the next frame period.

        A candidate needs headers one and two frame lengths later and two frames in between that
        step forward. Of several (a counter stuck at 0xFFFFFFFF, or two counters forming
        FF FF FF FF across their boundary in every frame), the one with the smallest steps wins:
        a start one byte late multiplies every step by 256, other offsets give random jumps, and
        a whole-counter rotation ties, in which case the earliest wins.

        Returns True when locked, False when bytes were discarded, None when more are needed.
        """
        L = LEGACY_FRAME_BYTES
        buf = self._buf
        if len(buf) < 3 * L + 4 and not final:
            return None
        candidates: list[tuple[bool, float, int]] = []
        pos = 0
        while 0 <= pos < L:
            if pos + 2 * L + 4 > len(buf):
                break
            if buf[pos + 4:pos + 8] == V2_MAGIC and pos > 0:
                break  # a v2 frame: let the main loop try it
            if buf[pos + 4:pos + L] == _ALL_ONES:
                # An idle line (all ones): skip every candidate whose payload is still in the run.
                other = _NOT_ONES.search(buf, pos + 4)
                run_end = other.start() if other else len(buf)
                pos = buf.find(HEADER, max(pos + 1, run_end - L + 1))
                continue
            if self._is_header(pos + L) and self._is_header(pos + 2 * L):
                first, second = self._counters_at(pos), self._counters_at(pos + L)
                if (self.cumulative and not self._step_ok(first, second) and not np.all(first == 0xFFFFFFFF)
                        and not np.all(second == 0xFFFFFFFF)):
                    self.counters.not_cumulative_starts += 1  # headers fit, counters went backwards
                if self._step_ok(first, second) and not np.all(first == 0xFFFFFFFF):
                    score = float(np.sum(second - first, dtype=np.float64)) if self.cumulative else 0.0
                    fits = self._reference is None or self._step_ok(self._reference, first)
                    candidates.append((fits, score, pos))
            pos = buf.find(HEADER, pos + 1)
        if candidates:
            # Prefer candidates that continue the last good frame, then the header right after a
            # boot banner (the bridge starts forwarding at a frame start), then the earliest whose
            # steps are as small as the smallest (rotations differ only by counting noise).
            fitting = [c for c in candidates if c[0]] or candidates
            least = min(c[1] for c in fitting)
            tied = [c[2] for c in fitting if c[1] <= 2 * least + N_PIXELS]
            anchored = tied[0] == 0 and self._after_banner()
            if len(tied) > 1 and self._reference is None and not anchored:
                self.counters.ambiguous_locks += 1
            self._discard(tied[0])
            self._lock()
            return True
        if pos > 0:
            self._discard(pos)
        elif len(buf) >= 3 * L + 4:
            self._discard(L)
        else:
            self._discard(1)  # the short tail of a flushed stream: step on to the next header
        return False

    def _legacy_run(self, out: list[np.ndarray]) -> bool:
        """Fast path: emit the leading run of good legacy frames in one numpy pass.

        Stops before the first frame that needs a closer look (missing successor header, v2
        magic, implausible step), which the frame-by-frame path then handles. Returns whether
        any frame was emitted.
        """
        L = LEGACY_FRAME_BYTES
        buf = self._buf
        n = (len(buf) - 4) // L  # frames whose successor header has arrived
        m = 0
        while m < n and buf[(m + 1) * L:(m + 1) * L + 4] == HEADER and buf[m * L + 4:m * L + 8] != V2_MAGIC:
            m += 1
        if m == 0:
            return False
        frames = np.frombuffer(bytes(buf[:m * L]), dtype=np.uint8).reshape(m, L)[:, 4:].view(self._dtype)
        bad = frames.min(axis=1) == 0xFFFFFFFF  # an idle line reads all ones
        if self.cumulative:
            first = frames[0] if self._reference is None else self._reference
            bad |= np.diff(frames, axis=0, prepend=first[None]).max(axis=1) >= self.max_counts_per_frame
        k = int(np.argmax(bad)) if bad.any() else m
        if k == 0:
            return False
        out.append(frames[:k])
        self._follows += [not self._broken] + [True] * (k - 1)
        self._broken = False
        self._reference = frames[k - 1]
        self._implausible_streak = 0
        self._discard_tail.clear()
        self.counters.frames_emitted += k
        self._discarded_since_emit = 0
        del self._buf[:k * L]
        return True

    def _take_legacy(self, n_bytes: int, out: list[np.ndarray]) -> None:
        """Emit the legacy frame at the buffer start if it is plausible, else drop the lock."""
        frame = np.frombuffer(bytes(self._buf[4:LEGACY_FRAME_BYTES]), dtype=self._dtype)
        if self._plausible(frame):
            self._accept(frame, out, n_bytes)
            return
        # Either a byte-shifted frame or a lock on a counter stuck at 0xFFFFFFFF: search again
        # from the next byte. Many failures in a row mean the counters really jumped (FPGA
        # reset), so the reference is dropped and the next confirmed frame starts afresh.
        self._reject(1)
        self._locked = False
        self._implausible_streak += 1
        if self._implausible_streak >= self.rebaseline_after:
            self._reference = None
            self._implausible_streak = 0

    def _parse(self, final: bool) -> np.ndarray:
        out: list[np.ndarray] = []
        self._follows = []
        L = LEGACY_FRAME_BYTES
        while True:
            buf = self._buf
            if not self._locked:
                start = buf.find(HEADER)
                if start < 0:
                    # Keep the last 3 bytes: they may be the start of a header.
                    self._discard(len(buf) - 3)
                    break
                self._discard(start)
                is_v2, frame = self._try_v2(0)
                if is_v2 is None and not final:
                    break
                if is_v2:
                    self._lock()
                    self._accept(frame, out, V2_FRAME_BYTES, v2=True)
                    continue
                if self._acquire_legacy(final) is None:
                    break
                continue
            # Locked: the buffer should start at a frame boundary.
            if len(buf) >= 4 and not self._is_header(0):
                # Damage right after a v2 frame (v2 frames confirm themselves, not the next start).
                self._locked = False
                continue
            if self._legacy_run(out):
                continue
            is_v2, frame = self._try_v2(0)
            if is_v2 is None:
                if final and buf:
                    self._reject(len(buf))
                break
            if is_v2:
                self._accept(frame, out, V2_FRAME_BYTES, v2=True)
                continue
            if buf[4:8] == V2_MAGIC:
                # A v2 frame whose CRC fails: damaged, never reinterpreted as legacy.
                self._reject(4)
                self._locked = False
                continue
            if len(buf) < L + 4:
                # A last legacy frame of exactly the right length can be trusted on flush.
                if final and len(buf) == L:
                    self._take_legacy(L, out)
                    continue
                if final and buf:
                    self._reject(len(buf))
                break
            if self._is_header(L):
                self._take_legacy(L, out)
                continue
            # The next header is not where it must be: this frame is short or padded. Step one
            # byte only: inserted 0xFF bytes can make a false header overlap the real one.
            self._reject(1)
            self._locked = False
        self.last_continuous = np.asarray(self._follows, dtype=bool)
        if not out:
            return np.empty((0, ROWS, COLS), dtype=np.uint32)
        return np.concatenate(out).astype(np.uint32).reshape(-1, ROWS, COLS)

    def _lock(self) -> None:
        if self._ever_locked:
            self.counters.resyncs += 1
        self._ever_locked = self._locked = True

    def _accept(self, frame: np.ndarray, out: list[np.ndarray], n_bytes: int, v2: bool = False) -> None:
        if v2:
            self.counters.v2_frames += 1
        self._reference = frame
        self._implausible_streak = 0
        out.append(frame[None])
        self._follows.append(not self._broken)
        self._broken = False
        self._discard_tail.clear()
        self.counters.frames_emitted += 1
        self._discarded_since_emit = 0
        del self._buf[:n_bytes]

    def _reject(self, n_bytes: int) -> None:
        self.counters.frames_rejected += 1
        self._discard(n_bytes)
