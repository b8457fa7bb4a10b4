"""Bad input at the command line: one line naming the problem and the fix, exit 2, nothing written."""

import subprocess
import sys

import pytest

from instrument.cli import main


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "instrument.cli", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_help_documents_every_option():
    code, out, _ = run_cli("--help")
    assert code == 0
    for option in ("--sim", "--station", "--out", "--realtime", "--seed", "--image-shape"):
        assert option in out
    code, out, _ = run_cli("odmr", "--help")
    for option in ("--coils", "--current-a", "--center-hz", "--span-hz", "--points", "--power-dbm",
                   "--frames-per-point", "--no-figure"):
        assert option in out


def test_unknown_option_is_one_line_exit_2():
    code, out, err = run_cli("--sim", "--bogus")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "--bogus" in err and "acquire --help" in err


def test_bad_image_shape_names_the_format():
    code, _, err = run_cli("--sim", "--image-shape", "big")
    assert code == 2 and "ROWSxCOLS" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("instruments: [1, 2]\n", "needs an 'instruments:' mapping"),
        ("instruments:\n  mw: {driver: warp_drive}\n", "'driver' set to one of"),
        ("instruments:\n  mw: {driver: sg384}\nlimits: {mw_power_max: 3}\n", "unknown limit"),
        ("instruments: {a: b\n", "not valid YAML"),
    ],
)
def test_bad_station_file_is_one_line_exit_2(tmp_path, capsys, content, expected):
    station = tmp_path / "station.yaml"
    station.write_text(content)
    out = tmp_path / "out"
    assert main(["--sim", "--station", str(station), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.strip().count("\n") == 0
    assert not out.exists()


def test_missing_station_file(tmp_path, capsys):
    assert main(["--sim", "--station", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2
    assert "cannot read station file" in capsys.readouterr().err


def test_unwritable_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--sim", "--out", str(blocker / "runs")]) == 2
    err = capsys.readouterr().err
    assert "cannot write to output directory" in err and "--out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_mw_power_above_ceiling_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--sim", "--out", str(out), "odmr", "--power-dbm", "25"]) == 2
    err = capsys.readouterr().err
    assert "MW power = 25 dBm exceeds the lab safety limit of 10 dBm" in err
    assert "--power-dbm" in err
    assert not out.exists()


def test_coil_current_above_ceiling_is_refused(tmp_path, capsys):
    assert main(["--sim", "--out", str(tmp_path / "o"), "odmr", "--current-a", "0.01"]) == 2
    assert "exceeds the lab safety limit" in capsys.readouterr().err


def test_image_shape_needs_sim(tmp_path, capsys):
    assert main(["--image-shape", "32x32", "--out", str(tmp_path)]) == 2
    assert "add --sim" in capsys.readouterr().err
