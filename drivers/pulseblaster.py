"""SpinCore PulseBlaster (ESR-PRO 500 MHz) driver over the spinapi shared library.

The real library is wrapped with ctypes (``argtypes``, ``restype`` and an ``errcheck`` that raises
:class:`PulseBlasterError` with the ``pb_get_error`` text). Any object with the same call surface
(``sim.spinapi.SimSpinAPI``) can be injected instead and goes through the same return-code check.

A program is checked against the board's limits (``constraints``, from
``instrument.protocols.ESR_PRO_500``) before anything is sent: every instruction on the clock grid,
at least 5 cycles long, flags in 24 bits, data in 20 bits, LOOP >= 1, LONG_DELAY >= 2, fits the
instruction memory, and no pulse below the lab's ``pulse_min_s``.

Safe state: spinapi.h says ``pb_stop`` leaves the TTL outputs "either in the same state they were
in ... or return to ground", so stopping alone proves nothing. ``safe_state`` loads and runs a
one-word program that BRANCHes to itself with every flag (short-pulse field included) off: the
outputs are then driven low by a running program, whatever ``pb_stop`` does. ``pb_read_status`` is
read as unsigned with only bits 0-4 defined (stopped, reset, running, waiting, scanning; bits 5-31
reserved, "should not be assumed ... set to 0", spinapi.h). Facts: ``docs/hardware/pulseblaster.md``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from pathlib import PureWindowsPath
from typing import Any

from instrument.checks import CheckResult
from instrument.protocols import (
    ESR_PRO_500,
    InstrumentError,
    Opcode,
    PulseGeneratorConstraints,
    PulseProgram,
    SafetyLimits,
)

log = logging.getLogger(__name__)

PULSE_PROGRAM = 0
MAX_FLAGS = 2**24 - 1
"""The 24-bit output/control word of pb_inst_pbonly (outputs plus the short-pulse field)."""
STATUS_BITS = {0: "stopped", 1: "reset", 2: "running", 3: "waiting", 4: "scanning"}
"""``pb_read_status`` bits defined by spinapi.h; bits 5-31 are reserved and may be set."""
STATUS_MASK = 0x1F
SAFE_STATE_CYCLES = 10
SHORT_PULSE_SHIFT = 21
SHORT_PULSE_ON = 0x7 << SHORT_PULSE_SHIFT
"""ESR-PRO bits 21-23 = 111: outputs follow the flags for the whole instruction."""

GRID_TOLERANCE_CYCLES = 1e-3
LIBRARY_ENV = "SPINAPI_LIBRARY"

# name -> (restype, argtypes, checked). Checked calls raise on a negative return code.
_SIGNATURES: dict[str, tuple[Any, list[Any], bool]] = {
    "pb_get_version": (ctypes.c_char_p, [], False),
    "pb_get_error": (ctypes.c_char_p, [], False),
    "pb_count_boards": (ctypes.c_int, [], True),
    "pb_select_board": (ctypes.c_int, [ctypes.c_int], True),
    "pb_init": (ctypes.c_int, [], True),
    "pb_close": (ctypes.c_int, [], True),
    "pb_core_clock": (None, [ctypes.c_double], False),
    "pb_start_programming": (ctypes.c_int, [ctypes.c_int], True),
    "pb_inst_pbonly": (ctypes.c_int, [ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_double], True),
    "pb_stop_programming": (ctypes.c_int, [], True),
    "pb_start": (ctypes.c_int, [], True),
    "pb_stop": (ctypes.c_int, [], True),
    "pb_reset": (ctypes.c_int, [], True),
    "pb_read_status": (ctypes.c_uint32, [], False),  # a bit word, not an error code (see status)
}


class PulseBlasterError(InstrumentError):
    """spinapi returned an error code, or a program breaks the board's rules."""


def library_candidates() -> list[str]:
    """Where the spinapi shared library is looked for, in order."""
    names: list[str] = []
    env = os.environ.get(LIBRARY_ENV)
    if env:
        names.append(env)
    if sys.platform.startswith("win"):
        dll = "spinapi64.dll" if sys.maxsize > 2**32 else "spinapi.dll"
        roots = [os.environ.get("PROGRAMFILES", r"C:\Program Files"), "C:\\"]
        names.append(dll)
        for root in roots:
            spinapi = PureWindowsPath(root) / "SpinCore" / "SpinAPI"
            names += [str(spinapi / sub / dll) for sub in ("lib", "dll")]
    else:
        found = ctypes.util.find_library("spinapi")
        if found:
            names.append(found)
        for d in ("/usr/local/lib", "/usr/lib", "/usr/lib64", "/opt/spincore/lib"):
            names += [f"{d}/libspinapi.so", f"{d}/libspinapi64.so"]
        names.append("libspinapi.so")
    return list(dict.fromkeys(names))


def load_spinapi() -> ctypes.CDLL:
    """Open the spinapi shared library or raise naming every place that was tried."""
    tried = []
    for candidate in library_candidates():
        try:
            return ctypes.CDLL(candidate)
        except OSError as exc:
            tried.append(f"{candidate} ({exc})")
    raise PulseBlasterError(
        "spinapi", "load library",
        "the SpinCore spinapi library was not found; install SpinAPI or set "
        f"{LIBRARY_ENV} to the library's path. Tried: " + "; ".join(tried),
    )


class PulseBlaster:
    """A PulseBlaster board running compiled :class:`PulseProgram` objects.

    Args:
        name: instrument name used in errors and snapshots.
        library: an object with the spinapi call surface; ``None`` loads the real library.
        board: board number for ``pb_select_board``.
        clock_hz: the board clock (500 MHz on the ESR-PRO 500).
        memory_words: instruction memory of the board (4096 on the ESR-PRO).
        short_pulse_bits: the board uses flag bits 21-23 as the ESR-PRO short-pulse field; the
            driver then sets them to "on" where a program leaves them zero, so flags mean outputs.
        limits: lab safety limits (shortest pulse allowed).
    """

    def __init__(
        self,
        name: str,
        library: object | None = None,
        board: int = 0,
        clock_hz: float = 500e6,
        memory_words: int = ESR_PRO_500.memory_words,
        short_pulse_bits: bool = True,
        limits: SafetyLimits | None = None,
    ) -> None:
        self.name = name
        self._clock_hz = float(clock_hz)
        self.board = board
        self.memory_words = memory_words
        self.short_pulse_bits = short_pulse_bits
        self.limits = limits or SafetyLimits()
        self.program: PulseProgram | None = None
        self._open = False
        self.library = load_spinapi() if library is None else library
        """The spinapi object in use (the station wires simulated detectors to a SimSpinAPI)."""
        self._api = self._bind(self.library)
        n = self._api["pb_count_boards"]()
        if not 0 <= board < n:
            raise PulseBlasterError(name, "pb_select_board", f"only {n} board(s) found", board)
        self._api["pb_select_board"](board)
        self._api["pb_init"]()
        self._open = True
        self._api["pb_core_clock"](self._clock_hz / 1e6)

    # ---- library binding -----------------------------------------------------------------------

    def _error_text(self, lib: object) -> str:
        try:
            text = lib.pb_get_error()
        except Exception:  # noqa: BLE001 - the error text is a courtesy; the code already failed
            return "(pb_get_error unavailable)"
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return text or "(no error text)"

    def _bind(self, lib: object) -> dict[str, Callable[..., Any]]:
        is_ctypes = isinstance(lib, ctypes.CDLL)
        api: dict[str, Callable[..., Any]] = {}
        for fname, (restype, argtypes, checked) in _SIGNATURES.items():
            try:
                func = getattr(lib, fname)
            except AttributeError as exc:
                raise PulseBlasterError(self.name, fname, "the spinapi library lacks this function") from exc
            if is_ctypes:
                func.restype = restype
                func.argtypes = argtypes
                if checked:
                    func.errcheck = self._errcheck(lib, fname)
                api[fname] = func
            else:
                api[fname] = self._checked(lib, fname, func) if checked else func
        return api

    def _errcheck(self, lib: object, fname: str) -> Callable[..., Any]:
        def errcheck(result: int, func: Any, args: tuple) -> int:
            return self._check(lib, fname, result, args)

        return errcheck

    def _checked(self, lib: object, fname: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            return self._check(lib, fname, func(*args), args)

        return call

    def _check(self, lib: object, fname: str, result: Any, args: tuple) -> Any:
        if not isinstance(result, int):
            raise PulseBlasterError(self.name, fname, f"library returned {result!r}, not an integer code")
        if result < 0:
            raise PulseBlasterError(
                self.name, fname, f"spinapi error {result}: {self._error_text(lib)}",
                args if args else None,
            )
        return result

    # ---- PulseGenerator protocol ---------------------------------------------------------------

    @property
    def clock_hz(self) -> float:
        return self._clock_hz

    @property
    def constraints(self) -> PulseGeneratorConstraints:
        """This board's limits: the ESR-PRO's, at its clock and instruction memory."""
        return dataclasses.replace(ESR_PRO_500, clock_hz=self._clock_hz, memory_words=self.memory_words)

    def check(self, program: PulseProgram) -> list[tuple[int, int, int, int]]:
        """Validate a program against the board; returns (flags, opcode, data, cycles) per instruction."""
        n = len(program.instructions)
        if n == 0:
            raise PulseBlasterError(self.name, "load", "the program has no instructions")
        if n > self.memory_words:
            raise PulseBlasterError(
                self.name, "load",
                f"{n} instructions exceed the board's memory of {self.memory_words}; use LOOP for "
                "repetitions or fewer sweep points per program", n,
            )
        period = 1.0 / self._clock_hz
        limits = self.constraints
        words = []
        for i, inst in enumerate(program.instructions):
            where = f"instruction {i} ({Opcode(inst.opcode).name})"
            exact = inst.duration_s * self._clock_hz
            cycles = round(exact)
            if abs(exact - cycles) > GRID_TOLERANCE_CYCLES:
                raise PulseBlasterError(
                    self.name, "load",
                    f"{where}: {inst.duration_s:.12g} s is not a multiple of the {period * 1e9:g} ns clock "
                    "period; round it in the sequence", inst.duration_s,
                )
            if cycles < limits.min_cycles:
                raise PulseBlasterError(
                    self.name, "load",
                    f"{where}: {cycles} clock cycles is shorter than the board's minimum of "
                    f"{limits.min_cycles}", inst.duration_s,
                )
            if cycles > limits.max_cycles:
                raise PulseBlasterError(
                    self.name, "load", f"{where}: longer than 2**32-1 cycles; use LONG_DELAY",
                    inst.duration_s,
                )
            if inst.duration_s < self.limits.pulse_min_s:
                raise PulseBlasterError(
                    self.name, "load",
                    f"{where}: {inst.duration_s:g} s is below the lab limit pulse_min_s = "
                    f"{self.limits.pulse_min_s:g} s", inst.duration_s,
                )
            if not 0 <= inst.flags <= MAX_FLAGS:
                raise PulseBlasterError(self.name, "load", f"{where}: flags exceed 24 bits", inst.flags)
            if not 0 <= inst.data <= limits.max_data:
                raise PulseBlasterError(self.name, "load", f"{where}: data exceeds 20 bits", inst.data)
            if inst.opcode == Opcode.LOOP and inst.data < 1:
                raise PulseBlasterError(self.name, "load", f"{where}: LOOP count must be >= 1", inst.data)
            if inst.opcode == Opcode.LONG_DELAY and inst.data < 2:
                raise PulseBlasterError(
                    self.name, "load", f"{where}: LONG_DELAY multiplier must be >= 2", inst.data
                )
            if inst.opcode in (Opcode.END_LOOP, Opcode.JSR, Opcode.BRANCH) and inst.data >= n:
                raise PulseBlasterError(
                    self.name, "load", f"{where}: jumps to {inst.data}, beyond the last instruction",
                    inst.data,
                )
            flags = inst.flags
            if self.short_pulse_bits and flags >> SHORT_PULSE_SHIFT == 0 and flags:
                flags |= SHORT_PULSE_ON
            words.append((flags, int(inst.opcode), inst.data, cycles))
        return words

    def load(self, program: PulseProgram) -> None:
        """Check and program the board; the board is stopped first and not started."""
        words = self.check(program)
        self._require_open("load")
        self._api["pb_stop"]()
        self._write_words(words)
        self.program = program

    def _write_words(self, words: list[tuple[int, int, int, int]]) -> None:
        """Program the board with (flags, opcode, data, cycles) words; programming mode always ends."""
        self._api["pb_start_programming"](PULSE_PROGRAM)
        try:
            for flags, opcode, data, cycles in words:
                self._api["pb_inst_pbonly"](flags, opcode, data, cycles / self._clock_hz * 1e9)
        finally:
            self._api["pb_stop_programming"]()

    def start(self) -> None:
        """Run the loaded program from its first instruction."""
        self._require_open("start")
        if self.program is None:
            raise PulseBlasterError(self.name, "start", "no program loaded; call load() first")
        self._api["pb_reset"]()
        self._api["pb_start"]()

    def stop(self) -> None:
        self._require_open("stop")
        self._api["pb_stop"]()

    def status(self) -> int:
        """spinapi status bits 0-4 (1 stopped, 2 reset, 4 running, 8 waiting, 16 scanning).

        Read as unsigned; the reserved bits 5-31 are masked off (spinapi.h: they may be set).
        """
        self._require_open("pb_read_status")
        return int(self._api["pb_read_status"]()) & 0xFFFFFFFF & STATUS_MASK

    def status_names(self) -> list[str]:
        """The defined status bits that are set, by name (``["running"]`` ...)."""
        word = self.status()
        return [name for bit, name in STATUS_BITS.items() if word >> bit & 1]

    def safe_state(self) -> None:
        """Drive every output low (laser and MW switch off) with a program proven to do so.

        ``pb_stop`` alone may leave the outputs as they were (spinapi.h), so a one-word program
        that BRANCHes to itself with all flags off is loaded and left running. Raises
        ``InstrumentError`` if the library refused: the laser or MW switch may still be on.
        """
        if not self._open:
            return
        try:
            self._api["pb_stop"]()
            self._write_words(self.safe_state_words())
            self._api["pb_reset"]()
            self._api["pb_start"]()
            self.program = None
        except Exception as exc:
            log.exception("%s: could not put the PulseBlaster in its safe state", self.name)
            raise InstrumentError(self.name, "all-low BRANCH-to-self program",
                                  f"outputs may still be high ({exc}); power-cycle the PulseBlaster") from exc

    @staticmethod
    def safe_state_words() -> list[tuple[int, int, int, int]]:
        """The safe-state program: one word, every flag off, BRANCH to itself (address 0)."""
        return [(0, int(Opcode.BRANCH), 0, SAFE_STATE_CYCLES)]

    def station_checks(self) -> list[CheckResult]:
        """Commissioning: identity, the safe-state program run and the status word read back."""
        results = []
        version = self.library.pb_get_version() if hasattr(self.library, "pb_get_version") else b""
        if isinstance(version, bytes):
            version = version.decode(errors="replace")
        c = self.constraints
        results.append(CheckResult(self.name, "identity", True,
                                   f"board {self.board}, spinapi {version or '(no version)'}, "
                                   f"{c.clock_hz / 1e6:g} MHz, {c.memory_words} words"))
        try:
            self.safe_state()
            names = self.status_names()
        except Exception as exc:  # noqa: BLE001 - a commissioning check reports, it does not stop
            return [*results, CheckResult(self.name, "safe-state program", False, str(exc),
                                          "power-cycle the PulseBlaster and check the spinapi install")]
        ok = "running" in names
        results.append(CheckResult(
            self.name, "safe-state program", ok,
            "all-low BRANCH-to-self loaded and started; pb_read_status bits 0-4: "
            + (", ".join(names) or "none"),
            "" if ok else "the board did not report running after pb_start: check the board clock "
            "(pb_core_clock) and measure the outputs with a scope before trusting them low"))
        return results

    def close(self) -> None:
        """Make the board safe and release it. Safe to call twice."""
        if not self._open:
            return
        try:
            self.safe_state()
        finally:
            try:
                self._api["pb_close"]()
            except Exception:  # noqa: BLE001 - closing must finish even if the library complains
                log.exception("%s: pb_close failed", self.name)
            self._open = False

    def snapshot(self) -> dict[str, object]:
        """Settings for the run metadata."""
        p = self.program
        return {"name": self.name, "board": self.board, "clock_hz": self._clock_hz,
                "memory_words": self.memory_words, "short_pulse_bits": self.short_pulse_bits,
                "program": None if p is None else {"description": p.description,
                                                   "instructions": len(p.instructions),
                                                   "channels": dict(p.channels)}}

    def _require_open(self, command: str) -> None:
        if not self._open:
            raise PulseBlasterError(self.name, command, "the board is closed")

    def __enter__(self) -> PulseBlaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
