"""Per-cell spin physics: the uniform ensemble's physics, with truth that varies across the field."""

import numpy as np
import pytest

from drivers.pulseblaster import PulseBlaster
from sequences.pulsed import Rabi, ShotTiming, T1Relaxation
from sim.pulsed_camera import truth_for
from sim.spin import SpinEnsemble, SpinModelError, SpinParameters
from sim.spin_maps import CellSpinEnsemble, SpinTruthMaps, cells_to_pixels, default_truth
from sim.spinapi import SimSpinAPI
from sim.world import World


@pytest.fixture
def rig():
    world = World(shape=(8, 8), seed=3)
    lib = SimSpinAPI(world)
    world.mw_frequency_hz = world.resonance_estimate_hz() - 0.5 * 3.03e6  # lower 15N line
    world.mw_power_dbm = 4.0
    world.mw_output = True
    return world, lib, PulseBlaster("pulser", library=lib), SpinParameters.from_sample_source(None)


def _uniform(p, grid=(2, 3)):
    ones = np.ones(grid)
    return SpinTruthMaps(ones, ones * p.t2_star_s, ones * p.t2_s, ones * p.t1_s, p.t2_stretch)


def _play(pb, lib, ensemble, measurement, x):
    pb.load(measurement.program(x))
    pb.start()
    try:
        return ensemble.play(lib.timeline, lib.wiring)
    finally:
        pb.stop()


@pytest.mark.parametrize(("cls", "x"), [(Rabi, 40e-9), (Rabi, 100e-9), (T1Relaxation, 1e-3)])
def test_uniform_truth_reproduces_the_uniform_ensemble(rig, cls, x):
    world, lib, pb, p = rig
    m = cls(np.array([x] * 5), world.mw_frequency_hz, 4.0, (8, 8), timing=ShotTiming(repetitions=50))
    uniform = _play(pb, lib, SpinEnsemble(world), m, x)
    cells = _play(pb, lib, CellSpinEnsemble(world, _uniform(p)), m, x)
    assert cells.shape == (2, 6)
    # far-detuned lines carry one node instead of 48: ~1e-6 relative
    np.testing.assert_allclose(cells, np.repeat(uniform[:, None], 6, axis=1), rtol=1e-5)


def test_each_cell_follows_its_own_truth(rig):
    world, lib, pb, p = rig
    ones = np.ones((1, 2))
    truth = SpinTruthMaps(np.array([[1.0, 2.0]]), ones * p.t2_star_s, ones * p.t2_s,
                          np.array([[p.t1_s, p.t1_s / 4]]), p.t2_stretch)
    ens = CellSpinEnsemble(world, truth)
    t1 = T1Relaxation(np.array([1e-3] * 5), world.mw_frequency_hz, 4.0, (8, 8),
                      timing=ShotTiming(repetitions=20))
    signal, reference = _play(pb, lib, ens, t1, 1e-3)
    assert signal[1] < signal[0]  # the short-T1 cell has relaxed further in the dark: darker
    rabi = Rabi(np.array([26e-9] * 5), world.mw_frequency_hz, 4.0, (8, 8), timing=ShotTiming(repetitions=20))
    sig = _play(pb, lib, ens, rabi, 26e-9)[0]
    # Rabi 4.7 MHz: 26 ns is a quarter turn at scale 1, a half turn (darkest) at scale 2
    assert sig[1] < sig[0]


def test_default_truth_varies_as_described():
    p = SpinParameters()
    t = default_truth(p, (20, 20), block=3)
    assert t.image_shape == (60, 60)
    assert t.rabi_scale[0].mean() > 1.3 > 0.8 > t.rabi_scale[-1].mean()  # falls off from the antenna (top)
    assert t.rabi_scale[10, 10] == pytest.approx(1.0, abs=0.05)
    assert np.ptp(t.rabi_scale[0]) > 0.05  # the tilted wire: the map varies along the rows too
    assert t.t1_s.min() < 0.5 * p.t1_s and t.t1_s.max() <= p.t1_s
    assert t.t2_s[:, -1].mean() > t.t2_s[:, 0].mean()
    d = t.as_dict(p, 10.0)
    np.testing.assert_allclose(d["rabi_hz"], p.rabi_hz(10.0) * t.rabi_scale)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"t1_s": -1.0}, "t1_s must be finite and positive"),
     ({"t2_s": np.ones((3, 3))}, r"t2_s has shape \(3, 3\), expected the grid \(2, 2\)"),
     ({"block": 0}, "block must be >= 1")],
)
def test_bad_truth_is_refused_naming_the_map(change, message):
    ones = np.ones((2, 2))
    kw = {"rabi_scale": ones, "t2_star_s": ones, "t2_s": ones, "t1_s": ones, "t2_stretch": 3.0, **change}
    if np.isscalar(kw["t1_s"]):
        kw["t1_s"] = ones * kw["t1_s"]
    with pytest.raises(SpinModelError, match=message):
        SpinTruthMaps(**kw)


def test_truth_block_must_divide_the_image():
    with pytest.raises(SpinModelError, match="must divide the simulated image 50 x 50"):
        truth_for(World(shape=(50, 50)), SpinParameters(), block=7)


def test_cells_fill_their_blocks():
    t = default_truth(SpinParameters(), (2, 3), block=2)
    img = cells_to_pixels(np.arange(6.0), t)
    assert img.shape == (4, 6)
    assert img[0, 0] == img[1, 1] == 0 and img[3, 5] == 5 and img[2, 0] == 3
