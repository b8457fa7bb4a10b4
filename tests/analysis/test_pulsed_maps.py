"""Per-pixel pulsed fits on the batched solver: recovery within the stated errors, and bad input refused."""

import numpy as np
import pytest

from instrument.analysis.pulsed import PulsedFitError, fit_echo, fit_rabi, fit_t1
from instrument.analysis.pulsed_maps import (
    bin_images,
    compare_with_truth,
    fit_decay_map,
    fit_map,
    fit_rabi_map,
)

RNG = np.random.default_rng(11)


def _t1_stack(noise=2e-3):
    t = np.geomspace(10e-6, 8e-3, 25)
    t1 = np.linspace(0.6e-3, 2.4e-3, 36).reshape(6, 6)
    clean = 1 - 0.05 * (1 - np.exp(-t[:, None, None] / t1[None]))
    return t, t1, clean + RNG.normal(0, noise, clean.shape)


def test_bin_images_averages_blocks_and_drops_the_ragged_edge():
    img = np.arange(2 * 5 * 7, dtype=float).reshape(2, 5, 7)
    b = bin_images(img, 2)
    assert b.shape == (2, 2, 3)
    assert b[0, 0, 0] == pytest.approx(np.mean([0, 1, 7, 8]))
    with pytest.raises(ValueError, match="larger than the 5 x 7 image"):
        bin_images(img, 8)
    with pytest.raises(ValueError, match="bin must be >= 1"):
        bin_images(img, 0)


def test_t1_map_recovers_each_pixel_within_its_error():
    t, t1, stack = _t1_stack()
    mean = fit_t1(t, stack.mean(axis=(1, 2)), None)
    m = fit_decay_map("t1", t, stack, mean, "t1_s", "none")
    assert m.converged.all()
    a = compare_with_truth(m.params["t1_s"], m.errors["t1_s"], t1)
    assert a["within_3_sigma"] >= 0.9 and 0.4 < a["median_abs_z"] < 1.1, a
    # the trivial baseline, the mean curve's T1 everywhere, does not match the truth
    flat = np.full_like(t1, mean.params["t1_s"])
    assert compare_with_truth(flat, m.errors["t1_s"], t1)["within_3_sigma"] < 0.5


def test_stretched_echo_map_fits_the_stretch_per_pixel():
    t = np.linspace(2e-6, 24e-6, 31)
    t2 = np.linspace(6e-6, 10e-6, 16).reshape(4, 4)
    clean = 1 + 0.02 * np.exp(-((t[:, None, None] / t2[None]) ** 3))
    stack = clean + RNG.normal(0, 5e-4, clean.shape)
    mean = fit_echo(t, stack.mean(axis=(1, 2)), None)
    m = fit_decay_map("echo", t, stack, mean, "t2_s", "free")
    assert np.nanmedian(m.params["stretch"]) == pytest.approx(3.0, abs=0.3)
    assert compare_with_truth(m.params["t2_s"], m.errors["t2_s"], t2)["within_3_sigma"] >= 0.9
    held = fit_decay_map("echo", t, stack, mean, "t2_s", "mean")
    assert held.held == {"stretch": pytest.approx(mean.params["stretch"])} and "stretch" not in held.params
    pixels = fit_decay_map("echo", t, stack, mean, "t2_s", "pixels")
    assert pixels.held["stretch"] == pytest.approx(3.0, abs=0.2)  # the mean curve's n is lower
    assert compare_with_truth(pixels.params["t2_s"], pixels.errors["t2_s"], t2)["within_3_sigma"] >= 0.9
    with pytest.raises(ValueError, match="stretch must be free, mean, pixels or none"):
        fit_decay_map("echo", t, stack, mean, "t2_s", "sometimes")


def test_rabi_map_with_a_hyperfine_doublet():
    t = np.linspace(12e-9, 400e-9, 40)
    rabi = np.linspace(3e6, 8e6, 25).reshape(5, 5)
    lines = (0.0, 3.03e6)
    clean = 0.0
    for d in lines:
        r = np.sqrt(rabi**2 + d**2)[None]
        clean = clean + (rabi[None] / r) ** 2 * (1 - np.cos(2 * np.pi * r * t[:, None, None])
                                                  * np.exp(-t[:, None, None] / 1e-6)) / 2
    stack = 1 - 0.02 * clean / 2 + RNG.normal(0, 1e-3, (len(t), 5, 5))
    mean = fit_rabi(t, stack.mean(axis=(1, 2)), None)
    m = fit_rabi_map(t, stack, mean, 3.03e6)
    a = compare_with_truth(m.params["rabi_hz"], m.errors["rabi_hz"], rabi)
    assert a["within_3_sigma"] >= 0.9 and a["median_rel_error"] < 0.02, a
    assert np.all(m.params["decay_s"] > 0)


def test_fit_map_refuses_what_it_cannot_fit():
    t, _, stack = _t1_stack()
    mean = fit_t1(t, stack.mean(axis=(1, 2)), None)
    with pytest.raises(PulsedFitError, match="24 sweep values but 25 images"):
        fit_decay_map("t1", t[:-1], stack, mean, "t1_s", "none")
    with pytest.raises(PulsedFitError, match="too few for a 3-parameter map fit"):
        fit_map("t1", lambda th, x: th[0] + 0 * x, ["a", "b", "c"], t[:4], stack[:4],
                np.zeros((3, 36)), np.full((3, 1), -1.0), np.full((3, 1), 1.0))


def test_a_pixel_with_nan_data_is_marked_not_fitted():
    t, _, stack = _t1_stack()
    stack[3, 2, 2] = np.nan
    mean = fit_t1(t, np.nanmean(stack, axis=(1, 2)), None)
    m = fit_decay_map("t1", t, stack, mean, "t1_s", "none")
    assert not m.converged[2, 2] and np.isnan(m.params["t1_s"][2, 2])
    assert m.converged.sum() == 35


def test_compare_with_truth_refuses_mismatched_or_empty_maps():
    with pytest.raises(ValueError, match="differ in shape"):
        compare_with_truth(np.ones((2, 2)), np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="no pixel has a finite fit"):
        compare_with_truth(np.full((2, 2), np.nan), np.ones((2, 2)), np.ones((2, 2)))
    a = compare_with_truth(np.array([1.0, 1.1, 1.5]), np.array([0.1, 0.1, 0.1]), np.ones(3))
    assert a["within_2_sigma"] == pytest.approx(2 / 3) and a["pixels"] == 3
