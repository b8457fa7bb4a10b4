"""``acquire --sim lockin``: a lossless 208 frame/s capture registered as a run, with its field movie."""

import h5py
import numpy as np

from instrument.cli import main
from instrument.storage.runs import load_run


def test_lockin_capture_is_a_stored_run_with_frames_and_field(tmp_path, capsys):
    code = main(["--sim", "--image-shape", "32x32", "--out", str(tmp_path), "lockin", "--seconds", "1.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "completed"
    capture = run.metadata["capture"]
    assert capture["frames_dropped"] == 0
    assert capture["frames_written"] >= int(1.2 * 208) - 2
    assert run.scalars["second"].tolist() == [0.0, 1.0]
    with h5py.File(run.metadata["field_file"]) as f:
        field, currents = f["field_t"][...], f["currents_a"][...]
    assert field.shape[0] == capture["frames_written"] and field.shape[1:] == (32, 32)
    # The movie follows the drive: regress every pixel on the coil currents and compare the map of
    # the most-driven coil with the simulated sample's field of that coil.
    from sim.world import World

    world = World(shape=(32, 32))
    coil = int(np.argmax(np.abs(currents).sum(axis=0)))
    assert np.abs(currents[:, coil]).max() > 5e-4
    design = np.column_stack([currents[:, coil], np.ones(len(currents))])
    pixels = field.reshape(len(field), -1)
    maps, *_ = np.linalg.lstsq(design, pixels, rcond=None)
    unit = np.zeros(len(world.sample.coils))
    unit[coil] = 1.0
    truth = world.true_b_nv_t(currents_a=unit).ravel()
    # Standard error of the regressed map from the residual noise; the seed-000 fields (below 10 uT)
    # are comparable to a frame's noise, so the correlation it allows is well below 1.
    residual = np.std(pixels - design @ maps, axis=0)
    spread = np.sqrt(np.sum((currents[:, coil] - currents[:, coil].mean()) ** 2))
    se = np.sqrt(np.mean((residual / spread) ** 2))
    expected = np.std(truth) / np.sqrt(np.var(truth) + se**2)
    assert np.corrcoef(maps[0], truth)[0, 1] > expected - 0.15


def test_too_short_capture_is_refused(tmp_path, capsys):
    args = ["--sim", "--image-shape", "16x16", "--out", str(tmp_path), "lockin", "--seconds", "0.3"]
    assert main(args) == 2
    assert "--seconds above" in capsys.readouterr().err
    # refused before anything moved or was stored
    assert not (tmp_path / "runs.db").exists()
