"""``acquire --sim pulsed KIND`` end to end: the fitted Rabi frequency, T2*, T2 and T1 match the sample."""

import re

import pytest

import instrument.cli as cli
import instrument.station as station_mod
from instrument.station import StationFileError


def _sim_counter(role, entry, station):
    """The station builder the lead adds to instrument/station.py (see the issue-4 report)."""
    if not station.simulated:
        raise StationFileError(f"instrument {role!r}: 'sim_counter' exists only in simulation")
    from sim.spin import SimPhotonCounter

    board = station.instruments[entry.get("pulser", "pulser")].library
    return SimPhotonCounter(role, station.world, board, shape=tuple(entry.get("shape", (16, 16))),
                            photon_rate_hz=float(entry.get("photon_rate_hz", 5e6)))


STATION = """
name: pulsed test station
limits: {mw_power_max_dbm: 10.0}
instruments:
  mw: {driver: sg384, address: "TCPIP0::192.168.1.20::5025::SOCKET"}
  pulser: {driver: pulseblaster, board: 0}
  counter: {driver: sim_counter, shape: [8, 8], photon_rate_hz: 2.0e7}
sim: {image_shape: [16, 16], seed: 5}
"""


@pytest.fixture
def acquire(tmp_path, monkeypatch):
    monkeypatch.setitem(station_mod.BUILDERS, "sim_counter", _sim_counter)
    if "instrument.commands.pulsed" not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "instrument.commands.pulsed"))
    path = tmp_path / "station.yaml"
    path.write_text(STATION)

    def run(*args):
        return cli.main(["--sim", "--station", str(path), "--out", str(tmp_path / "runs"), "pulsed", *args])

    return run


def value(text, label):
    m = re.search(rf"{label}\s+([-\d.e+]+) \+- ([\d.e+-]+) \S+\s+\(simulated \w+: ([-\d.e+]+)", text)
    assert m, text
    return tuple(float(g) for g in m.groups())


@pytest.mark.parametrize(("kind", "label", "args"), [
    ("rabi", "Rabi frequency", ["--points", "60", "--stop", "366e-9"]),
    ("ramsey", "T2\\*", ["--points", "120", "--stop", "2.38e-6", "--pi-ns", "52"]),
    ("echo", "T2", ["--points", "30", "--pi-ns", "52"]),
    ("t1", "T1", ["--points", "25"]),
    ("odmr", "line centre", ["--points", "41", "--pi-ns", "164", "--repetitions", "500"]),
])
def test_fit_matches_the_simulated_sample(acquire, capsys, tmp_path, kind, label, args):
    assert acquire(kind, "--no-figure", *args) == 0
    out = capsys.readouterr().out
    fitted, error, truth = value(out, label)
    assert abs(fitted - truth) < 3 * error, out
    assert error < (0.2 * truth if kind != "odmr" else 0.5)  # odmr: MHz


def test_ramsey_calibrates_its_pi_pulse_and_writes_figures(acquire, capsys, tmp_path):
    assert acquire("ramsey", "--points", "60", "--stop", "1.8e-6", "--repetitions", "300") == 0
    out = capsys.readouterr().out
    assert re.search(r"pi pulse (4[89]|5[0-6]) ns from Rabi run \d+", out), out
    runs = sorted((tmp_path / "runs").glob("run-*"))
    assert len(runs) == 2
    assert (runs[-1] / "figure.png").exists() and (runs[-1] / "sequence.png").exists()


@pytest.mark.parametrize(("args", "match"), [
    (["rabi", "--power-dbm", "20"], "exceeds the lab safety limit"),
    (["rabi", "--points", "3"], "at least 5"),
    (["rabi", "--start", "1e-6", "--stop", "1e-7"], "stop > start"),
    (["rabi", "--start", "6e-9", "--stop", "100e-9", "--points", "5"], "3 clock cycles"),
    (["t1", "--counter", "spad"], "no gated photon counter with role 'spad'"),
    (["rabi", "--points", "500", "--stop", "100e-9"], "closer than the clock"),
])
def test_bad_input_is_one_line_exit_2(acquire, capsys, args, match):
    assert acquire(*args) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and err.count("\n") == 1, err
