"""The default station names a real instrument for every role; --sim backs each by its simulator."""

import re

import numpy as np
import pytest

from drivers.coil_board import CoilBoard
from drivers.coil_stimulus import CoilBoardStimulus
from drivers.nidaq_counter import NiGatedCounter
from instrument.cli import main
from instrument.station import BUILDERS, build_station, read_station_file

SIM_ONLY = {"sim_counter", "sim_coils", "sim_stimulus"}


def test_the_default_station_names_only_real_drivers():
    config, _ = read_station_file(None)
    drivers = {role: entry["driver"] for role, entry in config["instruments"].items()}
    assert not SIM_ONLY & set(drivers.values()), drivers
    assert drivers["coils"] == "coil_board" and drivers["stimulus"] == "coil_board_stimulus"
    assert drivers["counter"] == "nidaq_counter"
    assert set(drivers.values()) <= set(BUILDERS)


def test_without_sim_the_coil_board_needs_its_serial_port(tmp_path):
    station = tmp_path / "station.yaml"
    station.write_text("instruments:\n  coils: {driver: coil_board, port: /dev/does-not-exist-coil}\n")
    with pytest.raises(Exception, match="cannot open serial port"):
        build_station(station)


def test_pulsed_rabi_runs_on_the_default_station_through_the_counter_role(tmp_path, capsys):
    code = main(["--sim", "--image-shape", "16x16", "--out", str(tmp_path), "pulsed", "rabi", "--no-figure",
                 "--points", "40", "--stop", "366e-9"])
    out = capsys.readouterr().out
    assert code == 0, out
    m = re.search(r"Rabi frequency\s+([\d.]+) \+- ([\d.]+) MHz\s+\(simulated drive: ([\d.]+) MHz", out)
    assert m, out
    fitted, error, truth = map(float, m.groups())
    assert abs(fitted - truth) < 4 * error and error < 0.1 * truth


@pytest.fixture(scope="module")
def sim_station():
    station = build_station(simulated=True, image_shape=(16, 16))
    yield station
    station.close()


def test_with_sim_the_new_roles_are_the_real_drivers_on_simulated_hardware(sim_station):
    coils, stimulus = sim_station["coils"], sim_station["stimulus"]
    assert isinstance(coils, CoilBoard) and coils.protocol == 2
    assert isinstance(stimulus, CoilBoardStimulus) and stimulus.board is coils  # one box, one port
    counter = sim_station["counter"]
    assert isinstance(counter, NiGatedCounter) and counter.shape == (1, 1)  # on a simulated card
    checks = coils.station_checks() + stimulus.station_checks() + counter.station_checks()
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_the_camera_frames_clock_the_simulated_board(sim_station):
    camera, stimulus, world = sim_station["camera"], sim_station["stimulus"], sim_station.world
    camera.configure(6250.0, 208.0, 8)
    from sequences.temporal import CoilWaveforms

    onsets = tuple((0.0,) if k == 0 else () for k in range(stimulus.n_channels))
    stimulus.start(CoilWaveforms(stimulus.n_channels, onsets, peak_a=6e-4))
    seen = []
    board = sim_station.sim_parts["coils"]
    for _ in range(3):
        camera.acquire(8)
        seen.append(board.frames_played)
    stimulus.stop()
    assert seen == [8, 16, 24]  # one table step per camera frame
    assert np.all(world.coil_currents_a == 0)
