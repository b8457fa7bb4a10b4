"""``acquire station check`` on the simulated station: a passing station, a miscabled one."""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np

from instrument.checks import CheckResult
from instrument.cli import main
from instrument.commissioning import coil_zero_check, format_table, run_checks
from instrument.station import build_station


def sim_station_text(**mw_extra: str) -> str:
    text = resources.files("instrument.stations").joinpath("sim.yaml").read_text()
    old = 'mw: {driver: sg384, address: "TCPIP0::192.168.1.20::5025::SOCKET"}'
    assert old in text
    extra = "".join(f", {k}: {v}" for k, v in mw_extra.items())
    return text.replace(old, old[:-1] + extra + "}")


def test_sim_station_passes_stores_report_and_keeps_rf_off(tmp_path, capsys):
    code = main(["--sim", "--image-shape", "16x16", "--out", str(tmp_path), "station", "check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"list steps on mw_trigger +ok", out) and re.search(r"volume on camera_start +ok", out)
    assert "safe-state program" in out and "zero current read-back" in out
    report = json.loads((tmp_path / "station-check-latest.json").read_text())
    assert report["passed"] is True
    checks = {(r["instrument"], r["check"]): r for r in report["results"]}
    assert checks[("mw", "list steps on mw_trigger")]["ok"] is True
    assert "[0, 1, 2]" in checks[("mw", "list steps on mw_trigger")]["detail"]
    # the report is also in the station snapshot it was taken on
    assert report["station"]["station_check"]["passed"] is True
    assert report["station"]["instruments"]["camera"]["demodulation_reference"].startswith("internal")
    assert len(list(tmp_path.glob("station-check-2*.json"))) == 1


def test_rf_stays_off_and_power_within_the_lab_limit():
    with build_station(simulated=True, image_shape=(16, 16)) as station:
        mw = station["mw"]
        outputs, powers = [], []
        set_output, arm_list = mw.set_output, mw.arm_list
        mw.set_output = lambda on: (outputs.append(on), set_output(on))[1]
        mw.arm_list = lambda f, p: (powers.append(p), arm_list(f, p))[1]
        results = run_checks(station.instruments, station.limits)
        assert not [r for r in results if r.ok is False]
        assert outputs and not any(outputs)  # RF was only ever switched off
        assert powers and max(powers) <= station.limits.mw_power_max_dbm
        assert not station.world.mw_output and not station.world.laser_on


def test_uncabled_list_trigger_fails_with_the_fix_and_exit_1(tmp_path, capsys):
    station_file = tmp_path / "no_cable.yaml"
    station_file.write_text(sim_station_text(trigger_from="null"))
    code = main(["--sim", "--image-shape", "16x16", "--station", str(station_file),
                 "--out", str(tmp_path / "runs"), "station", "check"])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"list steps on mw_trigger +FAIL", out)
    assert "mw_trigger output (bit 4)" in out and "trigger_from" in out and "--mw-stepping software" in out
    assert "index after 0, 1, 2 pulses: [0, 0, 0]" in out  # what was seen, under the fix
    report = json.loads((tmp_path / "runs" / "station-check-latest.json").read_text())
    assert report["passed"] is False
    assert "1 failed" in out


class _StuckCoils:
    name = "coils"
    n_channels = 2

    def set_currents(self, currents):
        self.set = np.asarray(currents)

    def read_currents(self):
        return np.array([0.0, 3e-4])  # a channel that does not follow

    def safe_state(self):
        pass

    def close(self):
        pass


def test_a_coil_that_does_not_read_zero_fails():
    result = coil_zero_check("coils", _StuckCoils())
    assert result.ok is False and "0.0003 A" in result.detail and "sense resistor" in result.fix


def test_table_shows_failures_with_what_was_seen():
    table = format_table([CheckResult("mw", "identity", True, "SG384 ver 1.0"),
                          CheckResult("cam", "volume", False, "timed out", "check the cable"),
                          CheckResult("mw", "list", None, "no list mode")])
    lines = table.splitlines()
    assert lines[0].split() == ["INSTRUMENT", "CHECK", "RESULT", "DETAIL", "/", "WHAT", "TO", "DO"]
    assert "FAIL" in lines[2] and "check the cable" in lines[2] and "seen: timed out" in lines[3]
    assert "skip" in lines[4]


def test_example_lab_file_names_every_real_driver():
    from instrument.station import BUILDERS, bundled_station, read_station_file

    config, _ = read_station_file(bundled_station("example_lab.yaml"))
    used = {entry["driver"] for entry in config["instruments"].values()}
    real = {name for name in BUILDERS if not name.startswith("sim_")}
    assert real <= used, f"example_lab.yaml lacks {sorted(real - used)}"
    roles = config["instruments"]
    assert {"mw", "pulser", "camera", "coils"} <= set(roles)
    assert all("trigger_from" in e for e in roles.values() if e["driver"] in ("sg384", "smb100a", "sgs100a",
                                                                             "synthhd"))
