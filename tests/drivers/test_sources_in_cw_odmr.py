"""The walking skeleton's CW ODMR runs unchanged with every microwave source, in sim.

The station is built from the bundled station file; only the ``mw`` role is swapped for each
source by hand. A source swapped in by hand has no simulated trigger cable, so these sweeps step
in software; list mode through a station-file change is tested in
``tests/sequences/test_cw_list_stepping.py``.
"""

import numpy as np
import pytest

from drivers.rohde_schwarz import RohdeSchwarzSource
from drivers.sg384 import SG384Source
from drivers.synthhd import SynthHDSource
from instrument.station import build_station
from sequences.cw_odmr import CwOdmrSweep
from sequences.engine import Engine
from sim.rohde_schwarz import SimRohdeSchwarz
from sim.sg384 import SimSG384
from sim.synthhd import SimSynthHD


class ListSink:
    def __init__(self):
        self.steps = []

    def open(self, metadata, image_shapes, scalars=None, setpoints=None):
        pass

    def write(self, step):
        self.steps.append(step)

    def close(self, status, reason=""):
        self.status = status


SOURCES = {
    "sg384": lambda world, limits: (sim := SimSG384(world), SG384Source("mw", sim.start(), limits)),
    "smb100a": lambda world, limits: (sim := SimRohdeSchwarz(world, "SMB100A"),
                                      RohdeSchwarzSource("mw", sim.start(), limits)),
    "sgs100a": lambda world, limits: (sim := SimRohdeSchwarz(world, "SGS100A"),
                                      RohdeSchwarzSource("mw", sim.start(), limits)),
    "synthhd": lambda world, limits: (sim := SimSynthHD(world), SynthHDSource("mw", sim.start(), limits)),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_cw_odmr_finds_the_resonance_with_each_source(kind):
    station = build_station(simulated=True, image_shape=(12, 12), seed=1)
    sim = None
    try:
        station.instruments.pop("mw").close()
        sim, source = SOURCES[kind](station.world, station.limits)
        station.instruments["mw"] = source
        center = station.world.resonance_estimate_hz()
        freqs = center + np.linspace(-15e6, 15e6, 31)
        sweep = CwOdmrSweep(freqs, -10.0, np.zeros(station["coils"].n_channels), image_shape=(12, 12),
                            frames_per_point=2, stepping="software")
        sink = ListSink()
        outcome = Engine(station.instruments, station.limits, [sink]).run(sweep)
        assert outcome.status == "completed"
        off = np.abs([s.values["mean_signal"] for s in sink.steps if s.values["config"] == 0])
        assert off.max() > 5 * np.median(off)  # a resonance, not noise
        peak_hz = freqs[int(np.argmax(off))]
        assert abs(peak_hz - center) < 4e6  # the 15N doublet sits at +-1.5 MHz around the centre
        assert station.world.mw_output is False  # left safe
    finally:
        station.close()
        if sim is not None:
            sim.stop()
