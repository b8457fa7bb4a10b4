"""Widefield pulsed sequences: frame-pair programs on the camera line, refusals before anything moves."""


import numpy as np
import pytest

from instrument.protocols import CameraConstraints, CameraFrames, SafetyLimits
from sequences.dynamical_decoupling import MwPhaseUnavailable
from sequences.pulsed import PiPulse
from sequences.widefield_pulsed import (
    CAMERA_LINE,
    CameraCpmg,
    CameraEcho,
    CameraRabi,
    CameraT1,
    CameraTimingError,
    CameraXy8,
    FrameTiming,
)

LIMITS = SafetyLimits()
PI = PiPulse(54e-9, 2.78e9, 10.0)
CAMERA = CameraConstraints(exposure_min_s=1e-5, exposure_max_s=1.0, gain_min_db=0, gain_max_db=24,
                           frame_rate_min_hz=1, frame_rate_max_hz=100, width_max=64, height_max=64,
                           trigger_inputs=("Line1", "Line3"))


def _grid(values, q=1):
    return np.round(np.asarray(values) * 500e6 / q) * q / 500e6


def _rabi(**kw):
    return CameraRabi(_grid(np.linspace(12e-9, 212e-9, 11)), 2.78e9, 10.0, (20, 20),
                      frames=FrameTiming(repetitions=kw.pop("reps", 1000), **kw))


def _camera_pulses(seq):
    return [(b, p) for b in seq.blocks for p in b.pulses if p.channel == CAMERA_LINE]


def test_a_rabi_point_exposes_a_signal_and_a_reference_frame_over_all_shots():
    m = _rabi(pairs=2)
    m.check(LIMITS)
    seq = m.sequence(52e-9)
    cams = _camera_pulses(seq)
    assert len(cams) == 4  # two pairs
    for block, pulse in cams:
        assert block.repetitions == 1000 and pulse.start_s == 0 and pulse.duration_s == block.duration_s
    (sig_block, _), (ref_block, _) = cams[:2]
    assert sig_block.duration_s == ref_block.duration_s  # same timing, so the same laser light
    assert any(p.channel == "mw_switch" for p in sig_block.pulses)
    assert not any(p.channel == "mw_switch" for p in ref_block.pulses)  # reference: MW off
    assert m.exposure_s(52e-9) == pytest.approx(1000 * sig_block.duration_s)
    assert seq.blocks[0].name == "camera readout"  # a frame period before the first exposure too
    assert m.requires["camera"].__name__ == "IntensityCamera"


def test_echo_and_cpmg_reference_frames_end_with_a_three_pi_half_pulse_of_the_same_phase():
    for m in (CameraEcho(_grid(np.linspace(2e-6, 10e-6, 6), 4), 2.78e9, 10.0, (20, 20), pi_pulse=PI),
              CameraCpmg(_grid(np.linspace(2e-6, 10e-6, 6), 16), 2.78e9, 10.0, (20, 20), pi_pulse=PI,
                         n_pulses=4)):
        m.check(LIMITS)
        x = float(m.sweep[2])
        (sig, _), (ref, _) = _camera_pulses(m.sequence(x))[:2]
        sig_mw = [p for p in sig.pulses if p.channel == "mw_switch"]
        ref_mw = [p for p in ref.pulses if p.channel == "mw_switch"]
        assert sig.duration_s == ref.duration_s
        assert ref_mw[-1].duration_s == pytest.approx(3 * sig_mw[-1].duration_s)
        assert [p.start_s for p in ref_mw] == [p.start_s for p in sig_mw]


def test_cpmg_places_n_pi_pulses_at_the_filter_positions():
    m = CameraCpmg(_grid(np.linspace(2e-6, 10e-6, 6), 16), 2.78e9, 10.0, (20, 20), pi_pulse=PI, n_pulses=4)
    tau = float(m.sweep[1])
    _, pulses = m.mw_part(tau)
    pis = pulses[1:-1]
    assert len(pis) == 4
    half = PI.pi_half_s(500e6)
    # centres at tau (2k - 1) / 2N of free time after the first pi/2 (plus the pulses before)
    for k, p in enumerate(pis, start=1):
        free_before = tau * (2 * k - 1) / 8
        expected = half + free_before + (k - 1) * PI.pi_s + PI.pi_s / 2
        assert p.start_s + p.duration_s / 2 == pytest.approx(expected)
    assert m.parameters()["variant"] == "CP (one MW phase)"


@pytest.mark.parametrize("make", [
    lambda: CameraXy8(_grid(np.linspace(2e-6, 10e-6, 6), 128), 2.78e9, 10.0, (20, 20), pi_pulse=PI,
                      n_pulses=1),
    lambda: CameraCpmg(_grid(np.linspace(2e-6, 10e-6, 6), 16), 2.78e9, 10.0, (20, 20), pi_pulse=PI,
                       n_pulses=4, phase_cycled=True),
])
def test_sequences_needing_mw_phase_are_refused_naming_the_hardware(make):
    m = make()
    m.sequence(float(m.sweep[0]))  # the plan itself is inspectable
    with pytest.raises(MwPhaseUnavailable, match=r"IQ-modulated MW source .* or an AWG"):
        m.check(LIMITS)


def test_xy8_cycles_carry_the_xy_phases():
    m = CameraXy8(_grid(np.linspace(2e-6, 10e-6, 6), 128), 2.78e9, 10.0, (20, 20), pi_pulse=PI, n_pulses=2)
    assert m.n_pulses == 16 and m.n_cycles == 2
    _, pulses = m.mw_part(float(m.sweep[0]))
    names = [p.name for p in pulses[1:-1]]
    assert names[:8] == [f"pi {k} ({ph} deg)" for k, ph in zip(range(1, 9), (0, 90, 0, 90, 90, 0, 90, 0),
                                                                  strict=True)]


def test_t1_reference_waits_only_the_shortest_dark_time():
    m = CameraT1(_grid(np.geomspace(10e-6, 1e-3, 6)), 2.78e9, 10.0, (20, 20),
                 frames=FrameTiming(repetitions=100))
    m.check(LIMITS)
    (sig, _), (ref, _) = _camera_pulses(m.sequence(float(m.sweep[-1])))[:2]
    assert sig.duration_s - ref.duration_s == pytest.approx(m.sweep[-1] - m.sweep[0])


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda: (_rabi(reps=500_000), CAMERA, (20, 20), None), r"outside the camera's .* shots per frame"),
        (lambda: (_rabi(readout_gap_s=5e-3), CAMERA, (20, 20), None),
         r"shorter than the camera's 10 ms frame"),
        (lambda: (_rabi(trigger_input="Line2"), CAMERA, (20, 20), None), r"no trigger input 'Line2'"),
        (lambda: (_rabi(), CAMERA, (10, 20), None), r"gives \(10, 20\) images .* planned for \(20, 20\)"),
        (lambda: (_rabi(readout_gap_s=12e-3), CAMERA, (20, 20), 0.02), r"20 ms frame period"),
    ],
)
def test_the_camera_check_refuses_what_the_camera_cannot_take(setup, message):
    m, constraints, shape, period = setup()
    with pytest.raises(CameraTimingError, match=message):
        m.check_camera(constraints, shape, period)


@pytest.mark.parametrize(("frames", "message"), [
    (FrameTiming(repetitions=0), "shots per frame must be 1"),
    (FrameTiming(pairs=0), "frame pairs per point must be 1"),
    (FrameTiming(readout_gap_s=float("nan")), "readout gap must be > 0"),
])
def test_bad_frame_timing_is_refused(frames, message):
    m = CameraRabi(_grid(np.linspace(12e-9, 212e-9, 11)), 2.78e9, 10.0, (20, 20), frames=frames)
    with pytest.raises(ValueError, match=message):
        m.check(LIMITS)


class _Fake:
    def __init__(self, name):
        self.name = name
        self.calls = []

    def __getattr__(self, attr):
        return lambda *a, **k: self.calls.append(attr)


class _DroppingCamera(_Fake):
    shape = (20, 20)
    constraints = CAMERA
    resulting_frame_rate_hz = 100.0

    def read_frames(self, n, timeout_s=5.0):
        self.calls.append("read_frames")
        return CameraFrames(np.full((n, 20, 20), 100, np.uint16), np.arange(n), np.zeros(n), dropped=1)


def test_a_dropped_frame_stops_the_run_and_the_camera_is_disarmed():
    m = _rabi()
    camera, pulser = _DroppingCamera("camera"), _Fake("pulser")
    instruments = {"mw": _Fake("mw"), "pulser": pulser, "camera": camera}
    with pytest.raises(RuntimeError, match="1 frame\\(s\\) dropped"):
        next(m.run(instruments))
    assert camera.calls[-1] == "disarm" and "start" in pulser.calls
