"""SpadFrameParser against every hazard of the SPAD bridge stream, fed in random chunk sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.spad_frames import (
    BANNER,
    LEGACY_FRAME_BYTES,
    NOT_CUMULATIVE_HINT_FRAMES,
    V2_FRAME_BYTES,
    SpadFrameParser,
    encode_frame,
    per_frame_counts,
)

RATE_PER_FRAME = 2_000


def cumulative_frames(n: int, seed: int = 0, start: np.ndarray | None = None) -> np.ndarray:
    """n frames of cumulative uint32 counters (n, 16, 16), random start values, Poisson steps."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(0, 2**32, 256, dtype=np.uint64) if start is None else start.astype(np.uint64)
    frames = []
    for _ in range(n):
        acc = (acc + rng.poisson(RATE_PER_FRAME, 256).astype(np.uint64)) % 2**32
        frames.append(acc.reshape(16, 16).astype(np.uint32))
    return np.stack(frames)


def feed_in_chunks(parser: SpadFrameParser, data: bytes, seed: int, max_chunk: int = 3000,
                   continuity: list | None = None) -> np.ndarray:
    """Feed ``data`` in random chunks; ``continuity`` (if given) receives each frame's ``last_continuous``."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(data):
        n = int(rng.integers(1, max_chunk))
        out.append(parser.feed(data[i:i + n]))
        if continuity is not None:
            continuity.extend(parser.last_continuous.tolist())
        i += n
    out.append(parser.flush())
    if continuity is not None:
        continuity.extend(parser.last_continuous.tolist())
    return np.concatenate(out)


def frame_index(emitted: np.ndarray, truth: np.ndarray) -> list[int]:
    """Index in ``truth`` of each emitted frame; fails if any emitted frame is not a true frame."""
    lookup = {f.tobytes(): i for i, f in enumerate(truth)}
    idx = []
    for f in emitted:
        assert f.tobytes() in lookup, "parser emitted a frame that was never sent (corrupt)"
        idx.append(lookup[f.tobytes()])
    assert idx == sorted(set(idx)), "frames out of order or duplicated"
    return idx


def test_clean_stream_all_frames_in_order_row_major():
    truth = cumulative_frames(20)
    data = b"".join(encode_frame(f) for f in truth)
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, data, seed=1)
    assert out.dtype == np.uint32 and out.shape == (20, 16, 16)
    np.testing.assert_array_equal(out, truth)
    assert parser.frames_emitted == 20 and parser.bytes_discarded == 0 and parser.frames_rejected == 0


def test_msb_first_row_major_layout():
    counts = np.arange(256, dtype=np.uint32).reshape(16, 16) * 0x01010101
    raw = encode_frame(counts)
    # counter i is row i // 16, column i % 16, most significant byte first
    assert raw[4 + 4 * 17:4 + 4 * 18] == bytes([17, 17, 17, 17])
    assert encode_frame(np.full(256, 0x01020304))[4:8] == b"\x01\x02\x03\x04"
    assert encode_frame(np.full(256, 0x01020304), byteorder="little")[4:8] == b"\x04\x03\x02\x01"


def test_little_endian_stream():
    truth = cumulative_frames(10, seed=3)
    data = b"".join(encode_frame(f, byteorder="little") for f in truth)
    out = feed_in_chunks(SpadFrameParser(byteorder="little"), data, seed=2)
    np.testing.assert_array_equal(out, truth)
    # the same bytes read as big-endian give no plausible frames at all
    assert len(feed_in_chunks(SpadFrameParser(byteorder="big"), data, seed=2)) <= 1


def test_bad_byteorder_is_a_clear_error():
    with pytest.raises(ValueError, match="byteorder"):
        SpadFrameParser(byteorder="middle")


def test_boot_banner_before_data_and_after_reset():
    truth = cumulative_frames(12)
    data = (b"\x00garbage" + BANNER + b"\r\n" + b"".join(encode_frame(f) for f in truth[:6])
            + BANNER + b"\r\n" + b"".join(encode_frame(f) for f in truth[6:]))
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, data, seed=5, max_chunk=200)
    idx = frame_index(out, truth)
    # the frame right before the second banner cannot be confirmed; everything else comes out
    assert idx == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert parser.counters.banners == 2 and parser.frames_rejected == 1


@pytest.mark.parametrize("drop", [1, 2, 3, 4, 5, 100, 1027])
def test_short_frame_from_dropped_bytes_is_never_emitted(drop):
    truth = cumulative_frames(10, seed=drop)
    frames = [encode_frame(f) for f in truth]
    frames[4] = frames[4][:300] + frames[4][300 + drop:]
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, b"".join(frames), seed=drop)
    assert frame_index(out, truth) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert parser.frames_rejected >= 1 and parser.resyncs == 1


def test_drop_where_next_counter_starts_with_ff_is_caught_by_forward_step():
    # Drop one byte of frame 4 and let pixel 0 of frame 5 start with 0xFF: the bytes at the expected
    # header position then read FF FF FF FF, so only the forward-step check can catch the shift.
    truth = cumulative_frames(10, start=np.full(256, 0xFF000000, dtype=np.uint64))
    frames = [encode_frame(f) for f in truth]
    frames[4] = frames[4][:500] + frames[4][501:]
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, b"".join(frames), seed=4)
    assert frame_index(out, truth) == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_inserted_bytes_between_frames():
    truth = cumulative_frames(10)
    frames = [encode_frame(f) for f in truth]
    frames[3] += b"\xff\xff\xff\x00noise\xff"
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, b"".join(frames), seed=6)
    assert frame_index(out, truth) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert parser.bytes_discarded >= 9


def test_counter_reading_ffffffff_in_one_frame_is_kept():
    truth = cumulative_frames(8)
    # the counter passes through 0xFFFFFFFF in frame 3 and wraps afterwards
    truth[:, 5, 7] = (0xFFFFFFFF + 1500 * (np.arange(8, dtype=np.int64) - 3)) % 2**32
    out = feed_in_chunks(SpadFrameParser(), b"".join(encode_frame(f) for f in truth), seed=7)
    np.testing.assert_array_equal(out, truth)


def test_saturated_counter_ffffffff_in_every_frame_with_damage():
    truth = cumulative_frames(16, seed=8)
    truth[:, 0, 9] = 0xFFFFFFFF  # stuck counter; also pixel 0 and 255 to make 8-byte FF runs
    truth[:, 0, 0] = 0xFFFFFFFF
    truth[:, 15, 15] = 0xFFFFFFFF
    frames = [encode_frame(f) for f in truth]
    frames[5] = frames[5][:20] + frames[5][21:]  # a drop before the stuck counter: re-lock must
    frames[10] += b"\x17"  # not land on it, and neither after an insert
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, b"".join(frames), seed=8, max_chunk=700)
    assert frame_index(out, truth) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 15]


def test_stuck_counter_seen_first_is_an_ambiguous_lock_unless_a_banner_anchors_it():
    truth = cumulative_frames(8, seed=17)
    truth[:, 4, 4] = 0xFFFFFFFF
    data = b"".join(encode_frame(f) for f in truth)
    mid = 4 + 4 * 10  # opened mid-frame, before the stuck counter: legacy framing cannot tell
    parser = SpadFrameParser()
    parser.feed(data[mid:])
    assert parser.counters.ambiguous_locks == 1
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, data[mid:LEGACY_FRAME_BYTES] + BANNER + b"\r\n" + data, seed=17)
    np.testing.assert_array_equal(out, truth)
    assert parser.counters.ambiguous_locks == 0 and parser.counters.banners == 1


def test_two_counters_forming_header_across_their_boundary():
    truth = cumulative_frames(10, seed=9)
    truth[:, 2, 3] = 0x12FFFFFF + np.arange(10, dtype=np.uint32) * 0  # constant low bytes FF FF FF
    truth[:, 2, 4] = 0xFF000000 + np.arange(10, dtype=np.uint32) * 7
    data = b"".join(encode_frame(f) for f in truth)
    # start mid-frame, before the straddling match, so it is the first candidate the parser sees
    start = 4 + 4 * (2 * 16)
    out = feed_in_chunks(SpadFrameParser(), data[start:], seed=9)
    assert frame_index(out, truth) == list(range(1, 10))


def test_truncated_last_frame_and_flush():
    truth = cumulative_frames(6)
    data = b"".join(encode_frame(f) for f in truth)
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, data[:-10], seed=10)
    assert frame_index(out, truth) == [0, 1, 2, 3, 4]
    assert parser.frames_rejected == 1 and parser.pending_bytes == 0
    # a complete last frame is trusted on flush
    parser = SpadFrameParser()
    assert len(feed_in_chunks(parser, data, seed=10)) == 6


def test_port_vanishing_mid_stream_then_reset_and_resume():
    truth = cumulative_frames(12)
    data = b"".join(encode_frame(f) for f in truth)
    parser = SpadFrameParser()
    first = parser.feed(data[: 5 * LEGACY_FRAME_BYTES + 77])
    parser.reset()  # the port vanished; the reader reconnects
    second = feed_in_chunks(parser, data[7 * LEGACY_FRAME_BYTES + 13:], seed=11)
    idx = frame_index(np.concatenate([first, second]), truth)
    assert idx == [0, 1, 2, 3, 4, 8, 9, 10, 11]


def test_pure_garbage_gives_no_frames_and_counts_discarded():
    rng = np.random.default_rng(12)
    data = rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes() + b"\xff" * 5000
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, data, seed=12)
    assert out.shape == (0, 16, 16)
    assert parser.bytes_discarded == len(data) and parser.frames_emitted == 0


def test_counter_reset_of_the_fpga_is_accepted_after_rebaseline():
    before = cumulative_frames(6, seed=13)
    after = cumulative_frames(20, seed=14, start=np.zeros(256))
    truth = np.concatenate([before, after])
    parser = SpadFrameParser(rebaseline_after=3)
    out = feed_in_chunks(parser, b"".join(encode_frame(f) for f in truth), seed=13)
    idx = frame_index(out, truth)
    assert idx[:5] == [0, 1, 2, 3, 4] and idx[-5:] == list(range(21, 26))


def test_v2_frames_auto_detected_with_sequence_and_crc():
    truth = cumulative_frames(10, seed=15)
    frames = [encode_frame(f, sequence=100 + i) for i, f in enumerate(truth)]
    assert len(frames[0]) == V2_FRAME_BYTES
    bad = bytearray(frames[3])
    bad[600] ^= 0x01  # a flipped bit: legacy framing could not tell, the CRC can
    frames[3] = bytes(bad)
    del frames[6]  # a lost frame shows as a sequence gap
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, BANNER + b"".join(frames), seed=15)
    assert frame_index(out, truth) == [0, 1, 2, 4, 5, 7, 8, 9]
    assert parser.counters.v2_frames == 8 and parser.counters.v2_sequence_gaps == 2


def test_legacy_and_v2_in_one_stream():
    truth = cumulative_frames(10, seed=16)
    data = b"".join(encode_frame(f, sequence=i if i >= 5 else None) for i, f in enumerate(truth))
    out = feed_in_chunks(SpadFrameParser(), data, seed=16)
    np.testing.assert_array_equal(out, truth)


def test_per_frame_counts_handle_32_bit_wraparound():
    cumulative = np.array([0xFFFFFFF0, 0x00000010, 0x00000020], dtype=np.uint32)[:, None, None]
    np.testing.assert_array_equal(per_frame_counts(cumulative)[:, 0, 0], [0x20, 0x10])
    counts = per_frame_counts(cumulative[1:], previous=cumulative[0])
    assert counts.dtype == np.int64 and counts.shape == (2, 1, 1) and counts[0, 0, 0] == 0x20


def test_encode_rejects_wrong_size():
    with pytest.raises(ValueError, match="256"):
        encode_frame(np.zeros(255))


# ---- random damage, random chunking --------------------------------------------------------------

damage = st.lists(
    st.tuples(st.sampled_from(["drop", "insert", "banner", "ff_insert"]),
              st.integers(0, LEGACY_FRAME_BYTES - 1), st.integers(1, 40)),
    min_size=0, max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(damage=damage, seed=st.integers(0, 2**16), v2=st.booleans())
def test_random_damage_never_emits_a_corrupt_frame(damage, seed, v2):
    n_frames = 8 + 5 * len(damage)
    truth = cumulative_frames(n_frames, seed=seed)
    frames = [encode_frame(f, sequence=i if v2 else None) for i, f in enumerate(truth)]
    hit: set[int] = set()
    for k, (kind, offset, size) in enumerate(damage):
        n = 4 + 5 * k  # damage events five frames apart, after the parser has locked
        offset = offset % len(frames[n])
        if kind == "drop":
            frames[n] = frames[n][:offset] + frames[n][offset + size:]
            hit.add(n)
            if offset < 4 and not v2:
                hit.add(n - 1)  # its successor's header is damaged: frame n - 1 is unconfirmed
        else:
            extra = {"insert": bytes(range(size)), "banner": BANNER + b"\r\n", "ff_insert": b"\xff" * size}
            frames[n] += extra[kind]  # between frames n and n + 1
            if not v2 and kind != "ff_insert":
                hit.add(n)  # its length cannot be confirmed; inserted 0xFF bytes pose as its successor
    parser = SpadFrameParser()
    continuity: list[bool] = []
    out = feed_in_chunks(parser, b"".join(frames), seed=seed, continuity=continuity)
    idx = frame_index(out, truth)
    assert idx == [i for i in range(n_frames) if i not in hit]
    # a frame said to follow its predecessor really is the next frame sent (counts can be differenced)
    assert len(continuity) == len(idx) and not continuity[0]
    pairs = zip(idx, idx[1:], continuity[1:], strict=False)
    assert all(b == a + 1 for a, b, follows in pairs if follows)


def test_idle_line_of_all_ones_then_frames():
    # SPI with the FPGA not yet sending reads 0xFF; such "frames" must never come out
    truth = cumulative_frames(6, seed=18)
    data = b"\xff" * 20_000 + b"".join(encode_frame(f) for f in truth) + b"\xff" * 5000
    parser = SpadFrameParser()
    out = feed_in_chunks(parser, data, seed=18)
    assert frame_index(out, truth) == [0, 1, 2, 3, 4, 5]


def test_per_frame_counters_under_the_cumulative_default_are_named_with_the_option():
    # a firmware variant that sends per-readout counts: headers fit, counters jump back and forth
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 5000, (400, 256)).astype(np.uint32)
    stream = b"".join(encode_frame(c) for c in counts)
    parser = SpadFrameParser()
    assert len(parser.feed(stream)) == 0  # nothing can be trusted as cumulative
    hint = parser.counters.hint
    assert "cumulative=False" in hint and "do not step forward" in hint
    assert parser.counters.bytes_discarded >= NOT_CUMULATIVE_HINT_FRAMES * LEGACY_FRAME_BYTES
    # the option named in the hint parses the same stream
    assert len(SpadFrameParser(cumulative=False).feed(stream)) >= 398


def test_no_hint_for_garbage_or_a_few_discarded_frames():
    parser = SpadFrameParser()
    parser.feed(np.random.default_rng(1).integers(0, 255, 400 * 1028, dtype=np.uint8).tobytes())
    assert parser.counters.hint == ""  # no headers one frame apart: not a counting problem
    rng = np.random.default_rng(5)
    few = b"".join(encode_frame(c) for c in rng.integers(0, 5000, (20, 256)).astype(np.uint32))
    parser = SpadFrameParser()
    parser.feed(few)
    assert parser.counters.hint == ""  # too few frames' worth to say so yet
