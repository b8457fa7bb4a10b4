"""The station file picks the instruments; a CW-ODMR run works with each MW source by that change alone."""

import re
from importlib import resources

import pytest

from instrument.cli import main
from instrument.station import BUILDERS, StationFileError, build_station, read_station_file

DEFAULT_MW = 'mw: {driver: sg384, address: "TCPIP0::192.168.1.20::5025::SOCKET"}'


def station_with_mw(tmp_path, entry):
    read_station_file(None)  # the bundled file is valid
    bundled = resources.files("instrument.stations").joinpath("sim.yaml").read_text()
    assert DEFAULT_MW in bundled
    path = tmp_path / "station.yaml"
    path.write_text(bundled.replace(DEFAULT_MW, entry))
    return path


@pytest.mark.parametrize(
    "entry",
    ['mw: {driver: smb100a, address: "TCPIP0::10.0.0.2::inst0::INSTR"}',
     'mw: {driver: sgs100a, address: "TCPIP0::10.0.0.3::inst0::INSTR"}',
     "mw: {driver: synthhd, port: /dev/ttyACM0}"],
)
def test_cw_odmr_runs_with_each_source_by_station_change_only(tmp_path, capsys, entry):
    station = station_with_mw(tmp_path, entry)
    code = main(["--sim", "--station", str(station), "--image-shape", "16x16", "--out", str(tmp_path / "o"),
                 "odmr", "--points", "25", "--no-figure"])
    out = capsys.readouterr().out
    assert code == 0, out
    lo, hi = (float(v) for v in re.search(r"B_NV range ([-+.\d]+) \.\. ([-+.\d]+) uT", out).groups())
    # The coil's field, seen through this source's sweep: the noise-free truth of the default drive on
    # this 16x16 grid (22 um pixels, the paper's amplitudes) spans -3.1 .. +3.9 uT.
    assert lo < -2.0 and hi > 2.5


def test_real_station_needs_addresses(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("instruments:\n  mw: {driver: sg384}\n")
    with pytest.raises(StationFileError, match="needs 'address'"):
        build_station(path, simulated=False)


def test_sim_only_coils_are_refused_on_a_real_station(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("instruments:\n  coils: {driver: sim_coils}\n")
    with pytest.raises(StationFileError, match="exists only in simulation"):
        build_station(path, simulated=False)


def test_every_builder_is_named_in_the_error_for_an_unknown_driver(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("instruments:\n  mw: {driver: nope}\n")
    with pytest.raises(StationFileError) as info:
        read_station_file(path)
    assert all(name in str(info.value) for name in BUILDERS)


def test_closing_a_station_reports_an_instrument_it_could_not_make_safe_and_closes_the_rest(caplog):
    from instrument.protocols import InstrumentError

    st = build_station(simulated=True, image_shape=(8, 8), seed=0)
    world = st.world
    st["mw"].set_output(True)
    st["coils"].set_currents([1e-4] + [0.0] * (world.coil_currents_a.size - 1))

    def stuck() -> None:
        raise InstrumentError("pulser", "pb_stop", "outputs may still be high")

    st["pulser"].close = stuck
    st.close()
    assert "closing pulser" in caplog.text and "may not be safe" in caplog.text
    assert not world.mw_output and world.coil_currents_a.max() == 0  # the others were still made safe
