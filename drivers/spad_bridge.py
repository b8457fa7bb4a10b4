"""Driver for the seed-003 16x16 SPAD array behind its FPGA and Arduino bridge.

The bytes come either from the Arduino's USB CDC port (pyserial, any baud rate) or straight from
the FPGA on a Linux SPI host (spidev). Both sit behind :class:`SpadReader`, a thread that feeds a
:class:`SpadFrameParser`, time-stamps the frames and hands them over through a bounded queue,
reconnecting when the port vanishes. :class:`SpadArray` is the instrument the station builds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import serial
from qcodes.instrument import Instrument

from drivers.port_errors import PORT_ERRORS
from drivers.spad_frames import (
    COLS,
    LEGACY_FRAME_BYTES,
    ROWS,
    V2_FRAME_BYTES,
    ParserCounters,
    SpadFrameParser,
    encode_frame,
    per_frame_counts,
)
from instrument.checks import CheckResult
from instrument.protocols import InstrumentDisconnected, InstrumentError, InstrumentTimeout

__all__ = [
    "FrameBatch",
    "ParserCounters",
    "SerialTransport",
    "SpadArray",
    "SpadFrameParser",
    "SpadReader",
    "SpidevTransport",
    "Transport",
    "encode_frame",
    "per_frame_counts",
]

log = logging.getLogger(__name__)

PIXEL_PITCH_M = 55e-6  # SPAD pitch on the chip (seed 003, section VIII)
SPIDEV_MAX_SPEED_HZ = 6_250_000
"""clk / 8 for a 50 MHz FPGA clock: the fastest SCLK the SPI slave is built for (inferred clock)."""


class Transport(Protocol):
    """A byte source: ``read`` blocks at most a short timeout and returns b"" when idle."""

    description: str

    def open(self) -> None: ...

    def read(self) -> bytes: ...

    def close(self) -> None: ...


class SerialTransport:
    """The Arduino bridge's USB CDC port through pyserial.

    Args:
        port: device path (``/dev/ttyACM0``) or any pyserial URL.
        baudrate: line rate; USB CDC ignores it, a real UART bridge does not.
        timeout_s: longest a read blocks when no byte arrives.
        chunk_bytes: most bytes taken per read.
    """

    def __init__(self, port: str, baudrate: int = 2_000_000, timeout_s: float = 0.05,
                 chunk_bytes: int = 16384) -> None:
        if baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {baudrate}")
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.chunk_bytes = chunk_bytes
        self.description = f"serial {port} at {baudrate} Bd"
        self._serial: serial.Serial | None = None

    def open(self) -> None:
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentDisconnected(
                "spad", "open", f"cannot open {self.port}: {exc}; check the cable and the port name",
                self.port) from exc

    def read(self) -> bytes:
        if self._serial is None:
            raise InstrumentDisconnected("spad", "read", "port is not open; call open() first", self.port)
        try:
            waiting = self._serial.in_waiting
            return self._serial.read(min(max(1, waiting), self.chunk_bytes))
        except (serial.SerialException, OSError, TypeError) as exc:
            # pyserial raises TypeError from in_waiting when the device node vanished mid-call.
            raise InstrumentDisconnected("spad", "read", f"{self.port} vanished: {exc}", self.port) from exc

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None


class SpidevTransport:
    """Frames read straight from the FPGA by a Linux SPI host through spidev.

    The FPGA must be built with ``SPI_SLAVE = 1`` (``firmware/fpga/spad_fpga.v``): the host is the
    SPI master and clocks one frame out per transfer (chip select held low for the transfer), in
    SPI mode 0, MSB first. The master-mode FPGA (the Arduino bridge's) drives SCLK itself and
    cannot be read this way. spidev is imported when the port opens, so this module imports where
    spidev is missing.

    Args:
        bus: SPI bus number (``/dev/spidev<bus>.<device>``).
        device: chip select.
        max_speed_hz: SCLK. 1 MHz by default: the slave synchronises SCLK to its own clock and
            needs SCLK below clk / 8, which 1 MHz meets for any FPGA clock from 8 MHz up, and it
            is slow enough for jumper wires. A 1028-byte frame then takes 8.2 ms (about 120
            frames/s); the counters are cumulative, so a slower read loses no photons, only time
            resolution. (The 50 kHz of the seed's FPGA is its master-mode rate to the Arduino.)
        mode: SPI mode; the slave FPGA speaks mode 0 only.
        transfer_bytes: bytes per transfer = one frame: 1028 (legacy framing) or 1040 (framing v2).
    """

    def __init__(self, bus: int = 0, device: int = 0, max_speed_hz: int = 1_000_000, mode: int = 0,
                 transfer_bytes: int = LEGACY_FRAME_BYTES) -> None:
        if transfer_bytes not in (LEGACY_FRAME_BYTES, V2_FRAME_BYTES):
            raise ValueError(
                f"transfer_bytes must be one frame, {LEGACY_FRAME_BYTES} (legacy) or {V2_FRAME_BYTES} "
                f"(framing v2): the FPGA sends one frame per chip-select, got {transfer_bytes}")
        if mode != 0:
            raise ValueError(f"the SPAD FPGA's SPI slave speaks mode 0 only (CPOL 0, CPHA 0), got {mode}")
        if not 0 < max_speed_hz <= SPIDEV_MAX_SPEED_HZ:
            raise ValueError(f"max_speed_hz must be in (0, {SPIDEV_MAX_SPEED_HZ}] Hz, got {max_speed_hz}")
        self.bus, self.device = bus, device
        self.max_speed_hz = max_speed_hz
        self.mode = mode
        self.transfer_bytes = transfer_bytes
        self.description = f"spidev{bus}.{device} at {max_speed_hz} Hz"
        self._spi: Any = None

    def open(self) -> None:
        try:
            import spidev  # lazily: only Linux SPI hosts have it
        except ImportError as exc:
            raise InstrumentDisconnected(
                "spad", "open", "spidev is not installed; pip install spidev (Linux only)", self.description
            ) from exc
        spi = spidev.SpiDev()
        try:
            spi.open(self.bus, self.device)
            spi.max_speed_hz = self.max_speed_hz
            spi.mode = self.mode
            spi.lsbfirst = False  # MSB first, as the FPGA shifts
        except OSError as exc:
            spi.close()
            raise InstrumentDisconnected(
                "spad", "open", f"cannot open /dev/spidev{self.bus}.{self.device}: {exc}; "
                "enable the SPI overlay and check permissions", self.description) from exc
        self._spi = spi

    def read(self) -> bytes:
        if self._spi is None:
            raise InstrumentDisconnected("spad", "read", "SPI device is not open", self.description)
        try:
            return bytes(self._spi.readbytes(self.transfer_bytes))
        except OSError as exc:
            raise InstrumentDisconnected("spad", "read", f"SPI read failed: {exc}", self.description) from exc

    def close(self) -> None:
        if self._spi is not None:
            self._spi.close()
            self._spi = None


@dataclass(frozen=True)
class FrameBatch:
    """Cumulative frames with the host time at which each was completed.

    ``serials`` number the frames as the reader emitted them (a gap means frames were dropped from a
    full queue); ``continuous`` is False for a frame that may not directly follow the frame emitted
    before it (after a reconnect, or where the parser discarded bytes or rejected a frame), so the
    difference of the two counters is not one frame's photons.
    """

    frames: np.ndarray  # (n, 16, 16) uint32, cumulative counters
    timestamps_s: np.ndarray  # (n,) float64, time.time() of the read that completed each frame
    serials: np.ndarray | None = None  # (n,) int64
    continuous: np.ndarray | None = None  # (n,) bool

    def mean_period_s(self) -> float:
        """Average time between frames; host read times jitter, so use many frames."""
        if len(self.timestamps_s) < 2:
            raise ValueError("a frame period needs at least two frames")
        return float(self.timestamps_s[-1] - self.timestamps_s[0]) / (len(self.timestamps_s) - 1)


class SpadReader:
    """A thread that reads a transport, parses frames and queues them with timestamps.

    Args:
        transport: where the bytes come from.
        parser: the frame parser (default: big-endian, cumulative counters).
        queue_frames: capacity of the frame queue; when full the oldest frame is dropped and
            counted in ``frames_dropped``, so a slow consumer never stalls the port.
        reconnect_interval_s: wait between attempts to reopen a vanished port.
    """

    def __init__(self, transport: Transport, parser: SpadFrameParser | None = None,
                 queue_frames: int = 4096, reconnect_interval_s: float = 0.2) -> None:
        if queue_frames < 1:
            raise ValueError(f"queue_frames must be at least 1, got {queue_frames}")
        self.transport = transport
        self.parser = parser or SpadFrameParser()
        self.reconnect_interval_s = reconnect_interval_s
        self.frames_dropped = 0
        self.reconnects = 0
        self.last_error: Exception | None = None
        self._queue: queue.Queue[tuple[float, np.ndarray, int, bool]] = queue.Queue(maxsize=queue_frames)
        self._serial = 0
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards parser counters read from other threads

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counters(self) -> ParserCounters:
        with self._lock:
            return ParserCounters(**vars(self.parser.counters))

    def start(self, connect_timeout_s: float = 2.0) -> None:
        """Start the thread; raises InstrumentDisconnected if the port does not open in time."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"spad-reader {self.transport.description}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + connect_timeout_s
        while not self._connected.wait(0.01) and self._thread.is_alive() and time.monotonic() < deadline:
            pass
        if not self._connected.is_set():
            self.stop()
            detail = f"no connection within {connect_timeout_s} s"
            if self.last_error is not None:
                detail += f": {self.last_error}"
            raise InstrumentDisconnected("spad", "start", detail, self.transport.description)

    def stop(self) -> None:
        """Stop the thread; raises ``InstrumentError`` if it does not end (a read that never returns)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():  # keep the handle: a second reader on the same port would interleave
                raise InstrumentError("spad", "stop reader", "the reader thread did not stop within 5 s; "
                                      "unplug the bridge to end the blocked read", self.transport.description)
            self._thread = None

    def clear(self) -> int:
        """Drop queued frames (stale after a setting changed); returns how many."""
        n = 0
        while True:
            try:
                self._queue.get_nowait()
                n += 1
            except queue.Empty:
                return n

    def get(self, n: int, timeout_s: float) -> FrameBatch:
        """The next ``n`` frames; InstrumentTimeout (or Disconnected) names what arrived."""
        deadline = time.monotonic() + timeout_s
        stamps, frames, serials, continuous = [], [], [], []
        while len(frames) < n:
            remaining = deadline - time.monotonic()
            try:
                t, f, serial, follows = self._queue.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                error = InstrumentDisconnected if not self.connected else InstrumentTimeout
                cause = f"; last error: {self.last_error}" if self.last_error else ""
                if hint := self.counters().hint:  # e.g. per-frame (not cumulative) counters
                    cause += f"; {hint}"
                raise error("spad", "read frames",
                            f"got {len(frames)} of {n} frames in {timeout_s} s{cause}",
                            self.transport.description) from None
            stamps.append(t)
            frames.append(f)
            serials.append(serial)
            continuous.append(follows)
        return FrameBatch(np.stack(frames), np.asarray(stamps), np.asarray(serials, np.int64),
                          np.asarray(continuous, bool))

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        except Exception as exc:  # noqa: BLE001 - a dead reader must say why, not just stop delivering
            log.exception("SPAD reader stopped by an unexpected error")
            self.last_error = exc
        finally:
            self._connected.clear()
            with contextlib.suppress(*PORT_ERRORS):
                self.transport.close()

    def _read_until_stopped(self) -> None:
        while not self._stop.is_set():
            if not self.connected:
                try:
                    self.transport.open()
                except InstrumentDisconnected as exc:
                    self.last_error = exc
                    self._stop.wait(self.reconnect_interval_s)
                    continue
                self._connected.set()
            try:
                data = self.transport.read()
            except InstrumentDisconnected as exc:
                log.warning("SPAD bridge lost: %s; reconnecting", exc)
                self.last_error = exc
                # Count before clearing `connected`: whoever sees the link down also sees the count.
                self.reconnects += 1
                self._connected.clear()
                self.transport.close()
                with self._lock:
                    self.parser.reset()  # the next frame is marked as not following the last
                self._stop.wait(self.reconnect_interval_s)
                continue
            if not data:
                continue
            stamp = time.time()
            with self._lock:
                frames = self.parser.feed(data)
                follows = self.parser.last_continuous
            for frame, follows_last in zip(frames, follows, strict=True):
                self._put(stamp, frame, bool(follows_last))

    def _put(self, stamp: float, frame: np.ndarray, follows: bool) -> None:
        self._serial += 1
        while True:
            try:
                self._queue.put_nowait((stamp, frame, self._serial, follows))
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.frames_dropped += 1
                except queue.Empty:
                    pass


_SPIDEV_PORT = re.compile(r"^(?:/dev/)?spidev(\d+)\.(\d+)$")


def transport_for_port(port: str, baudrate: int = 2_000_000, **kwargs: Any) -> Transport:
    """``spidev<bus>.<device>`` (or ``/dev/spidev0.0``) gives SPI, anything else a serial port."""
    match = _SPIDEV_PORT.match(port)
    if match:
        return SpidevTransport(int(match[1]), int(match[2]), **kwargs)
    return SerialTransport(port, baudrate, **kwargs)


class SpadArray(Instrument):
    """The 16x16 SPAD array as an instrument: live cumulative frames and per-frame counts.

    Args:
        name: instrument name.
        port: serial port of the Arduino bridge, or ``spidev<bus>.<device>`` for direct SPI.
        baudrate: serial line rate.
        byteorder: counter byte order, "big" (FPGA MSB-first) or "little".
        transport: a ready transport instead of one built from ``port`` (tests, other links).
        queue_frames: capacity of the reader's frame queue.
        timeout_s: default time allowed for a read of frames.
        connect_timeout_s: time allowed for the port to open on ``start``.
        frame_period_s: integration time of one frame, fixed by the FPGA firmware; turns counts
            into count rates.
    """

    shape = (ROWS, COLS)
    pixel_pitch_m = PIXEL_PITCH_M

    def __init__(self, name: str, port: str, baudrate: int = 2_000_000, byteorder: str = "big", *,
                 transport: Transport | None = None, queue_frames: int = 4096, timeout_s: float = 5.0,
                 connect_timeout_s: float = 2.0, frame_period_s: float = 5e-3, **kwargs: Any) -> None:
        parser = SpadFrameParser(byteorder=byteorder)  # validates before qcodes registers the name
        if not frame_period_s > 0:
            raise ValueError(f"{name}: frame_period_s must be positive, got {frame_period_s!r}")
        super().__init__(name, **kwargs)
        self.port = port
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reader = SpadReader(transport or transport_for_port(port, baudrate),
                                 parser, queue_frames=queue_frames)
        self._previous: np.ndarray | None = None
        self._previous_serial = 0
        self._frames_skipped = 0
        for counter in vars(ParserCounters()):
            self.add_parameter(counter, get_cmd=lambda c=counter: getattr(self.reader.counters(), c),
                               docstring=f"frame parser counter: {counter.replace('_', ' ')}")
        self.add_parameter("frames_dropped", get_cmd=lambda: self.reader.frames_dropped,
                           docstring="frames dropped because nobody read the full queue")
        self.add_parameter("frames_skipped", get_cmd=lambda: self._frames_skipped,
                           docstring="frames whose counts were not used because the frame before was lost")
        self.add_parameter("reconnects", get_cmd=lambda: self.reader.reconnects,
                           docstring="times the port vanished and was reopened")
        self.add_parameter("byteorder", initial_cache_value=byteorder, set_cmd=False,
                           docstring="byte order of the counters on the wire")
        self.frame_period_s = self.add_parameter(
            "frame_period_s", unit="s", initial_cache_value=float(frame_period_s), set_cmd=False,
            docstring="integration time of one frame (FPGA firmware setting)")

    def start(self) -> None:
        """Open the port and start reading frames in the background."""
        self.reader.start(self.connect_timeout_s)

    def stop(self) -> None:
        self.reader.stop()

    def discard_pending(self) -> int:
        """Drop frames already queued, e.g. after the MW frequency changed; returns how many."""
        self._previous = None
        return self.reader.clear()

    def read_frames(self, n: int, timeout_s: float | None = None) -> FrameBatch:
        """The next ``n`` cumulative frames, (n, 16, 16) uint32, with timestamps."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if not self.reader.running:
            self.start()
        return self.reader.get(n, self.timeout_s if timeout_s is None else timeout_s)

    def read_counts(self, n: int, timeout_s: float | None = None) -> np.ndarray:
        """Photons per pixel in each of the next ``n`` frames, (n, 16, 16) int64.

        The counters are cumulative, so each frame is differenced against the frame before it.
        Where that frame was lost (queue overflow, reconnect, damaged bytes, FPGA counter reset) the
        difference would hold several frames' photons, or garbage: such a frame only starts a new
        reference, is counted in ``frames_skipped``, and another frame is read in its place.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        counts: list[np.ndarray] = []
        have = 0
        while have < n:
            batch = self.read_frames(n - have + (self._previous is None),
                                     max(deadline - time.monotonic(), 0.0))
            assert batch.serials is not None and batch.continuous is not None
            follows = batch.continuous & (np.diff(batch.serials, prepend=self._previous_serial) == 1)
            if self._previous is not None:
                good = per_frame_counts(batch.frames, self._previous)[follows]
            else:
                good = per_frame_counts(batch.frames)[follows[1:]]
                follows = follows[1:]
            skipped = int(follows.size - follows.sum())
            if skipped:
                self._frames_skipped += skipped
                log.warning("%s: %d SPAD frame(s) did not follow the frame before; counts not used",
                            self.name, skipped)
            counts.append(good)
            have += len(good)
            self._previous, self._previous_serial = batch.frames[-1], int(batch.serials[-1])
        return np.concatenate(counts)[:n]

    def station_checks(self) -> list[CheckResult]:
        """Commissioning: frames arrive, parse without discarded bytes, and counters step forward."""
        check = "frames arrive and parse"
        try:
            counts = self.read_counts(3, timeout_s=min(self.timeout_s, 5.0))
        except InstrumentError as exc:
            hint = self.reader.counters().hint  # bytes arrived but could not be trusted
            return [CheckResult(self.name, check, False, str(exc), hint or (
                f"check the cable and the port ({self.reader.transport.description}); for a direct SPI "
                "read the FPGA must be built with SPI_SLAVE = 1"))]
        c = self.reader.counters()
        ok = not c.hint and c.frames_rejected == 0
        detail = (f"{len(counts)} frames, {int(counts.sum())} photons; parser: {c.frames_emitted} emitted, "
                  f"{c.bytes_discarded} bytes discarded, {c.frames_rejected} rejected"
                  + (f", {c.v2_frames} framing-v2" if c.v2_frames else ""))
        self.discard_pending()
        fix = "" if ok else (c.hint or "frames were rejected: check the byte order and cabling")
        return [CheckResult(self.name, check, ok, detail, fix)]

    def safe_state(self) -> None:
        """The array has no hazardous output; stop reading (a failure to stop is only logged)."""
        reader = self.__dict__.get("reader")  # absent once qcodes has closed the instrument
        if reader is None:
            return
        try:
            reader.stop()
        except Exception:  # noqa: BLE001 - a safe-state path must not raise
            log.exception("stopping the SPAD reader failed")

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            super().close()

    def get_idn(self) -> dict[str, str | None]:
        return {"vendor": "seed-003", "model": "16x16 SPAD array via FPGA/Arduino bridge",
                "serial": None, "firmware": self.reader.transport.description}
