"""Whole runs: every map fitted in one dask computation, locally and on a distributed cluster."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.analysis.odmr import FitReason, fit_odmr
from instrument.analysis.runs import analyse_maps
from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.physics.nv import odmr_dip

FREQS = np.linspace(2.864e9, 2.876e9, 61)
BIAS_CENTER = 2.870e9


def coil_maps(n_maps=3, shape=(12, 10), seed=0):
    """Field-off reference and maps whose B_NV is a different blob per map plus a common plane."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    plane = 2e-6 * (rows / shape[0]) - 1e-6 * (cols / shape[1])
    truth = []
    for m in range(n_maps):
        blob = 20e-6 * np.exp(-((rows - 3 - 2 * m) ** 2 + (cols - 5) ** 2) / 6.0)
        truth.append(blob + plane)
    truth = np.stack(truth)

    def cube(b_nv):
        centers = BIAS_CENTER - GAMMA_E_HZ_PER_T * b_nv
        dip = odmr_dip(FREQS, centers[..., None] + 0 * FREQS, 0.03, 1e6, "15N")
        return rng.poisson(2e6 * (1 - dip)).astype(np.float32)

    return np.stack([cube(t) for t in truth]), cube(np.zeros(shape)), truth, plane


def test_dask_array_input_matches_numpy():
    import dask.array as da

    maps, _, _, _ = coil_maps(n_maps=1)
    cube = maps[0]
    direct = fit_odmr(FREQS, cube, hyperfine="15N")
    lazy = fit_odmr(FREQS, da.from_array(cube, chunks=(5, 4, 20)), hyperfine="15N")
    # Same fits; only float32 rounding may differ with the batch layout (far below the errors).
    np.testing.assert_allclose(lazy.center, direct.center, rtol=0, atol=1e-3 * direct.center_err.max())
    np.testing.assert_array_equal(lazy.reason, direct.reason)


def test_local_run_gives_b_nv_maps_and_removes_the_plane():
    maps, reference, truth, plane = coil_maps()
    result = analyse_maps(FREQS, maps, reference=reference, hyperfine="15N", pixels_per_task=37)
    assert len(result.fits) == 3 and result.reference.converged.all()
    assert all(f.converged.all() for f in result.fits)
    err = result.b_nv_t - truth
    sigma = np.sqrt(2) * max(f.center_err.max() for f in result.fits) / GAMMA_E_HZ_PER_T
    assert np.max(np.abs(err)) < 5 * sigma and sigma < 1e-6  # against a 20 uT blob
    flat = analyse_maps(
        FREQS, list(maps), reference=reference, hyperfine="15N", background_order=1, scheduler="synchronous"
    )
    # The plane is gone; what is left is the blob minus its own (small) best-fit plane.
    residual_plane = flat.b_nv_t - (truth - plane)
    assert np.std(residual_plane) < 0.1 * np.std(plane) + 5 * sigma


def test_bad_pixels_in_a_run_stay_flagged():
    maps, reference, _, _ = coil_maps(n_maps=2)
    maps[1, 2, 3, 7] = np.nan
    result = analyse_maps(FREQS, maps, reference=reference, hyperfine="15N")
    assert result.fits[1].reason[2, 3] == FitReason.NON_FINITE
    assert np.isnan(result.b_nv_t[1, 2, 3]) and np.isfinite(result.b_nv_t[0, 2, 3])


def test_run_argument_errors():
    maps, reference, _, _ = coil_maps(n_maps=2)
    with pytest.raises(ValueError, match="no maps"):
        analyse_maps(FREQS, [])
    with pytest.raises(ValueError, match="must match"):
        analyse_maps(FREQS, [maps[0], maps[1][:5]])
    with pytest.raises(ValueError, match="2-D maps"):
        analyse_maps(FREQS, maps[:, 0], reference=reference[0], hyperfine="15N", background_order=1)
    with pytest.raises(ConnectionError, match="dask scheduler"):
        analyse_maps(FREQS, maps, scheduler="tcp://127.0.0.1:1", connect_timeout_s=1.0)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_distributed_local_cluster_with_two_workers():
    """Two worker processes over TCP: the fit setup and tasks must travel by pickle."""
    import distributed

    maps, reference, truth, _ = coil_maps(n_maps=2, shape=(8, 6))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        local = analyse_maps(FREQS, maps, reference=reference, hyperfine="15N")
        remote = analyse_maps(
            FREQS,
            maps,
            reference=reference,
            hyperfine="15N",
            scheduler=cluster.scheduler_address,
            pixels_per_task=12,
        )
    np.testing.assert_allclose(remote.b_nv_t, local.b_nv_t, rtol=0, atol=1e-9)  # float32 rounding only
    assert all(f.converged.all() for f in remote.fits)
