import ctypes as ct

import numpy as np
import pytest

from drivers.helicam import (
    HeliCamC3,
    HeliCamError,
    HeliCamSettingError,
    LibraryNotFoundError,
    demodulation_frequency_hz,
    frame_period_s,
    solve_registers,
)
from instrument.protocols import InstrumentDisconnected, InstrumentError, InstrumentTimeout, LockInCamera
from sim.helicam import SimLibHeLIC
from sim.world import World


@pytest.fixture
def world():
    return World(shape=(12, 16), seed=3)


@pytest.fixture
def lib(world):
    return SimLibHeLIC(world)


@pytest.fixture
def cam(world, lib):
    c = HeliCamC3("cam", lib, clock=world.clock.now)
    yield c
    c.close()


# ---- register arithmetic (manual facts) -------------------------------------------------------


def test_manual_example_10khz_is_senstqp_845():
    regs = solve_registers(10e3, 100, 10)
    assert regs.sens_tqp == 845
    assert demodulation_frequency_hz(845) == pytest.approx(10e3, rel=1e-3)


def test_seed_000_settings_6p25khz_at_208_fps():
    regs = solve_registers(6250, 208, 300)
    assert regs.sens_tqp == 1370 and demodulation_frequency_hz(1370) == 6250
    assert regs.cycles_per_frame == 2 * regs.sens_navm2 + 2 == 30
    assert 1 / regs.frame_period_s == pytest.approx(208, rel=1e-4)
    # the frame is the demodulation cycles plus the calibration offset (SensCaldur + 58) / 35 MHz
    assert regs.frame_period_s == pytest.approx(30 / 6250 + (regs.sens_caldur + 58) / 35e6)
    assert frame_period_s(1370, 14, regs.sens_caldur) == regs.frame_period_s


@pytest.mark.parametrize(
    "args, setting",
    [
        ((1e3, 208, 10), "modulation_frequency_hz"),
        ((300e3, 208, 10), "modulation_frequency_hz"),
        ((float("nan"), 208, 10), "modulation_frequency_hz"),
        ((241e3, 208, 10), "modulation_frequency_hz"),  # between two SensTqp steps
        ((6250, 5000, 10), "frame_rate_hz"),
        ((6250, 0, 10), "frame_rate_hz"),
        ((6250, -3, 10), "frame_rate_hz"),
        ((6250, 3000, 10), "frame_rate_hz"),  # fewer than 4 cycles per frame at 6.25 kHz
        ((6250, 208, 0), "frames_per_volume"),
        ((6250, 208, 513), "frames_per_volume"),
        ((6250, 208, 2.5), "frames_per_volume"),
        ((6250, 208, True), "frames_per_volume"),
    ],
)
def test_impossible_settings_are_refused_naming_the_setting(args, setting):
    with pytest.raises(HeliCamSettingError, match=setting):
        solve_registers(*args)


def test_unreachable_frame_rate_lists_what_is_possible():
    # at 6.25 kHz consecutive frame lengths differ by 2 cycles (320 us), more than the calibration range
    with pytest.raises(HeliCamSettingError, match="nearest achievable"):
        solve_registers(6250, 212.8, 10)


# ---- the driver against the simulated library --------------------------------------------------


def test_satisfies_protocol_with_shape_from_library(cam):
    assert isinstance(cam, LockInCamera)
    assert cam.shape == (12, 16)
    assert cam.pixel_size_m == pytest.approx(150e-6 / 16)


def test_configure_writes_registers_and_reports_quantised_settings(cam):
    s = cam.configure(6250, 208, 50)
    assert s.modulation_frequency_hz == 6250 and s.frames_per_volume == 50 and s.cycles_per_frame == 30
    assert s.frame_rate_hz == pytest.approx(208, rel=1e-4)
    assert cam.get_setting("SensTqp") == 1370
    assert cam.get_setting("SensNavM2") == 14
    assert cam.get_setting("SensNFrames") == 50
    assert cam.get_setting("CamMode") == 0
    assert cam.get_setting("TrigFreeExtN") == 1
    assert cam.get_setting("AcqStop") == 0
    assert cam.snapshot()["registers"]["SensTqp"] == 1370


def test_refused_configure_leaves_camera_untouched(cam):
    cam.configure(6250, 208, 50)
    with pytest.raises(HeliCamSettingError, match="frames_per_volume"):
        cam.configure(6250, 208, 1000)
    assert cam.get_setting("SensNFrames") == 50 and cam.settings.frames_per_volume == 50


def test_acquire_returns_raw_iq_near_512_and_takes_camera_time(cam, world):
    s = cam.configure(6250, 208, 20)
    t0 = world.clock.now()
    raw = cam.acquire(45)  # three volumes, surplus discarded
    assert raw.shape == (45, 12, 16, 2) and raw.dtype == np.int16
    assert abs(raw.mean() - 512) < 10 and raw.min() >= 0 and raw.max() <= 1023
    elapsed = world.clock.now() - t0
    assert elapsed == pytest.approx(3 * 20 / s.frame_rate_hz + 2 * 1e-3)  # readout between volumes
    info = cam.last_volume
    assert info.index == 2 and info.n_frames == 20
    assert np.diff(info.frame_times_s()) == pytest.approx(np.full(19, 1 / s.frame_rate_hz))


def test_demodulate_removes_offset(cam):
    cam.configure(6250, 208, 10)
    raw = cam.acquire(10)
    sig = cam.demodulate(raw)
    assert sig.shape == (10, 12, 16) and sig.dtype == np.float32
    assert np.allclose(sig, raw[..., 0] - 512.0)
    with pytest.raises(ValueError, match="must be"):
        cam.demodulate(raw[..., 0])


def test_bad_acquire_requests(cam):
    with pytest.raises(HeliCamError, match="configure"):
        cam.acquire(1)
    cam.configure(6250, 208, 10)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(HeliCamSettingError, match="n_frames"):
            cam.acquire(bad)


def test_external_trigger_times_out_without_pulses(world, lib):
    cam = HeliCamC3("cam", lib, trigger="external", timeout_s=0.5, clock=world.clock.now)
    cam.configure(6250, 208, 10)
    assert cam.get_setting("TrigFreeExtN") == 0 and cam.get_setting("ExtTqp") == 0
    t0 = world.clock.now()
    with pytest.raises(InstrumentTimeout, match="trigger"):
        cam.acquire(10)
    assert world.clock.now() - t0 == pytest.approx(0.5)
    world.mw_gate_modulation_hz = 6250  # the pulse generator runs and triggers the camera
    assert cam.acquire(10).shape[0] == 10


def test_bad_trigger_name_is_refused(lib):
    with pytest.raises(HeliCamSettingError, match="trigger"):
        HeliCamC3("cam", lib, trigger="sometimes")


# ---- library errors -----------------------------------------------------------------------------


def test_library_error_code_raises_typed_error(cam, lib):
    cam.configure(6250, 208, 10)
    lib.inject_fault("HE_Acquire", -7)
    with pytest.raises(HeliCamError, match="HE_Acquire.*-7"):
        cam.acquire(10)
    assert cam.acquire(10).shape[0] == 10  # the next call works again


def test_acquire_timeout_code_zero_is_a_timeout(cam, lib):
    cam.configure(6250, 208, 10)
    lib.inject_fault("HE_Acquire", 0)
    with pytest.raises(InstrumentTimeout):
        cam.acquire(10)


def test_null_data_pointer_raises(cam, lib):
    cam.configure(6250, 208, 10)
    lib.inject_fault("HE_GetCamData", -1)
    with pytest.raises(HeliCamError, match="NULL"):
        cam.acquire(10)


def test_setmap_failure_during_configure(cam, lib):
    lib.inject_fault("HE_SetMap", -3)
    with pytest.raises(HeliCamError, match="HE_SetMap"):
        cam.configure(6250, 208, 10)


def test_open_without_camera_is_disconnected(world):
    lib = SimLibHeLIC(world)
    lib.inject_fault("HE_Open", 0)
    with pytest.raises(InstrumentDisconnected, match="sys=c3cam_sl70"):
        HeliCamC3("cam", lib)


def test_object_without_entry_points_is_refused():
    with pytest.raises(HeliCamError, match="HE_Acquire"):
        HeliCamC3("cam", object())


def test_unplugged_camera_raises_and_safe_state_reports_it(cam, lib):
    cam.configure(6250, 208, 10)
    lib.connected = False
    with pytest.raises(HeliCamError):
        cam.acquire(10)
    with pytest.raises(InstrumentError, match="AcqStop = 1: could not stop the acquisition"):
        cam.safe_state()
    with pytest.raises(InstrumentError, match="could not stop"):
        cam.close()  # reports, and still releases the handle
    cam.close()  # closing twice is harmless
    with pytest.raises(InstrumentDisconnected, match="closed"):
        cam.acquire(10)


def test_safe_state_stops_acquisition(cam):
    cam.configure(6250, 208, 10)
    cam.safe_state()
    assert cam.get_setting("AcqStop") == 1


def test_missing_real_library_names_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("HELIC_LIBRARY", str(tmp_path / "nowhere" / "libhelic.so"))
    with pytest.raises(LibraryNotFoundError, match="nowhere.*HELIC_LIBRARY"):
        HeliCamC3("cam")


def test_a_library_that_is_not_libhelic_is_refused(monkeypatch):
    import ctypes.util

    libc = ctypes.util.find_library("c")
    monkeypatch.setenv("HELIC_LIBRARY", libc)
    with pytest.raises(LibraryNotFoundError, match="not LibHeLIC: lacks HE_Open"):
        HeliCamC3("cam")


def test_handle_passed_through_ctypes_pointer(world):
    # the simulated library receives the same ctypes objects as the real one
    lib = SimLibHeLIC(world)
    handle = ct.c_void_p()
    assert lib.HE_Open(ct.pointer(handle), 0, b"sys=c3cam_sl70") > 0
    assert handle.value


def test_a_camera_that_fails_to_set_up_releases_its_handle(world, lib):
    lib.inject_fault("HE_SetTimeout", -7)
    with pytest.raises(HeliCamError, match="HE_SetTimeout"):
        HeliCamC3("cam", lib, clock=world.clock.now)
    assert lib._handle == 0  # HE_Close was called: the SDK allows one open handle per camera
    HeliCamC3("cam", lib, clock=world.clock.now).close()  # so the camera can be opened again


# ---- facts of docs/hardware/helicam.md -----------------------------------------------------------


def test_h1_result_pointer_needs_process_cam_data(world, lib):
    # the simulator refuses the old flow (HE_Acquire -> HE_GetCamData), as the manual's flow requires
    cam = HeliCamC3("cam", lib, clock=world.clock.now)
    cam.configure(6250, 208, 2)
    handle = cam._handle
    assert lib.HE_Acquire(handle) > 0
    meta = ct.pointer(__import__("drivers.helicam", fromlist=["CamDataMeta"]).CamDataMeta())
    assert not lib.HE_GetCamData(handle, 1, 0, meta)  # NULL: not processed yet
    assert lib.HE_ProcessCamData(handle, 1, 0, None)
    assert lib.HE_GetCamData(handle, 1, 0, meta)
    assert lib.HE_Acquire(handle) > 0
    assert not lib.HE_GetCamData(handle, 1, 0, meta)  # a new volume needs processing again
    cam.close()


def test_h1_the_driver_processes_each_volume(cam, lib):
    cam.configure(6250, 208, 5)
    lib.inject_fault("HE_ProcessCamData", -1)
    with pytest.raises(HeliCamError, match="HE_ProcessCamData"):
        cam.acquire(5)
    assert cam.acquire(5).shape == (5, 12, 16, 2)


def test_h2_configure_flushes_the_volume_left_from_the_old_settings(cam, lib):
    cam.configure(6250, 208, 5)
    cam.acquire(5)
    cam.configure(6250, 208, 7)  # the volume in flight under SensNFrames = 5 is still buffered
    assert cam.flushed_volumes == 1 and lib.stale_volumes_returned == 1
    raw = cam.acquire(7)  # without the flush this would be the stale 5-frame volume
    assert raw.shape == (7, 12, 16, 2)
    assert cam.snapshot()["flushed_volumes"] == 1


def test_h3_a_missed_external_trigger_is_a_negative_code(world, lib):
    cam = HeliCamC3("cam", lib, trigger="external", timeout_s=0.1, clock=world.clock.now)
    cam.configure(6250, 208, 2)
    world.mw_gate_modulation_hz = 6250
    lib.inject_fault("HE_Acquire", -116)
    with pytest.raises(InstrumentTimeout, match=r"code -116.*wider than 10 us"):
        cam.acquire(2)
    lib.inject_fault("HE_Acquire", -9)  # any negative code in external mode: no volume came
    with pytest.raises(InstrumentTimeout, match="code -9"):
        cam.acquire(2)
    cam.close()


@pytest.mark.parametrize("width_s, starts", [(1e-6, False), (10e-6, False), (20e-6, True)])
def test_h4_external_trigger_starts_on_the_falling_edge_of_a_wide_pulse(world, lib, width_s, starts):
    cam = HeliCamC3("cam", lib, trigger="external", timeout_s=0.5, clock=world.clock.now)
    cam.configure(6250, 208, 2)
    world.mw_gate_modulation_hz = 6250  # the pulse generator runs
    t0 = world.clock.now()
    lib.volume_trigger = lambda now: np.array([[t0 + 1e-3, t0 + 1e-3 + width_s]])
    if starts:
        cam.acquire(2)
        assert cam.last_volume.first_frame_time_s == pytest.approx(t0 + 1e-3 + width_s)
        assert lib.rejected_trigger_pulses == 0
    else:
        with pytest.raises(InstrumentTimeout):
            cam.acquire(2)
        assert lib.rejected_trigger_pulses == 1
    cam.close()


def test_h5_test_rows_and_columns_are_cropped_from_the_usable_area(cam, lib, world):
    assert cam.sensor_shape == (12 + 8, 16 + 20) and cam.shape == world.shape == (12, 16)
    assert cam.pixel_size_m == pytest.approx(150e-6 / 16)  # field of view over the usable columns
    cam.configure(6250, 208, 50)
    raw = cam.acquire(50)
    # the usable pixels carry the per-pixel offsets; the test pixels (constant 512) are gone
    per_pixel = raw[..., 0].mean(axis=0)
    assert np.corrcoef(per_pixel.ravel(), lib._offsets[..., 0].ravel())[0, 1] > 0.9
    assert cam.snapshot()["sensor_shape"] == [20, 36]


def test_h5_a_sensor_without_usable_area_is_refused(lib):
    lib._sensor.size[0] = 20  # 20 columns: all test columns
    with pytest.raises(HeliCamError, match="no usable area"):
        HeliCamC3("cam", lib)


def test_h6_lockin_phase_is_measured_and_reported():
    world = World(shape=(12, 16), seed=3)
    world.mw_output, world.mw_power_dbm = True, -5.0
    world.mw_frequency_hz = world.resonance_estimate_hz() - 1.515e6
    lib = SimLibHeLIC(world, phase_rad=0.6)
    cam = HeliCamC3("cam", lib, clock=world.clock.now)
    s = cam.configure(6250, 208, 100)
    world.mw_gate_modulation_hz = s.modulation_frequency_hz
    phase, amplitude = cam.measure_phase(cam.acquire(100))
    assert phase == pytest.approx(0.6, abs=0.05) and amplitude > 5
    assert cam.snapshot()["lockin_phase_rad"] == phase
    assert cam.snapshot()["demodulation_reference"].startswith("internal")
    with pytest.raises(ValueError, match="raw frames"):
        cam.measure_phase(np.zeros((2, 3)))
    cam.close()


def test_windows_search_includes_the_sdk_libhelic_folder(monkeypatch):
    from drivers import helicam

    monkeypatch.delenv("HELIC_LIBRARY", raising=False)
    monkeypatch.setattr(helicam.sys, "platform", "win32")
    monkeypatch.setenv("PROGRAMFILES", r"C:\Program Files")
    assert r"C:\Program Files\Heliotis\heliCam\libHeLIC\libHeLIC.dll" in helicam.library_search_paths()


def test_station_checks_read_registers_back_and_report_failures(cam, lib):
    checks = {r.check: r for r in cam.station_checks()}
    assert checks["identity"].ok and "usable 16 x 12" in checks["identity"].detail
    assert checks["register read-back"].ok and "'ExtTqp': 0" in checks["register read-back"].detail
    assert checks["internal-trigger volume"].ok
    lib.inject_fault("HE_SetMap", -3)
    bad = {r.check: r for r in cam.station_checks()}["register read-back"]
    assert bad.ok is False and "HE_SetMap" in bad.detail and "USB" in bad.fix
