"""Deep image prior (seed 002): forward model, (de)projection, masks, reconstruction, orientation scan."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.physics.constants import MU0
from instrument.reconstruction import dip
from instrument.reconstruction import dip_masks as dm

PIXEL_M, STANDOFF_M, THICKNESS_M = 50e-9, 60e-9, 20e-9
SHAPE = (32, 32)


pytestmark = pytest.mark.usefixtures("torch_threads")  # tests/reconstruction/conftest.py


def _dipole_sum(m: np.ndarray, pixel_m: float, thickness_m: float, points_m: np.ndarray, sub: int = 4):
    """Direct field of a magnetized film split into point dipoles (sub x sub x sub per pixel)."""
    ys, xs = np.nonzero(np.linalg.norm(m, axis=0))
    offs = (np.arange(sub) + 0.5) / sub
    src, mom = [], []
    for yy, xx in zip(ys, xs, strict=True):
        for a in offs:
            for b in offs:
                for c in offs:
                    src.append([(xx - 0.5 + b) * pixel_m, (yy - 0.5 + a) * pixel_m, -c * thickness_m])
                    mom.append(m[:, yy, xx] * pixel_m**2 * thickness_m / sub**3)
    src, mom = np.array(src), np.array(mom)
    r = points_m[:, None, :] - src[None]
    rn = np.linalg.norm(r, axis=-1)[..., None]
    mdotr = np.einsum("pjk,jk->pj", r, mom)[..., None]
    return (MU0 / (4 * np.pi) * (3 * r * mdotr / rn**5 - mom[None] / rn**3)).sum(1)


def test_stray_field_matches_direct_dipole_sum():
    # Pixels well below the standoff, so the pixel-sampled film and the box-shaped cells agree.
    pixel_m = 20e-9
    m = np.zeros((3, 24, 24))
    m[0, 10:14, 9:15] = 8e5
    m[1, 10:14, 9:15] = -3e5
    m[2, 10:14, 9:15] = 2e5
    b = dip.stray_field(m, pixel_m, STANDOFF_M, THICKNESS_M)
    row = 12
    pts = np.stack([np.arange(24) * pixel_m, np.full(24, row * pixel_m), np.full(24, STANDOFF_M)], -1)
    direct = _dipole_sum(m, pixel_m, THICKNESS_M, pts)
    for i in range(3):
        err = np.abs(b[i, row] - direct[:, i]).max() / np.abs(direct[:, i]).max()
        assert err < 0.03, f"component {i}: relative error {err:.3f}"
    # Return flux: above the middle of an +x magnetized patch the field points along -x.
    mx_only = np.zeros((2, 24, 24))
    mx_only[0, 8:16, 8:16] = 8e5
    assert dip.stray_field(mx_only, PIXEL_M, STANDOFF_M, THICKNESS_M)[0, 12, 12] < 0


def test_deprojection_recovers_vector_field_and_reprojects():
    m = dm.smooth_magnetization(dm.landau_mask(SHAPE, (10, 6)), 8e5, 2)
    b = dip.stray_field(m, PIXEL_M, STANDOFF_M, THICKNESS_M, pad=1)  # periodic, like the deprojection
    n = dip.nv_unit_vector()
    b_vec, eps = dip.deproject_nv(dip.project_nv(b, n), n, PIXEL_M, noise_rms_t=1e-9)
    assert 0 < eps < 1
    for i in range(3):
        assert np.abs(b_vec[i] - b[i]).max() < 0.05 * np.abs(b).max()
    with pytest.raises(ValueError, match="2-D"):
        dip.deproject_nv(np.zeros((2, 3, 3)), n, PIXEL_M)
    with pytest.raises(ValueError, match="positive"):
        dip.deproject_nv(np.zeros((4, 4)), n, PIXEL_M, regularization=-1.0)


def test_masks_have_unit_directions_inside_and_zero_outside():
    mask = dm.landau_mask(SHAPE, (12, 7), 0.0)
    support = dm.ellipse_support(SHAPE, (12, 7))
    norm = np.linalg.norm(mask, axis=0)
    assert np.allclose(norm[~support], 0) and np.allclose(norm[support], 1)
    # Counter-clockwise flux closure: +y on the right end, -x along the top (row index grows downward,
    # so "top" in y is the large-row side).
    assert mask[1, 16, 26] > 0.9 and mask[1, 16, 5] < -0.9
    assert mask[0, 21, 15] < -0.9 and mask[0, 10, 15] > 0.9
    rotated = dm.landau_mask(SHAPE, (12, 7), 90.0)
    assert not np.allclose(rotated, mask)
    u = dm.uniform_mask(support, 90.0)
    assert np.allclose(u[0], 0) and np.allclose(u[1], support)
    with pytest.raises(ValueError, match="chirality"):
        dm.landau_mask(SHAPE, (12, 7), chirality=0)
    with pytest.raises(ValueError, match="positive"):
        dm.ellipse_support(SHAPE, (0, 3))


def _noisy_bnv(m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    b = dip.project_nv(dip.stray_field(m, PIXEL_M, STANDOFF_M, THICKNESS_M), dip.nv_unit_vector())
    return b + rng.normal(0, 0.02 * np.abs(b).max(), b.shape)


FAST = dict(pixel_m=PIXEL_M, standoff_m=STANDOFF_M, thickness_m=THICKNESS_M, channels=(16, 32), seed=0)


def test_landau_fit_matches_data_and_true_orientation_converges_best():
    axes = (12, 7)
    truth = dm.smooth_magnetization(dm.landau_mask(SHAPE, axes, 0.0), 8e5, 2)
    b = _noisy_bnv(truth, np.random.default_rng(0))
    scan = dip.mask_orientation_scan(b, lambda a: dm.landau_mask(SHAPE, axes, a), [0, 45, 90],
                                     epochs=80, learning_rate=1.5e-3, **FAST)
    assert scan.best_angle_deg == 0.0
    assert min(scan.final_mse_t2[1:]) > 1.5 * scan.final_mse_t2[0]
    best = scan.results[0]
    rel_residual = np.sqrt(np.mean((best.b_nv_model_t - b) ** 2) / np.mean(b**2))
    assert rel_residual < 0.3
    m = best.magnetization_a_per_m
    assert np.linalg.norm(m, axis=0).max() <= 8e5 * (1 + 1e-5)
    assert np.allclose(m[:, ~dm.ellipse_support(SHAPE, axes)], 0)


def test_uniform_ellipse_true_direction_converges_best():
    support = dm.ellipse_support(SHAPE, (10, 3))
    truth = dm.smooth_magnetization(dm.uniform_mask(support, 0.0), 8e5, 1)
    b = _noisy_bnv(truth, np.random.default_rng(1))
    scan = dip.mask_orientation_scan(b, lambda a: dm.uniform_mask(support, a), [0, 60, 120],
                                     epochs=40, learning_rate=1.5e-3, **FAST)
    assert scan.best_angle_deg == 0.0
    assert min(scan.final_mse_t2[1:]) > 2 * scan.final_mse_t2[0]
    assert scan.results[0].snr_db > min(r.snr_db for r in scan.results[1:])


def test_seed_reproducible_callback_and_early_stopping():
    support = dm.ellipse_support(SHAPE, (10, 3))
    b = _noisy_bnv(dm.smooth_magnetization(dm.uniform_mask(support, 0.0), 8e5, 1), np.random.default_rng(2))
    mask = dm.uniform_mask(support, 0.0)
    seen = []
    kw = {**FAST, "epochs": 10}
    a = dip.reconstruct_dip(b, mask, callback=lambda e, mse: seen.append((e, mse)), **kw)
    again = dip.reconstruct_dip(b, mask, **kw)
    other = dip.reconstruct_dip(b, mask, **{**kw, "seed": 1})
    assert [e for e, _ in seen] == list(range(1, 11))
    assert np.array_equal(a.magnetization_a_per_m, again.magnetization_a_per_m)
    assert not np.allclose(a.magnetization_a_per_m, other.magnetization_a_per_m)
    # A zero learning rate never improves: early stopping ends the run after patience epochs.
    stuck = dip.reconstruct_dip(b, mask, **{**FAST, "epochs": 500, "learning_rate": 0.0,
                                            "early_stop_patience": 5})
    assert stuck.epochs_run == 6


def test_bad_inputs_raise_clear_errors():
    b = np.zeros(SHAPE)
    good = np.zeros((2, *SHAPE))
    with pytest.raises(ValueError, match="mask must have shape"):
        dip.reconstruct_dip(b, np.zeros((2, 8, 8)), **FAST)
    with pytest.raises(ValueError, match="NaN"):
        dip.reconstruct_dip(np.full(SHAPE, np.nan), good, **FAST)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        dip.reconstruct_dip(b, good + 2, **FAST)
    with pytest.raises(ValueError, match="epochs"):
        dip.reconstruct_dip(b, good, epochs=0, **FAST)
    with pytest.raises(ValueError, match="angles_deg"):
        dip.mask_orientation_scan(b, lambda a: good, [], **FAST)


def test_file_entry_point_writes_result_and_figure(tmp_path):
    support = dm.ellipse_support(SHAPE, (10, 3))
    b = _noisy_bnv(dm.smooth_magnetization(dm.uniform_mask(support, 0.0), 8e5, 1), np.random.default_rng(3))
    np.save(tmp_path / "b.npy", b)
    np.savez(tmp_path / "mask.npz", mask=dm.uniform_mask(support, 0.0))
    result, arrays, figure = dip.reconstruct_dip_files(
        tmp_path / "b.npy", tmp_path / "mask.npz", tmp_path / "out", mask_dataset="mask", epochs=5, **FAST
    )
    assert figure.stat().st_size > 10_000
    with np.load(arrays) as saved:
        assert np.array_equal(saved["magnetization_a_per_m"], result.magnetization_a_per_m)
    with pytest.raises(KeyError, match="no array"):
        dip.reconstruct_dip_files(tmp_path / "b.npy", tmp_path / "mask.npz", tmp_path,
                                  mask_dataset="x", **FAST)


def test_stray_field_agrees_with_physics_fourier_forward_model():
    from instrument.physics import fourier

    m = np.zeros((3, 32, 32))
    m[0, 12:20, 10:22] = 8e5
    m[2, 12:20, 10:22] = -1e5
    ours = dip.stray_field(m, PIXEL_M, STANDOFF_M, THICKNESS_M, pad=4)
    # A film of thickness t seen from above = areal moment M t averaged over the depth, which the
    # shared kernels express as a layer-thickness factor.
    shared = fourier.b_from_magnetization(m * THICKNESS_M, PIXEL_M, STANDOFF_M, nv_thickness_m=THICKNESS_M,
                                          pad_factor=4.0)
    assert np.abs(ours - shared).max() < 1e-3 * np.abs(shared).max()
