"""SCPI header and value parsing for simulators of SCPI-1999 instruments (R&S and the like).

SCPI lets a client write every mnemonic long or short (``FREQuency`` -> ``FREQ``), in any case,
with optional nodes left out (``[SOURce]:POWer[:LEVel][:IMMediate][:AMPLitude]``). A simulator
compares canonical headers: short forms, upper case, optional default nodes dropped.
"""

from __future__ import annotations

import re

_VOWELS = set("AEIOU")
_SUFFIX = re.compile(r"^([A-Z*]+)\d*$")

# Default (optional) nodes that may follow a node and mean nothing extra.
_DEFAULT_CHILDREN = {
    "FREQ": ("CW", "FIX"),
    "POW": ("LEV", "IMM", "AMPL"),
    "OUTP": ("STAT",),
    "ERR": ("NEXT",),
}

_UNITS = {
    "": 1.0, "HZ": 1.0, "KHZ": 1e3, "MHZ": 1e6, "GHZ": 1e9,
    "S": 1.0, "MS": 1e-3, "US": 1e-6, "NS": 1e-9, "DBM": 1.0, "DB": 1.0,
}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")


class ScpiValueError(ValueError):
    """A parameter that is not a number (or not one with a known unit)."""


def short_form(mnemonic: str) -> str:
    """SCPI short form: the first four letters, or three when the fourth is a vowel."""
    m = _SUFFIX.match(mnemonic.upper())
    word = m.group(1) if m else mnemonic.upper()
    if len(word) <= 4:
        return word
    return word[:3] if word[3] in _VOWELS else word[:4]


def canonical_header(header: str) -> str:
    """``:SOURce1:FREQuency:CW`` -> ``FREQ``; ``TRIGger:LIST:SOURce`` -> ``LIST:TRIG:SOUR``."""
    is_query = header.endswith("?")
    nodes = [short_form(n) for n in header.rstrip("?").strip(":").split(":") if n]
    if len(nodes) > 1 and nodes[0] == "SOUR":
        nodes = nodes[1:]
    if nodes[:3] == ["TRIG", "LIST", "SOUR"]:  # the TRIGger subsystem spelling of the same setting
        nodes = ["LIST", "TRIG", "SOUR"] + nodes[3:]
    out: list[str] = []
    for node in nodes:
        if out and node in _DEFAULT_CHILDREN.get(out[-1], ()):
            continue  # skipped nodes are not appended, so POW:LEV:IMM:AMPL collapses to POW
        out.append(node)
    return ":".join(out) + ("?" if is_query else "")


def parse_number(text: str) -> float:
    """``2.87 GHz`` -> 2.87e9, ``-5dBm`` -> -5.0, ``10 ms`` -> 0.01."""
    m = _NUMBER.match(text)
    if not m:
        raise ScpiValueError(text)
    unit = m.group(2).upper()
    if unit not in _UNITS:
        raise ScpiValueError(text)
    return float(m.group(1)) * _UNITS[unit]


def parse_bool(text: str) -> bool:
    word = text.strip().upper()
    if word in ("1", "ON"):
        return True
    if word in ("0", "OFF"):
        return False
    raise ScpiValueError(text)
