"""``acquire analyse RUN`` options: estimator, binning, outliers, background, export; bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from instrument.analysis.background import subtract_background
from instrument.cli import main
from instrument.storage.runs import load_run
from tests.analysis.cw_synthetic import true_b_nv_t, write_run

SHAPE = (16, 16)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("options")
    run_id = write_run(out, shape=SHAPE, counts=2e4, seed=5, glitches=6)
    return out, run_id


@pytest.fixture(scope="module")
def plain_map(run):
    out, run_id = run
    code, stored = analyse(out, run_id, tag="plain_bg")
    assert code == 0
    return maps(stored, "plain_bg")[0]["b_nv_t"]


def analyse(out, run_id, *options, tag):
    code = main(["--out", str(out), "analyse", str(run_id), "--hyperfine", "none", "--tag", tag, *options])
    return code, load_run(out, run_id)


def maps(stored, tag):
    with h5py.File(stored.run_dir / f"analysis-{tag}.h5") as f:
        return {k: f[k][...] for k in ("b_nv_t", "b_nv_err_t", "converged")}, dict(f.attrs)


def test_poisson_estimator_agrees_with_least_squares_within_the_errors(run):
    out, run_id = run
    assert analyse(out, run_id, tag="lsq")[0] == 0
    code, stored = analyse(out, run_id, "--estimator", "poisson", tag="ml")
    assert code == 0
    lsq, _ = maps(stored, "lsq")
    ml, attrs = maps(stored, "ml")
    assert '"estimator": "poisson"' in attrs["fit_options"]
    assert stored.metadata["analysis_ml"]["estimator"] == "poisson"
    ok = np.isfinite(lsq["b_nv_t"]) & np.isfinite(ml["b_nv_t"])
    assert ok.mean() > 0.9
    diff = np.abs(lsq["b_nv_t"] - ml["b_nv_t"])[ok]
    assert np.median(diff) < np.median(ml["b_nv_err_t"][ok])
    assert not np.array_equal(lsq["b_nv_t"][ok], ml["b_nv_t"][ok])  # a different estimator did run


def test_binning_sums_blocks_and_lowers_the_noise(run):
    out, run_id = run
    code, stored = analyse(out, run_id, "--bin", "2", tag="bin2")
    assert code == 0
    assert analyse(out, run_id, tag="plain")[0] == 0
    binned, attrs = maps(stored, "bin2")
    plain, _ = maps(stored, "plain")
    assert binned["b_nv_t"].shape == (SHAPE[0] // 2, SHAPE[1] // 2)
    assert '"bin_factor": 2' in attrs["corrections"]
    # Four pixels' photons: the error halves (within the fits' own scatter).
    ratio = np.nanmedian(binned["b_nv_err_t"]) / np.nanmedian(plain["b_nv_err_t"])
    assert 0.35 < ratio < 0.65, ratio


def test_outliers_are_flagged_and_refitted(run):
    out, run_id = run
    code, stored = analyse(out, run_id, "--outliers", tag="out")
    assert code == 0
    counts = stored.metadata["analysis_out"]["corrections"]["outliers"]
    assert counts["on"]["flagged"] > 0 and 0 <= counts["on"]["replaced"] <= counts["on"]["flagged"]
    refit, _ = maps(stored, "out")
    assert np.isfinite(refit["b_nv_t"]).mean() > 0.9
    assert analyse(out, run_id, tag="no_out")[0] == 0
    plain, _ = maps(stored, "no_out")
    with h5py.File(stored.run_dir / "analysis-out.h5") as f:
        masks = {k: f[f"outliers/{k}"][...] for k in f["outliers"]}
    assert masks["on_flagged"].sum() == counts["on"]["flagged"]
    assert not np.any(masks["on_replaced"] & ~masks["on_flagged"])
    # Only the refitted pixels change; every other pixel keeps its first fit.
    replaced = masks["on_replaced"] | masks["off_replaced"]
    same = np.isclose(refit["b_nv_t"], plain["b_nv_t"], equal_nan=True, rtol=0, atol=1e-15)
    assert replaced.any() and np.all(same[~replaced])


@pytest.mark.parametrize("method, extra", [
    ("mean", []), ("gaussian", ["--sigma-px", "4"]), ("polynomial", ["--background-order", "0"]),
    ("masked-polynomial", ["--background-region", "4:12,4:12"]),
    ("interpolate", ["--background-region", "4:12,4:12"]),
])
def test_background_methods(run, plain_map, method, extra):
    out, run_id = run
    tag = f"bg_{method.replace('-', '_')}"
    code, stored = analyse(out, run_id, "--background", method, *extra, tag=tag)
    assert code == 0
    b = maps(stored, tag)[0]["b_nv_t"]
    assert stored.metadata[f"analysis_{tag}"]["corrections"]["background"] == method
    # The same background, taken off the plain map by hand, gives the same map.
    plain = plain_map
    mask = np.ones(SHAPE, bool)
    mask[4:12, 4:12] = False
    by_hand = subtract_background(
        plain, "polynomial" if method == "masked-polynomial" else method,
        mask=mask if "--background-region" in extra else None,
        order=0 if method == "polynomial" else 1, sigma_px=4.0 if method == "gaussian" else 10.0)[0]
    assert np.allclose(b, by_hand, equal_nan=True, atol=1e-12)
    truth = true_b_nv_t(SHAPE)
    if method in ("mean", "polynomial"):
        assert abs(np.nanmean(b)) < 1e-9  # the map's offset is gone
    if method in ("masked-polynomial", "interpolate"):
        # The field-free surroundings are flattened, the source (20 uT peak) is kept.
        edge = np.ones(SHAPE, bool)
        edge[4:12, 4:12] = False
        assert abs(np.nanmean(b[edge])) < 1e-6
        assert np.nanmax(b[6:10, 6:10]) > 0.5 * truth.max()


def test_export_netcdf_and_mat_carry_coordinates_and_provenance(run):
    import json

    import xarray as xr
    from scipy.io import loadmat

    out, run_id = run
    code, stored = analyse(out, run_id, "--export", "netcdf", tag="nc")
    assert code == 0
    with xr.open_dataset(stored.run_dir / "analysis-nc.nc", engine="h5netcdf") as ds:
        assert ds["b_nv_t"].shape == SHAPE and ds["b_nv_t"].attrs["units"] == "T"
        assert ds["x"].size == SHAPE[1] and ds["y"].attrs["units"] == "m"
        prov = json.loads(ds.attrs["provenance"])
    assert prov["run_id"] == run_id and prov["analysis_options"]["export"] == "netcdf"
    assert prov["fit_options"]["estimator"] == "least_squares" and "drift" in prov
    code, stored = analyse(out, run_id, "--export", "mat", "--bin", "2", tag="mat")
    assert code == 0
    content = loadmat(stored.run_dir / "analysis-mat.mat")
    assert content["b_nv_t"].shape == (SHAPE[0] // 2, SHAPE[1] // 2)
    assert json.loads(str(content["provenance"][0]))["analysis_options"]["bin_factor"] == 2
    assert stored.metadata["analysis_mat"]["export_file"].endswith("analysis-mat.mat")


@pytest.mark.parametrize("options, message", [
    (["--bin", "0"], "--bin must be a whole number >= 1"),
    (["--bin", "17"], "no whole 17x17 block"),
    (["--estimator", "mle"], "invalid choice: 'mle'"),
    (["--background", "median"], "invalid choice: 'median'"),
    (["--background", "interpolate"], "needs --background-region"),
    (["--background", "masked-polynomial", "--background-region", "4-12"], "R0:R1,C0:C1"),
    (["--background", "interpolate", "--background-region", "0:40,0:4"], "not inside the fitted 16x16 map"),
    (["--background", "gaussian", "--sigma-px", "0"], "--sigma-px must be > 0"),
    (["--export", "csv"], "invalid choice: 'csv'"),
])
def test_bad_options_are_clear_errors_with_exit_2(run, capsys, options, message):
    out, run_id = run
    try:
        code = main(["--out", str(out), "analyse", str(run_id), *options])
    except SystemExit as exc:  # argparse refuses an unknown choice itself, with the usage exit code
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_poisson_on_data_that_are_not_counts_is_refused(tmp_path, capsys):
    run_id = write_run(tmp_path, shape=(8, 8), counts=2e4, seed=6)
    stored = load_run(tmp_path, run_id)
    with h5py.File(stored.run_dir / "images.h5", "r+") as f:
        f["signal"][...] = f["signal"][...] - 3e4  # a dark offset subtracted: negative values
    assert main(["--out", str(tmp_path), "analyse", str(run_id), "--estimator", "poisson"]) == 2
    assert "photon counts" in capsys.readouterr().err
