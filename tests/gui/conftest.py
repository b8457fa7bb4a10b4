"""GUI tests run offscreen on a small simulated station."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from importlib import resources  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from instrument.station import build_station  # noqa: E402

SHAPE = (16, 16)


def gui_test_station_file(folder):
    """The bundled station on the bundled sample seen through a 150 um field at full coil strength.

    The paper-matched sample spans 349 um at fields below 10 uT: 16 x 16 pixels of it cannot tell
    the coils apart, and the GUI tests check that a scan's reconstruction finds the driven coils.
    """
    sample = yaml.safe_load(resources.files("sim.samples").joinpath("microcoil_000.yaml").read_text())
    sample["field_of_view"]["width_m"] = 150e-6
    sample["coils"]["field_scale"] = 1.0
    sample_path = folder / "gui_sample.yaml"
    sample_path.write_text(yaml.safe_dump(sample))
    station = yaml.safe_load(resources.files("instrument.stations").joinpath("sim.yaml").read_text())
    station["sim"]["sample"] = str(sample_path)
    station_path = folder / "gui_station.yaml"
    station_path.write_text(yaml.safe_dump(station, sort_keys=False))  # roles are built in order
    return station_path


@pytest.fixture(scope="module")  # qcodes allows one "mw" instrument at a time
def station(tmp_path_factory):
    path = gui_test_station_file(tmp_path_factory.mktemp("gui_station"))
    with build_station(path, simulated=True, image_shape=SHAPE, seed=1) as st:
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
    qtbot.waitUntil(lambda: window.engine_run.last_outcome is not None and not window.running,
                    timeout=timeout_ms)
    return window.engine_run.last_outcome
