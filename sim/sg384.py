"""Simulated SRS SG382/SG384/SG386 signal generator speaking its command set over TCP.

The simulator keeps the instrument state, answers the commands a driver sends and writes what the
type-N output emits into the ``World`` (``mw_frequency_hz``, ``mw_power_dbm``, ``mw_output``) so
that the simulated camera sees the ODMR dips move with the source. It is strict: an unknown command
is error 111, a refused command changes nothing and pushes the code the manual gives, which
``LERR?`` pops (0 when the buffer is empty).

Facts implemented (entries of ``docs/hardware/sg384.md``):

* SG-1 identity ``*IDN?`` -> ``Stanford Research Systems,<model>,s/n<serial>,ver<firmware>``;
  SG-2 model ranges (type-N 950 kHz to 2.025 / 4.05 / 6.075 GHz, AMPR -110..+16.5 dBm);
* SG-3 error codes and ``LERR?`` (one code per query, 0 when empty, 254 when the buffer overflows);
* SG-4 ``LSTP i,<15 fields>``: 1 FREQ (Hz), 2 PHAS (deg), 3 AMPL (BNC, dBm), 4 OFSL (BNC DC offset,
  V, within +-1.5 V), 5 AMPR (type-N, dBm), 6 DISP (display code), 7 enable/disable bits (0..31),
  8 TYPE, 9 modulation function, 10 rate, 11 deviation, 12 clock amplitude, 13 clock offset,
  14 RF doubler amplitude, 15 rear DC offset; ``N`` leaves a setting unchanged. All 15 fields are
  required (fewer: error 116, more: error 115); a value out of range is error 10 and the point is
  left unchanged, so a power written into OFSL is refused (-10 "V") or becomes a DC offset on the
  BNC (-1.5..+1.5) while the type-N power stays what it was;
* SG-5 ``LSTC? n`` creates a list of n points (1..2000) and answers 1; SG-9 it is refused (error
  12, code unconfirmed) while a list exists: ``LSTD`` deletes the list first (``LSTD`` without a
  list is accepted, as the qudi driver relies on);
* SG-6 ``LSTE 1`` puts the point at the present index on the output; ``LSTR`` goes back to point 0;
  ``LSTI?`` reads the index; ``LSTS?`` the size (0: none); every other list command needs a list
  (error 12);
* SG-7 a trigger (``*TRG`` or a rising edge on the rear trigger input: :meth:`SimSG384.trigger`,
  called by the pulse-generator simulator) advances the index by one and wraps to 0 after the last
  point (wrap: unconfirmed);
* SG-10 ``FREQ`` while a list is enabled is refused with error 11 (unconfirmed: the stricter
  choice, so that a driver relying on it fails here first);
* SG-11 ``OPTN? k`` (k = 1..4) answers 1 or 0 for an installed option; the simulated unit has none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.scpi_server import ScpiDevice
from sim.world import World

# Upper frequency of the type-N output per model; the BNC output (DC-62.5 MHz) is not simulated.
MODEL_FREQUENCY_MAX_HZ = {"SG382": 2.025e9, "SG384": 4.05e9, "SG386": 6.075e9}
FREQUENCY_MIN_HZ = 950e3
AMPR_RANGE_DBM = (-110.0, 16.5)
OFSL_RANGE_V = (-1.5, 1.5)
LIST_MAX_POINTS = 2000
N_OPTIONS = 4  # OPTN? 1..4

# Error codes (SG380 manual, "Error Codes").
NO_ERROR = 0
ILLEGAL_VALUE = 10
ILLEGAL_MODE = 11
NOT_ALLOWED = 12
UNDEFINED_COMMAND = 111
ILLEGAL_QUERY = 112
ILLEGAL_SET = 113
EXTRA_PARAMETERS = 115
MISSING_PARAMETERS = 116
INVALID_FLOAT = 118
INVALID_INTEGER = 120
ILLEGAL_UNITS = 127
ERROR_BUFFER_SIZE = 20
TOO_MANY_ERRORS = 254

_FREQUENCY_UNITS = {"": 1.0, "HZ": 1.0, "KHZ": 1e3, "MHZ": 1e6, "GHZ": 1e9}
_COMMAND = re.compile(r"^\s*(\*?[A-Za-z]+)(\?)?\s*(.*)$")


class _CommandError(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _CommandError(INVALID_FLOAT) from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _CommandError(INVALID_INTEGER) from None


def _frequency_hz(text: str) -> float:
    """Parse ``2.87e9``, ``2870 MHz`` or ``2.87 GHz``."""
    m = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([A-Za-z]*)\s*", text)
    if not m:
        raise _CommandError(INVALID_FLOAT)
    unit = m.group(2).upper()
    if unit not in _FREQUENCY_UNITS:
        raise _CommandError(ILLEGAL_UNITS)
    return _float(m.group(1)) * _FREQUENCY_UNITS[unit]


@dataclass(frozen=True)
class ListField:
    """One of the 15 fields of an ``LSTP`` point (fact SG-4): its setting, type and allowed values."""

    name: str
    integer: bool = False
    low: float = float("-inf")
    high: float = float("inf")
    allowed: frozenset[int] | None = None

    def check(self, text: str) -> None:
        """Raise the manual's error for a value the instrument refuses (``N`` is always fine)."""
        if text == "N":
            return
        value: float = _int(text) if self.integer else _float(text)
        if self.allowed is not None and value not in self.allowed:
            raise _CommandError(ILLEGAL_VALUE)
        if not self.low <= value <= self.high:
            raise _CommandError(ILLEGAL_VALUE)


def _list_fields(frequency_max_hz: float) -> tuple[ListField, ...]:
    return (
        ListField("FREQ", low=FREQUENCY_MIN_HZ, high=frequency_max_hz),
        ListField("PHAS"),
        ListField("AMPL"),
        ListField("OFSL", low=OFSL_RANGE_V[0], high=OFSL_RANGE_V[1]),
        ListField("AMPR", low=AMPR_RANGE_DBM[0], high=AMPR_RANGE_DBM[1]),
        ListField("DISP", integer=True, allowed=frozenset({0, 1, 2, 3, 4, 5, 6, 7, 10, 13, 14})),
        ListField("ENABLE_BITS", integer=True, low=0, high=31),
        ListField("TYPE", integer=True, allowed=frozenset({0, 1, 2, 3, 4, 5, 7, 8, 9})),
        ListField("FUNCTION", integer=True, low=0, high=11),
        ListField("RATE"),
        ListField("DEVIATION"),
        ListField("AMPC"),
        ListField("OFSC"),
        ListField("AMPH"),
        ListField("OFSD"),
    )


LIST_POINT_FIELDS = 15
FIELD_INDEX = {f.name: i for i, f in enumerate(_list_fields(1.0))}  # 0-based: FREQ 0 ... AMPR 4
_SETTING_RANGES = {"OFSL": OFSL_RANGE_V}


class SimSG384(ScpiDevice):
    """A simulated SG38x coupled to the World.

    Args:
        world: the shared simulated physics.
        model: ``"SG382"``, ``"SG384"`` or ``"SG386"``; decides the upper frequency.
        serial: serial number reported by ``*IDN?``.
    """

    def __init__(self, world: World, model: str = "SG384", serial: str = "s/n004384") -> None:
        if model not in MODEL_FREQUENCY_MAX_HZ:
            raise ValueError(f"unknown SG38x model {model!r}; "
                             f"expected one of {sorted(MODEL_FREQUENCY_MAX_HZ)}")
        self.world = world
        self.model = model
        self.serial = serial
        self.frequency_max_hz = MODEL_FREQUENCY_MAX_HZ[model]
        self.list_fields = _list_fields(self.frequency_max_hz)
        super().__init__(name=f"sim-{model}")

    # ---- state ---------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self.frequency_hz = 1.0e9
            self.ampr_dbm = -30.0
            self.enbr = False
            self.modl = False
            self.settings: dict[str, float] = {
                "PHAS": 0.0, "AMPL": -30.0, "AMPH": -10.0, "AMPC": 1.0, "NOIS": 0, "ENBL": 0,
                "ENBH": 0, "ENBC": 0, "OFSC": 0.0, "OFSD": 0.0, "OFSL": 0.0, "COUP": 0,
                "FDEV": 1e6, "MFNC": 0, "RATE": 1e3, "TYPE": 1, "DISP": 2,
            }
            self.errors: list[int] = []
            self.list_points: list[list[str]] | None = None
            self.list_enabled = False
            self.list_index = 0
            self._apply()

    def _apply(self) -> None:
        """Write what the type-N output emits into the World."""
        with self.world.lock:
            self.world.mw_frequency_hz = self.frequency_hz
            self.world.mw_power_dbm = self.ampr_dbm
            self.world.mw_output = self.enbr

    def _push_error(self, code: int) -> None:
        if len(self.errors) >= ERROR_BUFFER_SIZE:
            self.errors[-1] = TOO_MANY_ERRORS
        else:
            self.errors.append(code)

    # ---- triggers ------------------------------------------------------------------------------

    def trigger(self) -> None:
        """A rising edge on the rear-panel trigger input (called by the pulse-generator simulator).

        In list mode the next list point goes to the output; otherwise the edge is ignored.
        """
        with self._lock:
            self.trigger_count += 1
            if self.list_enabled and self.list_points:
                self.list_index = (self.list_index + 1) % len(self.list_points)
                self._apply_list_point()

    def _apply_list_point(self) -> None:
        """Put the point at the present index on the output: each non-``N`` field sets its setting."""
        assert self.list_points is not None
        fields = self.list_points[self.list_index]
        for spec, text in zip(self.list_fields, fields, strict=True):
            if text == "N":
                continue
            if spec.name == "FREQ":
                self.frequency_hz = float(text)
            elif spec.name == "AMPR":
                self.ampr_dbm = float(text)
            elif spec.name in self.settings:
                self.settings[spec.name] = float(text)
            # ENABLE_BITS, FUNCTION, DEVIATION: stored with the point; their effect on the outputs
            # is not simulated (the drivers here always send N).
        self._apply()

    # ---- command interpreter -------------------------------------------------------------------

    def handle(self, command: str) -> str | None:
        """Execute one command; returns the reply of a query, ``None`` otherwise."""
        with self._lock:
            self.commands.append(command)
            m = _COMMAND.match(command)
            if not m:
                self._push_error(UNDEFINED_COMMAND)
                return None
            header, query, arg = m.group(1).upper(), bool(m.group(2)), m.group(3).strip()
            try:
                return self._dispatch(header, query, arg)
            except _CommandError as exc:
                self._push_error(exc.code)
                return None

    def _dispatch(self, header: str, query: bool, arg: str) -> str | None:
        if header == "*IDN" and query:
            return f"Stanford Research Systems,{self.model},{self.serial},ver1.02.0E"
        if header == "*RST":
            self._reset_state()
            return None
        if header == "*CLS":
            self.errors.clear()
            return None
        if header == "*OPC" and query:
            return "1"
        if header == "*TRG":
            self.trigger()
            return None
        if header == "LERR" and query:
            return str(self.errors.pop(0) if self.errors else NO_ERROR)
        if header == "OPTN" and query:
            if not 1 <= _int(arg) <= N_OPTIONS:
                raise _CommandError(ILLEGAL_VALUE)
            return "0"
        if header == "FREQ":
            return self._frequency(query, arg)
        if header == "AMPR":
            return self._ampr(query, arg)
        if header in ("ENBR", "MODL"):
            return self._switch(header, query, arg)
        if header.startswith("LST"):
            return self._list(header, query, arg)
        if header in self.settings:
            if query:
                return f"{self.settings[header]:g}"
            if not arg:
                raise _CommandError(MISSING_PARAMETERS)
            value = _float(arg)
            lo, hi = _SETTING_RANGES.get(header, (float("-inf"), float("inf")))
            if not lo <= value <= hi:
                raise _CommandError(ILLEGAL_VALUE)
            self.settings[header] = value
            return None
        raise _CommandError(UNDEFINED_COMMAND)

    def _frequency(self, query: bool, arg: str) -> str | None:
        if query:
            return f"{self.frequency_hz:.6f}"
        if not arg:
            raise _CommandError(MISSING_PARAMETERS)
        hz = _frequency_hz(arg)
        if not FREQUENCY_MIN_HZ <= hz <= self.frequency_max_hz:
            raise _CommandError(ILLEGAL_VALUE)
        if self.list_enabled:  # fact SG-10, unconfirmed: refused here, the stricter choice
            raise _CommandError(ILLEGAL_MODE)
        self.frequency_hz = hz
        self._apply()
        return None

    def _ampr(self, query: bool, arg: str) -> str | None:
        if query:
            return f"{self.ampr_dbm:.2f}"
        if not arg:
            raise _CommandError(MISSING_PARAMETERS)
        dbm = _float(arg.upper().removesuffix("DBM").strip())
        if not AMPR_RANGE_DBM[0] <= dbm <= AMPR_RANGE_DBM[1]:
            raise _CommandError(ILLEGAL_VALUE)
        self.ampr_dbm = dbm
        self._apply()
        return None

    def _switch(self, header: str, query: bool, arg: str) -> str | None:
        attr = header.lower()
        if query:
            return str(int(getattr(self, attr)))
        if arg not in ("0", "1"):
            raise _CommandError(ILLEGAL_VALUE if arg else MISSING_PARAMETERS)
        setattr(self, attr, arg == "1")
        self._apply()
        return None

    def _list(self, header: str, query: bool, arg: str) -> str | None:
        if header == "LSTC" and query:
            size = _int(arg)
            if self.list_points is not None:
                raise _CommandError(NOT_ALLOWED)  # fact SG-9: delete the old list first (LSTD)
            if not 1 <= size <= LIST_MAX_POINTS:
                raise _CommandError(ILLEGAL_VALUE)
            self.list_points = [["N"] * LIST_POINT_FIELDS for _ in range(size)]
            self.list_index = 0
            self.list_enabled = False
            return "1"
        if header == "LSTD" and not query:
            self.list_points, self.list_enabled, self.list_index = None, False, 0
            return None
        if header == "LSTS" and query:
            return str(len(self.list_points) if self.list_points else 0)
        if header == "LSTE" and query and self.list_points is None:
            return "0"
        if self.list_points is None:
            raise _CommandError(NOT_ALLOWED)  # every other list command needs a list
        if header == "LSTE":
            if query:
                return str(int(self.list_enabled))
            if arg not in ("0", "1"):
                raise _CommandError(ILLEGAL_VALUE if arg else MISSING_PARAMETERS)
            self.list_enabled = arg == "1"
            if self.list_enabled:
                self._apply_list_point()
            return None
        if header == "LSTI":
            if query:
                return str(self.list_index)
            index = _int(arg)
            if not 0 <= index < len(self.list_points):
                raise _CommandError(ILLEGAL_VALUE)
            self.list_index = index
            if self.list_enabled:
                self._apply_list_point()
            return None
        if header == "LSTR" and not query:
            self.list_index = 0
            if self.list_enabled:
                self._apply_list_point()
            return None
        if header == "LSTP":
            return self._list_point(query, arg)
        raise _CommandError(ILLEGAL_QUERY if query else UNDEFINED_COMMAND)

    def _list_point(self, query: bool, arg: str) -> str | None:
        assert self.list_points is not None
        index_text, _, rest = arg.partition(",")
        if not index_text.strip():
            raise _CommandError(MISSING_PARAMETERS)
        index = _int(index_text.strip())
        if not 0 <= index < len(self.list_points):
            raise _CommandError(ILLEGAL_VALUE)
        if query:
            if rest.strip():
                raise _CommandError(EXTRA_PARAMETERS)
            return ",".join(self.list_points[index])
        fields = [f.strip().upper() for f in rest.split(",")] if rest.strip() else []
        if len(fields) < LIST_POINT_FIELDS:
            raise _CommandError(MISSING_PARAMETERS)
        if len(fields) > LIST_POINT_FIELDS:
            raise _CommandError(EXTRA_PARAMETERS)
        for spec, text in zip(self.list_fields, fields, strict=True):
            spec.check(text)  # nothing is stored unless every field is acceptable
        self.list_points[index] = fields
        if self.list_enabled and index == self.list_index:
            self._apply_list_point()
        return None
