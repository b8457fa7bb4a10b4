"""Simulated SRS SG382/SG384/SG386 signal generator speaking its SCPI-like command set over TCP.

The simulator keeps the instrument state, answers the commands a driver sends (``*IDN?``,
``FREQ``, ``AMPR``, ``ENBR``, ``MODL``, the list commands ``LSTC? LSTD LSTE LSTI LSTP LSTR LSTS?``,
``LERR?``, ...) and writes what the type-N output emits into the ``World``
(``mw_frequency_hz``, ``mw_power_dbm``, ``mw_output``) so that the simulated camera sees the
ODMR dips move with the source.

Errors follow the SG380 manual: a refused command leaves the setting unchanged and pushes an error
code that ``LERR?`` pops (0 when the buffer is empty).

List mode: ``LSTE 1`` puts the list point at the present index (0 after ``LSTC?`` or ``LSTR``) on
the output; every trigger advances the index by one, wrapping to 0 after the last point. A trigger
is ``*TRG`` on the bus or, for the rear-panel trigger input wired to the PulseBlaster,
a call to :meth:`SimSG384.trigger` (the pulse-generator simulator calls it on each trigger edge).
"""

from __future__ import annotations

import re

from sim.scpi_server import ScpiDevice
from sim.world import World

# Upper frequency of the type-N output per model; the BNC output (DC-62.5 MHz) is not simulated.
MODEL_FREQUENCY_MAX_HZ = {"SG382": 2.025e9, "SG384": 4.05e9, "SG386": 6.075e9}
FREQUENCY_MIN_HZ = 950e3
AMPR_RANGE_DBM = (-110.0, 16.5)
LIST_MAX_POINTS = 2000
LIST_POINT_FIELDS = 15  # frequency, phase, AMPL, AMPR, AMPH, offsets, modulation ... ("N" = no change)

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
                "FDEV": 1e6, "MFNC": 0, "RATE": 1e3, "TYPE": 1,
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
        assert self.list_points is not None
        fields = self.list_points[self.list_index]
        if fields[0] != "N":
            self.frequency_hz = float(fields[0])
        if fields[3] != "N":
            self.ampr_dbm = float(fields[3])
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
            self.settings[header] = _float(arg)
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
        if self.list_enabled:  # assumed (not confirmed in the SG380 manual): FREQ refused in list mode
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
                raise _CommandError(ILLEGAL_VALUE)
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
        index = _int(index_text.strip())
        if not 0 <= index < len(self.list_points):
            raise _CommandError(ILLEGAL_VALUE)
        if query:
            return ",".join(self.list_points[index])
        fields = [f.strip() for f in rest.split(",")] if rest.strip() else []
        if not fields:
            raise _CommandError(MISSING_PARAMETERS)
        if len(fields) > LIST_POINT_FIELDS:
            raise _CommandError(EXTRA_PARAMETERS)
        fields += ["N"] * (LIST_POINT_FIELDS - len(fields))
        for text in fields:
            if text != "N":
                _float(text)
        if fields[0] != "N" and not FREQUENCY_MIN_HZ <= float(fields[0]) <= self.frequency_max_hz:
            raise _CommandError(ILLEGAL_VALUE)
        if fields[3] != "N" and not AMPR_RANGE_DBM[0] <= float(fields[3]) <= AMPR_RANGE_DBM[1]:
            raise _CommandError(ILLEGAL_VALUE)
        self.list_points[index] = fields
        return None
