"""On any exit the simulated microscope is left safe: RF off, coils at zero, pulser and camera stopped."""

import numpy as np
import pytest

from instrument.station import build_station
from sequences.cw_odmr import CwOdmrSweep
from sequences.engine import Engine


class ExplodingSink:
    def __init__(self, at_step, exc):
        self.at_step, self.exc, self.closed = at_step, exc, None

    def open(self, metadata, image_shapes, n_steps):
        pass

    def write(self, step):
        if step.index == self.at_step:
            raise self.exc

    def close(self, status, reason=""):
        self.closed = (status, reason)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_station_is_safe_after_failure_or_ctrl_c(exc):
    with build_station(simulated=True, image_shape=(12, 12)) as station:
        world = station.world
        currents = np.zeros(station["coils"].n_channels)
        currents[0] = 5e-4
        freqs = world.resonance_estimate_hz() + np.linspace(-5e6, 5e6, 11)
        sweep = CwOdmrSweep(freqs, 0.0, currents, station["camera"].shape, frames_per_point=1)
        states = []
        sink = ExplodingSink(14, exc)

        class Spy:
            def open(self, *a):
                pass

            def write(self, step):
                states.append((world.mw_output, world.mw_gate_modulation_hz, world.coil_currents_a.max()))

            def close(self, *a):
                pass

        engine = Engine(station.instruments, station.limits, [Spy(), sink])
        if isinstance(exc, KeyboardInterrupt):
            with pytest.raises(KeyboardInterrupt):
                engine.run(sweep)
        else:
            assert engine.run(sweep).status == "failed"
        # While running: RF on, modulation running, coil on in the I-on half.
        assert states[0][:2] == (True, 6250.0)
        assert states[-1][2] == pytest.approx(5e-4)
        # After: everything safe.
        assert world.mw_output is False
        assert world.mw_gate_modulation_hz == 0.0
        assert np.all(world.coil_currents_a == 0)
        assert sink.closed[0] in {"failed", "aborted"}
