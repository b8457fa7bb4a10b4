"""The stimulus role on the QDM-COIL board: seed-000 coil waveforms as frame-clocked tables.

The board's frame clock input is wired to the camera's frame output, so the current of frame k is
the table's k-th value whatever the host does meanwhile: the waveform is sampled once per frame
here (at ``k / frame_rate``, the times the simulated stimulus uses), checked, run-length encoded
into (current, frames) segments and streamed into the board's per-channel rings while it plays.
The DC coil role and this role share one board (one box, one serial port): this driver borrows
the ``CoilBoard`` of the coil role.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.coil_board import CoilBoard
from instrument.checks import CheckResult
from instrument.protocols import InstrumentError

log = logging.getLogger(__name__)

SEGMENTS_PER_LINE = 4  # the firmware's limit for one WAV line
MAX_FRAMES = 65535  # longest segment the firmware holds
LINE_BYTES_PER_S = 115200 / 10  # 8N1: ten bits a byte
LINE_BUDGET = 0.8  # share of the line the streamed tables may take (polls take ~2 %, the rest is slack)


class StimulusPlaybackError(InstrumentError):
    """The board reported that some frame did not get its planned current."""


def encode_segments(values_a: np.ndarray) -> list[tuple[float, int]]:
    """Run-length segments of one channel's per-frame currents, ending in a hold at 0 A.

    Values are rounded as the stream writes them (4 significant digits: at most 50 nA at 1 mA,
    below half the DAC's 156 nA step), so merging never changes what the DAC is set to.
    """
    out: list[tuple[float, int]] = []
    for text in (f"{v:.3e}" for v in values_a):
        value = float(text)
        if out and out[-1][0] == value and out[-1][1] < MAX_FRAMES:
            out[-1] = (value, out[-1][1] + 1)
        else:
            out.append((value, 1))
    out.append((0.0, 0))
    return out


class CoilBoardStimulus:
    """Plays ``waveforms(t)`` on the coil board, one value per camera frame (a ``Stimulus``).

    Args:
        name: the role (``stimulus``).
        board: the coil role's driver (shares the port).
        frame_rate_hz: the camera's frame rate once configured (the station passes the camera's).
        poll_s: how often the streaming thread tops up the tables and reads the board's status.
        background: stream from a thread (``False``: the caller calls ``pump()``, as tests do).
    """

    def __init__(self, name: str, board: CoilBoard, frame_rate_hz: Callable[[], float],
                 poll_s: float = 0.02, background: bool = True) -> None:
        if board.protocol < 2:
            raise InstrumentError(name, "*IDN?", f"coil board firmware {board.firmware} has no waveform "
                                  "tables; flash firmware/coil_board 2.x")
        self.name = name
        self.board = board
        self.frame_rate_hz = frame_rate_hz
        self.poll_s = float(poll_s)
        self.background = background
        self._pending: dict[int, list[tuple[float, int]]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.fault: str | None = None
        self.frames_planned = 0

    @property
    def n_channels(self) -> int:
        return self.board.n_channels

    @property
    def channel_names(self) -> list[str]:
        return list(self.board.channel_names)

    @property
    def playing(self) -> bool:
        return self._thread is not None or bool(self._pending)

    # ---- Stimulus ------------------------------------------------------------------------------

    def plan(self, waveforms: Callable[[float], np.ndarray]) -> np.ndarray:
        """Per-frame currents (frames, channels), checked against the lab limit and every ceiling."""
        end_s = getattr(waveforms, "end_s", None)
        if end_s is None or not math.isfinite(float(end_s)) or end_s < 0:
            raise ValueError(f"{self.name}: the coil board plays a finite table; the waveforms need an "
                             "'end_s' (seconds after which every current is 0)")
        rate = float(self.frame_rate_hz())
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"{self.name}: the camera frame rate must be positive, got {rate!r} Hz; "
                             "configure the camera before starting the stimulus")
        t = np.arange(int(math.ceil(float(end_s) * rate)) + 1) / rate
        matrix = getattr(waveforms, "matrix", None)
        values = np.asarray(matrix(t) if matrix else np.stack([waveforms(x) for x in t]), float)
        if values.shape != (len(t), self.n_channels):
            raise ValueError(f"{self.name}: waveform gave shape {values.shape[1:]}, "
                             f"expected ({self.n_channels},)")
        if not np.all(np.isfinite(values)):
            bad = np.argwhere(~np.isfinite(values))[0]
            raise ValueError(f"{self.name}: waveform is not finite at frame {bad[0]}, channel {bad[1]}")
        worst = values[np.argmax(np.abs(values), axis=0), np.arange(self.n_channels)]
        self.board.check(worst)  # lab limit and each coil's ceiling; the firmware checks again
        return values

    def start(self, waveforms: Callable[[float], np.ndarray]) -> None:
        """Check and load the tables, arm them: they start with the camera's next frame."""
        values = self.plan(waveforms)
        segments = {k: encode_segments(values[:, k]) for k in range(self.n_channels)}
        self._check_line(segments, len(values) / float(self.frame_rate_hz()))
        self.stop()
        if np.any(self.board.setpoints != 0):
            self.board.set_currents(np.zeros(self.n_channels))  # no DC current under a table
        self.fault = None
        self.frames_planned = len(values)
        self.board._ok("WCLR")
        self.board._ok("CLR")
        self._pending = segments
        self.pump()
        self.board._ok("PLAY")
        if self.background and any(self._pending.values()):
            self._stop.clear()
            self._thread = threading.Thread(target=self._stream, name=f"{self.name}-stream", daemon=True)
            self._thread.start()

    def _room(self) -> list[int]:
        reply = self.board.ask("WAV?")
        try:
            room = [int(v) for v in reply.split(",")]
        except ValueError:
            raise InstrumentError(self.name, "WAV?", "expected the room of every channel", reply) from None
        if len(room) != self.n_channels:
            raise InstrumentError(self.name, "WAV?", f"expected {self.n_channels} numbers", reply)
        return room

    def _check_line(self, segments: dict[int, list[tuple[float, int]]], seconds: float) -> None:
        """Refuse tables the serial line cannot stream as fast as the frames use them."""
        total = sum(len(s) for s in segments.values())
        if all(len(segments[k]) <= room for k, room in enumerate(self._room())):
            return  # everything fits on the board before the first frame
        sent = sum(len(self._line(k, s[i:i + SEGMENTS_PER_LINE])) + 1
                   for k, s in segments.items() for i in range(0, len(s), SEGMENTS_PER_LINE))
        need = sent / max(seconds, 1e-9)  # at best 4 segments a line; fewer when a ring is nearly full
        if need > LINE_BUDGET * LINE_BYTES_PER_S:
            raise ValueError(
                f"{self.name}: the waveforms need {total / seconds:.0f} table segments/s, about "
                f"{need:.0f} bytes/s, more than {LINE_BUDGET:.0%} of the coil board's 115200 baud line "
                f"({LINE_BUDGET * LINE_BYTES_PER_S:.0f} bytes/s); drive fewer coils or lower the firing rate")

    @staticmethod
    def _line(k: int, take: list[tuple[float, int]]) -> str:
        return f"WAV {k}," + ",".join(f"{a:.3e},{n}" for a, n in take)

    def pump(self) -> int:
        """Top up every table as far as the board has room; returns the segments still to send."""
        if any(self._pending.values()):
            for k, free in enumerate(self._room()):
                segments = self._pending.get(k)
                while free and segments:
                    take = segments[:min(free, SEGMENTS_PER_LINE)]
                    self.board._ok(self._line(k, take))
                    del segments[:len(take)]
                    free -= len(take)
        return sum(len(s) for s in self._pending.values())

    def status(self) -> dict[str, Any]:
        """The board's playback state, counters and first latched fault."""
        fields = self.board.ask("STAT?").split(",")
        if len(fields) != 5:
            raise InstrumentError(self.name, "STAT?", "expected 5 fields", ",".join(fields))
        state, frames, overruns, underruns, tripped = fields
        return {"state": state, "frames": int(frames), "overruns": int(overruns),
                "underruns": int(underruns), "watchdog_tripped": tripped == "1",
                "fault": self.board.ask("ERR?")}

    def _stream(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                left = self.pump()
                status = self.status()
            except Exception as exc:  # noqa: BLE001 - reported by stop(); the board's watchdog zeroes
                self.fault = f"streaming failed: {exc}"
                log.error("%s: %s", self.name, self.fault)
                return
            if not status["fault"].startswith("0"):
                self.fault = status["fault"]
                log.error("%s: the board reports: %s", self.name, self.fault)
                return
            if not left and status["state"] == "IDLE":
                return

    def stop(self) -> None:
        """Stop playing (the played channels ramp to 0 A); raise if some frame missed its current."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        was_playing = bool(self._pending) or self.frames_planned
        self._pending = {}
        if not was_playing:
            return
        self.board._ok("STOP")
        status = self.status()
        self.frames_planned = 0
        fault = self.fault or (None if status["fault"].startswith("0") else status["fault"])
        if fault:
            raise StimulusPlaybackError(
                self.name, "STOP", f"playback fault: {fault} ({status['frames']} frames played, "
                f"{status['overruns']} overruns); those frames did not get their planned current; the "
                "coils are stopped")

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "QDM-COIL frame-clocked waveform tables",
                "board": self.board.serial_number, "firmware": self.board.firmware,
                "frames_planned": self.frames_planned, "fault": self.fault}

    def safe_state(self) -> None:
        """Stop playback; if the board does not answer, fall back to the board's own safe state."""
        try:
            self.stop()
        except StimulusPlaybackError:
            raise
        except Exception:
            self.board.safe_state()
            raise

    def close(self) -> None:
        """Stop; the board itself is closed by the coil role that owns it."""
        self.safe_state()

    def station_checks(self) -> list[CheckResult]:
        """Table room and an idle, fault-free board (the frame clock cabling needs the camera)."""
        depth = [sum(int(v) for v in self.board.ask(f"WAV? {k}").split(",")) for k in range(self.n_channels)]
        status = self.status()
        ok = status["state"] == "IDLE" and status["fault"].startswith("0")
        return [
            CheckResult(self.name, "waveform tables", bool(min(depth) > 0),
                        f"{min(depth)} segments a channel", "flash firmware/coil_board 2.x"),
            CheckResult(self.name, "playback idle, no fault", ok, f"state {status['state']}, "
                        f"fault {status['fault']}", "" if ok else "send CLR after reading the fault"),
        ]
