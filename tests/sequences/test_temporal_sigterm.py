"""SIGTERM in the middle of a lock-in capture (its own module: the station names must be free)."""

import os
import signal
import threading

import h5py
import numpy as np
import pytest

from instrument.station import build_station
from sequences.engine import RunAborted
from sequences.temporal import CoilWaveforms, run_temporal_imaging


def test_sigterm_during_the_capture_leaves_everything_safe_and_the_file_readable(tmp_path):
    with build_station(simulated=True, image_shape=(16, 16), seed=2) as st:
        world = st.world
        wf = CoilWaveforms(world.coil_currents_a.size, ((0.3,),) + ((),) * (world.coil_currents_a.size - 1),
                           peak_a=400e-6)
        kill = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
        kill.start()
        try:
            with pytest.raises(RunAborted, match="SIGTERM"):
                # far longer than the simulation takes to reach the signal, however fast frames are made
                run_temporal_imaging(st.instruments, tmp_path, seconds=600.0,
                                     center_hz=world.resonance_estimate_hz(), waveforms=wf, limits=st.limits,
                                     on_overflow="drop", frames_per_point=4)
        finally:
            kill.cancel()
        assert np.all(world.coil_currents_a == 0) and not world.mw_output
        assert world.mw_gate_modulation_hz == 0 and st["camera"].get_setting("AcqStop") == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with h5py.File(tmp_path / "frames.h5") as f:  # closed cleanly up to the last frame written
        assert f["frames"].shape[0] < 600 * 208
