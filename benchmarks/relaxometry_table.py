"""Cross-fidelity relaxometry benchmark (a smaller version of seed 001, Table 1).

Spectra come from the direct simulator F3 (64x64 grid, 20 nm pixels and standoff, 50 frequencies,
1 % signal-proportional noise) for the eight scene classes; Tikhonov, ADMM and the neural field invert
them under F1 and under F2. Prints GMSD, Hungarian F1 (r = 2 px), sliced Wasserstein and density MSE
(mean +- std over samples) with the paper's numbers beside ours, plus mean wall time per run.

    python benchmarks/relaxometry_table.py                 # 1 sample per class, CPU-sized schedules
    python benchmarks/relaxometry_table.py --samples 3 --paper-schedule   # paper schedules (GPU)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere

from instrument.reconstruction import relaxometry as rx  # noqa: E402
from instrument.reconstruction.neural_field import (  # noqa: E402
    NeuralFieldConfig,
    reconstruct_neural_field,
)

PAPER_TABLE_1 = {  # (GMSD, F1, SWD, MSE) means from seed 001, Table 1
    ("tikhonov", "F1"): (0.178, 0.465, 0.119, 0.0119),
    ("admm", "F1"): (0.235, 0.267, 0.052, 0.0183),
    ("neural_field", "F1"): (0.189, 0.733, 0.051, 0.0066),
    ("tikhonov", "F2"): (0.202, 0.762, 0.100, 0.0082),
    ("admm", "F2"): (0.197, 0.084, 0.134, 3.8364),
    ("neural_field", "F2"): (0.125, 0.882, 0.036, 0.0078),
}
METRICS = ("GMSD", "F1", "SWD", "MSE")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1, help="samples per scene class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.01, help="relative sensor noise")
    parser.add_argument("--paper-schedule", action="store_true",
                        help="paper epochs and widths (10k NeTMY epochs, hidden 320): hours on a CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--methods", default="tikhonov,admm,neural_field", help="comma-separated subset")
    parser.add_argument("--nf-epochs", default="300,400", help="neural-field stage epochs (CPU schedule)")
    parser.add_argument("--nf-hidden", type=int, default=64, help="neural-field width (CPU schedule)")
    parser.add_argument("--json", help="also write per-sample results to this JSON file")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.paper_schedule:
        nf_config, tik_epochs, admm_outer, admm_inner = NeuralFieldConfig(), 5000, 200, 30
    else:
        stage_epochs = tuple(int(v) for v in args.nf_epochs.split(","))
        nf_config = NeuralFieldConfig(hidden=args.nf_hidden, layers=4, skip_layer=2, octaves=8,
                                      stage_epochs=stage_epochs)
        tik_epochs, admm_outer, admm_inner = 1000, 60, 15
    methods = {
        "tikhonov": lambda s, g, op: rx.reconstruct_tikhonov(s, g, op, epochs=tik_epochs, seed=args.seed),
        "admm": lambda s, g, op: rx.reconstruct_admm(s, g, op, outer_iterations=admm_outer,
                                                     inner_iterations=admm_inner, seed=args.seed),
        "neural_field": lambda s, g, op: reconstruct_neural_field(s, g, op, config=nf_config, seed=args.seed),
    }
    chosen = args.methods.split(",")
    unknown = set(chosen) - set(methods)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(methods)}")
    methods = {name: methods[name] for name in chosen}
    geometry = rx.RelaxometryGeometry()
    rng = np.random.default_rng(args.seed)
    records = []
    start = time.perf_counter()
    for scene_class in rx.SCENE_CLASSES:
        for sample in range(args.samples):
            density, larmor = rx.make_scene(scene_class, geometry, rng)
            spectrum = rx.simulate_f3(density, larmor, geometry, args.noise, rng)
            for operator in rx.OPERATORS:
                for name, run in methods.items():
                    t0 = time.perf_counter()
                    result = run(spectrum, geometry, operator)
                    elapsed = time.perf_counter() - t0
                    scores = rx.all_metrics(result.density, density)
                    records.append({"class": scene_class, "sample": sample, "operator": operator,
                                    "method": name, "seconds": elapsed, **scores})
                    print(f"{scene_class:14s} {operator} {name:12s} {elapsed:6.1f} s  "
                          + "  ".join(f"{k} {scores[k]:.4f}" for k in METRICS), flush=True)
    total = time.perf_counter() - start

    print(f"\nCross-fidelity benchmark: F3 data, {args.samples} sample(s) x {len(rx.SCENE_CLASSES)} classes,"
          f" noise {args.noise:g}, total {total:.0f} s")
    header = f"{'method':12s} {'op':3s} " + " ".join(f"{m:>17s}" for m in METRICS) + "   time/run"
    print(header + "   | paper " + " ".join(f"{m:>7s}" for m in METRICS))
    for operator in rx.OPERATORS:
        for name in methods:
            rows = [r for r in records if r["method"] == name and r["operator"] == operator]
            cells = []
            for m in METRICS:
                values = np.array([r[m] for r in rows])
                cells.append(f"{values.mean():8.4f}+-{values.std():7.4f}")
            paper = PAPER_TABLE_1[(name, operator)]
            seconds = np.mean([r["seconds"] for r in rows])
            print(f"{name:12s} {operator:3s} " + " ".join(cells) + f"   {seconds:7.1f} s"
                  + "   | " + " ".join(f"{v:7.4f}" for v in paper))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
