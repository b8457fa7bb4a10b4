"""Station builders for the coil drivers: the coil board in simulation, bad entries, no-sim Keithley."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from drivers.coil_board import CoilBoard
from instrument.station import StationFileError, build_station

ROOT = Path(__file__).resolve().parents[1]
BOARD_STATION = ROOT / "instrument" / "stations" / "sim_coil_board.yaml"


def station_with_coils(tmp_path, coils):
    config = yaml.safe_load(BOARD_STATION.read_text())
    config["instruments"] = {"coils": coils}
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_sim_station_drives_the_world_through_the_board_with_per_coil_ceilings(tmp_path):
    with build_station(station_with_coils(tmp_path, {"driver": "coil_board", "ceilings_a": 8e-4}),
                       simulated=True, image_shape=(8, 8)) as station:
        coils = station["coils"]
        assert isinstance(coils, CoilBoard) and coils.n_channels == 12
        assert coils.channel_names[3] == "L1C4" and np.all(coils.ceilings_a == 8e-4)
        coils.set_currents(np.r_[6e-4, np.zeros(11)])
        assert station.world.coil_currents_a[0] == pytest.approx(6e-4)
        assert station.snapshot()["instruments"]["coils"]["setpoints_a"][0] == pytest.approx(6e-4)
    assert np.all(station.world.coil_currents_a == 0)  # closing the station zeroes the coils


@pytest.mark.parametrize("entry, message", [
    ({"driver": "coil_board", "ceilings_a": [1e-4, 2e-4]}, "non-negative number or 12 of them"),
    ({"driver": "coil_board", "ceilings_a": -1}, "'ceilings_a' must be one non-negative"),
    ({"driver": "keithley2450_coil", "address": "GPIB::5::INSTR"}, "has no simulator"),
])
def test_bad_coil_entries_are_station_file_errors(tmp_path, entry, message):
    with pytest.raises(StationFileError, match=message):
        build_station(station_with_coils(tmp_path, entry), simulated=True, image_shape=(8, 8))


def test_real_board_needs_a_port(tmp_path):
    with pytest.raises(StationFileError, match="needs 'port'"):
        build_station(station_with_coils(tmp_path, {"driver": "coil_board"}))
