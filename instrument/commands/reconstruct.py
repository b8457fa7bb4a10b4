"""``acquire reconstruct``: seed-000 dictionary experiments, deep image prior, neural fields.

* ``acquire --sim reconstruct [seed000]``: LASSO / pseudo-inverse coil identification (Table 1).
* ``acquire reconstruct dip B_NV MASK``: in-plane magnetisation from a B_NV map (seed 002).
* ``acquire reconstruct neural-field SPECTRUM``: spin density and Larmor field from NV relaxometry
  spectra (seed 001).

Inputs of ``dip`` and ``neural-field`` are .npy, .npz or HDF5 files, so a stored run's
``analysis.h5`` (dataset ``b_nv_t``) can be given directly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from instrument.commands.common import EXIT_OK, UsageError, default_out_dir, open_station


def add_parser(sub: Any) -> None:
    r = sub.add_parser("reconstruct", help="reconstruction: seed000 (default), dip, neural-field",
                       description=__doc__.split("\n\n")[1] if __doc__ else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.set_defaults(handler=run_seed000, frames=300, basis_averages=1)
    kinds = r.add_subparsers(dest="kind", metavar="KIND")

    s = kinds.add_parser("seed000", help="seed-000 LASSO / pseudo-inverse experiments (needs --sim)",
                         description="Identify the active micro-coils from field maps with the "
                         "single-coil maps as a dictionary: the static 2-, 4- and 7-coil combinations "
                         "and the high- and low-sparsity 208 frame/s movies, scored with SSIM, RRMSE, "
                         "Pearson r and active-set F1 next to the paper's Table 1. The maps are "
                         "measured through the simulated lock-in ODMR chain (per-pixel doublet fits, "
                         "a perturbed sample, the dictionary on another day): not the dictionary's "
                         "own model.")
    s.add_argument("--frames", type=int, default=300,
                   help="frames per temporal movie, 208 per second (default: 300)")
    s.add_argument("--basis-averages", type=int, default=1,
                   help="maps averaged per dictionary entry, each already 256 sweeps (default: 1)")
    s.set_defaults(handler=run_seed000)

    d = kinds.add_parser("dip", help="deep image prior: in-plane magnetisation from B_NV (seed 002)")
    d.add_argument("b_nv", type=Path, help="B_NV map file in T (.npy/.npz/.h5)")
    d.add_argument("mask", type=Path, help="mask file, shape (2 or 3, rows, cols)")
    d.add_argument("--b-nv-dataset", help="dataset/key inside the B_NV file (e.g. b_nv_t)")
    d.add_argument("--mask-dataset", help="dataset/key inside the mask file")
    d.add_argument("--pixel-m", type=float, required=True, help="pixel size in m")
    d.add_argument("--standoff-m", type=float, required=True, help="NV-to-film distance in m")
    d.add_argument("--thickness-m", type=float, required=True, help="film thickness in m")
    d.add_argument("--ms-a-per-m", type=float, default=8e5,
                   help="saturation magnetisation in A/m (default: 8e5, permalloy)")
    d.add_argument("--nv-angles-deg", type=float, nargs=2, default=None, metavar=("POLAR", "AZIMUTH"),
                   help="direction of the NV axis the map is projected on (default: 54.7 0, a {100} "
                   "diamond's axis in the x-z plane)")
    _training_options(d, epochs=2000, patience=300)
    d.set_defaults(handler=run_dip)

    n = kinds.add_parser("neural-field", help="neural field: spin density and Larmor field from "
                         "relaxometry spectra (seed 001)")
    n.add_argument("spectrum", type=Path, help="spectra file, shape (n_freq, rows, cols)")
    n.add_argument("--dataset", help="dataset/key inside the file")
    n.add_argument("--pixel-m", type=float, default=20e-9, help="pixel size in m (default: 20 nm)")
    n.add_argument("--standoff-m", type=float, default=20e-9, help="standoff in m (default: 20 nm)")
    n.add_argument("--freq-range-hz", type=float, nargs=2, default=(1.0e9, 3.0e9), metavar=("LO", "HI"),
                   help="first and last spectral frequency, evenly spaced (default: 1-3 GHz)")
    n.add_argument("--linewidth-hz", type=float, default=0.5e9,
                   help="Lorentzian half-width (default: 0.5 GHz)")
    n.add_argument("--larmor-band-hz", type=float, nargs=2, default=(1.5e9, 2.5e9), metavar=("LO", "HI"),
                   help="allowed Larmor frequencies (default: 1.5-2.5 GHz)")
    n.add_argument("--operator", choices=("F1", "F2"), default="F2",
                   help="forward operator: scalar F1 or tensor power-summed F2 (default: F2)")
    _training_options(n, epochs=10000, patience=None)
    n.set_defaults(handler=run_neural_field)


def _training_options(p: argparse.ArgumentParser, epochs: int, patience: int | None) -> None:
    p.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default: {epochs})")
    p.add_argument("--patience", type=int, default=patience,
                   help=f"stop early after this many epochs without improvement (default: {patience})")
    p.add_argument("--seed", dest="train_seed", type=int, default=0,
                   help="random seed of the network (default: 0)")
    p.add_argument("--results", type=Path, default=None,
                   help="folder for the result arrays and figure (default: OUT/reconstructions/KIND)")


def run_seed000(args: argparse.Namespace) -> int:
    from instrument.reconstruction.seed000 import measure_basis, run_all
    from instrument.station import simulated_measurement_chain

    if not args.sim:
        raise UsageError("'acquire reconstruct seed000' runs on the simulated sample; add --sim")
    if args.frames < 10 or args.basis_averages < 1:
        raise UsageError("--frames must be at least 10 and --basis-averages at least 1")
    t0 = time.monotonic()
    with open_station(args) as station:
        chain = simulated_measurement_chain(station, seed=args.seed or 0)
        basis = measure_basis(chain.measure_dictionary, chain.n_sources, averages=args.basis_averages)
        try:
            report = run_all(basis, chain.measure, chain.measure_movie, n_frames=args.frames)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    rows, cols = basis.shape[1:]
    print(f"seed-000 reconstruction, {chain.n_sources} live coils, {rows}x{cols} pixels over 150 um: maps "
          "measured through the simulated lock-in ODMR chain (per-pixel fits, perturbed sample, "
          "dictionary on another day); the scored study is benchmarks/seed000_table.py")
    print(report)
    print(f"time {time.monotonic() - t0:.1f} s")
    return EXIT_OK


class _EpochBar:
    """Progress bar fed by the reconstructions' ``callback(epoch, loss)``."""

    def __init__(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="epoch", desc=desc, disable=None)

    def __call__(self, epoch: int, loss: float) -> None:
        self.bar.update(max(0, epoch - self.bar.n))
        self.bar.set_postfix_str(f"loss {loss:.3g}", refresh=False)


def _message(exc: Exception) -> str:
    # KeyError's str() wraps the message in quotes.
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _results_dir(args: argparse.Namespace, kind: str) -> Path:
    return args.results or (args.out or default_out_dir()) / "reconstructions" / kind


def run_dip(args: argparse.Namespace) -> int:
    from instrument.reconstruction.dip import nv_unit_vector, reconstruct_dip_files

    t0 = time.monotonic()
    bar = _EpochBar(args.epochs, "deep image prior")
    try:
        result, arrays, figure = reconstruct_dip_files(
            args.b_nv, args.mask, _results_dir(args, "dip"), b_nv_dataset=args.b_nv_dataset,
            mask_dataset=args.mask_dataset, pixel_m=args.pixel_m, standoff_m=args.standoff_m,
            thickness_m=args.thickness_m, saturation_a_per_m=args.ms_a_per_m,
            nv_axis=nv_unit_vector(*args.nv_angles_deg) if args.nv_angles_deg else None,
            epochs=args.epochs, early_stop_patience=args.patience, seed=args.train_seed, callback=bar)
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(_message(exc)) from exc
    finally:
        bar.bar.close()
    print(f"deep image prior: {result.epochs_run} epochs, RMSE {result.rmse_t * 1e3:.3g} mT, "
          f"SNR {result.snr_db:.1f} dB, {time.monotonic() - t0:.1f} s")
    print(f"  results  {arrays}")
    print(f"  figure   {figure}")
    return EXIT_OK


def run_neural_field(args: argparse.Namespace) -> int:
    import numpy as np

    from instrument.reconstruction.array_files import load_array
    from instrument.reconstruction.neural_field import NeuralFieldConfig, reconstruct_neural_field_files
    from instrument.reconstruction.relaxometry import RelaxometryGeometry

    t0 = time.monotonic()
    lo, hi = args.freq_range_hz
    if not lo < hi:
        raise UsageError(f"--freq-range-hz {lo:g} {hi:g}: the first frequency must be below the last")
    try:
        spectrum = load_array(args.spectrum, args.dataset)
        if spectrum.ndim != 3:
            raise ValueError(f"spectra must have shape (n_freq, rows, cols), got {spectrum.shape}")
        geometry = RelaxometryGeometry(
            shape=spectrum.shape[1:], pixel_m=args.pixel_m, standoff_m=args.standoff_m,
            frequencies_hz=tuple(np.linspace(*args.freq_range_hz, spectrum.shape[0])),
            linewidth_hz=args.linewidth_hz, larmor_band_hz=tuple(args.larmor_band_hz))
        stage1 = args.epochs * 3 // 10
        config = NeuralFieldConfig(stage_epochs=(stage1, args.epochs - stage1))
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(_message(exc)) from exc
    bar = _EpochBar(args.epochs, "neural field")
    try:
        result, arrays, figure = reconstruct_neural_field_files(
            args.spectrum, _results_dir(args, "neural_field"), geometry, spectrum_dataset=args.dataset,
            operator=args.operator, config=config, seed=args.train_seed, callback=bar,
            early_stop_patience=args.patience)
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(_message(exc)) from exc
    finally:
        bar.bar.close()
    print(f"neural field ({args.operator}): {result.epochs_run} epochs, {time.monotonic() - t0:.1f} s")
    print(f"  results  {arrays}")
    print(f"  figure   {figure}")
    return EXIT_OK
