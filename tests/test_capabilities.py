"""Which measurements a station offers (the GUI shows a panel only for these)."""

from instrument.services.capabilities import missing
from instrument.station import build_station, bundled_station


def test_spad_station_offers_only_spad_measurements():
    with build_station(bundled_station("spad.yaml"), simulated=True) as spad:
        lacking = missing(spad)
    assert lacking["spad_odmr"] == []
    assert "no instrument with role 'counter' (GatedCounter)" in lacking["pulsed"]
    assert lacking["cw_odmr"] and lacking["lockin"] and lacking["coil_scan"]


def test_coil_board_station_offers_cw_and_coil_scans_but_no_lockin_capture():
    with build_station(bundled_station("sim_coil_board.yaml"), simulated=True, image_shape=(16, 16)) as st:
        lacking = missing(st)
    assert lacking["cw_odmr"] == [] and lacking["coil_scan"] == []
    assert lacking["lockin"] == ["no instrument with role 'stimulus' (Instrument)"]
