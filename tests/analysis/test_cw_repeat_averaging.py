"""Analysis of repeated CW sweeps: complete sweeps averaged per frequency, partial ones left out, and
a resonance drifting in time biases a sequential run but not an interleaved or random one.

The runs are synthetic (a Lorentzian dip per pixel whose centre moves linearly with the step's time),
stored in the layout ``CwOdmrSweep`` writes: each step's sweep, configuration and frequency index.
"""

import h5py
import numpy as np
import pytest

from instrument.analysis.cw_run import analyse_cw_run
from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.physics.nv import lorentzian
from instrument.storage.paths import run_folder
from instrument.storage.runs import IMAGES_NAME, RunWriter, Step, StoredRun, load_run
from sequences.sweep_order import plan_sweeps
from tests.analysis import cw_synthetic

SHAPE = (6, 6)
FREQS = np.linspace(2.860e9, 2.880e9, 31)
CENTRE_HZ = 2.870e9
FIELD_T = 50e-6  # the coils' field: the I-on line sits 1.4 MHz lower
FWHM_HZ = 4e6
COUNTS = 1e5
SCALARS = {"config": "", "frequency_hz": "Hz", "mean_signal": "counts", "sweep": "", "frequency_index": ""}


def image(centre_hz, frequency_hz, rng, noise):
    dip = 0.03 * lorentzian(np.array([frequency_hz]), np.full(SHAPE + (1,), centre_hz), FWHM_HZ)[..., 0]
    return (COUNTS * (1 - dip) + noise * rng.standard_normal(SHAPE)).astype(np.float32)


def write_run(out, order, repeats, drift_hz_per_step=0.0, seed=0, stop_after=None, noise=3.0, direct=False):
    """A stored run of ``repeats`` sweeps in ``order``; ``stop_after`` steps end it early (aborted).

    ``direct`` writes the image file and the run's scalars without the database (the run writer's
    layout, 30 times faster: QCoDeS commits every row), for the tests that only need many frames.
    """
    rng = np.random.default_rng(seed)
    plan = plan_sweeps(order, repeats, 2, len(FREQS), seed=seed)
    if direct:
        return direct_run(out, plan, drift_hz_per_step, rng, noise), plan
    writer = RunWriter(out, "cw_odmr", "test", SCALARS, ("config", "frequency_hz"))
    sequence = {"name": "cw_odmr", "frequencies_hz": FREQS.tolist(), **plan.metadata()}
    run_id = writer.open({"sequence": sequence}, {"signal": SHAPE}, plan.n_steps)
    for t, (sweep, config, i) in enumerate(plan.visits):
        if stop_after is not None and t == stop_after:
            break
        centre = CENTRE_HZ + drift_hz_per_step * t - config * GAMMA_E_HZ_PER_T * FIELD_T
        frame = image(centre, FREQS[i], rng, noise)
        writer.write(Step(t, {"config": config, "frequency_hz": FREQS[i], "mean_signal": float(frame.mean()),
                              "sweep": sweep, "frequency_index": i}, {"signal": frame}))
    writer.close("completed" if stop_after is None else "aborted")
    return load_run(out, run_id), plan


def direct_run(out, plan, drift_hz_per_step, rng, noise):
    """A ``StoredRun`` of ``plan``'s frames written straight to its image file."""
    run_dir = run_folder(out, 1)
    run_dir.mkdir(parents=True)
    visits = plan.visits
    with h5py.File(run_dir / IMAGES_NAME, "w", libver="latest") as f:
        signal = f.create_dataset("signal", shape=(plan.n_steps, *SHAPE), dtype="float32")
        for t, (_, config, i) in enumerate(visits):
            centre = CENTRE_HZ + drift_hz_per_step * t - config * GAMMA_E_HZ_PER_T * FIELD_T
            signal[t] = image(centre, FREQS[i], rng, noise)
        f["steps_done"] = [plan.n_steps]
    scalars = {"sweep": visits[:, 0], "config": visits[:, 1], "frequency_index": visits[:, 2],
               "frequency_hz": FREQS[visits[:, 2]]}
    sequence = {"name": "cw_odmr", "frequencies_hz": FREQS.tolist(), **plan.metadata()}
    return StoredRun(1, run_dir, {"sequence": sequence}, scalars)


def in_frequency_order(run, plan, sweeps):
    """(2, rows, cols, F) mean over ``sweeps`` of the stored frames put back in frequency order."""
    images = run.images("signal")
    cube = np.zeros((len(sweeps), 2, *SHAPE, len(FREQS)))
    for t, (sweep, config, i) in enumerate(plan.visits):
        if sweep in sweeps:
            cube[sweeps.index(sweep), config, ..., i] = images[t]
    return cube.mean(axis=0)


def test_complete_sweeps_are_averaged_per_frequency(tmp_path):
    run, plan = write_run(tmp_path, "random", 3, seed=4, direct=True)
    result = analyse_cw_run(run, isotope=None, drift=False)
    np.testing.assert_allclose(result.spectra, in_frequency_order(run, plan, [0, 1, 2]), rtol=1e-6)
    assert result.sweeps["complete"] == [0, 1, 2] and result.sweeps["excluded"] == {}
    assert result.sweeps["order"] == "random" and result.sweeps["order_seed"] == 4
    assert len(result.sweeps["per_sweep"]["b_nv_t"]) == 3
    assert result.sweeps["spread"]["b_nv_t"] < 1e-6  # no drift: the sweeps agree within noise
    assert np.nanmedian(result.b_nv_t) == pytest.approx(FIELD_T, abs=1e-6)


def test_a_partial_sweep_is_left_out_and_named(tmp_path):
    steps_per_sweep = 2 * len(FREQS)
    run, plan = write_run(tmp_path, "interleaved", 3, stop_after=2 * steps_per_sweep + 10)
    result = analyse_cw_run(run, isotope=None, drift=False)
    assert result.sweeps["complete"] == [0, 1]
    assert result.sweeps["excluded"] == {"2": 10} and result.sweeps["not_run"] == 0
    np.testing.assert_allclose(result.spectra, in_frequency_order(run, plan, [0, 1]), rtol=1e-6)


def test_a_run_without_one_complete_sweep_is_refused(tmp_path):
    run, _ = write_run(tmp_path, "random", 2, stop_after=len(FREQS) + 3)
    with pytest.raises(ValueError, match=r"is incomplete \(34 of 124 steps stored, no complete sweep\)"):
        analyse_cw_run(run, isotope=None, drift=False)


def test_a_single_sweep_analyses_exactly_as_a_run_stored_before_repeats(tmp_path):
    old = load_run(tmp_path / "old", cw_synthetic.write_run(tmp_path / "old", shape=(12, 12)))
    legacy = analyse_cw_run(old, isotope=None)
    assert legacy.sweeps is None
    # The same frames stored the new way (sequential, one sweep, with the visit columns).
    images = old.images("signal")
    freqs = cw_synthetic.FREQS
    writer = RunWriter(tmp_path / "new", "cw_odmr", "test", SCALARS, ("config", "frequency_hz"))
    run_id = writer.open({"sequence": {"name": "cw_odmr", "frequencies_hz": freqs.tolist(),
                                       **plan_sweeps("sequential", 1, 2, len(freqs)).metadata()}},
                         {"signal": (12, 12)}, len(images))
    for t, frame in enumerate(images):
        config, i = divmod(t, len(freqs))
        writer.write(Step(t, {"config": config, "frequency_hz": freqs[i], "mean_signal": float(frame.mean()),
                              "sweep": 0, "frequency_index": i}, {"signal": frame}))
    writer.close("completed")
    new = analyse_cw_run(load_run(tmp_path / "new", run_id), isotope=None)
    assert new.sweeps is None
    np.testing.assert_array_equal(new.b_nv_t, legacy.b_nv_t)
    np.testing.assert_array_equal(new.spectra, legacy.spectra)


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """B_NV bias of each order under a linear drift of 300 kHz per pass (10.7 uT per pass)."""
    per_pass_hz = 300e3
    results = {}
    for order, repeats in (("sequential", 2), ("interleaved", 2), ("random", 4)):
        out = tmp_path_factory.mktemp(order)
        run, _ = write_run(out, order, repeats, drift_hz_per_step=per_pass_hz / len(FREQS), seed=11,
                           direct=True)
        result = analyse_cw_run(run, isotope=None, drift=False)
        results[order] = (float(np.nanmean(result.b_nv_t)) - FIELD_T, result)
    return per_pass_hz / GAMMA_E_HZ_PER_T, results


def test_a_drift_biases_a_sequential_run(drifting):
    per_pass_t, results = drifting
    bias, _ = results["sequential"]
    # I-on comes one pass after I-off in every sweep: a drift upwards reads as a negative field.
    assert bias < -0.5 * per_pass_t


def test_interleaved_and_random_repeats_average_the_drift_out(drifting):
    per_pass_t, results = drifting
    assert abs(results["interleaved"][0]) < 0.05 * per_pass_t
    assert abs(results["random"][0]) < 0.2 * per_pass_t
    # The per-sweep spread shows the drift the average cancelled.
    per_sweep = np.array(results["interleaved"][1].sweeps["per_sweep"]["center_off_hz"])
    assert abs(per_sweep[1] - per_sweep[0]) > 100e3
