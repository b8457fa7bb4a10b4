"""The station's sample description: from the World in simulation, from the station file on a real
station; the front ends read it and never the simulator."""

import ast
from pathlib import Path

import pytest

from instrument.sample import SampleDescription
from instrument.station import StationFileError, build_station

ROOT = Path(__file__).resolve().parents[1]


def test_simulated_station_describes_the_worlds_sample():
    with build_station(simulated=True, image_shape=(16, 16)) as station:
        world, sample = station.world, station.sample
        assert sample.simulated and sample.name == world.sample.name
        assert sample.coil_names == tuple(c.name for c in world.sample.coils)
        assert sample.drive_current_a == pytest.approx(world.sample.drive_current_a)
        assert sample.resonance_hz == pytest.approx(world.resonance_estimate_hz())
        # seed-000 diamond is 15N: two lines 3.03 MHz apart, the lower one 1.515 MHz below the centre
        assert sample.lowest_line_hz == pytest.approx(world.resonance_estimate_hz() - 1.515e6, abs=1e3)
        assert station.realtime is False


def test_real_station_reads_the_sample_section(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: lab\ninstruments: {}\nsample:\n  name: chip-7\n  coils: [A, B]\n"
                    "  drive_current_a: 5e-4\n  resonance_hz: 2.8e9\n")
    with build_station(path) as station:
        assert station.sample == SampleDescription("chip-7", ("A", "B"), 5e-4, 2.8e9)
        assert station.sample.coil_index("B") == 1
        assert station.realtime is True


def test_real_station_without_a_sample_section_knows_only_its_name(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: lab\ninstruments: {}\n")
    with build_station(path) as station:
        assert station.sample == SampleDescription("lab")
        assert station.sample.resonance_hz is None and station.sample.lowest_line_hz is None
        with pytest.raises(ValueError, match="unknown coil 'L1C1'"):
            station.sample.coil_index("L1C1")


@pytest.mark.parametrize(("section", "expected"), [
    ("sample: [1]", "must be a mapping"),
    ("sample: {colis: [A]}", "unknown entries colis"),
    ("sample: {coils: A}", "list of coil names"),
    ("sample: {coils: [A, A]}", "names a coil twice"),
    ("sample: {resonance_hz: fast}", "resonance_hz must be a number"),
    ("sample: {drive_current_a: -1}", "drive_current_a must be positive"),
])
def test_bad_sample_section_names_the_entry(tmp_path, section, expected):
    path = tmp_path / "lab.yaml"
    path.write_text(f"instruments: {{}}\n{section}\n")
    with pytest.raises(StationFileError, match=expected):
        build_station(path)


def _reads_world(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "world"]


@pytest.mark.parametrize("package", ["instrument/commands", "instrument/gui", "instrument/services"])
def test_front_ends_never_read_the_simulators_world(package):
    found = {str(p.relative_to(ROOT)): lines for p in sorted((ROOT / package).glob("*.py"))
             if (lines := _reads_world(p))}
    assert not found, f"front-end code reads station.world (use station.sample): {found}"
