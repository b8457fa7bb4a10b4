"""``acquire reconstruct dip|neural-field`` on files: results, figure, progress, clear errors."""

import numpy as np

from instrument.cli import main
from instrument.reconstruction import dip
from instrument.reconstruction import dip_masks as dm
from instrument.reconstruction import relaxometry as rx

PIXEL_M, STANDOFF_M, THICKNESS_M = 50e-9, 60e-9, 20e-9


def test_dip_from_files_writes_results_that_fit_the_data(tmp_path, capsys):
    support = dm.ellipse_support((24, 24), (8, 3))
    mask = dm.uniform_mask(support, 0.0)
    truth = dm.smooth_magnetization(mask, 8e5, 1)
    b = dip.project_nv(dip.stray_field(truth, PIXEL_M, STANDOFF_M, THICKNESS_M), dip.nv_unit_vector())
    np.save(tmp_path / "b.npy", b)
    np.savez(tmp_path / "mask.npz", mask=mask)
    code = main(["reconstruct", "dip", str(tmp_path / "b.npy"), str(tmp_path / "mask.npz"),
                 "--mask-dataset", "mask", "--pixel-m", str(PIXEL_M), "--standoff-m", str(STANDOFF_M),
                 "--thickness-m", str(THICKNESS_M), "--epochs", "60", "--results", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0, out
    result = np.load(tmp_path / "r" / "dip_result.npz")
    model = result["b_nv_model_t"]
    assert np.corrcoef(model.ravel(), b.ravel())[0, 1] > 0.9
    assert np.linalg.norm(result["magnetization_a_per_m"], axis=0).max() <= 8e5 * (1 + 1e-6)
    assert (tmp_path / "r" / "dip_result.png").exists()


def test_dip_bad_inputs_are_usage_errors(tmp_path, capsys):
    np.save(tmp_path / "b.npy", np.zeros((8, 8)))
    np.save(tmp_path / "m.npy", np.zeros((2, 9, 9)))
    base = ["reconstruct", "dip", "--pixel-m", "5e-8", "--standoff-m", "6e-8", "--thickness-m", "2e-8"]
    assert main([*base[:2], str(tmp_path / "nope.npy"), str(tmp_path / "m.npy"), *base[2:]]) == 2
    assert "no such array file" in capsys.readouterr().err
    assert main([*base[:2], str(tmp_path / "b.npy"), str(tmp_path / "m.npy"), *base[2:]]) == 2
    assert "mask must have shape" in capsys.readouterr().err


def test_neural_field_from_file(tmp_path, capsys):
    geometry = rx.RelaxometryGeometry(shape=(16, 16), frequencies_hz=tuple(np.linspace(1e9, 3e9, 12)))
    rho, larmor = rx.make_scene("few/far", geometry, np.random.default_rng(0), margin_px=3)
    spectrum = rx.simulate_f3(rho, larmor, geometry, noise_fraction=0.01, rng=np.random.default_rng(1))
    with_key = tmp_path / "s.npz"
    np.savez(with_key, spectrum=spectrum)
    code = main(["reconstruct", "neural-field", str(with_key), "--dataset", "spectrum", "--epochs", "40",
                 "--results", str(tmp_path / "nf")])
    assert code == 0, capsys.readouterr().err
    result = np.load(tmp_path / "nf" / "neural_field_result.npz")
    assert result["density"].shape == (16, 16) and np.all(np.isfinite(result["density"]))
    assert len(result["loss_history"]) == 40
    assert (tmp_path / "nf" / "neural_field_result.png").exists()
    flat = tmp_path / "flat.npy"
    np.save(flat, spectrum[0])
    assert main(["reconstruct", "neural-field", str(flat), "--results", str(tmp_path / "x")]) == 2
    assert "(n_freq, rows, cols)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
