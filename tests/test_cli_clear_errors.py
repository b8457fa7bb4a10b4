"""Bad settings are refused before a run opens, in one line that names the setting and the fix."""

from pathlib import Path

import pytest

from instrument.cli import main
from instrument.storage.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
SIM_YAML = (ROOT / "instrument" / "stations" / "sim.yaml").read_text()


def refused(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def station_file(tmp_path, text):
    path = tmp_path / "station.yaml"
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return str(path)


def test_a_binary_station_file_is_named(tmp_path, capsys):
    path = station_file(tmp_path, bytes(range(256)) * 4)
    err = refused(capsys, ["--sim", "--station", path, "--out", str(tmp_path / "o")])
    assert path in err and "not text" in err


@pytest.mark.parametrize("old, new, said", [
    ("image_shape: [300, 300]", "image_shape: [-5, 300]", "image_shape must be 2 to 4096 pixels a side"),
    ("coil_current_max_a: 1.0e-3", "coil_current_max_a: -1.0e-3", "coil_current_max_a must be a positive"),
    ("mw_power_max_dbm: 10.0", "mw_power_max_dbm: 30.0", "above the mw source's maximum of 16.5 dBm"),
])
def test_impossible_station_settings_are_refused(tmp_path, capsys, old, new, said):
    assert old in SIM_YAML
    path = station_file(tmp_path, SIM_YAML.replace(old, new))
    err = refused(capsys, ["--sim", "--station", path, "--out", str(tmp_path / "o"), "odmr", "--points", "5"])
    assert said in err
    assert not (tmp_path / "o" / "runs.db").exists()  # refused before a run opened


@pytest.mark.parametrize("argv, said", [
    (["odmr", "--points", "10000000"], "--points 10000000 is more than 100000"),
    (["odmr", "--span-hz=-12e6"], "--span-hz must be a positive width"),
    (["pulsed", "rabi", "--repetitions", "0"], "repetitions must be 1 .. 1048575, got 0"),
    (["reconstruct", "neural-field", "s.npy", "--freq-range-hz", "3e9", "1e9"],
     "--freq-range-hz 3e+09 1e+09: the first frequency must be below the last"),
])
def test_out_of_range_options_are_refused(tmp_path, capsys, argv, said):
    err = refused(capsys, ["--sim", "--image-shape", "8x8", "--out", str(tmp_path), *argv])
    assert said in err


def test_a_huge_image_is_refused_before_any_memory_is_taken(tmp_path, capsys):
    with pytest.raises(SystemExit) as code:  # argparse's own refusal, one line
        main(["--sim", "--image-shape", "100000x100000", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code.value.code == 2 and "image shape must be at most 4096x4096" in err


def test_a_run_that_cannot_fit_on_the_disk_is_refused_with_the_estimate(tmp_path, capsys, monkeypatch):
    import shutil

    from instrument.storage import budget

    real = shutil.disk_usage
    monkeypatch.setattr(budget.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=100 * 1024 * 1024))  # 100 MiB free
    err = refused(capsys, ["--sim", "--image-shape", "300x300", "--out", str(tmp_path), "odmr",
                           "--points", "1000"])
    assert "would need about 787.6 MB (2000 steps, signal 300x300 per step, about 1 min of measuring; " in err
    assert "fewer --points" in err
    assert str(tmp_path) in err
    with pytest.raises(Exception, match="no runs database"):
        load_run(tmp_path, 1)
