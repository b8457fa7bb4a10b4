"""A drifting resonance during repeated CW-ODMR sweeps: the field bias of each visiting order.

The simulated microscope's zero-field splitting drifts linearly in simulated time (as D does with
the diamond's temperature, -74 kHz/K): every NV line moves by ``rate`` x t, seen by the camera
through the drivers, the list-stepped MW source and the lock-in demodulation like any other
resonance. Each run is the ``acquire odmr`` measurement (``run_cw_odmr``: stored, then fitted per
pixel with the averaging of complete sweeps), and its B_NV map is compared with the World's true
(blurred) coil field. The drift is given per pass (one configuration's sweep over all frequencies),
the time that separates I-off from I-on in a sequential sweep, so the expected sequential bias is
about -(drift per pass) / gamma_e.

Printed per order: mean B_NV error (bias) over the converged pixels, with its spread over seeds (the
camera noise and the random order's permutations change with the seed), and
the same without drift (the baseline: what the method gives when nothing drifts). A number only
supports "averages out" when its bias is small against the sequential one *and* within the
no-drift baseline's spread.

Run: ``python benchmarks/cw_order_drift.py [--quick]`` (about 4 minutes on two cores; --quick: 1
seed, 2 minutes).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np

import sim.world
from instrument.physics.constants import GAMMA_E_HZ_PER_T
from instrument.services.cw import CwOdmrRequest, build_cw_sweep, coil_currents, run_cw_odmr
from instrument.station import build_station

SHAPE = (16, 16)
POINTS = 31
SPAN_HZ = 12e6
FRAMES = 2
ORDERS = (("sequential", 4), ("interleaved", 4), ("random", 4))
DRIFT_PER_PASS_HZ = 300e3


def run_one(order: str, repeats: int, drift_per_pass_hz: float, seed: int) -> tuple[float, float, dict]:
    """(bias T, fraction converged, sweeps info) of one run in ``order``."""
    with build_station(None, simulated=True, image_shape=SHAPE, seed=seed) as station, \
            tempfile.TemporaryDirectory() as tmp:
        world = station.world
        # The simulated heliCam draws its noise from its own generator (seed 1 whatever the station's
        # seed), so each seed reseeds it here: otherwise every seed would see the same noise.
        station.sim_parts["camera"]._rng = np.random.default_rng(1000 + seed)
        centre = world.resonance_estimate_hz()
        freqs = centre + np.linspace(-SPAN_HZ / 2, SPAN_HZ / 2, POINTS)
        request = CwOdmrRequest(freqs, 0.0, "L1C1", None, FRAMES, "auto", repeats, order, seed)
        sweep = build_cw_sweep(station, request)
        pass_s = sweep.sweep_duration_s / 2  # estimate: the measured pass is a little longer
        rate = drift_per_pass_hz / pass_s
        start = world.clock.now()
        real = sim.world.resonance_hz

        def drifting(b_par, branch):
            return real(b_par, branch) + rate * (world.clock.now() - start)

        with mock.patch.object(sim.world, "resonance_hz", drifting):
            result = run_cw_odmr(station, request, Path(tmp), "benchmark cw_order_drift")
        assert result.outcome.status == "completed", result.outcome.reason
        fmap = result.field_map
        truth = world.true_b_nv_t(currents_a=coil_currents(station, "L1C1", None))
        ok = fmap.converged & np.isfinite(fmap.b_nv_t)
        elapsed = world.clock.now() - start
        info = dict(fmap.sweeps or {})
        info["pass_s_measured"] = elapsed / (2 * repeats)
        info["pass_s_estimated"] = pass_s
        return float(np.mean((fmap.b_nv_t - truth)[ok])), float(ok.mean()), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed instead of three")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    seeds = (1,) if args.quick else (1, 2, 3)
    per_pass_t = DRIFT_PER_PASS_HZ / GAMMA_E_HZ_PER_T
    print(f"sim {SHAPE[0]}x{SHAPE[1]} px, {POINTS} points over {SPAN_HZ / 1e6:g} MHz, {FRAMES} frames/point, "
          f"coil L1C1; D drifts {DRIFT_PER_PASS_HZ / 1e3:g} kHz per pass (estimate), i.e. "
          f"{per_pass_t * 1e6:.2f} uT per pass; seeds {seeds}")
    print(f"{'order':<12}{'sweeps':>7}  {'bias, drift (uT)':>22}  {'bias, no drift (uT)':>22}  "
          f"{'per-sweep B_NV sd (uT)':>24}")
    for order, repeats in ORDERS:
        drifted, still, spread = [], [], []
        for seed in seeds:
            bias, _, info = run_one(order, repeats, DRIFT_PER_PASS_HZ, seed)
            drifted.append(bias)
            spread.append(info.get("spread", {}).get("b_nv_t", float("nan")))
            still.append(run_one(order, repeats, 0.0, seed)[0])
        d, s = np.array(drifted) * 1e6, np.array(still) * 1e6
        sd = lambda a: a.std(ddof=1) if a.size > 1 else float("nan")  # noqa: E731
        print(f"{order:<12}{repeats:>7}  {d.mean():>+12.3f} +- {sd(d):<7.3f}  "
              f"{s.mean():>+12.3f} +- {sd(s):<7.3f}  {np.nanmean(spread) * 1e6:>24.2f}")
    print(f"(a pass took {info['pass_s_measured']:.3f} s of simulated time against "
          f"{info['pass_s_estimated']:.3f} s estimated: the drift per measured pass is the nominal one "
          "times their ratio)")


if __name__ == "__main__":
    main()
