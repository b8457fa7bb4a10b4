"""The Andor SDK3 driver against a strict fake of atcore (tests/drivers/fake_atcore.py).

The fake is called through real ctypes function pointers, so these tests exercise the driver's
argtypes, out-pointers and buffer addresses as the real library would see them. Fact ids (A1-A16)
refer to docs/hardware/andor_sdk3.md.
"""

from __future__ import annotations

import ctypes as ct

import numpy as np
import pytest

from drivers.andor_sdk3 import (
    SIGNATURES,
    AndorSDK3Camera,
    AndorSDK3Disconnected,
    AndorSDK3Error,
    LibraryNotFoundError,
    _Buffer,
    load_atcore,
    unpack_mono12packed,
)
from instrument.protocols import (
    CameraTrigger,
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    IntensityCamera,
)
from tests.drivers import fake_atcore as fa
from tests.drivers.fake_atcore import FakeAtcore, FakeCamera, default_scene

SHAPE = (20, 30)


@pytest.fixture
def fake():
    f = FakeAtcore(FakeCamera(), FakeCamera(serial="VSC-00002"))
    yield f
    assert f.internal_errors == []  # the fake itself never failed


@pytest.fixture
def cam(fake):
    c = AndorSDK3Camera("camera", library=fake.library, shape=SHAPE, pixel_encoding="Mono16")
    yield c
    c.close()


def expected(cam, start_s=0.0, exposure_s=None, bits=12):
    """The fake's scene over the camera's AOI, as the sensor digitises it."""
    rows, cols = cam.shape
    e = cam.exposure_s if exposure_s is None else exposure_s
    full = default_scene((48, 64), e, start_s)
    return np.clip(np.rint(full[:rows, :cols]), 0, 2**bits - 1).astype(np.uint16)


# ---- identity, limits, settings -----------------------------------------------------------------


def test_identity_and_limits_come_from_the_camera(cam, fake):
    assert isinstance(cam, IntensityCamera)
    assert cam.model == "ZYLA-5.5-USB3" and cam.serial == "VSC-00001"
    c = cam.constraints
    assert (c.exposure_min_s, c.exposure_max_s) == (1e-5, 30.0)
    assert (c.width_max, c.height_max) == (64, 48)
    assert c.pixel_formats == ("Mono12", "Mono12Packed", "Mono16")  # Mono32 is not available
    assert c.trigger_inputs == ("External",) and c.max_frames_per_trigger == 1
    assert cam.shape == SHAPE and cam.pixel_format == "Mono16"
    snap = cam.snapshot()
    assert snap["driver"] == "andor_sdk3" and snap["serial"] == "VSC-00001"
    assert snap["sdk_version"] == "3.15.30092.0" and snap["aoi_stride_bytes"] > 2 * SHAPE[1]


def test_camera_is_chosen_by_serial_and_a_missing_serial_lists_what_the_sdk_sees(fake):
    c = AndorSDK3Camera("camera", library=fake.library, serial="VSC-00002")
    assert c.serial == "VSC-00002"
    c.close()
    with pytest.raises(AndorSDK3Error, match="VSC-99999.*sees 2 camera.*VSC-00001"):
        AndorSDK3Camera("camera", library=fake.library, serial="VSC-99999")
    assert fake.init_count == 0  # every failed open gave the library back


def test_exposure_runs_in_whole_row_times_and_moves_the_frame_rate_limit(cam):
    got = cam.set_exposure(0.0123456)
    assert got == pytest.approx(round(0.0123456 / 9.24e-6) * 9.24e-6) and got != 0.0123456
    assert cam.constraints.frame_rate_max_hz == pytest.approx(1 / got)
    cam.set_exposure(0.05)
    assert cam.constraints.frame_rate_max_hz == pytest.approx(1 / cam.exposure_s)
    with pytest.raises(InstrumentError, match="FrameRate.*out of the camera's range"):
        cam.set_frame_rate(1 / cam.exposure_s * 1.5)


@pytest.mark.parametrize(
    "call, setting",
    [
        (lambda c: c.set_exposure(0.0), "ExposureTime"),
        (lambda c: c.set_exposure(31.0), "ExposureTime"),
        (lambda c: c.set_exposure(float("nan")), "ExposureTime"),
        (lambda c: c.set_exposure(True), "ExposureTime"),
        (lambda c: c.set_frame_rate(-1), "FrameRate"),
        (lambda c: c.set_gain(3.0), "gain_mode"),
        (lambda c: c.set_gain_mode("24-bit (dreams)"), "gain_mode"),
        (lambda c: c.set_pixel_format("Mono32"), "PixelEncoding"),
        (lambda c: c.set_shape((49, 10)), "AOIHeight"),
        (lambda c: c.set_shape((10, 0)), "AOIWidth"),
        (lambda c: c.arm(0), "queue_size"),
        (lambda c: c.arm(2.5), "queue_size"),
        (lambda c: c.read_frames(1), "not armed"),
        (lambda c: c.trigger(), "not armed"),
    ],
)
def test_refusals_name_the_setting_and_send_nothing(cam, fake, call, setting):
    before = [n for n in fake.calls if n.startswith("AT_Set") or n == "AT_Command"]
    with pytest.raises(InstrumentError, match=setting):
        call(cam)
    after = [n for n in fake.calls if n.startswith("AT_Set") or n == "AT_Command"]
    assert after == before


def test_gain_is_a_mode_and_the_16_bit_mode_takes_mono16_only(cam):
    assert cam.set_gain(0.0) == 0.0 and cam.bit_depth == 12
    cam.set_gain_mode("16-bit (low noise & high well capacity)")
    assert cam.bit_depth == 16 and cam.pixel_format == "Mono16"
    assert cam.constraints.pixel_formats == ("Mono16",)
    with pytest.raises(InstrumentError, match="PixelEncoding.*16-bit.*Mono16"):
        cam.set_pixel_format("Mono12")


@pytest.mark.parametrize(
    "trigger, setting",
    [
        (CameraTrigger(source="Line1"), "unknown trigger source"),
        (CameraTrigger(source="External", edge="both"), "IOInvert"),
        (CameraTrigger(source="software", exposure="trigger_width", width_s=1e-3), "hardware input"),
        (CameraTrigger(source="External", exposure="trigger_width", width_s=0.0), "width_s"),
        (CameraTrigger(source="External", exposure="trigger_width", width_s=60.0), "width_s"),
        (CameraTrigger(source="External", frames_per_trigger=2), "one pulse per frame"),
    ],
)
def test_impossible_triggers_are_refused_before_anything_is_sent(cam, fake, trigger, setting):
    fake.calls.clear()
    with pytest.raises(InstrumentError, match=setting):
        cam.set_trigger(trigger)
    assert not [n for n in fake.calls if n.startswith("AT_Set")]


def test_only_exposure_and_frame_rate_change_while_armed(cam, fake):
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(4)
    for call in (lambda: cam.set_shape((10, 10)), lambda: cam.set_gain_mode("12-bit (low noise)"),
                 lambda: cam.set_trigger(CameraTrigger()), lambda: cam.set_pixel_format("Mono12")):
        with pytest.raises(InstrumentError, match="disarm"):
            call()
    assert cam.set_exposure(0.02) == pytest.approx(0.02, abs=9.24e-6)  # the SDK allows it (A6)
    cam.trigger()
    assert np.array_equal(cam.read_frames(1).images[0], expected(cam, 0.0, cam.exposure_s))


# ---- frames -------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["Mono12", "Mono12Packed", "Mono16"])
def test_software_frames_are_the_scene_through_the_stride_with_camera_timestamps(fake, encoding):
    cam = AndorSDK3Camera("camera", library=fake.library, shape=(7, 13), pixel_encoding=encoding)
    try:
        cam.set_exposure(0.002)
        cam.set_trigger(CameraTrigger(source="software"))
        starts = []
        cam.arm(4)
        for _ in range(3):
            starts.append(fake.now_s)
            frames = cam.read_frames(0)
            cam.trigger()
            frames = cam.read_frames(1)
            assert np.array_equal(frames.images[0], expected(cam, starts[-1]))
        assert frames.images.dtype == np.uint16 and frames.timestamp_source == "camera"
        again = cam.acquire(2)
        assert list(again.frame_numbers) == [3, 4]
        assert np.all(np.diff(again.timestamps_s) > 0)
    finally:
        cam.close()


def test_timestamps_are_ticks_over_the_clock_frequency(cam, fake):
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(4)
    fake.advance(1.234567)
    cam.trigger()
    f = cam.read_frames(1)
    assert f.timestamps_s[0] == pytest.approx(1.234567, abs=1e-8)  # 100 MHz ticks


def test_free_running_frames_come_at_the_frame_rate(cam):
    cam.set_exposure(0.01)
    assert cam.set_frame_rate(25.0) == 25.0
    cam.set_trigger(CameraTrigger(source="free"))
    cam.arm(8)
    f = cam.read_frames(6)
    assert list(f.frame_numbers) == list(range(6)) and f.dropped == 0
    assert np.allclose(np.diff(f.timestamps_s), 0.04)


@pytest.mark.parametrize("edge", ["rising", "falling"])
def test_hardware_trigger_starts_frames_on_the_chosen_edge(cam, fake, edge):
    cam.set_exposure(0.001)
    cam.set_trigger(CameraTrigger(source="External", edge=edge))
    cam.arm(8)
    rises = [0.1, 0.2, 0.35]
    for r in rises:
        fake.pulse(r, 20e-6)
    f = cam.read_frames(3, timeout_s=1.0)
    starts = np.array(rises) + (20e-6 if edge == "falling" else 0.0)
    assert np.allclose(f.timestamps_s, starts, atol=1e-8)
    assert cam.snapshot()["trigger"]["trigger_mode"] == "External"


def test_trigger_width_exposure_integrates_for_the_pulse_length(cam, fake):
    cam.set_trigger(CameraTrigger(source="External", exposure="trigger_width", width_s=2e-3))
    cam.arm(4)
    fake.pulse(0.1, 2e-3)
    fake.pulse(0.2, 4e-3)
    f = cam.read_frames(2, timeout_s=1.0)
    assert np.array_equal(f.images[0], expected(cam, exposure_s=2e-3))
    assert np.array_equal(f.images[1], expected(cam, exposure_s=4e-3))


def test_inverted_trigger_width_exposes_from_a_fall_to_the_next_rise(cam, fake):
    cam.set_trigger(CameraTrigger(source="External", edge="falling", exposure="trigger_width", width_s=3e-3))
    cam.arm(4)
    fake.pulse(0.100, 1e-3)  # falls at 0.101
    fake.pulse(0.104, 1e-3)  # rises at 0.104: 3 ms of inverted-active input
    f = cam.read_frames(1, timeout_s=1.0)
    assert f.timestamps_s[0] == pytest.approx(0.101, abs=1e-8)
    assert np.array_equal(f.images[0], expected(cam, exposure_s=3e-3))


def test_the_bounded_queue_drops_the_oldest_frames_and_counts_them(cam, fake):
    cam.set_exposure(0.01)
    cam.set_frame_rate(50.0)
    cam.set_trigger(CameraTrigger(source="free"))
    cam.arm(4)
    first = cam.read_frames(1)
    fake.advance(0.2)  # ten more frames land while nobody reads
    f = cam.read_frames(4)
    assert f.dropped == 6 and cam.dropped_frames == 6
    assert list(f.frame_numbers) == [7, 8, 9, 10]  # the gap shows where frames went
    assert first.frame_numbers[0] == 0
    assert cam.read_frames(1).dropped == 0  # counted once


# ---- timeouts, garbage, truncation, failures ----------------------------------------------------


def test_a_missing_trigger_times_out_naming_the_cable_with_the_frames_read_so_far(cam, fake):
    cam.set_trigger(CameraTrigger(source="External"))
    cam.arm(4)
    fake.pulse(0.05, 20e-6)
    with pytest.raises(InstrumentTimeout, match="1 of 3 frames.*External Trigger") as info:
        cam.read_frames(3, timeout_s=0.5)
    assert info.value.frames.images.shape == (1, *SHAPE)


def test_triggers_while_the_camera_is_busy_are_ignored_not_queued(cam, fake):
    cam.set_exposure(0.05)
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(4)
    cam.trigger()
    cam.trigger()  # still exposing the first frame
    assert fake.ignored_triggers == 1
    with pytest.raises(InstrumentTimeout, match="1 of 2"):
        cam.read_frames(2, timeout_s=0.2)


@pytest.mark.parametrize(
    "fault, message",
    [
        ("truncate", "truncated frame"),
        ("foreign_pointer", "never queued"),
        ("corrupt_metadata", "corrupt metadata"),
    ],
)
def test_garbage_from_the_sdk_is_refused_and_the_next_frame_is_good(cam, fake, fault, message):
    cam.set_trigger(CameraTrigger(source="software"))
    cam.arm(4)
    fake.faults[fault] = True
    cam.trigger()
    with pytest.raises(AndorSDK3Error, match=message):
        cam.read_frames(1)
    assert cam.dropped_frames == (0 if fault == "foreign_pointer" else 1)  # an unreadable frame is lost
    if fault == "foreign_pointer":
        cam.disarm()
        cam.arm(4)
    fake.advance(0.1)
    cam.trigger()
    assert np.array_equal(cam.read_frames(1).images[0], expected(cam, fake.now_s))


def test_wait_errors_other_than_a_timeout_are_raised_with_their_meaning(cam, fake):
    cam.arm(2)
    fake.faults["wait_code"] = fa.AT_ERR_NOTREADABLE
    with pytest.raises(AndorSDK3Error, match=r"AT_ERR_NOTREADABLE \(4\)"):
        cam.read_frames(1)


def test_a_burst_camera_memory_stops_the_acquisition_with_a_clear_error(fake):
    fake.cameras[0].onhead_frames = 3
    cam = AndorSDK3Camera("camera", library=fake.library, shape=SHAPE)
    try:
        cam.set_exposure(0.001)
        cam.set_frame_rate(100.0)
        cam.set_trigger(CameraTrigger(source="free"))
        cam.arm(2)  # 4 SDK buffers + 3 frames of camera memory
        fake.advance(0.5)
        with pytest.raises(AndorSDK3Error, match="HARDWARE_OVERFLOW.*Read frames more often"):
            cam.read_frames(10)
        assert cam.hardware_overflows == 1
        cam.disarm()
        cam.arm(2)  # re-arming starts afresh
        assert cam.read_frames(1).images.shape == (1, *SHAPE)
    finally:
        cam.close()


def test_a_lost_camera_is_reported_as_disconnected(cam, fake):
    cam.arm(2)
    fake.connected = False
    with pytest.raises(InstrumentDisconnected, match="AT_ERR_COMM"):
        cam.read_frames(1)
    with pytest.raises(AndorSDK3Disconnected, match="AT_GetStringMaxLength CameraModel"):
        cam.model  # noqa: B018 - a read is enough
    fake.connected = True


def test_a_missing_library_names_where_it_looked_and_the_fix(monkeypatch):
    monkeypatch.setenv("ANDOR_SDK3_LIBRARY", "/nonexistent/libatcore.so")
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    with pytest.raises(LibraryNotFoundError, match="nonexistent/libatcore.so.*ANDOR_SDK3_LIBRARY"):
        load_atcore()


def test_close_releases_camera_and_library_and_is_idempotent(fake):
    cam = AndorSDK3Camera("camera", library=fake.library)
    cam.set_trigger(CameraTrigger(source="free"))
    cam.arm(2)
    assert fake._acquiring
    cam.close()
    cam.close()
    assert fake.init_count == 0 and not fake._open and not fake._acquiring
    assert fake.calls.count("AT_Close") == 1 and fake.calls.count("AT_FinaliseLibrary") == 1


def test_station_checks_report_identity_input_cooling_and_a_frame(cam):
    cam.set_exposure(0.01)  # the fake's ramp saturates 12 bits at this exposure
    saturated = {c.check: c for c in cam.station_checks()}["software-triggered frame"]
    assert saturated.ok is False and "shorten the exposure" in saturated.fix
    cam.set_exposure(0.001)
    checks = {c.check: c for c in cam.station_checks()}
    assert checks["identity"].ok and "VSC-00001" in checks["identity"].detail
    assert checks["trigger input External"].ok
    assert checks["sensor cooling"].ok is False and "Cooler Off" in checks["sensor cooling"].detail
    assert checks["software-triggered frame"].ok and "camera" in checks["software-triggered frame"].detail
    assert not cam.station_checks("Line1")[1].ok


# ---- the fake is strict: calls atcore forbids fail ----------------------------------------------


def _typed(fake):
    lib = fake.library
    for name, (argtypes, _) in SIGNATURES.items():
        f = getattr(lib, name)
        f.argtypes, f.restype, f.errcheck = argtypes, ct.c_int, lambda result, func, args: result
    return lib


def _opened(fake):
    lib = _typed(fake)
    assert lib.AT_Open(0, ct.byref(ct.c_int())) == fa.AT_ERR_NOTINITIALISED
    assert lib.AT_InitialiseLibrary() == 0
    h = ct.c_int()
    assert lib.AT_Open(0, ct.byref(h)) == 0
    return lib, h.value


def test_fake_refuses_wrong_types_read_only_features_ranges_and_strings(fake):
    lib, h = _opened(fake)
    d, i = ct.c_double(), ct.c_longlong()
    assert lib.AT_GetFloat(h, "AOIWidth", ct.byref(d)) == fa.AT_ERR_NOTIMPLEMENTED  # an integer feature
    assert lib.AT_GetInt(h, "AOIWidth", ct.byref(i)) == 0 and i.value == 64
    assert lib.AT_SetInt(h, "SensorWidth", 10) == fa.AT_ERR_READONLY
    assert lib.AT_SetFloat(h, "ExposureTime", 100.0) == fa.AT_ERR_OUTOFRANGE
    assert lib.AT_SetEnumString(h, "PixelEncoding", "Mono14") == fa.AT_ERR_STRINGNOTIMPLEMENTED
    assert lib.AT_SetEnumString(h, "PixelEncoding", "Mono32") == fa.AT_ERR_STRINGNOTAVAILABLE
    assert lib.AT_GetInt(h, "NoSuchFeature", ct.byref(i)) == fa.AT_ERR_NOTIMPLEMENTED
    assert lib.AT_GetInt(h + 7, "AOIWidth", ct.byref(i)) == fa.AT_ERR_INVALIDHANDLE
    short = ct.create_unicode_buffer(4)
    assert lib.AT_GetString(h, "CameraModel", short, 4) == fa.AT_ERR_EXCEEDEDMAXSTRINGLENGTH
    assert lib.AT_Command(h, "SoftwareTrigger") == fa.AT_ERR_NOTWRITABLE  # not acquiring, not Software mode


def test_fake_refuses_unaligned_and_short_buffers_and_settings_while_acquiring(fake):
    lib, h = _opened(fake)
    size = ct.c_longlong()
    lib.AT_GetInt(h, "ImageSizeBytes", ct.byref(size))
    buf = _Buffer(size.value + 16)
    skewed = ct.cast(buf.address + 1, ct.POINTER(ct.c_ubyte))
    assert lib.AT_QueueBuffer(h, skewed, size.value) == fa.AT_ERR_INVALIDALIGNMENT
    assert lib.AT_QueueBuffer(h, buf.pointer, size.value - 1) == fa.AT_ERR_INVALIDSIZE
    assert lib.AT_QueueBuffer(h, buf.pointer, size.value) == 0
    assert lib.AT_Command(h, "AcquisitionStart") == 0
    assert lib.AT_SetEnumString(h, "PixelEncoding", "Mono16") == fa.AT_ERR_NOTWRITABLE
    assert lib.AT_SetInt(h, "AOIWidth", 32) == fa.AT_ERR_NOTWRITABLE
    assert lib.AT_SetFloat(h, "ExposureTime", 0.02) == 0  # exposure may change while acquiring (A6)
    w = ct.c_int()
    lib.AT_IsWritable(h, "AOIWidth", ct.byref(w))
    assert w.value == 0
    ptr, n = ct.POINTER(ct.c_ubyte)(), ct.c_int()
    assert lib.AT_WaitBuffer(h, ct.byref(ptr), ct.byref(n), 0) == fa.AT_ERR_TIMEDOUT
    assert lib.AT_WaitBuffer(h, ct.byref(ptr), ct.byref(n), 50) == 0  # the Internal-mode frame
    assert ct.cast(ptr, ct.c_void_p).value == buf.address and n.value == size.value
    lib.AT_Command(h, "AcquisitionStop")
    lib.AT_Flush(h)
    lib.AT_Close(h)
    lib.AT_FinaliseLibrary()


def test_fake_pads_rows_so_a_reader_ignoring_the_stride_sees_garbage(fake):
    lib, h = _opened(fake)
    stride, size, width = ct.c_longlong(), ct.c_longlong(), ct.c_longlong()
    lib.AT_SetEnumString(h, "PixelEncoding", "Mono16")
    for name, out in (("AOIStride", stride), ("ImageSizeBytes", size), ("AOIWidth", width)):
        lib.AT_GetInt(h, name, ct.byref(out))
    assert stride.value > 2 * width.value
    buf = _Buffer(size.value)
    lib.AT_QueueBuffer(h, buf.pointer, size.value)
    lib.AT_Command(h, "AcquisitionStart")
    ptr, n = ct.POINTER(ct.c_ubyte)(), ct.c_int()
    assert lib.AT_WaitBuffer(h, ct.byref(ptr), ct.byref(n), 1000) == 0
    naive = buf.array[: 2 * width.value * 48].view("<u2").reshape(48, width.value)
    assert np.any(naive == 0xABAB)  # padding read as pixels
    lib.AT_Command(h, "AcquisitionStop")
    lib.AT_Flush(h)
    lib.AT_Close(h)
    lib.AT_FinaliseLibrary()


def test_fake_sits_below_ctypes_a_wrongly_declared_argument_arrives_wrong(fake):
    lib, h = _opened(fake)
    got = ct.c_double()
    assert lib.AT_SetFloat(h, "ExposureTime", 0.02) == 0
    lib.AT_GetFloat(h, "ExposureTime", ct.byref(got))
    assert got.value == pytest.approx(0.02, abs=9.24e-6)  # declared as atcore.h says: arrives
    lib.AT_SetFloat.argtypes = [ct.c_int, ct.c_wchar_p, ct.c_float]  # atcore.h says double
    lib.AT_SetFloat(h, "ExposureTime", 0.01)
    lib.AT_GetFloat(h, "ExposureTime", ct.byref(got))
    assert got.value != pytest.approx(0.01, abs=9.24e-6)  # a float where a double belongs: lost
    lib.AT_Close(h)
    lib.AT_FinaliseLibrary()


def test_a_driver_that_queues_an_unaligned_buffer_fails(fake, monkeypatch):
    class Skewed(_Buffer):
        def __init__(self, size: int) -> None:
            super().__init__(size + 8)
            self.address += 1
            self.pointer = ct.cast(self.address, ct.POINTER(ct.c_ubyte))
            self.array = self.array[1 : size + 1]

    monkeypatch.setattr("drivers.andor_sdk3._Buffer", Skewed)
    cam = AndorSDK3Camera("camera", library=fake.library)
    try:
        with pytest.raises(AndorSDK3Error, match="AT_ERR_INVALIDALIGNMENT"):
            cam.arm(2)
    finally:
        cam.close()


def test_mono12packed_unpacking_matches_the_fakes_packing():
    rng = np.random.default_rng(1)
    for cols in (1, 2, 7, 30):
        counts = rng.integers(0, 4096, (3, cols)).astype(np.uint16)
        assert np.array_equal(unpack_mono12packed(fa._pack12(counts), cols), counts)


# ---- station ------------------------------------------------------------------------------------


def _station_file(tmp_path, camera):
    import yaml

    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump({"name": "andor", "instruments": {"camera": camera}}))
    return path


def test_the_station_builds_andor_cameras_on_real_hardware_only(tmp_path, monkeypatch):
    from instrument.station import StationFileError, build_station

    entry = {"driver": "andor_sdk3", "serial": "VSC-00001", "gain_mode": "12-bit (low noise)"}
    with pytest.raises(StationFileError, match="has no simulator; use driver 'basler'"):
        build_station(_station_file(tmp_path, entry), simulated=True, image_shape=(8, 8))
    monkeypatch.setenv("ANDOR_SDK3_LIBRARY", "/nonexistent/libatcore.so")
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    with pytest.raises(InstrumentError, match="ANDOR_SDK3_LIBRARY"):
        build_station(_station_file(tmp_path, entry))


def test_a_buffer_queued_for_a_smaller_frame_blocks_the_start(fake):
    lib, h = _opened(fake)
    size = ct.c_longlong()
    lib.AT_SetInt(h, "AOIWidth", 16)
    lib.AT_GetInt(h, "ImageSizeBytes", ct.byref(size))
    buf = _Buffer(size.value)
    assert lib.AT_QueueBuffer(h, buf.pointer, size.value) == 0
    assert lib.AT_SetInt(h, "AOIWidth", 64) == 0  # the frame grows; the queued buffer does not
    assert lib.AT_Command(h, "AcquisitionStart") == fa.AT_ERR_INVALIDSIZE
    lib.AT_Flush(h)
    lib.AT_Close(h)
    lib.AT_FinaliseLibrary()


def test_a_camera_without_input_inversion_or_metadata_says_so(fake):
    missing = ("IOSelector", "IOInvert", "MetadataEnable", "MetadataTimestamp")
    fake.cameras[0].extra["not_implemented"] = missing
    cam = AndorSDK3Camera("camera", library=fake.library, shape=SHAPE, clock=lambda: 42.0)
    try:
        with pytest.raises(InstrumentError, match="cannot invert its trigger input; trigger on the rising"):
            cam.set_trigger(CameraTrigger(source="External", edge="falling"))
        cam.set_trigger(CameraTrigger(source="software"))
        f = cam.acquire(1)
        assert f.timestamp_source == "host" and f.timestamps_s[0] == 42.0
    finally:
        cam.close()
