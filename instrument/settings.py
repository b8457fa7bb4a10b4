"""Error texts name settings, not front-end words; each front end phrases them its own way.

A lower layer writes a setting as ``setting("power_dbm")`` (a backquoted name, `power_dbm`); the CLI
turns it into its flag (``--power-dbm``), the GUI into the label of its widget (``MW power``). A text
shown without phrasing still reads well: the name without quotes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_SETTING = re.compile(r"`([a-z][a-z0-9_]*)`")


def setting(name: str) -> str:
    """How an error text names the setting ``name`` (the key its front ends phrase)."""
    return f"`{name}`"


def phrase(text: str, words: Mapping[str, str] | Callable[[str], str]) -> str:
    """``text`` with every setting named in the front end's words (a mapping or a function of the name);
    names the mapping lacks are written plainly."""
    def say(match: re.Match[str]) -> str:
        name = match[1]
        if callable(words):
            return words(name)
        return words.get(name, name.replace("_", " "))

    return _SETTING.sub(say, text)


def settings_named(text: str) -> list[str]:
    """The settings a text names, in order (for tests and for front ends that highlight a widget)."""
    return _SETTING.findall(text)
