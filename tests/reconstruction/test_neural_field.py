"""Coordinate neural field (NeTMY, seed 001) on a tiny scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: E402  (the test extra installs torch==2.13.0)

from instrument.reconstruction import neural_field as nf  # noqa: E402
from instrument.reconstruction import relaxometry as rx  # noqa: E402

GEO = rx.RelaxometryGeometry(shape=(16, 16), frequencies_hz=tuple(np.linspace(1e9, 3e9, 12)))
TINY = nf.NeuralFieldConfig(hidden=32, layers=3, skip_layer=1, octaves=4, stage_epochs=(60, 120),
                            base_learning_rate=1e-2)


pytestmark = pytest.mark.usefixtures("torch_threads")  # tests/reconstruction/conftest.py


@pytest.fixture(scope="module")
def scene():
    rho = np.zeros(GEO.shape)
    lar = np.full(GEO.shape, 2.0e9)
    rho[5, 4], rho[10, 11] = 1.0, 0.7
    lar[5, 4], lar[10, 11] = 1.7e9, 2.3e9
    return rho, lar, rx.simulate_f3(rho, lar, GEO, 0.01, np.random.default_rng(0))


def test_fourier_features_anneal_from_coordinates_to_all_bands():
    coords = torch.tensor([[0.25, -0.5], [0.1, 0.9]])
    start = nf.fourier_features(coords, 0.0, 4)
    assert start.shape == (2, 2 + 4 * 4)
    assert torch.equal(start[:, :2], coords) and torch.all(start[:, 2:] == 0)
    full = nf.fourier_features(coords, 4.0, 4)
    expected_sin = torch.sin(coords[:, :, None] * 2.0 ** torch.arange(4.0) * np.pi)
    assert torch.allclose(full[:, 2:].reshape(2, 2, 8)[:, :, :4], expected_sin, atol=1e-6)
    half = nf.fourier_features(coords, 1.5, 4).reshape(2, -1)[:, 2:].reshape(2, 2, 8)
    assert torch.all(half[:, :, 2:4] == 0)  # bands k >= 2 still off at beta = 1.5


def test_neural_field_beats_trivial_baseline_and_masks_larmor(scene):
    rho, _, spectrum = scene
    result = nf.reconstruct_neural_field(spectrum, GEO, "F2", config=TINY, seed=0)
    uniform = rx.all_metrics(np.ones(GEO.shape), rho)
    scores = rx.all_metrics(result.density, rho)
    assert scores["F1"] >= 0.5 > uniform["F1"] + 0.3
    peak = np.unravel_index(np.argmax(result.density), GEO.shape)
    assert np.hypot(peak[0] - 5, peak[1] - 4) <= 1.5
    assert result.density.min() >= 0 and result.scale > 0
    on_support = result.larmor_hz > 0
    assert on_support.any() and on_support.sum() < 0.1 * rho.size
    lo, hi = GEO.larmor_band_hz
    assert np.all((result.larmor_hz[on_support] >= lo) & (result.larmor_hz[on_support] <= hi))
    assert result.extras["stages"] == [60, 120]


def test_larmor_branch_recovers_each_source_frequency():
    """Two sources 800 MHz apart at a 2-pixel standoff with additive noise: the Larmor field at each
    source must land within 40 MHz of its truth. Without the warm start from the per-pixel fit the
    head's sigmoid saturates and both sources come out at the band edge (1.5 GHz), 900 MHz off."""
    geo = rx.RelaxometryGeometry(shape=(16, 16), standoff_m=40e-9,
                                 frequencies_hz=tuple(np.linspace(1e9, 3e9, 12)))
    rho, lar = np.zeros(geo.shape), np.full(geo.shape, 2.0e9)
    rho[5, 4], rho[10, 11] = 1.0, 0.7
    lar[5, 4], lar[10, 11] = 1.6e9, 2.4e9
    spectrum = rx.simulate_f3(rho, lar, geo, 0.01, np.random.default_rng(0), noise_model="additive")
    result = nf.reconstruct_neural_field(spectrum, geo, "F2", config=TINY, seed=0)
    band = result.extras["larmor_band_hz"]
    assert abs(band[5, 4] - 1.6e9) < 40e6 and abs(band[10, 11] - 2.4e9) < 40e6
    # The masked output (the paper's convention) is the band field on the support, 0 elsewhere.
    on_support = result.larmor_hz > 0
    assert on_support[5, 4] and np.array_equal(result.larmor_hz[on_support], band[on_support])


def test_seed_reproducible_callback_and_early_stopping(scene):
    _, _, spectrum = scene
    short = nf.NeuralFieldConfig(hidden=16, layers=3, skip_layer=1, octaves=2, stage_epochs=(5, 5))
    seen = []
    a = nf.reconstruct_neural_field(spectrum, GEO, "F1", config=short, seed=3,
                                    callback=lambda i, v: seen.append(i))
    b = nf.reconstruct_neural_field(spectrum, GEO, "F1", config=short, seed=3)
    c = nf.reconstruct_neural_field(spectrum, GEO, "F1", config=short, seed=4)
    assert seen == list(range(1, 11))
    assert np.array_equal(a.density, b.density) and not np.allclose(a.density, c.density)
    frozen = nf.NeuralFieldConfig(hidden=16, layers=3, skip_layer=1, octaves=0, stage_epochs=(50, 50),
                                  base_learning_rate=0.0)
    stuck = nf.reconstruct_neural_field(spectrum, GEO, "F2", config=frozen, early_stop_patience=3)
    assert stuck.extras["stages"] == [4, 4]


def test_bad_configuration_and_input_raise():
    with pytest.raises(ValueError, match="skip_layer"):
        nf.NeuralFieldConfig(layers=3, skip_layer=3)
    with pytest.raises(ValueError, match="stage_epochs"):
        nf.NeuralFieldConfig(stage_epochs=(0, 0))
    with pytest.raises(ValueError, match="support_threshold"):
        nf.NeuralFieldConfig(support_threshold=1.0)
    with pytest.raises(ValueError, match="n_freq, rows, cols"):
        nf.reconstruct_neural_field(np.ones((12, 8, 8)), GEO, config=TINY)
    with pytest.raises(ValueError, match="divisible"):
        rx.RelaxometryGeometry(shape=(15, 16)).coarsened(2)


def test_file_entry_point_writes_result_and_figure(scene, tmp_path):
    import h5py

    _, _, spectrum = scene
    with h5py.File(tmp_path / "run.h5", "w") as f:
        f.create_dataset("relaxometry/spectrum", data=spectrum)
        f.create_dataset("relaxometry/other", data=np.zeros(3))
    short = nf.NeuralFieldConfig(hidden=16, layers=3, skip_layer=1, octaves=2, stage_epochs=(3, 3))
    result, arrays, figure = nf.reconstruct_neural_field_files(
        tmp_path / "run.h5", tmp_path / "out", GEO, spectrum_dataset="relaxometry/spectrum", config=short
    )
    assert figure.stat().st_size > 10_000
    with np.load(arrays) as saved:
        assert np.array_equal(saved["density"], result.density)
    with pytest.raises(KeyError, match="name one"):
        nf.reconstruct_neural_field_files(tmp_path / "run.h5", tmp_path / "out", GEO, config=short)
    with pytest.raises(FileNotFoundError):
        nf.reconstruct_neural_field_files(tmp_path / "missing.npy", tmp_path / "out", GEO, config=short)
