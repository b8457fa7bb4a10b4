"""Spin physics of the simulated NV ensemble under PulseBlaster timelines."""

import numpy as np
import pytest

from drivers.pulseblaster import PulseBlaster
from sim.spin import SimPhotonCounter, SpinModelError, SpinParameters
from sim.spinapi import SimSpinAPI
from sim.world import World

NS = 1e-9
ON = 0x7 << 21



@pytest.fixture
def rig():
    world = World(shape=(8, 8), seed=3)
    lib = SimSpinAPI(world)
    counter = SimPhotonCounter("counter", world, lib, shape=(4, 4), photon_rate_hz=1e10)
    world.mw_frequency_hz = world.resonance_estimate_hz() - 0.5 * 3.03e6  # lower 15N line
    world.mw_power_dbm = 10.0
    world.mw_output = True
    return world, lib, counter


def shot(lib, mw_ns, dark_ns=1000, reps=50):
    """Program: init laser, then reps x [dark | MW pulses | laser readout with 2 gates]."""
    lib.pb_start_programming(0)
    lib.pb_inst_pbonly(ON | 0b0001, 0, 0, 3000.0)
    first = True
    words = [(ON | 0, dark_ns)]
    for on, length in mw_ns:
        words.append((ON | (0b10 if on else 0), length))
    words += [(ON | 0, 100), (ON | 0b1001, 300), (ON | 0b0001, 2100), (ON | 0b1001, 300), (ON | 0b0001, 300)]
    start = None
    for i, (flags, length) in enumerate(words):
        if first:
            start = lib.pb_inst_pbonly(flags, 2, reps, float(length))
            first = False
        elif i == len(words) - 1:
            lib.pb_inst_pbonly(flags, 3, start, float(length))
        else:
            lib.pb_inst_pbonly(flags, 0, 0, float(length))
    lib.pb_inst_pbonly(0, 1, 0, 10.0)
    lib.pb_stop_programming()


def measure(lib, counter, mw_ns, **kw):
    """(signal/reference, its shot-noise error) of one program run."""
    if not lib._initialised:
        lib.pb_init()
    shot(lib, mw_ns, **kw)
    assert lib.pb_start() == 0
    counts = counter.count_gates()
    assert counts.shape == (2, 4, 4)
    sig, ref = counts[0].sum(), counts[1].sum()
    return sig / ref, sig / ref * np.sqrt(1 / sig + 1 / ref)


def ratio(lib, counter, mw_ns, **kw):
    return measure(lib, counter, mw_ns, **kw)[0]


def test_pi_pulse_darkens_and_two_pi_restores(rig):
    world, lib, counter = rig
    rabi = counter.spins.params.rabi_hz(10.0)
    pi_ns = round(0.5 / rabi / 2e-9) * 2
    base = ratio(lib, counter, [])
    dark = ratio(lib, counter, [(True, pi_ns)])
    back = ratio(lib, counter, [(True, 2 * pi_ns)])
    assert dark < base - 0.02
    assert back > dark + 0.015


def test_mw_output_off_means_no_drive(rig):
    world, lib, counter = rig
    base = ratio(lib, counter, [])
    world.mw_output = False
    assert ratio(lib, counter, [(True, 52)]) == pytest.approx(base, abs=3e-3)


def rabi_curve(lib, counter, taus_ns):
    return np.array([ratio(lib, counter, [(True, t)]) for t in taus_ns])


def test_rabi_frequency_scales_with_amplitude(rig):
    """6 dB more power doubles the Rabi frequency (amplitude, not power)."""
    from instrument.analysis.pulsed import fit_rabi

    world, lib, counter = rig
    taus = np.arange(10, 600, 4)
    fits = []
    for p in (0.0, 6.0206):
        world.mw_power_dbm = p
        fits.append(fit_rabi(taus * NS, rabi_curve(lib, counter, taus)))
    r0, r6 = (f.params["rabi_hz"] for f in fits)
    assert r6 / r0 == pytest.approx(2.0, rel=0.02)
    assert r0 == pytest.approx(counter.spins.params.rabi_hz(0.0), rel=0.02)


def test_t1_decay_follows_the_parameter():
    from instrument.analysis.pulsed import fit_t1

    fitted = []
    for t1 in (0.5e-3, 2e-3):
        world = World(shape=(8, 8), seed=1)
        lib = SimSpinAPI(world)
        counter = SimPhotonCounter("c", world, lib, shape=(4, 4), photon_rate_hz=1e10,
                                   params=SpinParameters(t1_s=t1))
        waits = np.linspace(1e-6, 4 * t1, 25)
        y, err = np.array([measure(lib, counter, [], dark_ns=float(round(w * 1e9)), reps=5)
                           for w in waits]).T
        fitted.append(fit_t1(waits, y, err))
    for fit, t1 in zip(fitted, (0.5e-3, 2e-3), strict=True):
        assert abs(fit.params["t1_s"] - t1) < 3 * fit.errors["t1_s"] + 0.01 * t1
        assert fit.errors["t1_s"] < 0.1 * t1


def test_echo_refocuses_what_ramsey_loses(rig):
    world, lib, counter = rig
    p = counter.spins.params
    pi = round(0.5 / p.rabi_hz(10.0) / 2e-9) * 2
    half = pi // 2
    tau = 1000  # ns: beyond T2* = 600 ns, far below T2 = 8 us
    base = ratio(lib, counter, [])
    ramsey = ratio(lib, counter, [(True, half), (False, 2 * tau), (True, half)])
    echo = ratio(lib, counter, [(True, half), (False, tau), (True, pi), (False, tau), (True, half)])
    flipped = ratio(lib, counter, [(True, pi)])
    mid = (base + flipped) / 2
    assert abs(ramsey - mid) < 0.25 * (base - flipped)  # coherence gone: half way
    assert echo > mid + 0.2 * (base - flipped)  # refocused back towards ms=0


def test_ramsey_fringe_follows_detuning(rig):
    """Detuning the MW by 1 MHz moves the Ramsey fringes by 1 MHz."""
    from instrument.analysis.pulsed import fit_ramsey

    world, lib, counter = rig
    f_line = world.mw_frequency_hz
    pi = round(0.5 / counter.spins.params.rabi_hz(10.0) / 2e-9) * 2
    half = pi // 2
    taus = np.arange(10, 1600, 10)
    detected = []
    for detuning in (5e6, 6e6):
        world.mw_frequency_hz = f_line + detuning
        y = [ratio(lib, counter, [(True, half), (False, t), (True, half)]) for t in taus]
        fit = fit_ramsey(taus * NS, y)
        detected.append(fit.params["detuning_hz"])  # from the 15N doublet's centre
    assert detected[1] - detected[0] == pytest.approx(1e6, abs=0.1e6)
    assert detected[0] == pytest.approx(5e6 - 3.03e6 / 2, abs=0.1e6)


def test_counter_refuses_unstarted_and_endless_programs(rig):
    world, lib, counter = rig
    with pytest.raises(SpinModelError, match="not been started"):
        counter.count_gates()
    pb = PulseBlaster("pb", library=lib)
    from sequences.pulses import lockin_modulation_program

    pb.load(lockin_modulation_program())
    pb.start()
    with pytest.raises(SpinModelError, match="loops forever"):
        counter.count_gates()


def test_spin_parameters_from_files(tmp_path):
    bundled = SpinParameters.from_sample_source(None)
    assert bundled.t2_star_s == pytest.approx(0.6e-6)
    path = tmp_path / "s.yaml"
    path.write_text("spin: {t1_s: 1.0e-3}\n")
    assert SpinParameters.from_sample_source(path).t1_s == 1e-3
    assert SpinParameters.from_sample_source(path).t2_s == SpinParameters().t2_s
    path.write_text("spin: {t3_s: 1.0}\n")
    with pytest.raises(SpinModelError, match="unknown spin parameter"):
        SpinParameters.from_sample_source(path)
    path.write_text("spin: {t1_s: -1}\n")
    with pytest.raises(SpinModelError, match="t1_s must be a positive"):
        SpinParameters.from_sample_source(path)
    path.write_text("spin: {t1_s: abc}\n")
    with pytest.raises(SpinModelError, match="bad spin parameter"):
        SpinParameters.from_sample_source(path)
    path.write_text("spin: [1\n")
    with pytest.raises(SpinModelError, match="not valid YAML"):
        SpinParameters.from_sample_source(path)
    with pytest.raises(SpinModelError, match="cannot read"):
        SpinParameters.from_sample_source(tmp_path / "missing.yaml")
    with pytest.raises(SpinModelError, match="readout_contrast"):
        SpinParameters(readout_contrast=1.5)


def test_counter_rejects_bad_rate(rig):
    world, lib, _ = rig
    with pytest.raises(SpinModelError, match="photon rate"):
        SimPhotonCounter("c", world, lib, photon_rate_hz=0.0)
