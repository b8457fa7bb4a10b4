"""``acquire analyse RUN --vector`` on a stored eight-line CW-ODMR run (I-off and I-on sweeps)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from instrument.analysis.hamiltonian import transition_frequencies_hz
from instrument.cli import main
from instrument.physics.nv import lorentzian
from instrument.storage.runs import RunWriter, Step, load_run

B0 = 4e-3 * np.array([np.sin(0.6) * np.cos(0.3), np.sin(0.6) * np.sin(0.3), np.cos(0.6)])
COIL = np.array([30e-6, -20e-6, 10e-6])  # the coils' field in the I-on sweep
SHAPE = (4, 5)


def sweep_images(freqs, b, rng):
    lines = transition_frequencies_hz(np.broadcast_to(b, (*SHAPE, 3))).reshape(*SHAPE, 8)
    dip = sum(0.03 * lorentzian(freqs, lines[..., i : i + 1], 4e6) for i in range(8))
    return np.moveaxis(rng.poisson(1e6 * (1 - dip)).astype(np.float32), -1, 0)  # (F, rows, cols)


@pytest.fixture(scope="module")
def eight_line_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vector")
    rng = np.random.default_rng(0)
    freqs = np.linspace(2.74e9, 3.0e9, 131)
    images = np.concatenate([sweep_images(freqs, B0, rng), sweep_images(freqs, B0 + COIL, rng)])
    writer = RunWriter(out, "cw_odmr", "test", {"frequency_hz": "Hz", "mean": "counts"}, ("frequency_hz",))
    run_id = writer.open({"sequence": {"name": "cw_odmr", "frequencies_hz": freqs.tolist()}},
                         {"signal": SHAPE}, images.shape[0])
    for i, image in enumerate(images):
        writer.write(Step(i, {"frequency_hz": freqs[i % freqs.size], "mean": float(image.mean())},
                          {"signal": image}))
    writer.close("completed")
    return out, run_id


@pytest.mark.filterwarnings("ignore:the PL images")
def test_analyse_vector_stores_b_d_e_maps_and_the_coils_vector_field(eight_line_run, capsys):
    out, run_id = eight_line_run
    bias = ",".join(f"{v * 1e3:.3f}" for v in B0)
    assert main(["--out", str(out), "analyse", str(run_id), "--vector", "--hyperfine", "none",
                 "--bias-mt", bias, "--tag", "vec"]) == 0
    assert "100.0% of pixels fitted" in capsys.readouterr().out
    run = load_run(out, run_id)
    with h5py.File(run.run_dir / "analysis-vec.h5") as f:
        b_off = f["sweep_0/b_t"][...]
        delta = f["delta_b_t"][...]
        err = f["sweep_0/b_err_t"][...]
        assert f["sweep_0/d_hz"].shape == SHAPE and f["sweep_1/reason"].shape == SHAPE
        assert "bias_t" in f.attrs["options"]
    assert np.all(np.abs(b_off - B0) < 5 * err + 1e-8)
    assert np.all(np.abs(delta - COIL) < 5 * np.sqrt(2) * err + 1e-8)
    assert run.metadata["analysis_vec"]["converged_fraction"] == 1.0
    drift = run.metadata["analysis_vec"]["drift"]
    # Uniform test images: nothing to register against, so nothing is shifted (and it says so).
    assert drift["corrected"] is False and drift["reliable"] == [True, False]


@pytest.mark.filterwarnings("ignore:the PL images")
def test_analyse_vector_without_bias_reports_the_ambiguity_and_refuses_bad_bias(eight_line_run, capsys):
    out, run_id = eight_line_run
    assert main(["--out", str(out), "analyse", str(run_id), "--vector", "--hyperfine", "none"]) == 0
    printed = capsys.readouterr().out
    assert "48 signed permutations" in printed
    assert main(["--out", str(out), "analyse", str(run_id), "--vector", "--bias-mt", "1,2"]) == 2
    assert "three numbers" in capsys.readouterr().err
    assert main(["--out", str(out), "analyse", str(run_id), "--vector", "--bin", "2"]) == 2
    assert "--bin apply to the single-line fit" in capsys.readouterr().err
