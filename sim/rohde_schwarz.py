"""Simulated Rohde & Schwarz SMB100A / SGS100A signal generators speaking SCPI over TCP.

Coupled to the ``World`` like every source simulator: the frequency, level and RF state on the
output are written to ``world.mw_frequency_hz``, ``mw_power_dbm`` and ``mw_output``. Strict: an
unknown header is ``-113``, a refused command changes nothing and queues ``<code>,"<text>"``,
which ``SYSTem:ERRor?`` pops (``0,"No error"`` when empty).

Facts implemented (entries of ``docs/hardware/rohde_schwarz.md``):

* RS-1 ``*IDN?`` / ``*OPT?`` (model, frequency option such as ``SMB-B106``); RS-2 ranges;
  RS-3 SCPI error queue, headers long or short with optional nodes;
* RS-4 ``LIST:SELect`` creates or selects a list; ``LIST:FREQuency`` (SMB100A: 300 kHz to RFmax)
  and ``LIST:POWer`` fill it; ``LIST:LEARn``; ``FREQ:MODE LIST`` activates it at point 0. A list
  command or ``FREQ:MODE LIST`` without a selected list is error 241 "No current list"; rewriting
  the running list is ``-221``;
* RS-5 ``LIST:MODE STEP``: each trigger event triggers one step; ``AUTO``: each trigger event runs a
  complete cycle (modelled as jumping to the last point: dwell times are not simulated);
* RS-6 ``LIST:TRIGger:SOURce``: ``AUTO|IMMediate`` free-running, restarted when finished (wraps);
  ``SINGle|BUS`` triggered by ``LIST:TRIGger:EXECute``, executed once; ``EXTernal`` triggered on
  [INST TRIG] (:meth:`SimRohdeSchwarz.trigger`, called by the pulse-generator simulator), executed
  once: after the last point further triggers leave the output there (no wrap, inferred);
  ``LIST:RESet`` goes back to the starting point;
* RS-7 ``LIST:TRIGger:EXECute`` acts only with the single (bus) source; with ``EXTernal`` it is
  ignored (inferred: the manual ties EXECute to "Execute Single");
* RS-8 ``LIST:INDex?`` answers the index on the output (live: unconfirmed on the instrument);
* RS-10 the SGS100A has no list mode here (none is publicly documented): ``LIST:*`` is ``-113``
  and ``FREQ:MODE LIST`` is ``-224``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from sim.scpi_headers import ScpiValueError, canonical_header, parse_bool, parse_number
from sim.scpi_server import ScpiDevice
from sim.world import World


@dataclass(frozen=True)
class ModelSpec:
    """What decides a model's ranges; the frequency option sets the upper frequency."""

    idn: str
    option_prefix: str
    frequency_min_hz: float
    power_range_dbm: tuple[float, float]
    list_max_points: int
    list_frequency_min_hz: float
    options_max_hz: dict[str, float] = field(default_factory=dict)


MODELS = {
    "SMB100A": ModelSpec(
        idn="Rohde&Schwarz,SMB100A,1406.6000k03/{serial},3.1.19.15-3.20.390.24",
        option_prefix="SMB",
        frequency_min_hz=100e3,
        power_range_dbm=(-145.0, 30.0),
        list_max_points=2000,
        list_frequency_min_hz=300e3,
        options_max_hz={"B101": 1.1e9, "B102": 2.2e9, "B103": 3.2e9, "B106": 6e9, "B112": 12.75e9,
                        "B120": 20e9, "B140": 40e9},
    ),
    "SGS100A": ModelSpec(
        idn="Rohde&Schwarz,SGS100A,1416.0505k02/{serial},4.2.76.0-4.30.046.295",
        option_prefix="SGS",
        frequency_min_hz=1e6,
        power_range_dbm=(-120.0, 25.0),
        list_max_points=0,  # fact RS-10: no list mode
        list_frequency_min_hz=1e6,
        options_max_hz={"B106": 6e9, "B106V": 6e9, "B112": 12.75e9, "B112V": 12.75e9},
    ),
}

ERRORS = {
    241: "No current list",
    -102: "Syntax error", -108: "Parameter not allowed", -109: "Missing parameter",
    -113: "Undefined header", -151: "Invalid string data", -221: "Settings conflict",
    -222: "Data out of range", -223: "Too much data", -224: "Illegal parameter value",
    -350: "Queue overflow",
}
ERROR_QUEUE_SIZE = 10

# Settings QCoDeS's SGS100A driver reads and writes that do not touch the physics: stored as text.
_PLAIN_SETTINGS = {
    "PHAS": "0", "IQ:STAT": "0", "PULM:STAT": "0", "PULM:SOUR": "EXT", "ROSC:SOUR": "INT",
    "LOSC:SOUR": "INT", "CONN:REFL:OUTP": "REF", "ROSC:OUTP:FREQ": "10MHz", "ROSC:EXT:FREQ": "10MHz",
    "IQ:IMP:STAT": "0", "IQ:IMP:LEAK:I": "0", "IQ:IMP:LEAK:Q": "0", "IQ:IMP:IQR": "0",
    "IQ:IMP:QUAD": "0", "CONN:TRIG:OMOD": "SVAL", "PULM:DEL": "0", "PULM:DOUB:DEL": "1e-6",
    "PULM:DOUB:WIDT": "1e-6", "PULM:MODE": "SING", "PULM:PER": "1e-5", "PULM:POL": "NORM",
    "PULM:TRIG:EXT:GATE:POL": "NORM", "PULM:TRIG:EXT:IMP": "G50", "PULM:TRIG:EXT:SLOP": "POS",
    "PULM:TRIG:MODE": "AUTO", "PULM:WIDT": "1e-6", "OPM": "NORM", "LIST:DWEL": "0.01",
}
_COMMAND = re.compile(r"^\s*([^\s]+)\s*(.*)$")


class _Refused(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail


def _choice(text: str, choices: dict[str, str]) -> str:
    word = text.strip().upper()
    for long_form, short in choices.items():
        if word in (long_form, short):
            return short
    raise _Refused(-224, text)


@dataclass
class _List:
    frequencies_hz: list[float] = field(default_factory=list)
    powers_dbm: list[float] = field(default_factory=list)


class SimRohdeSchwarz(ScpiDevice):
    """A simulated R&S SMB100A or SGS100A coupled to the World.

    Args:
        world: the shared simulated physics.
        model: ``"SMB100A"`` or ``"SGS100A"``.
        frequency_option: the installed frequency option, e.g. ``"B106"`` (6 GHz); decides the
            upper frequency and is reported by ``*OPT?``.
        serial: serial number reported by ``*IDN?``.
    """

    def __init__(self, world: World, model: str = "SMB100A", frequency_option: str = "B106",
                 serial: str = "180123") -> None:
        if model not in MODELS:
            raise ValueError(f"unknown R&S model {model!r}; expected one of {sorted(MODELS)}")
        spec = MODELS[model]
        if frequency_option not in spec.options_max_hz:
            raise ValueError(f"{model} has no frequency option {frequency_option!r}; "
                             f"expected one of {sorted(spec.options_max_hz)}")
        self.world = world
        self.model = model
        self.spec = spec
        self.frequency_option = frequency_option
        self.frequency_max_hz = spec.options_max_hz[frequency_option]
        self.serial = serial
        super().__init__(name=f"sim-{model}")

    # ---- state ---------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self.frequency_hz = 1e9
            self.power_dbm = -30.0
            self.output = False
            self.frequency_mode = "CW"
            self.lists: dict[str, _List] = {}
            self.selected_list: str | None = None
            self.list_mode = "AUTO"
            self.list_trigger_source = "AUTO"
            self.list_index = 0
            self.learned = False
            self.settings = dict(_PLAIN_SETTINGS)
            self.errors: deque[tuple[int, str]] = deque()
            self._apply()

    @property
    def _list(self) -> _List | None:
        return self.lists.get(self.selected_list) if self.selected_list else None

    def _apply(self) -> None:
        """Write what the RF output emits into the World."""
        f, p = self.frequency_hz, self.power_dbm
        if self.frequency_mode == "LIST" and self._list is not None:
            f = self._list.frequencies_hz[self.list_index]
            p = self._list.powers_dbm[self.list_index]
        with self.world.lock:
            self.world.mw_frequency_hz = f
            self.world.mw_power_dbm = p
            self.world.mw_output = self.output

    def _push_error(self, code: int, detail: str = "") -> None:
        text = ERRORS.get(code, "Error") + (f";{detail}" if detail else "")
        if len(self.errors) >= ERROR_QUEUE_SIZE:
            self.errors[-1] = (-350, ERRORS[-350])
        else:
            self.errors.append((code, text))

    # ---- triggers ------------------------------------------------------------------------------

    def trigger(self) -> None:
        """An edge on the rear [INST TRIG] input (called by the pulse-generator simulator)."""
        with self._lock:
            self.trigger_count += 1
            if self.list_trigger_source == "EXT":
                self._list_trigger_event()

    def _list_trigger_event(self) -> None:
        """One trigger event for the running list (facts RS-5, RS-6)."""
        lst = self._list
        if self.frequency_mode != "LIST" or lst is None:
            return
        last = len(lst.frequencies_hz) - 1
        if self.list_mode == "AUTO":
            self.list_index = last  # a complete cycle per event (dwell not simulated)
        elif self.list_index < last:
            self.list_index += 1
        elif self.list_trigger_source == "AUTO":
            self.list_index = 0  # free-running lists restart; triggered ones run once
        self._apply()

    # ---- command interpreter -------------------------------------------------------------------

    def handle(self, command: str) -> str | None:
        with self._lock:
            self.commands.append(command)
            m = _COMMAND.match(command)
            if not m:
                self._push_error(-102)
                return None
            header, arg = canonical_header(m.group(1)), m.group(2).strip()
            try:
                return self._dispatch(header, arg)
            except _Refused as exc:
                self._push_error(exc.code, exc.detail)
            except ScpiValueError as exc:
                self._push_error(-224, str(exc))
            return None

    def _dispatch(self, header: str, arg: str) -> str | None:
        query = header.endswith("?")
        key = header.rstrip("?")
        if query and arg:
            raise _Refused(-108)
        if key.startswith("LIST") and self.spec.list_max_points == 0:
            raise _Refused(-113, header)  # fact RS-10
        handler = {
            "*IDN": self._idn, "*OPT": self._opt, "*RST": self._rst, "*CLS": self._cls,
            "*OPC": self._opc, "*WAI": self._nothing, "SYST:ERR": self._syst_err,
            "FREQ": self._frequency, "FREQ:MODE": self._frequency_mode, "POW": self._power,
            "OUTP": self._output, "LIST:SEL": self._list_select, "LIST:FREQ": self._list_frequencies,
            "LIST:POW": self._list_powers, "LIST:FREQ:POIN": self._list_points,
            "LIST:POW:POIN": self._list_points, "LIST:MODE": self._list_mode,
            "LIST:TRIG:SOUR": self._list_trigger_source, "LIST:TRIG:EXEC": self._list_execute,
            "LIST:LEAR": self._list_learn, "LIST:RES": self._list_reset, "LIST:IND": self._list_index,
            "LIST:DEL:ALL": self._list_delete_all,
        }.get(key)
        if handler is not None:
            return handler(query, arg, key)
        if key in self.settings:
            if query:
                return self.settings[key]
            if not arg:
                raise _Refused(-109)
            self.settings[key] = arg
            return None
        raise _Refused(-113, header)

    # Each handler takes (query, arg, key) and returns the reply or None.

    def _nothing(self, query: bool, arg: str, key: str) -> None:
        return None

    def _idn(self, query: bool, arg: str, key: str) -> str | None:
        self._need_query(query)
        return self.spec.idn.format(serial=self.serial)

    def _opt(self, query: bool, arg: str, key: str) -> str | None:
        self._need_query(query)
        return f"{self.spec.option_prefix}-{self.frequency_option}"

    def _rst(self, query: bool, arg: str, key: str) -> None:
        self._reset_state()

    def _cls(self, query: bool, arg: str, key: str) -> None:
        self.errors.clear()

    def _opc(self, query: bool, arg: str, key: str) -> str | None:
        return "1" if query else None

    def _syst_err(self, query: bool, arg: str, key: str) -> str:
        self._need_query(query)
        if not self.errors:
            return '0,"No error"'
        code, text = self.errors.popleft()
        return f'{code},"{text}"'

    def _frequency(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            if self.frequency_mode == "LIST" and self._list is not None:
                return f"{self._list.frequencies_hz[self.list_index]:.2f}"
            return f"{self.frequency_hz:.2f}"
        hz = self._number(arg)
        self._in_range(hz, self.spec.frequency_min_hz, self.frequency_max_hz)
        self.frequency_hz = hz
        self._apply()
        return None

    def _power(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            if self.frequency_mode == "LIST" and self._list is not None:
                return f"{self._list.powers_dbm[self.list_index]:.2f}"
            return f"{self.power_dbm:.2f}"
        dbm = self._number(arg)
        self._in_range(dbm, *self.spec.power_range_dbm)
        self.power_dbm = dbm
        self._apply()
        return None

    def _output(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            return str(int(self.output))
        self.output = self._bool(arg)
        self._apply()
        return None

    def _frequency_mode(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            return self.frequency_mode
        mode = _choice(arg, {"CW": "CW", "FIXED": "FIX", "LIST": "LIST"})
        if mode == "LIST" and self.spec.list_max_points == 0:
            raise _Refused(-224, "no list mode")  # fact RS-10
        if mode == "LIST":
            lst = self._list
            if lst is None:
                raise _Refused(241)
            if not lst.frequencies_hz:
                raise _Refused(-221, "the list is empty")
            if len(lst.frequencies_hz) != len(lst.powers_dbm):
                raise _Refused(-221, "frequency and level lists differ in length")
            self.list_index = 0
            self.frequency_mode = "LIST"
        else:
            self.frequency_mode = "CW"
        self._apply()
        return None

    def _list_select(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            return f'"{self.selected_list or ""}"'
        name = arg.strip().strip('"').strip("'")
        if not name or not re.fullmatch(r"[\w.-]+", name):
            raise _Refused(-151, arg)
        self.lists.setdefault(name, _List())
        self.selected_list = name
        return None

    def _selected(self) -> _List:
        lst = self._list
        if lst is None:
            raise _Refused(241)
        return lst

    def _values(self, arg: str, lo: float, hi: float) -> list[float]:
        if not arg:
            raise _Refused(-109)
        values = [self._number(v) for v in arg.split(",")]
        if len(values) > self.spec.list_max_points:
            raise _Refused(-223, f"{len(values)} points, at most {self.spec.list_max_points}")
        for v in values:
            self._in_range(v, lo, hi)
        return values

    def _list_frequencies(self, query: bool, arg: str, key: str) -> str | None:
        lst = self._selected()
        if query:
            return ",".join(f"{f:.2f}" for f in lst.frequencies_hz)
        self._not_while_list_runs()
        lst.frequencies_hz = self._values(arg, self.spec.list_frequency_min_hz, self.frequency_max_hz)
        self.learned = False
        return None

    def _list_powers(self, query: bool, arg: str, key: str) -> str | None:
        lst = self._selected()
        if query:
            return ",".join(f"{p:.2f}" for p in lst.powers_dbm)
        self._not_while_list_runs()
        lst.powers_dbm = self._values(arg, *self.spec.power_range_dbm)
        self.learned = False
        return None

    def _list_points(self, query: bool, arg: str, key: str) -> str | None:
        self._need_query(query)
        lst = self._selected()
        return str(len(lst.frequencies_hz if key == "LIST:FREQ:POIN" else lst.powers_dbm))

    def _list_mode(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            return self.list_mode
        self.list_mode = _choice(arg, {"AUTO": "AUTO", "STEP": "STEP"})
        return None

    def _list_trigger_source(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            return self.list_trigger_source
        # R&S names and their SCPI synonyms (fact RS-6): AUTO = IMMediate, SINGle = BUS.
        word = _choice(arg, {"AUTO": "AUTO", "IMMEDIATE": "IMM", "SINGLE": "SING", "BUS": "BUS",
                             "EXTERNAL": "EXT"})
        self.list_trigger_source = {"IMM": "AUTO", "BUS": "SING"}.get(word, word)
        return None

    def _list_execute(self, query: bool, arg: str, key: str) -> None:
        if self.list_trigger_source == "SING":  # fact RS-7: EXECute belongs to the single source
            self._list_trigger_event()

    def _list_learn(self, query: bool, arg: str, key: str) -> None:
        lst = self._selected()
        if not lst.frequencies_hz or len(lst.frequencies_hz) != len(lst.powers_dbm):
            raise _Refused(-221, "frequency and level lists differ in length")
        self.learned = True

    def _list_reset(self, query: bool, arg: str, key: str) -> None:
        self.list_index = 0
        self._apply()

    def _list_index(self, query: bool, arg: str, key: str) -> str | None:
        if query:
            return str(self.list_index)
        lst = self._selected()
        index = int(self._number(arg))
        self._in_range(index, 0, len(lst.frequencies_hz) - 1)
        self.list_index = index
        self._apply()
        return None

    def _list_delete_all(self, query: bool, arg: str, key: str) -> None:
        self._not_while_list_runs()
        self.lists.clear()
        self.selected_list = None

    # ---- helpers -------------------------------------------------------------------------------

    def _not_while_list_runs(self) -> None:
        if self.frequency_mode == "LIST":
            raise _Refused(-221, "list mode is running")

    @staticmethod
    def _need_query(query: bool) -> None:
        if not query:
            raise _Refused(-113)

    @staticmethod
    def _number(arg: str) -> float:
        if not arg:
            raise _Refused(-109)
        return parse_number(arg)

    @staticmethod
    def _bool(arg: str) -> bool:
        if not arg:
            raise _Refused(-109)
        return parse_bool(arg)

    @staticmethod
    def _in_range(value: float, lo: float, hi: float) -> None:
        if not lo <= value <= hi:
            raise _Refused(-222, f"{value:g} outside {lo:g}..{hi:g}")
