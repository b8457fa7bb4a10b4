"""Error texts of the lower layers name settings, never CLI flags; each front end phrases them."""

import ast
import re
from pathlib import Path

import pytest

from instrument.commands.common import cli_words
from instrument.protocols import SafetyLimitError, SafetyLimits
from instrument.settings import phrase, setting, settings_named

ROOT = Path(__file__).resolve().parents[1]
FLAG = re.compile(r"(?<![\w`-])--[a-z][a-z-]+")
LOWER = ["instrument/protocols.py", "instrument/services", "sequences", "instrument/storage",
         "instrument/analysis", "instrument/reconstruction"]


def _messages(path: Path):
    """String constants of a module that are not docstrings (the texts of errors and logs)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def _files(where: str):
    path = ROOT / where
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("where", LOWER)
def test_lower_layers_never_name_a_cli_flag(where):
    found = [f"{p.relative_to(ROOT)}:{line}: {text!r}" for p in _files(where)
             for line, text in _messages(p) if FLAG.search(text)]
    assert not found, "\n".join(found)


def test_a_limit_error_names_the_setting_and_each_front_end_says_it_its_way():
    from instrument.gui.wording import gui_words

    with pytest.raises(SafetyLimitError) as err:
        SafetyLimits(mw_power_max_dbm=10.0).check_mw_power(20.0)
    text = str(err.value)
    assert settings_named(text) == ["power_dbm"] and "--" not in text
    assert "lower --power-dbm or raise" in cli_words(text)
    assert "lower MW power or raise" in gui_words(text)


def test_phrase_writes_unknown_settings_plainly_and_leaves_other_quotes_alone():
    text = f"raise {setting('frames_per_volume')}; start `dask scheduler`"
    assert phrase(text, {}) == "raise frames per volume; start `dask scheduler`"
    assert cli_words(text) == "raise --frames-per-volume; start `dask scheduler`"


def test_gui_panel_shows_the_widget_label_not_the_flag(qtbot):
    from instrument.gui.run_controls import RunControls

    controls = RunControls()
    qtbot.addWidget(controls)
    controls.show_problem(f"a sweep needs 5 points; raise {setting('points')}, lower {setting('power_dbm')}")
    assert controls.message.text() == "Cannot start: a sweep needs 5 points; raise points, lower MW power"
    assert not controls.start_button.isEnabled()
