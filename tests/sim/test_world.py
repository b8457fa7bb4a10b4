import numpy as np
import pytest

from instrument.physics.constants import GAMMA_E_HZ_PER_T
from sim.world import Sample, SampleFileError, World


@pytest.fixture(scope="module")
def world():
    return World(shape=(48, 48))


def test_bundled_sample_has_twelve_coils_four_dead():
    s = Sample.load()
    assert len(s.coils) == 12
    assert sum(c.dead for c in s.coils) == 4
    standoffs = sorted({-c.center_m[2] for c in s.coils})
    assert standoffs == pytest.approx([7e-6, 11e-6, 15e-6])


def test_dead_coil_makes_no_field(world):
    dead = [i for i, c in enumerate(world.sample.coils) if c.dead][0]
    currents = np.zeros(12)
    currents[dead] = 1e-3
    assert np.all(world.coil_field_t(currents) == 0)


def test_field_is_linear_in_current(world):
    alive = [i for i, c in enumerate(world.sample.coils) if not c.dead][0]
    c1 = np.zeros(12)
    c1[alive] = 1e-4
    assert world.true_b_nv_t(currents_a=2 * c1) == pytest.approx(2 * world.true_b_nv_t(currents_a=c1))


def test_mw_on_resonance_darkens_and_off_resonance_does_not(world):
    world.mw_output, world.mw_power_dbm = True, 0.0
    f0 = world.resonance_estimate_hz() - 0.5 * 3.03e6  # one 15N line
    dark = world.pl_rate_hz(True, f0).mean()
    bright = world.pl_rate_hz(False).mean()
    far = world.pl_rate_hz(True, f0 + 40e6).mean()
    assert dark < bright * (1 - 0.005)
    assert far == pytest.approx(bright, rel=1e-3)
    world.mw_output = False
    assert world.pl_rate_hz(True, f0).mean() == pytest.approx(bright)


def test_bias_resonance_follows_gamma(world):
    s = world.sample
    assert world.resonance_estimate_hz() == pytest.approx(2.870e9 - GAMMA_E_HZ_PER_T * s.bias_magnitude_t)


def test_bad_sample_file_names_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfield_of_view: {shape: [2, 2]}\n")
    with pytest.raises(SampleFileError, match="bad.yaml"):
        Sample.load(bad)
    with pytest.raises(SampleFileError, match="cannot read"):
        Sample.load(tmp_path / "missing.yaml")
