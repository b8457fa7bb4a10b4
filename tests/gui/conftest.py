"""GUI tests run offscreen on a small simulated station."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from instrument.station import build_station  # noqa: E402

SHAPE = (16, 16)


@pytest.fixture(scope="module")  # qcodes allows one "mw" instrument at a time
def station():
    with build_station(None, simulated=True, image_shape=SHAPE, seed=1) as st:
        yield st


@pytest.fixture
def window(qtbot, station, tmp_path):
    from instrument.gui.main_window import MainWindow

    w = MainWindow(station, tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def configure(window, points=11, frames=1):
    panel = window.cw_panel
    panel.points.setValue(points)
    panel.frames.setValue(frames)
    panel.span.setValue(12.0)
    return panel


def run_to_end(qtbot, window, timeout_ms=20_000):
    window.cw_panel.start_button.click()
    qtbot.waitUntil(lambda: window.last_outcome is not None and not window.running, timeout=timeout_ms)
    return window.last_outcome
