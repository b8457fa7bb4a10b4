"""Drift registration, background subtraction, binning, global fluorescence and export."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from instrument.analysis import background, drift, export, preprocess
from instrument.analysis.odmr import fit_odmr
from instrument.physics.nv import lorentzian


def textured_image(shape=(48, 48), seed=0):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    return 1e4 * (1 + 0.3 * gaussian_filter(rng.normal(size=shape), 2.0))


def test_drift_is_measured_per_sweep_corrected_and_warned_about():
    from scipy.ndimage import shift as nd_shift

    base = textured_image()
    freqs = np.linspace(2.86e9, 2.88e9, 21)
    line = 1 - 0.02 * lorentzian(freqs, 2.87e9, 2e6)
    true = np.array([[0.0, 0.0], [0.4, -0.3], [1.6, 2.2]])
    cubes = np.stack([nd_shift(base, s, order=3, mode="nearest")[..., None] * line for s in true])
    with pytest.warns(drift.DriftWarning, match="drifted"):
        result = drift.register_sweeps(cubes.mean(axis=-1))
    np.testing.assert_allclose(result.shifts_px, true, atol=0.15)
    assert result.exceeded and result.as_metadata()["max_shift_px"] > 2.0
    aligned = drift.correct_drift(cubes, result.shifts_px)
    inner = (slice(5, -5), slice(5, -5))
    before = np.abs(cubes[2][inner] - cubes[0][inner]).mean()
    after = np.abs(aligned[2][inner] - aligned[0][inner]).mean()
    assert after < 0.2 * before
    assert np.isnan(aligned[2][-1, -1, 0]) and np.isfinite(aligned[2][0, 0, 0])  # uncovered edge: NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sub-pixel drift: no warning
        small = drift.register_sweeps(cubes[:2].mean(axis=-1))
    assert not small.exceeded
    noise = np.random.default_rng(1).poisson(1e6, (2, 40, 50)).astype(float)
    with pytest.warns(drift.DriftWarning, match="too little texture"):
        blank = drift.register_sweeps(noise)
    assert blank.reliable.tolist() == [True, False] and not blank.shifts_px.any()
    with pytest.raises(ValueError, match="NaN"):
        drift.register_sweeps(np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="shifts"):
        drift.correct_drift(cubes, np.zeros((2, 2)))


def test_background_methods_remove_what_they_should_and_keep_the_source():
    rows, cols = np.indices((40, 50))
    gradient = 1e-6 * (0.5 + 0.02 * cols + 0.01 * rows)
    source = np.zeros((40, 50))
    source[15:25, 20:30] = 3e-6
    image = gradient + source
    mask = source == 0
    for method, kw in (("polynomial", {"order": 1}), ("interpolate", {})):
        corrected, bg = background.subtract_background(image, method, mask=mask, **kw)
        np.testing.assert_allclose(corrected[mask], 0.0, atol=1e-9)
        np.testing.assert_allclose(corrected[~mask], 3e-6, atol=2e-8), method
    corrected, _ = background.subtract_background(image, "mean", mask=mask)
    assert abs(np.mean(corrected[mask])) < 1e-15
    # A wide Gaussian low-pass of the background pixels takes the slow gradient, not the source.
    corrected, bg = background.subtract_background(image, "gaussian", mask=mask, sigma_px=3.0)
    assert np.max(np.abs(corrected[mask][5:-5])) < 1e-7
    assert np.median(corrected[~mask]) > 2.5e-6
    with pytest.raises(ValueError, match="needs a mask"):
        background.subtract_background(image, "interpolate")
    with pytest.raises(ValueError, match="unknown background"):
        background.subtract_background(image, "median")
    with pytest.raises(ValueError, match="no finite background"):
        background.subtract_background(image, "mean", mask=np.zeros_like(mask))


def test_binning_sums_counts_and_improves_the_centre_error():
    rng = np.random.default_rng(1)
    freqs = np.linspace(2.86e9, 2.88e9, 101)
    mean = 4e4 * (1 - 0.012 * lorentzian(freqs, 2.870e9, 1.2e6))
    cube = rng.poisson(np.broadcast_to(mean, (8, 8, 101))).astype(np.uint32)
    binned = preprocess.bin_pixels(cube, 4)
    assert binned.shape == (2, 2, 101) and binned.dtype == np.int64
    assert binned[0, 0].sum() == cube[:4, :4].sum()
    err_1 = np.nanmedian(fit_odmr(freqs, cube.astype(float)).center_err)
    err_4 = np.nanmedian(fit_odmr(freqs, binned.astype(float)).center_err)
    assert 2.5 < err_1 / err_4 < 6.0  # ~4x from 16x the photons
    assert preprocess.bin_pixels(cube[:7, :7], 2).shape == (3, 3, 101)
    with pytest.raises(ValueError, match="whole 16x16 block"):
        preprocess.bin_pixels(cube, 16)


def test_global_fluorescence_correction_undoes_scattered_light():
    freqs = np.linspace(2.86e9, 2.88e9, 101)
    centers = np.linspace(2.866e9, 2.874e9, 30)
    clean = 1e4 * (1 - 0.03 * lorentzian(freqs, centers[:, None], 1e6))
    share = 0.3
    scattered = clean.mean(axis=0) * clean.sum(1, keepdims=True) / clean.mean(0).sum()
    observed = (1 - share) * clean + share * scattered
    corrected = preprocess.global_fluorescence_correction(observed, share)
    fit_raw = fit_odmr(freqs, observed, precision="double")
    fit_cor = fit_odmr(freqs, corrected, precision="double")
    # The scattered mean spectrum pulls the outer pixels' lines inwards; the correction removes it.
    assert np.max(np.abs(fit_cor.center - centers)) < 0.1 * np.max(np.abs(fit_raw.center - centers))
    np.testing.assert_allclose(preprocess.global_fluorescence_correction(observed, 0.0), observed)
    with pytest.raises(ValueError, match="fraction"):
        preprocess.global_fluorescence_correction(observed, 1.0)


def test_export_to_netcdf_and_mat_keeps_maps_coordinates_and_provenance(tmp_path):
    import scipy.io
    import xarray as xr

    rng = np.random.default_rng(2)
    maps = {"b_t": rng.normal(size=(6, 7, 3)), "d_hz": 2.87e9 + rng.normal(size=(6, 7))}
    provenance = {"run_id": 12, "fit_options": {"min_snr": 0.0}}
    path = export.to_netcdf(maps, tmp_path / "maps.nc", 1.3e-6, provenance)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds["b_t"].values, maps["b_t"])
        assert ds["d_hz"].attrs["units"] == "Hz" and list(ds["component"].values) == ["x", "y", "z"]
        np.testing.assert_allclose(ds["x"].values, np.arange(7) * 1.3e-6)
        assert '"run_id": 12' in ds.attrs["provenance"]
    mat = scipy.io.loadmat(export.to_mat(maps, tmp_path / "maps.mat", 1.3e-6, provenance))
    np.testing.assert_array_equal(mat["d_hz"], maps["d_hz"])
    assert mat["y_m"].size == 6 and "fit_options" in str(mat["provenance"])
    with pytest.raises(ValueError, match="share one"):
        export.to_xarray({"a": np.zeros((2, 2)), "b": np.zeros((3, 3))}, 1e-6)
    with pytest.raises(ValueError, match="pixel_size_m"):
        export.to_mat(maps, tmp_path / "x.mat", 0.0)
