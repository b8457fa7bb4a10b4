"""``acquire --sim reconstruct``: the seed-000 dictionary-reconstruction experiments (Table 1)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from instrument.commands.common import EXIT_OK, UsageError, open_station


def add_parser(sub: Any) -> None:
    r = sub.add_parser("reconstruct", help="seed-000 LASSO / pseudo-inverse reconstruction experiments",
                       description="Identify the active micro-coils from field maps with the measured "
                       "single-coil maps as a dictionary (seed 000): the static 2-, 4- and 7-coil "
                       "combinations and the high- and low-sparsity 208 frame/s movies, scored with "
                       "SSIM, RRMSE, Pearson r and active-set F1 next to the paper's Table 1. "
                       "Needs --sim: the maps come from the simulated sample with noise, drift and "
                       "hot pixels.")
    r.add_argument("--frames", type=int, default=300,
                   help="frames per temporal movie, 208 per second (default: 300)")
    r.add_argument("--basis-averages", type=int, default=4,
                   help="maps averaged per dictionary entry (default: 4)")
    r.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instrument.reconstruction.seed000 import measure_basis, run_all
    from instrument.station import simulated_field_maps

    if not args.sim:
        raise UsageError("'acquire reconstruct' runs the seed-000 experiments on the simulated sample; "
                         "add --sim")
    if args.frames < 10 or args.basis_averages < 1:
        raise UsageError("--frames must be at least 10 and --basis-averages at least 1")
    t0 = time.monotonic()
    with open_station(args) as station:
        maps = simulated_field_maps(station, seed=args.seed or 0)
        basis = measure_basis(maps.measure, maps.n_sources, averages=args.basis_averages)
        try:
            report = run_all(basis, maps.measure, maps.measure_movie, n_frames=args.frames)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    print(f"seed-000 reconstruction, {maps.n_sources} live coils, image {basis.shape[1]}x{basis.shape[2]} "
          "(simulated maps)")
    print(report)
    print(f"time {time.monotonic() - t0:.1f} s")
    return EXIT_OK
