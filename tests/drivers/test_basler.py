"""The Basler driver against Basler's own camera emulator (pypylon's PYLON_CAMEMU), fed the World's PL."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

if importlib.util.find_spec("pypylon") is None:
    if os.environ.get("CI"):
        raise RuntimeError("pypylon is missing in CI; it is part of the test extra (pip install -e .[test])")
    pytest.skip("pypylon not installed: pip install -e .[basler]", allow_module_level=True)

from drivers.basler import BaslerCamera, BaslerError  # noqa: E402
from instrument.protocols import (  # noqa: E402
    CameraTrigger,
    InstrumentError,
    InstrumentTimeout,
    IntensityCamera,
)
from instrument.station import build_station, bundled_station  # noqa: E402
from sim.basler_images import EmulatorImageFeed, emulator_serial, enable_emulator  # noqa: E402
from sim.world import World  # noqa: E402

enable_emulator(1)  # before pylon's transport-layer factory starts in this process
SHAPE = (24, 32)


@pytest.fixture
def world():
    return World(shape=SHAPE, seed=5)


@pytest.fixture
def feed(world):
    f = EmulatorImageFeed(world)
    yield f
    f.close()


def _open(world, feed, **kw):
    cam = BaslerCamera("camera", serial=emulator_serial(0), shape=world.shape, before_trigger=feed,
                       clock=world.clock.now, **kw)
    cam.serve_image_files(str(feed.folder))
    return cam


@pytest.fixture
def cam(world, feed):
    c = _open(world, feed, pixel_format="Mono12", emulate_hardware_trigger=True)
    yield c
    c.close()


# ---- identity, settings, refusals ---------------------------------------------------------------


def test_identity_is_what_pylon_reports_and_lands_in_the_snapshot(cam):
    assert isinstance(cam, IntensityCamera)
    snap = cam.snapshot()
    assert (snap["model"], snap["serial"], snap["device_class"]) == ("Emulation", "0815-0000", "BaslerCamEmu")
    assert snap["vendor"] == "Basler" and snap["emulated"] is True
    assert snap["shape"] == list(SHAPE) and snap["pixel_format"] == "Mono12" and snap["bit_depth"] == 12
    assert any("no light" in gap for gap in snap["sim_gaps"])  # the exposure stand-in is marked


def test_unknown_serial_names_the_cameras_found(world, feed):
    with pytest.raises(InstrumentError, match=r"no Basler camera with serial '1234'.*0815-0000"):
        BaslerCamera("camera", serial="1234")


def test_exposure_and_gain_read_back_and_refuse_out_of_range(cam):
    c = cam.constraints
    assert c.exposure_min_s == pytest.approx(1e-6) and c.exposure_max_s == pytest.approx(10.0)
    assert cam.set_exposure(2.5e-3) == pytest.approx(2.5e-3, abs=1e-6)
    assert cam.set_gain(6.0) == pytest.approx(6.0, abs=0.05)
    for bad in (0.5e-6, 11.0, float("nan"), -1e-3, True, "1e-3", None):
        with pytest.raises(InstrumentError, match="ExposureTime.*out of the camera's range"):
            cam.set_exposure(bad)
    for bad in (-1.0, 60.0):
        with pytest.raises(InstrumentError, match="Gain.*out of the camera's range"):
            cam.set_gain(bad)
    # a refused value leaves the setting as it was
    assert cam.exposure_s == pytest.approx(2.5e-3, abs=1e-6) and cam.gain_db == pytest.approx(6.0, abs=0.05)


def test_pixel_format_and_roi_are_checked(cam):
    with pytest.raises(InstrumentError, match="PixelFormat.*Mono8, Mono10, Mono12, Mono16"):
        cam.set_pixel_format("RGB8Packed")
    with pytest.raises(InstrumentError, match="Width.*1 .. 4096"):
        cam.set_shape((10, 5000))
    cam.set_pixel_format("Mono16")
    assert cam.bit_depth == 16


def test_trigger_settings_are_checked_before_anything_is_sent(cam):
    for bad, what in [(CameraTrigger(source="Line9"), "TriggerSource"),
                      (CameraTrigger(source="Line1", edge="up"), "TriggerActivation"),
                      (CameraTrigger(source="software", exposure="trigger_width", width_s=1e-3), "hardware"),
                      (CameraTrigger(source="Line1", exposure="trigger_width"), "width_s"),
                      (CameraTrigger(source="software", frames_per_trigger=2), "frames per trigger")]:
        with pytest.raises(InstrumentError, match=what):
            cam.set_trigger(bad)
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(4)
    with pytest.raises(InstrumentError, match="while armed"):
        cam.set_trigger(CameraTrigger(source="free"))


# ---- frames through the emulator ------------------------------------------------------------------


def test_the_emulator_delivers_the_rendered_values_in_each_mono_format(world, feed):
    """Our shift rule against Basler's conversion: Mono12 takes the top 12 bits of a 16-bit file."""
    truth = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE) * 5 % 4096
    cam = _open(world, feed)
    try:
        for fmt, bits in (("Mono12", 12), ("Mono16", 16), ("Mono8", 8)):
            cam.set_pixel_format(fmt)
            cam.set_trigger(CameraTrigger(source="software"))
            value = (truth.astype(np.int64) % 2**bits).astype(np.uint16)
            cam._before_trigger = lambda bits=bits, value=value, **_: feed.write(value, bits)
            frames = cam.acquire(2)
            assert frames.images.dtype == (np.uint8 if bits == 8 else np.uint16)
            np.testing.assert_array_equal(frames.images[1], value)
            cam.disarm()
    finally:
        cam.close()


def _mean_signal(frames, feed):
    return frames.images.astype(float).mean(axis=0) - feed.dark_offset_dn


def test_frames_follow_the_world_dark_on_resonance_and_not_without_mw():
    with build_station(bundled_station("basler.yaml"), simulated=True, image_shape=SHAPE, seed=2) as st:
        cam, mw, world, feed = st["camera"], st["mw"], st.world, st.sim_parts["camera"]
        mw.set_power(0.0)
        mw.set_output(True)
        # Truth from the World (not from the camera path): its darkest frequency near the bias line.
        scan = world.resonance_estimate_hz() + np.linspace(-4e6, 4e6, 161)
        f_on = scan[np.argmin([world.pl_rate_hz(True, f).mean() for f in scan])]
        f_off = 2.60e9
        expected = world.pl_rate_hz(True, f_on).mean() / world.pl_rate_hz(True, f_off).mean()
        cam.set_exposure(10e-3)
        cam.set_trigger(CameraTrigger(source="software"))
        cam.arm(8)

        def grab(frequency_hz):
            mw.set_frequency(frequency_hz)
            return _mean_signal(cam.acquire(6), feed).mean()

        on, off = grab(f_on), grab(f_off)
        mw.set_output(False)
        no_mw = grab(f_on)
        assert feed.mw_frequencies_hz[:6] == pytest.approx([f_on] * 6)
        # shot-noise spread of a 6-frame image mean (electrons -> DN), for the tolerance
        gain_dn = 4095 / feed.full_well_e
        sigma = np.sqrt(off / gain_dn / (6 * np.prod(SHAPE))) * gain_dn
        assert expected < 0.99  # the World has a dip worth finding
        assert on / off == pytest.approx(expected, abs=6 * sigma / off)
        assert off - on > 10 * sigma
        assert abs(no_mw - off) < 6 * sigma  # no MW reaching the NVs: no dip
        snap = st.snapshot()["instruments"]["camera"]
        assert snap["model"] == "Emulation" and snap["serial"] == "0815-0000"


def test_a_real_station_refuses_the_emulator_in_place_of_a_camera():
    from instrument.protocols import SafetyLimits
    from instrument.station import BUILDERS, Station, StationFileError

    lab = Station("lab", simulated=False, limits=SafetyLimits(), instruments={})
    with pytest.raises(StationFileError, match="emulator, not a camera.*serial"):
        BUILDERS["basler"]("camera", {"driver": "basler", "serial": None}, lab)


def test_timestamps_are_the_simulation_clock_at_each_trigger_and_marked(cam, world):
    cam.set_exposure(5e-3)
    cam.set_trigger(CameraTrigger(source="software"))
    t0 = world.clock.now()
    frames = cam.acquire(3)
    assert frames.timestamp_source == "simulation"
    np.testing.assert_allclose(frames.timestamps_s, t0 + np.array([0, 5e-3, 10e-3]), atol=1e-9)
    np.testing.assert_array_equal(frames.frame_numbers, [0, 1, 2])
    assert any("no timestamps" in g for g in cam.snapshot()["sim_gaps"])


def test_bounded_queue_keeps_the_latest_frames_and_counts_the_dropped(cam):
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(queue_size=3)
    for _ in range(8):
        cam.trigger()
    kept = cam.read_frames(3)
    numbers = list(kept.frame_numbers)
    dropped = kept.dropped
    try:  # a frame still on its way is read too; nothing is lost uncounted
        while True:
            more = cam.read_frames(1, timeout_s=0.3)
            numbers += list(more.frame_numbers)
            dropped += more.dropped
    except InstrumentTimeout:
        pass
    assert len(numbers) + dropped == 8
    # at most the queue plus pylon's two spare buffers survive; the rest are counted as dropped
    assert dropped >= 8 - (3 + 2) and numbers == sorted(numbers) and numbers[-1] == 7
    assert cam.dropped_frames == dropped and cam.snapshot()["dropped_frames"] == dropped


def test_line1_on_the_emulator_runs_as_software_trigger_visibly(cam):
    cam.set_trigger(CameraTrigger(source="Line1", edge="falling", frames_per_trigger=2))
    cam.arm(8)
    cam.trigger()
    frames = cam.read_frames(2)
    assert list(frames.frame_numbers) == [0, 1]
    snap = cam.snapshot()
    assert snap["trigger"]["source"] == "Line1" and snap["trigger"]["running_as"] == "software"
    assert any("cannot see Line1" in g for g in snap["sim_gaps"])


def test_without_the_stand_in_a_line1_trigger_waits_for_an_edge_that_never_comes(world, feed):
    cam = _open(world, feed)
    try:
        cam.set_trigger(CameraTrigger(source="Line1"))
        cam.arm(4)
        with pytest.raises(InstrumentError, match="software triggers need"):
            cam.trigger()
        with pytest.raises(InstrumentTimeout, match="got 0 of 1 frames"):
            cam.read_frames(1, timeout_s=0.2)
    finally:
        cam.close()


def test_a_timeout_keeps_the_frames_already_read(cam):
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(4)
    cam.trigger()
    with pytest.raises(InstrumentTimeout, match="got 1 of 2") as info:
        cam.read_frames(2, timeout_s=0.3)
    assert info.value.frames.images.shape == (1, *SHAPE)


def test_unreadable_image_files_are_an_error_with_the_lost_frames_counted(cam, tmp_path):
    cam.serve_image_files(str(tmp_path / "missing"))
    cam._before_trigger = None
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(8)
    for _ in range(3):
        cam.trigger()
    with pytest.raises(BaslerError, match="Failed to load image file"):
        cam.read_frames(1)
    assert cam.dropped_frames == 2


def test_close_stops_grabbing_releases_the_camera_and_is_idempotent(world, feed):
    cam = _open(world, feed)
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(2)
    cam.close()
    assert not cam._camera.IsPylonDeviceAttached()
    cam.close()
    again = _open(world, feed)  # the device was released: it opens again
    try:
        again.set_trigger(CameraTrigger(source="software"))
        assert again.acquire(1).images.shape == (1, *SHAPE)
    finally:
        again.close()


def test_exposure_gain_and_gate_width_scale_the_rendered_signal(cam, feed):
    """The stand-in exposure is the one the camera is set to (or the gate pulse's width)."""
    cam.set_pixel_format("Mono16")  # headroom: no clipping at 2x signal

    def signal(trigger):
        cam.set_trigger(trigger)
        value = _mean_signal(cam.acquire(3), feed).mean()
        cam.disarm()
        return value

    cam.set_exposure(4e-3)
    base = signal(CameraTrigger(source="software"))
    cam.set_gain(20 * np.log10(2))
    doubled = signal(CameraTrigger(source="software"))
    cam.set_gain(0.0)
    gated = signal(CameraTrigger(source="Line1", exposure="trigger_width", width_s=1e-3))
    assert doubled / base == pytest.approx(2.0, rel=0.01)
    assert gated / base == pytest.approx(0.25, rel=0.01)


def test_station_checks_report_identity_trigger_input_and_a_frame(cam):
    cam.set_trigger(CameraTrigger(source="Line1"))
    checks = {c.check: c for c in cam.station_checks()}
    assert checks["identity"].ok and "0815-0000" in checks["identity"].detail
    assert checks["trigger input Line1"].ok
    assert checks["software-triggered frame"].ok, checks["software-triggered frame"].detail
    assert cam.trigger_setting.source == "Line1"  # the check put the trigger back
    missing = {c.check: c for c in cam.station_checks(trigger_input="Line7")}
    assert missing["trigger input Line7"].ok is False and "Line1" in missing["trigger input Line7"].fix
