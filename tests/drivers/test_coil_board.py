"""Coil board driver: the exchanged lines are the specification (scripted transport), plus the
real driver against the simulated board on a pseudo-terminal."""

import numpy as np
import pytest

from drivers.coil_board import CoilBoard, open_serial
from instrument.protocols import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    SafetyLimitError,
    SafetyLimits,
)
from sim.coil_board import SimCoilBoard
from sim.world import World

LIMITS = SafetyLimits(coil_current_max_a=1e-3, coil_ramp_rate_a_per_s=1e-2)
HELLO = [("*IDN?", "QDM-COIL,2,SN7,1.0"), ("MAX?", "5.0e-03"), ("CUR? 0", "0.0"), ("CUR? 1", "0.0")]


class Scripted:
    """A transport that checks every command against a script and plays back the replies."""

    def __init__(self, script):
        self.script = list(script)
        self.sent = []
        self.closed = False

    def write(self, data):
        assert data.endswith(b"\n")
        self.sent.append(data.decode().strip())

    def readline(self):
        command, reply = self.script.pop(0)
        assert self.sent[-1] == command, f"sent {self.sent[-1]!r}, script expected {command!r}"
        return reply if isinstance(reply, bytes) else reply.encode() + b"\n"

    def close(self):
        self.closed = True


def board(script, **kw):
    return CoilBoard("coils", Scripted(HELLO + script), LIMITS, sleep=lambda s: None, **kw)


def test_ramp_goes_in_steps_enables_and_then_disables_idle_channels():
    b = board([("EN 1", "OK"), ("CUR 0,2.000000e-04", "OK"), ("CUR 0,4.000000e-04", "OK"), ("EN 1", "OK")],
              ramp_step_a=2e-4)
    b.set_currents([4e-4, 0.0])
    assert b.setpoints.tolist() == [4e-4, 0.0]
    assert b._io.script == []


def test_sleeps_pace_the_ramp_at_the_lab_rate():
    waited = []
    steps = [(f"CUR 0,{v:.6e}", "OK") for v in (1e-4, 2e-4, 3e-4, 4e-4)]
    script = Scripted(HELLO + [("EN 1", "OK"), *steps, ("EN 1", "OK")])
    b = CoilBoard("coils", script, LIMITS, ramp_step_a=1e-4, sleep=waited.append)
    b.set_currents([4e-4, 0])
    assert sum(waited) == pytest.approx(4e-4 / LIMITS.coil_ramp_rate_a_per_s)
    assert len(waited) == 4


def test_error_reply_raises_with_code_and_text():
    b = board([("EN 1", "OK"), ("CUR 0,5.000000e-05", "ERR 5 over-temperature")])
    with pytest.raises(InstrumentError, match="board error 5: over-temperature"):
        b.set_currents([5e-5, 0])


@pytest.mark.parametrize("reply, error, text", [
    (b"", InstrumentTimeout, "no reply"),
    (b"0.00", InstrumentTimeout, "cut short"),
    (b"\xff\xfe\n", InstrumentError, "not ASCII"),
    (b"banana\n", InstrumentError, "not a number"),
    (b"nan\n", InstrumentError, "not a finite number"),
])
def test_bad_replies_become_typed_errors(reply, error, text):
    b = board([("MEAS? 0", reply)])
    with pytest.raises(error, match=text):
        b.read_currents()


def test_wrong_identity_is_refused():
    with pytest.raises(InstrumentError, match="not a QDM-COIL board"):
        CoilBoard("coils", Scripted([("*IDN?", "KEITHLEY,2450")]), LIMITS)


def test_unsafe_requests_are_refused_before_anything_is_sent():
    b = board([], ceilings_a=[1e-3, 2e-4])
    with pytest.raises(SafetyLimitError, match="coil 0 current = 0.002 A exceeds"):
        b.set_currents([2e-3, 0])
    with pytest.raises(SafetyLimitError, match="channel 1 current = 0.0003 A exceeds .* 0.0002 A"):
        b.set_currents([0, 3e-4])
    with pytest.raises(SafetyLimitError):
        b.set_currents([float("nan"), 0])
    with pytest.raises(ValueError, match="expected 2 channel currents"):
        b.set_currents([0, 0, 0])
    assert b._io.sent[-1] == "CUR? 1"


def test_bad_ceilings_name_the_station_entry():
    with pytest.raises(ValueError, match="'ceilings_a' must be one non-negative number or 2"):
        board([], ceilings_a=[1e-3])


def test_safe_state_falls_back_to_zero_when_the_ramp_fails_and_reports_a_dead_board():
    b = board([("EN 1", "OK"), ("CUR 0,5.000000e-05", "OK"), ("EN 1", "OK"),
               ("CUR 0,0.000000e+00", "ERR 5 interlock"), ("ZERO", "OK")])
    b.set_currents([5e-5, 0])
    b.safe_state()  # the ramp failed, ZERO worked: safe, nothing to report
    assert b.setpoints.tolist() == [0, 0]
    # the script is exhausted: the board is gone, and the caller must hear that current may still flow
    with pytest.raises(InstrumentError, match="ZERO: could not zero the coils.*supply off"):
        b.safe_state()


def test_missing_port_is_a_clear_error():
    with pytest.raises(InstrumentDisconnected, match="cannot open serial port"):
        open_serial("/dev/does-not-exist-coil")


@pytest.fixture
def sim_board():
    world = World(shape=(16, 16))
    sim = SimCoilBoard(world)
    port = sim.start()
    names = [c.name for c in world.sample.coils]
    driver = CoilBoard("coils", open_serial(port), LIMITS, channel_names=names, sleep=world.clock.advance)
    yield world, sim, driver
    driver.close()
    sim.stop()


def test_sim_board_drives_the_world_and_open_coils_read_back_zero(sim_board):
    world, sim, driver = sim_board
    dead = [k for k, c in enumerate(world.sample.coils) if c.dead]
    currents = np.full(driver.n_channels, 6e-4)
    t0 = world.clock.now()
    driver.set_currents(currents)
    assert world.clock.now() - t0 >= 6e-4 / LIMITS.coil_ramp_rate_a_per_s
    measured = driver.read_currents()
    alive = np.ones(driver.n_channels, bool)
    alive[dead] = False
    assert np.allclose(measured[alive], 6e-4, atol=2e-6)
    assert np.all(np.abs(measured[dead]) < 2e-6)
    assert np.allclose(world.coil_currents_a[alive], 6e-4) and np.all(world.coil_currents_a[dead] == 0)
    driver.safe_state()
    assert np.all(world.coil_currents_a == 0) and sim.enabled == 0


def test_sim_board_answers_garbage_with_error_codes(sim_board):
    _, sim, driver = sim_board
    for command, code in [("FROB", "ERR 1"), ("CUR 0", "ERR 2"), ("CUR x,1", "ERR 2"), ("CUR 99,0", "ERR 3"),
                          ("CUR 0,1.0", "ERR 4"), ("CUR 0,inf", "ERR 2"), ("EN 99999", "ERR 3"),
                          ("MEAS? -1", "ERR 3")]:
        with pytest.raises(InstrumentError, match=f"board error {code[-1]}"):
            driver.ask(command)
    sim.fault = "over-temperature"
    with pytest.raises(InstrumentError, match="over-temperature"):
        driver.set_currents(np.full(driver.n_channels, 1e-4))
    sim.fault = None
    driver.safe_state()
    assert np.all(sim.setpoints == 0)


class LateBoard:
    """A port whose board answers ``MEAS? 0`` only after the driver gave up waiting."""

    def __init__(self):
        self.buffer: list[bytes] = []
        self.late: bytes | None = None

    def write(self, data):
        command = data.decode().strip()
        replies = {"*IDN?": "QDM-COIL,2,SN7,1.0", "MAX?": "0.001", "CUR? 0": "0", "CUR? 1": "0",
                   "MEAS? 0": "1.000000e-04", "MEAS? 1": "0.000000e+00"}
        if command == "MEAS? 0" and self.late is None:
            self.late = replies[command].encode() + b"\n"  # arrives after the timeout
            return
        self.buffer.append(replies[command].encode() + b"\n")

    def readline(self):
        if not self.buffer:
            reply, self.late = self.late, b""  # timeout; the late reply then lands in the buffer
            if reply:
                self.buffer.append(reply)
            return b""
        return self.buffer.pop(0)

    def reset_input_buffer(self):
        self.buffer.clear()

    def close(self):
        pass


def test_a_late_reply_is_never_taken_as_the_answer_to_the_next_command():
    b = CoilBoard("coils", LateBoard(), LIMITS, sleep=lambda s: None)
    with pytest.raises(InstrumentTimeout, match="MEAS\\? 0"):
        b.ask("MEAS? 0")
    # channel 0's late 1e-4 A is dropped; channel 1 reads its own 0 A
    assert b.ask("MEAS? 1") == "0.000000e+00"


def test_a_board_that_fails_the_handshake_releases_its_port():
    port = Scripted([("*IDN?", "HELLO WORLD")])
    with pytest.raises(InstrumentError, match="not a QDM-COIL board"):
        CoilBoard("coils", port, LIMITS)
    assert port.closed


# ---- protocol 2.0: per-channel ceilings in the firmware, watchdog, station checks -------------------

HELLO2 = [("*IDN?", "QDM-COIL,2,SN8,2.0"), ("MAX?", "5.000000e-03"), ("CUR? 0", "0.0"), ("CUR? 1", "0.0"),
          ("ERR?", "0 none"), ("MAX 0,1.000000e-03", "OK"), ("MAX 1,2.000000e-04", "OK"), ("WDT 1.5", "OK")]


def test_a_2x_board_gets_the_station_ceilings_and_its_watchdog_armed():
    port = Scripted(HELLO2)
    b = CoilBoard("coils", port, LIMITS, ceilings_a=[1e-3, 2e-4], sleep=lambda s: None, watchdog_s=1.5)
    assert port.script == [] and b.protocol == 2
    b._closing.set()  # stop the keep-alive before the script runs dry


def test_an_earlier_trip_is_cleared_and_a_board_driving_above_a_ceiling_is_refused():
    script = [("*IDN?", "QDM-COIL,2,SN8,2.0"), ("MAX?", "5.0e-03"), ("CUR? 0", "0.0"), ("CUR? 1", "3.0e-04"),
              ("ERR?", "7 watchdog: host silent, channels ramped to 0"), ("CLR", "OK"),
              ("MAX 0,1.000000e-03", "OK")]
    port = Scripted(script)
    with pytest.raises(SafetyLimitError, match="channel 1 current = 0.0003 A exceeds .*send ZERO"):
        CoilBoard("coils", port, LIMITS, ceilings_a=[1e-3, 2e-4], watchdog_s=None)
    assert port.closed and port.script == []


@pytest.fixture
def sim_board2():
    world = World(shape=(16, 16))
    now = [0.0]
    sim = SimCoilBoard(world, monotonic=lambda: now[0])
    port = sim.start()
    driver = CoilBoard("coils", open_serial(port), LIMITS, ceilings_a=8e-4, sleep=world.clock.advance,
                       watchdog_s=None)  # no keep-alive: the test is the host that goes silent
    yield world, sim, driver, now
    driver.close()
    sim.stop()


def test_the_firmware_refuses_above_the_channel_ceiling_even_if_the_driver_would_not(sim_board2):
    _, sim, driver, _ = sim_board2
    assert sim.ceilings.tolist() == [8e-4] * driver.n_channels
    with pytest.raises(InstrumentError, match="board error 4: .*channel ceiling"):
        driver.ask("CUR 0,9.0e-04")
    with pytest.raises(InstrumentError, match="board error 4: .*hardware ceiling"):
        driver.ask("MAX 0,6.0e-03")
    assert sim.setpoints[0] == 0


def test_a_silent_host_trips_the_watchdog_to_zero_and_the_driver_still_reaches_safety(sim_board2):
    world, sim, driver, now = sim_board2
    driver.set_currents(np.full(driver.n_channels, 5e-4))
    assert np.any(world.coil_currents_a > 0)
    now[0] += 2.5  # the host says nothing for longer than the 2 s power-up timeout
    sim.frame_edge()  # the firmware checks every millisecond; the simulator at the next event
    assert sim.tripped and np.all(world.coil_currents_a == 0) and sim.enabled == 0
    with pytest.raises(InstrumentError, match="board error 7"):
        driver.set_currents(np.full(driver.n_channels, 1e-4))
    assert driver.ask("ERR?").startswith("7 watchdog")
    driver.safe_state()  # CUR is refused after the trip: ZERO still works
    assert driver.setpoints.tolist() == [0.0] * driver.n_channels


def test_station_checks_report_identity_firmware_zero_readback_ceiling_and_watchdog(sim_board2):
    _, sim, driver, now = sim_board2
    checks = {c.check: c for c in driver.station_checks()}
    assert [checks[k].ok for k in ("identity", "firmware version", "read-back at zero current", "ceiling",
                                   "watchdog")] == [True] * 5
    assert "SIM0001" in checks["identity"].detail and "2.0-sim" in checks["firmware version"].detail
    sim.ceilings[3] = 5e-3  # a board that lost the station's ceiling
    now[0] += 3.0
    sim.check_watchdog()
    checks = {c.check: c for c in driver.station_checks()}
    assert checks["ceiling"].ok is False and "reconnect" in checks["ceiling"].fix
    assert checks["watchdog"].ok is False and "tripped 1" in checks["watchdog"].detail


def test_station_checks_skip_the_zero_readback_while_coils_are_driven_and_flag_old_firmware():
    b = board([("EN 1", "OK"), ("CUR 0,5.000000e-05", "OK"), ("EN 1", "OK")])
    b.set_currents([5e-5, 0])
    checks = {c.check: c for c in b.station_checks()}
    assert checks["read-back at zero current"].ok is None
    assert checks["firmware version"].ok is False and "firmware/coil_board" in checks["firmware version"].fix
    assert checks["watchdog"].ok is False


def test_sim_board_queries_leave_the_virtual_clock_alone():
    """The driver's keep-alive (STAT?) runs in its own thread: on real hardware it overlaps the
    sequence, so in simulation it must not move the shared clock past a camera_start pulse (it did,
    and `acquire --sim` then failed at random with a missed camera trigger)."""
    world = World(shape=(16, 16))
    sim = SimCoilBoard(world)
    t0 = world.clock.now()
    sim.handle("STAT?")
    sim.handle("CUR? 0")
    assert world.clock.now() == t0
    sim.handle("CUR 0 0")
    assert world.clock.now() > t0  # a setting still costs the line's time
