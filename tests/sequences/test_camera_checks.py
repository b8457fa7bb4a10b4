"""A camera's timing checked against the sweep before anything moves: each refusal names the fix."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from instrument.protocols import CameraConstraints
from instrument.settings import settings_named
from sequences.camera_checks import (
    CameraSettingsError,
    CameraTiming,
    check_intensity_camera,
    check_lockin_camera,
    check_saturation,
)
from sequences.camera_cw import CameraCwSweep, pair_sequence
from sequences.pulses import compile_sequence


@dataclass
class FakeCamera:
    """What the checks read of an intensity camera (constraints as a Basler ace reports them)."""

    constraints: CameraConstraints = field(default_factory=lambda: CameraConstraints(
        exposure_min_s=20e-6, exposure_max_s=1.0, gain_min_db=0.0, gain_max_db=24.0,
        frame_rate_min_hz=1.0, frame_rate_max_hz=160.0, width_max=1920, height_max=1200,
        pixel_formats=("Mono8", "Mono12"), trigger_inputs=("Line1", "Line3")))
    bit_depth: int = 12
    pixel_format: str = "Mono12"


def timing(**kw):
    base = {"exposure_s": 5e-3, "frame_period_s": 10e-3, "gate_guard_s": 10e-6, "frames_per_read": 8,
            "queue_size": 16}
    return CameraTiming(**{**base, **kw})


def test_a_timing_the_camera_can_follow_passes():
    check_intensity_camera(FakeCamera(), timing())


@pytest.mark.parametrize(("change", "named", "words"), [
    ({"exposure_s": 5e-6}, ["exposure_s"], "outside the camera's exposure range 2e-05 .. 1 s"),
    ({"exposure_s": 2.0, "frame_period_s": 3.0}, ["exposure_s"], "exposure range"),
    ({"exposure_s": 10e-3}, ["exposure_s", "frame_period_s"], "does not fit"),
    ({"exposure_s": 1e-3, "frame_period_s": 2e-3}, ["frame_period_s"], "manages 160 frames/s"),
    ({"frames_per_read": 40}, ["frames_per_point"], "queue holds 16"),
])
def test_each_violation_names_the_setting_and_the_fix(change, named, words):
    with pytest.raises(CameraSettingsError) as err:
        check_intensity_camera(FakeCamera(), timing(**change))
    assert settings_named(str(err.value))[: len(named)] == named
    assert words in str(err.value)


def test_the_rate_the_camera_reports_with_the_settings_applied_is_checked_too():
    # 100 frames/s asked; the sensor allows 160, but at this exposure and ROI the camera says 80.
    check_intensity_camera(FakeCamera(), timing())
    with pytest.raises(CameraSettingsError, match=r"manages 80 frames/s.*at least 0.0125 s"):
        check_intensity_camera(FakeCamera(), timing(), frame_rate_hz=80.0)


def test_an_8_bit_format_cannot_resolve_an_odmr_contrast():
    with pytest.raises(CameraSettingsError, match="Mono8 has 8 bits.*Mono12"):
        check_intensity_camera(FakeCamera(bit_depth=8, pixel_format="Mono8"), timing())


def test_saturated_frames_are_refused():
    frames = np.full((2, 3, 3), 100, np.uint16)
    check_saturation(frames, 12, "point 1")
    frames[1, 0, 0] = 4095
    with pytest.raises(CameraSettingsError, match=r"1 pixel values .*saturated\); shorten `exposure_s`"):
        check_saturation(frames, 12, "point 1")


def test_the_lockin_camera_is_checked_by_its_own_register_solver():
    from drivers.helicam import HeliCamC3
    from sim.helicam import SimLibHeLIC
    from sim.world import World

    camera = HeliCamC3("camera", library=SimLibHeLIC(World(shape=(4, 4))))
    check_lockin_camera(camera, 6250.0, 208.0, 4)
    with pytest.raises(CameraSettingsError, match=r"cannot run 4 frames per point at 5000 frames/s.*"
                                                  r"`frames_per_point`"):
        check_lockin_camera(camera, 6250.0, 5000.0, 4)


def test_the_sweep_plan_refuses_before_anything_moves_and_touches_nothing():
    class Pulser:
        from sequences.pulses import board_constraints

        constraints = board_constraints()

    camera = FakeCamera()
    instruments = {"camera": camera, "pulser": Pulser()}
    sweep = CameraCwSweep(np.linspace(2.86e9, 2.88e9, 11), 0.0, np.zeros(2), (4, 4), frames_per_point=4,
                          exposure_s=5e-3, frame_period_s=10e-3)
    plan = sweep.plan(instruments)
    assert plan.trigger.source == "Line1" and plan.trigger.exposure == "trigger_width"
    assert plan.trigger.width_s == pytest.approx(5e-3) and plan.timing.frames_per_read == 8
    assert plan.metadata()["mw_stepping_mode"] == "software"
    assert sweep.plan(instruments) == plan  # a value: the same each time
    with pytest.raises(CameraSettingsError, match="no trigger input 'Line2'"):
        CameraCwSweep(sweep.frequencies_hz, 0.0, np.zeros(2), (4, 4), trigger_input="Line2").plan(instruments)
    with pytest.raises(CameraSettingsError, match="`frame_period_s`"):
        CameraCwSweep(sweep.frequencies_hz, 0.0, np.zeros(2), (4, 4), exposure_s=1e-3,
                      frame_period_s=2e-3).plan(instruments)


def test_the_pair_program_gates_mw_on_for_the_first_frame_of_each_pair():
    from drivers.pulseblaster import PulseBlaster
    from instrument.protocols import CameraTrigger
    from sim.camera_line import ExposureRenderer, exposure_windows
    from sim.spinapi import SimSpinAPI
    from sim.world import World

    world = World(shape=(2, 2))
    board = SimSpinAPI(world)
    pb = PulseBlaster("pb", library=board)
    pb.load(compile_sequence(pair_sequence(5e-3, 10e-3, 3)))
    pb.start()
    t0 = board.started_at_s
    gated = CameraTrigger("Line1", exposure="trigger_width", width_s=5e-3)
    windows, _, _ = exposure_windows(board, "camera_trigger", gated, 0.0, t0 - 1, t0 + 1)
    assert len(windows) == 6
    renderer = ExposureRenderer(world, board)
    states = [renderer.state_times_s(w) for w in windows]
    for k, s in enumerate(states):  # the whole exposure has the laser on, MW on in even frames only
        assert s == {(True, k % 2 == 0): pytest.approx(5e-3)}
