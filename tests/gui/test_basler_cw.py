"""The operator application on the Basler station: CW ODMR through the emulator, offscreen."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

if importlib.util.find_spec("pypylon") is None:
    if os.environ.get("CI"):
        raise RuntimeError("pypylon is missing in CI; it is part of the test extra (pip install -e .[test])")
    pytest.skip("pypylon not installed: pip install -e .[basler]", allow_module_level=True)

from instrument.station import build_station, bundled_station  # noqa: E402
from instrument.storage.runs import load_run  # noqa: E402
from sequences.camera_cw import CameraCwSweep  # noqa: E402
from sim.basler_images import enable_emulator  # noqa: E402
from tests.gui.conftest import run_to_end  # noqa: E402

enable_emulator(1)
SHAPE = (12, 12)


# `window` comes from tests/gui/conftest.py and opens on this module's station.
@pytest.fixture(scope="module")  # qcodes allows one "mw" instrument at a time
def station():
    with build_station(bundled_station("basler.yaml"), simulated=True, image_shape=SHAPE, seed=2) as st:
        yield st


def test_the_cw_panel_offers_the_frame_timing_and_refuses_what_the_camera_cannot_follow(window):
    panel = window.cw_panel
    assert panel is not None and panel.intensity_camera
    assert window.lockin_panel is None  # no lock-in camera on this station
    panel.points.setValue(7)
    panel.frames.setValue(1)
    sweep = panel.validate()
    assert isinstance(sweep, CameraCwSweep)
    assert sweep.exposure_s == pytest.approx(10e-3) and sweep.frame_period_s == pytest.approx(12e-3)
    panel.exposure.setValue(0.05)  # ms
    panel.frame_period.setValue(0.1)  # 10 kHz: the emulator manages 5000 frames/s
    assert panel.validate() is None and not panel.start_button.isEnabled()
    assert "frame period 0.0001 s asks for 1e+04 frames/s" in panel.controls.message.text()
    panel.frame_period.setValue(12.0)
    panel.exposure.setValue(10.0)
    assert panel.validate() is not None and panel.start_button.isEnabled()


def test_a_cw_scan_on_the_basler_station_ends_with_its_field_map(qtbot, window):
    panel = window.cw_panel
    panel.points.setValue(7)
    panel.frames.setValue(1)
    panel.span.setValue(14.0)
    outcome = run_to_end(qtbot, window)
    assert outcome.status == "completed" and outcome.steps_done == 14
    run_id = window.engine_run.writer.run_id
    jobs = window.stored_runs
    qtbot.waitUntil(lambda: jobs.fit is not None and jobs.fit_run_id == run_id, timeout=30_000)
    assert window.image_choice.currentText() == "B_NV of the coils"
    assert np.isfinite(window.image_panel.data).any()
    run = load_run(window.out_dir, run_id)
    assert run.metadata["sequence"]["camera"] == "intensity"
    assert run.metadata["station_snapshot"]["instruments"]["camera"]["serial"] == "0815-0000"
    assert (run.run_dir / "analysis.h5").exists()
