"""SpadReader, the transports and SpadArray: threads, queue, timestamps, reconnect, clear errors."""

from __future__ import annotations

import os
import sys
import threading
import time
import tty
import types

import numpy as np
import pytest

from drivers.spad_bridge import (
    SerialTransport,
    SpadArray,
    SpadFrameParser,
    SpadReader,
    SpidevTransport,
    encode_frame,
    transport_for_port,
)
from instrument.protocols import InstrumentDisconnected, InstrumentTimeout


def frames(n: int, start: int = 0) -> np.ndarray:
    base = np.arange(256, dtype=np.uint64) * 1_000_003
    return np.stack([((base + 500 * (start + i)) % 2**32).astype(np.uint32).reshape(16, 16)
                     for i in range(n)])


class ScriptedTransport:
    """A transport that plays back chunks; ``None`` in the script means the port vanishes."""

    description = "scripted"

    def __init__(self, script: list[bytes | None], fail_opens: int = 0) -> None:
        self.script = list(script)
        self.fail_opens = fail_opens
        self.opens = self.closes = 0
        self.done = threading.Event()

    def open(self) -> None:
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise InstrumentDisconnected("spad", "open", "not there yet")
        self.opens += 1

    def read(self) -> bytes:
        if not self.script:
            self.done.set()
            time.sleep(0.005)
            return b""
        item = self.script.pop(0)
        if item is None:
            raise InstrumentDisconnected("spad", "read", "vanished")
        return item

    def close(self) -> None:
        self.closes += 1


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_reader_delivers_frames_with_timestamps_in_order():
    truth = frames(12)
    transport = ScriptedTransport(chunked(b"".join(encode_frame(f) for f in truth), 700))
    reader = SpadReader(transport, reconnect_interval_s=0.01)
    before = time.time()
    reader.start()
    batch = reader.get(11, timeout_s=2)
    reader.stop()
    np.testing.assert_array_equal(batch.frames, truth[:11])
    assert np.all(np.diff(batch.timestamps_s) >= 0) and batch.timestamps_s[0] >= before
    assert transport.closes == 1 and not reader.running


def test_reader_reconnects_after_the_port_vanishes():
    truth = frames(20)
    data = b"".join(encode_frame(f) for f in truth)
    cut = 9 * 1028 + 100
    transport = ScriptedTransport(chunked(data[:cut], 1000) + [None] + chunked(data[cut:], 1000),
                                  fail_opens=0)
    reader = SpadReader(transport, reconnect_interval_s=0.01)
    reader.start()
    assert transport.done.wait(2)
    reader.stop()
    got = reader.get(reader._queue.qsize(), timeout_s=0.1).frames
    # frames 0..8 before the cut, then a re-lock three headers into the new data
    np.testing.assert_array_equal(got, np.concatenate([truth[:9], truth[10:19]]))
    assert reader.reconnects == 1 and transport.opens == 2


def test_reader_retries_opening_and_start_reports_the_cause():
    transport = ScriptedTransport([], fail_opens=1000)
    reader = SpadReader(transport, reconnect_interval_s=0.01)
    with pytest.raises(InstrumentDisconnected, match="not there yet"):
        reader.start(connect_timeout_s=0.1)
    assert not reader.running
    late = ScriptedTransport([], fail_opens=3)
    reader = SpadReader(late, reconnect_interval_s=0.01)
    reader.start(connect_timeout_s=2)
    assert reader.connected
    reader.stop()


def test_bounded_queue_drops_oldest_frames_and_counts_them():
    truth = frames(30)
    transport = ScriptedTransport([b"".join(encode_frame(f) for f in truth)])
    reader = SpadReader(transport, queue_frames=5)
    reader.start()
    assert transport.done.wait(2)
    got = reader.get(5, timeout_s=1).frames
    reader.stop()
    np.testing.assert_array_equal(got, truth[24:29])
    assert reader.frames_dropped == 24


def test_timeout_names_what_arrived():
    transport = ScriptedTransport([b"".join(encode_frame(f) for f in frames(4))])
    reader = SpadReader(transport)
    reader.start()
    with pytest.raises(InstrumentTimeout, match="got 3 of 10 frames"):
        reader.get(10, timeout_s=0.2)
    reader.stop()


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="queue_frames"):
        SpadReader(ScriptedTransport([]), queue_frames=0)
    with pytest.raises(ValueError, match="one frame, 1028 .* or 1040"):
        SpidevTransport(transfer_bytes=4096)
    with pytest.raises(ValueError, match="mode 0 only"):
        SpidevTransport(mode=1)
    with pytest.raises(ValueError, match="max_speed_hz"):
        SpidevTransport(max_speed_hz=20_000_000)
    with pytest.raises(ValueError, match="baudrate"):
        SerialTransport("/dev/null", baudrate=0)


def test_port_names_select_the_transport():
    assert isinstance(transport_for_port("/dev/spidev1.2"), SpidevTransport)
    spi = transport_for_port("spidev0.1")
    assert (spi.bus, spi.device) == (0, 1)
    assert isinstance(transport_for_port("/dev/ttyACM0", 115200), SerialTransport)


def test_spidev_is_imported_lazily_and_reads_one_frame_per_transfer(monkeypatch):
    # the slave-mode FPGA sends one frame per chip-select assertion, mode 0, MSB first
    calls = []

    class FakeSpiDev:
        max_speed_hz = 0
        mode = 3
        lsbfirst = True

        def open(self, bus, device):
            calls.append(("open", bus, device))

        def readbytes(self, n):
            calls.append(("readbytes", n, self.mode, self.lsbfirst, self.max_speed_hz))
            return list(encode_frame(np.arange(256)))[:n]

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=FakeSpiDev))
    spi = SpidevTransport(1, 0)
    spi.open()
    data = spi.read()
    assert len(data) == 1028 and data[:4] == b"\xff" * 4
    spi.close()
    assert calls == [("open", 1, 0), ("readbytes", 1028, 0, False, 1_000_000), ("close",)]
    assert SpidevTransport(transfer_bytes=1040).transfer_bytes == 1040  # framing v2


def test_missing_spidev_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "spidev", None)  # import raises ImportError
    with pytest.raises(InstrumentDisconnected, match="pip install spidev"):
        SpidevTransport().open()


def test_serial_transport_on_a_pty_and_vanishing_port():
    master, slave = os.openpty()
    tty.setraw(slave)
    transport = SerialTransport(os.ttyname(slave), 2_000_000, timeout_s=0.05)
    transport.open()
    os.write(master, b"\x00\xff\x10")
    got = b""
    for _ in range(20):
        got += transport.read()
        if len(got) == 3:
            break
    assert got == b"\x00\xff\x10"
    os.close(master)
    with pytest.raises(InstrumentDisconnected, match="vanished"):
        for _ in range(20):
            transport.read()
    transport.close()
    os.close(slave)
    with pytest.raises(InstrumentDisconnected, match="cannot open"):
        SerialTransport("/dev/does-not-exist").open()


def test_spad_array_counts_per_frame_with_wraparound():
    truth = frames(8)
    truth[:, 3, 4] = (np.uint64(2**32 - 1200) + 500 * np.arange(8, dtype=np.uint64)) % 2**32
    transport = ScriptedTransport(chunked(b"".join(encode_frame(f) for f in truth), 333))
    spad = SpadArray("spad_test_counts", "scripted", transport=transport, timeout_s=2)
    try:
        counts = spad.read_counts(3)
        more = spad.read_counts(2)
        assert counts.shape == (3, 16, 16) and counts.dtype == np.int64
        assert np.all(counts == 500) and np.all(more == 500)
        assert spad.frames_emitted() == 7 and spad.frames_rejected() == 0 and spad.byteorder() == "big"
        assert spad.shape == (16, 16) and spad.pixel_pitch_m == 55e-6
    finally:
        spad.close()
    spad.safe_state()  # after close: still never raises


def test_spad_array_little_endian_and_bad_n():
    truth = frames(5)
    transport = ScriptedTransport([b"".join(encode_frame(f, byteorder="little") for f in truth)])
    spad = SpadArray("spad_test_le", "scripted", byteorder="little", transport=transport)
    try:
        np.testing.assert_array_equal(spad.read_frames(4, timeout_s=2).frames, truth[:4])
        with pytest.raises(ValueError, match="at least 1"):
            spad.read_frames(0)
    finally:
        spad.close()


def test_bad_byteorder_does_not_leave_a_registered_instrument():
    with pytest.raises(ValueError, match="byteorder"):
        SpadArray("spad_test_bad", "scripted", byteorder="middle", transport=ScriptedTransport([]))
    spad = SpadArray("spad_test_bad", "scripted", transport=ScriptedTransport([]))  # the name is free
    spad.close()


def test_frame_period_from_timestamps():
    from drivers.spad_bridge import FrameBatch

    batch = FrameBatch(frames(3), np.array([10.0, 10.5, 11.0]))
    assert batch.mean_period_s() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two frames"):
        FrameBatch(frames(1), np.array([1.0])).mean_period_s()


def test_parser_is_exported_from_spad_bridge():
    assert SpadFrameParser(byteorder="big").frames_emitted == 0


def wire(truth: np.ndarray) -> bytes:
    return b"".join(encode_frame(f) for f in truth)


@pytest.mark.parametrize("hazard", ["reconnect", "damaged frame", "counter reset"])
def test_counts_never_span_a_lost_frame(hazard):
    """Each count is one frame's photons (500 here), whatever happened between two frames."""
    truth = frames(60)
    if hazard == "reconnect":  # the port vanishes and frames 10-12 are never seen
        script = [wire(truth[:10]), None, wire(truth[13:])]
    elif hazard == "damaged frame":  # frame 10 is cut short on the wire
        script = [wire(truth[:10]) + encode_frame(truth[10])[:500] + wire(truth[11:])]
    else:  # the FPGA restarts: the counters begin again from zero
        restarted = np.stack([np.full((16, 16), 500 * i + 7, np.uint32) for i in range(50)])
        script = [wire(truth[:10]) + wire(restarted)]
    spad = SpadArray(f"spad_gap_{hazard.replace(' ', '_')}", "scripted", transport=ScriptedTransport(script),
                     timeout_s=3)
    try:
        counts = spad.read_counts(14)
        assert np.all(counts == 500), np.unique(counts)
        assert spad.frames_skipped() >= 1
    finally:
        spad.close()


def test_counts_never_span_frames_dropped_from_a_full_queue():
    truth = frames(16)
    transport = ScriptedTransport([wire(truth[:4])])
    spad = SpadArray("spad_gap_queue", "scripted", transport=transport, queue_frames=4, timeout_s=3)
    try:
        assert np.all(spad.read_counts(2) == 500)  # frames 0-2 (frame 3 awaits its confirming header)
        transport.done.clear()
        transport.script.append(wire(truth[4:]))  # 12 more frames into a queue of 4: the oldest go
        assert transport.done.wait(3)
        counts = spad.read_counts(3)
        assert np.all(counts == 500) and spad.frames_dropped() > 0 and spad.frames_skipped() == 1
    finally:
        spad.close()


def test_an_unexpected_error_in_the_reader_is_reported_not_swallowed():
    class Exploding(ScriptedTransport):
        def read(self):
            raise ValueError("driver bug")

    transport = Exploding([])
    reader = SpadReader(transport)
    with pytest.raises(InstrumentDisconnected, match="driver bug"):
        reader.start()  # raises if the thread already died, else the read does
        reader._thread.join(2)
        reader.get(1, timeout_s=0.1)
    assert not reader.running and not reader.connected and transport.closes >= 1


def test_station_checks_pass_on_good_frames_and_name_the_option_for_per_frame_counters():
    good = SpadArray("spad_check_ok", "scripted", transport=ScriptedTransport([
        b"".join(encode_frame(f) for f in frames(6))]), timeout_s=2)
    try:
        (result,) = good.station_checks()
        assert result.ok and "0 rejected" in result.detail
    finally:
        good.close()
    rng = np.random.default_rng(2)
    per_frame = b"".join(encode_frame(c) for c in rng.integers(0, 5000, (400, 256)).astype(np.uint32))
    bad = SpadArray("spad_check_bad", "scripted", transport=ScriptedTransport([per_frame]), timeout_s=0.5)
    try:
        (result,) = bad.station_checks()
        assert result.ok is False and "cumulative=False" in result.fix and "cumulative=False" in result.detail
    finally:
        bad.close()
