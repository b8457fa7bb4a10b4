"""Simulated SPAD bridge: the FPGA/Arduino byte stream in a pseudo-terminal, from the World.

The 16x16 SPAD array (55 um pitch) sits in the image plane behind the seed-000 optics (34x), so
each SPAD sees a 1.6 um square of the NV layer and the array a 26 um patch at the centre of the
World's field of view. Per frame the simulator integrates the World's photoluminescence over each
SPAD's patch, scales it so the brightest pixel would count ``peak_rate_hz``, applies the SPAD's
dead-time saturation (near 3 Mcps) and dark counts, draws Poisson counts, accumulates them in
32-bit counters like the FPGA and writes the frames into a pty. Like an Arduino, whose USB port
resets it when opened, the bridge starts each time a driver opens the port: banner
"Setup complete", then frames from a frame boundary; it pauses while the port is closed.
Damage injection (dropped and inserted bytes, resets with a new banner) exercises the driver's
parser. The frame bytes are written here independently of the driver, as the FPGA does.

Facts implemented (``docs/hardware/spad_bridge.md``): S1 legacy frames (0xFFFFFFFF + 256 cumulative
uint32, MSB first, row-major, wrapping at 2**32), S2 framing v2 when asked, S3 the master-mode
path through the Arduino's USB CDC port. The spidev path (S4-S6, the FPGA's slave mode) is tested
against the Verilog itself under cocotb (``firmware/fpga/tb_spad_fpga_slave.py``), not simulated here.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
import zlib
from dataclasses import dataclass, field

import numpy as np

from sim.world import World

SPAD_SHAPE = (16, 16)
SPAD_PITCH_M = 55e-6  # seed 003, section VIII
MAGNIFICATION = 34.0  # seed-000 imaging optics
DEAD_TIME_S = 1 / 3e6  # active quench + hold-off: the SPADs saturate near 3 Mcps
BANNER = b"Setup complete\r\n"


@dataclass
class Damage:
    """Stream damage to inject; probabilities are per frame.

    Attributes:
        drop_probability: a frame loses 1..``max_bytes`` bytes at a random place (bridge overrun).
        insert_probability: 1..``max_bytes`` random bytes follow a frame (line noise).
        reset_probability: the bridge resets: the frame is cut short and a banner follows.
        max_bytes: largest number of bytes dropped or inserted at once.
        after_frames: frames sent undamaged first.
    """

    drop_probability: float = 0.0
    insert_probability: float = 0.0
    reset_probability: float = 0.0
    max_bytes: int = 16
    after_frames: int = 0


@dataclass
class DamageLog:
    """What the simulator did to the stream, by frame index, for tests."""

    dropped: list[int] = field(default_factory=list)
    inserted_after: list[int] = field(default_factory=list)
    reset_after: list[int] = field(default_factory=list)


class SimSpadBridge:
    """The SPAD array, FPGA and Arduino bridge as one simulated serial device.

    Args:
        world: the shared simulated physics.
        frame_period_s: exposure of one frame, also the pacing of the stream (wall clock).
        peak_rate_hz: photon rate of the brightest SPAD pixel with MW off, before saturation.
        dark_rate_hz: dark count rate per SPAD pixel.
        byteorder: counter byte order on the wire.
        framing: "legacy" (0xFFFFFFFF header) or "v2" (sequence number and CRC).
        damage: stream damage to inject, none by default.
        seed: seed of the photon and damage noise.
        record: keep every frame's counters in ``sent`` (tests compare what the driver got).
    """

    def __init__(self, world: World, frame_period_s: float = 5e-3, peak_rate_hz: float = 1e6,
                 dark_rate_hz: float = 100.0, byteorder: str = "big", framing: str = "legacy",
                 damage: Damage | None = None, seed: int = 0, record: bool = False) -> None:
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder must be 'big' or 'little', not {byteorder!r}")
        if framing not in ("legacy", "v2"):
            raise ValueError(f"framing must be 'legacy' or 'v2', not {framing!r}")
        if frame_period_s <= 0:
            raise ValueError(f"frame_period_s must be positive, got {frame_period_s}")
        self.world = world
        self.frame_period_s = frame_period_s
        self.peak_rate_hz = peak_rate_hz
        self.dark_rate_hz = dark_rate_hz
        self.byteorder = byteorder
        self.framing = framing
        self.damage = damage or Damage()
        self.damage_log = DamageLog()
        self.frames_sent = 0
        self.record = record
        self.sent: list[np.ndarray] = []
        self.stuck_pixels: dict[tuple[int, int], int] = {}  # pixel -> value it always reads
        self._rng = np.random.default_rng(seed)
        self._counters = np.zeros(SPAD_SHAPE, dtype=np.uint64)
        self._master: int | None = None
        self.boot_delay_s = 0.05  # after the port opens, before the banner (pyserial flushes on open)
        self.boots = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._footprint = self._footprint_weights()
        self._rate_cache: tuple[tuple, np.ndarray] | None = None

    # ---- optics --------------------------------------------------------------------------------

    def _footprint_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column weights (16, rows), (16, cols): a SPAD pixel averages ``wy @ image @ wx.T``.

        Each weight is the fraction of a World pixel inside the SPAD pixel's patch of the sample
        (area resampling); the patch is separable in x and y, so two small matrices suffice.
        """
        x, y = self.world.pixel_coordinates_m()
        pitch = SPAD_PITCH_M / MAGNIFICATION
        half = self.world.pixel_size_m / 2

        def overlap(coord: np.ndarray, n: int) -> np.ndarray:
            edges = (np.arange(n + 1) - n / 2) * pitch
            if edges[-1] > np.abs(coord).max() + half:
                raise ValueError("the SPAD array sees more than the World's field of view")
            lo = np.maximum(coord[None] - half, edges[:-1, None])
            hi = np.minimum(coord[None] + half, edges[1:, None])
            w = np.clip(hi - lo, 0, None)
            return w / w.sum(axis=1, keepdims=True)

        return overlap(y[:, 0], SPAD_SHAPE[0]), overlap(x[0], SPAD_SHAPE[1])

    def _world_state(self) -> tuple:
        w = self.world
        return (w.mw_frequency_hz, w.mw_power_dbm, w.mw_output, w.laser_on,
                w.coil_currents_a.tobytes(), w.sample.photon_rate_hz)

    def rate_hz(self, mw_on: bool = True, frequency_hz: float | None = None) -> np.ndarray:
        """Detected count rate per SPAD pixel (16, 16), saturation and dark counts included.

        Cached per World state: the full-field photoluminescence costs tens of milliseconds and
        the stream needs a frame every few.
        """
        key = (mw_on, frequency_hz, self.peak_rate_hz, self.dark_rate_hz, self._world_state())
        if self._rate_cache is not None and self._rate_cache[0] == key:
            return self._rate_cache[1]
        pl = self.world.pl_rate_hz(mw_on, frequency_hz)
        wy, wx = self._footprint
        incident = wy @ pl @ wx.T
        incident = incident / self.world.sample.photon_rate_hz * self.peak_rate_hz + self.dark_rate_hz
        rate = incident / (1 + incident * DEAD_TIME_S)  # non-paralysable dead time
        self._rate_cache = (key, rate)
        return rate

    # ---- wire format ---------------------------------------------------------------------------

    def next_frame_counters(self) -> np.ndarray:
        """Advance the FPGA's cumulative 32-bit counters by one frame of photons."""
        counts = self._rng.poisson(self.rate_hz() * self.frame_period_s)
        self._counters = (self._counters + counts.astype(np.uint64)) % (1 << 32)
        values = self._counters.astype(np.uint32)
        for (r, c), v in self.stuck_pixels.items():
            values[r, c] = v
        return values

    def frame_bytes(self, values: np.ndarray) -> bytes:
        dtype = ">u4" if self.byteorder == "big" else "<u4"
        payload = values.astype(dtype).tobytes()  # row-major, counter i is row i // 16
        if self.framing == "legacy":
            return b"\xff\xff\xff\xff" + payload
        body = b"SPD2" + (self.frames_sent % (1 << 32)).to_bytes(4, self.byteorder) + payload
        return b"\xff\xff\xff\xff" + body + zlib.crc32(body).to_bytes(4, self.byteorder)

    def _damaged(self, raw: bytes, index: int) -> bytes:
        d, rng = self.damage, self._rng
        if index < d.after_frames:
            return raw
        if rng.random() < d.drop_probability:
            n = int(rng.integers(1, d.max_bytes + 1))
            at = int(rng.integers(0, len(raw) - n))
            raw = raw[:at] + raw[at + n:]
            self.damage_log.dropped.append(index)
        if rng.random() < d.insert_probability:
            raw += rng.integers(0, 256, int(rng.integers(1, d.max_bytes + 1)), dtype=np.uint8).tobytes()
            self.damage_log.inserted_after.append(index)
        if rng.random() < d.reset_probability:
            raw = raw[: int(rng.integers(0, len(raw)))] + BANNER
            self.damage_log.reset_after.append(index)
        return raw

    # ---- pseudo-terminal -----------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty, start streaming and return the device path a driver opens."""
        if self._thread is not None:
            raise RuntimeError("the simulated SPAD bridge is already running; stop() it first")
        self._master, slave = os.openpty()
        # Non-blocking: a read after select() must not hang if the port opened in between.
        os.set_blocking(self._master, False)
        tty.setraw(slave)  # a CDC port passes bytes unaltered: no echo, no CR/LF mapping
        path = os.ttyname(slave)
        # Only the driver holds the slave open, so the bridge can see it open and close the port
        # (an Arduino resets when its port is opened and prints its banner).
        os.close(slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-spad-bridge", daemon=True)
        self._thread.start()
        return path

    def stop(self) -> None:
        """Stop streaming and close the pty; a reader then sees the port vanish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.close(self._master)
        self._master = None

    def _write(self, data: bytes) -> bool:
        """Write everything unless stopped; a full pty buffer blocks like a slow USB host."""
        view = memoryview(data)
        while view and not self._stop.is_set():
            _, ready, _ = select.select([], [self._master], [], 0.05)
            if not ready:
                continue
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                continue
            except OSError:
                return False
        return not view

    def _port_open(self) -> bool:
        """Whether a driver holds the port: reading the master fails with EIO when nobody does."""
        readable, _, _ = select.select([self._master], [], [], 0)
        if not readable:
            return True
        try:
            os.read(self._master, 4096)  # bytes the driver sent: the bridge ignores them
        except BlockingIOError:
            return True  # the hang-up that made it readable is gone: the port was just opened
        except OSError:
            return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._port_open():
                self._stop.wait(0.01)
                continue
            # The port was opened: the Arduino resets, boots and prints its banner.
            self.boots += 1
            if self._stop.wait(self.boot_delay_s) or not self._write(BANNER):
                return
            self._stream()

    def _stream(self) -> None:
        """Send frames until stopped or the port is closed."""
        next_time = time.monotonic()
        while not self._stop.is_set() and self._port_open():
            values = self.next_frame_counters()
            if self.record:
                self.sent.append(values)
            raw = self._damaged(self.frame_bytes(values), self.frames_sent)
            self.frames_sent += 1
            if not self._write(raw):
                return
            next_time += self.frame_period_s
            delay = next_time - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_time = time.monotonic()  # fell behind (slow reader): do not burst to catch up
