"""Seed-001 relaxometry table that can fail: identity and NNLS baselines, additive noise, both fidelities.

Data: the direct simulator F3 (never the inverse operators) with the paper's additive noise model
(sigma = noise x max S, the same at every pixel, "matched to per-sample dynamic range"), on a
geometry where the standoff is ``--z0-px`` pixels, so the noise map is a blurred image of the
sources and the observed map itself (the identity baseline) does not already score F1 = 1.
Methods: identity; non-negative least squares on the noise map (the linear deconvolution);
Tikhonov and ADMM with the paper's log-MSE fidelity D (ADMM with penalty 1, ours, and 1e-3, the
paper's) and with the paper's mean-normalised noise-map MSE R_nm as the fidelity; optionally the
neural field. Every score is mean ± 95 % interval (1.96 standard errors) over all samples, and
Hungarian F1 is also split by the scene's separation class. Larmor: per-pixel Lorentzian fit of the
same spectra at the source pixels, by separation class. A second table generates data with the
transverse kernel (T1 physics) and inverts it under F2 and under the matching F2T; its noise is
drawn from its own random stream, so the main table's scenes depend only on ``--seed``.

The defaults (z0 = 4 px, noise 0.05, 1000 Tikhonov epochs, 50 x 30 ADMM iterations) were chosen on
data seeds 100-102, not on the reported seed (``--seed 0``).

    python benchmarks/relaxometry_fair.py                    # 8 samples x 8 classes (about 7 min)
    python benchmarks/relaxometry_fair.py --samples 16 --neural-field   # adds the neural field (long)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instrument.reconstruction import relaxometry as rx  # noqa: E402

METRICS = ("GMSD", "F1", "SWD", "MSE")
PAPER_F2 = {"tikhonov": (0.202, 0.762, 0.100, 0.0082), "admm": (0.197, 0.084, 0.134, 3.8364),
            "neural field": (0.125, 0.882, 0.036, 0.0078)}


def kernel_fwhm_px(geometry: rx.RelaxometryGeometry) -> float:
    """Full width at half maximum of the F2 (power) kernel along a grid axis, in pixels."""
    rows, cols = geometry.shape
    profile = rx.kernels(geometry)["power"][rows - 1, cols - 1 :]
    profile = profile / profile[0]
    return 2.0 * float(np.interp(0.5, profile[::-1], np.arange(len(profile))[::-1]))


def larmor_stats(errors) -> str:
    e = np.asarray(errors)
    return f"{np.median(e):.1f} / {e.mean():.1f} / {np.percentile(e, 90):.1f}" if len(e) else "-"


def mean_half(values) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), (1.96 * float(v.std(ddof=1)) / np.sqrt(len(v)) if len(v) > 1 else float("nan"))


def verdicts(scores) -> list[str]:
    """Computed, not written by hand: each method against the identity baseline on each metric."""
    better = {"GMSD": -1, "F1": +1, "SWD": -1}
    base = scores[IDENTITY]
    lines = ["", "Against the identity baseline (computed from the table: 'beats' or 'loses' only where the "
             "95 % intervals do not overlap):", ""]
    for name, g in scores.items():
        if name == IDENTITY:
            continue
        words = []
        for metric, sign in better.items():
            (m, h), (mb, hb) = mean_half(g[metric]), mean_half(base[metric])
            if sign * (m - mb) > h + hb:
                words.append(f"beats it on {metric}")
            elif sign * (mb - m) > h + hb:
                words.append(f"loses on {metric}")
            else:
                words.append(f"not separated on {metric}")
        lines.append(f"- {name}: " + ", ".join(words) + ".")
    return lines


def interval(values) -> str:
    v = np.asarray(values, float)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():.3f} ± {half:.3f}"


def neural_field_config():
    """The benchmarks' neural field: hidden 64, 4 layers, 8 octaves, 600 + 1200 epochs (the paper: 320,
    6, 12 and 3000 + 7000). 3000 epochs beat 700 on tuning seed 104 (F1 0.77 against 0.60); 1800 is
    what the run time allows."""
    from instrument.reconstruction.neural_field import NeuralFieldConfig

    return NeuralFieldConfig(hidden=64, layers=4, skip_layer=2, octaves=8, stage_epochs=(600, 1200))


IDENTITY, NNLS, ADMM_NM = "identity (observed map)", "NNLS on the noise map", "ADMM penalty 1, R_nm fidelity"
SEPARATIONS = ("close", "medium", "far")


def build_methods(args):
    nm = "mean-normalised"

    def admm(penalty, fidelity="log"):
        return lambda s, g, op: (rx.reconstruct_admm(
            s, g, op, outer_iterations=args.admm_outer, inner_iterations=args.admm_inner, penalty=penalty,
            fidelity=fidelity).density, None)

    def tikhonov(fidelity):
        return lambda s, g, op: (rx.reconstruct_tikhonov(s, g, op, epochs=args.tik_epochs,
                                                         fidelity=fidelity).density, None)

    methods = {
        IDENTITY: lambda s, g, op: (rx.identity_density(s, g, op), None),
        NNLS: lambda s, g, op: (rx.reconstruct_nnls(s, g, op).density, None),
        f"Tikhonov {args.tik_epochs} ep., log-MSE D (paper)": tikhonov("log"),
        "ADMM penalty 1, log-MSE D (ours)": admm(1.0),
        "ADMM penalty 1e-3, log-MSE D (paper)": admm(1e-3),
        f"Tikhonov {args.tik_epochs} ep., R_nm fidelity": tikhonov(nm),
        ADMM_NM: admm(1.0, nm),
    }
    if args.neural_field:
        from instrument.reconstruction.neural_field import reconstruct_neural_field

        def neural(s, g, op):
            result = reconstruct_neural_field(s, g, op, config=neural_field_config())
            # Scored on the band field: the masked output puts 0 Hz on true sources its predicted
            # support misses (see relaxometry_larmor.py, which reports both).
            return result.density, result.extras["larmor_band_hz"]

        methods[f"neural field ({sum(neural_field_config().stage_epochs)} ep.)"] = neural
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="samples per scene class")
    parser.add_argument("--grid", type=int, default=32)
    parser.add_argument("--z0-px", type=float, default=4.0, help="standoff in pixels (20 nm pixels)")
    parser.add_argument("--noise", type=float, default=0.05, help="additive noise, fraction of max S")
    parser.add_argument("--tik-epochs", type=int, default=1000)
    parser.add_argument("--admm-outer", type=int, default=50)
    parser.add_argument("--admm-inner", type=int, default=30)
    parser.add_argument("--neural-field", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    geometry = rx.RelaxometryGeometry(shape=(args.grid, args.grid), pixel_m=20e-9,
                                      standoff_m=args.z0_px * 20e-9)
    methods = build_methods(args)
    rng = np.random.default_rng(args.seed)
    rng_transverse = np.random.default_rng([args.seed, 1])  # its own stream: scenes follow --seed only
    scores = defaultdict(lambda: defaultdict(list))
    f1_by_sep = defaultdict(lambda: defaultdict(list))
    larmor_err = defaultdict(lambda: defaultdict(list))
    transverse = defaultdict(lambda: defaultdict(list))
    t0 = time.perf_counter()
    for scene_class in rx.SCENE_CLASSES:
        for _ in range(args.samples):
            density, larmor = rx.make_scene(scene_class, geometry, rng, margin_px=4)
            spectrum = rx.simulate_f3(density, larmor, geometry, args.noise, rng, noise_model="additive")
            src = density > 0
            sep = scene_class.split("/")[1]
            fit = rx.larmor_lorentzian_fit(spectrum, geometry)
            larmor_err["per-pixel Lorentzian fit"][sep] += list(np.abs(fit[src] - larmor[src]) / 1e6)
            for name, run in methods.items():
                est, est_larmor = run(spectrum, geometry, "F2")
                for k, v in rx.all_metrics(est, density).items():
                    scores[name][k].append(v)
                f1_by_sep[name][sep].append(scores[name]["F1"][-1])
                if est_larmor is not None:
                    larmor_err[name][sep] += list(np.abs(est_larmor[src] - larmor[src]) / 1e6)
            # T1 physics: transverse kernel in the data; invert under F2 (the paper) and F2T.
            if sep == "close":
                data = rx.simulate_f3(density, larmor, geometry, args.noise, rng_transverse,
                                      noise_model="additive", kernel="transverse")
                for op in ("F2", "F2T"):
                    for name in (IDENTITY, NNLS, ADMM_NM):
                        est, _ = methods[name](data, geometry, op)
                        for k, v in rx.all_metrics(est, density).items():
                            transverse[(op, name)][k].append(v)
        print(f"{scene_class} done at {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(render(args, geometry, scores, f1_by_sep, larmor_err, transverse, time.perf_counter() - t0))


def render(args, geometry, scores, f1_by_sep, larmor_err, transverse, elapsed) -> str:
    n = args.samples * len(rx.SCENE_CLASSES)
    flag = " --neural-field" if args.neural_field else ""
    lines = [f"Generated by `python benchmarks/relaxometry_fair.py --samples {args.samples} "
             f"--grid {args.grid} --z0-px {args.z0_px:g} --noise {args.noise:g} --tik-epochs "
             f"{args.tik_epochs} --admm-outer {args.admm_outer} --admm-inner {args.admm_inner} "
             f"--seed {args.seed}{flag}` in {elapsed:.0f} s: F3 data, {n} samples "
             f"({args.samples} per class), {args.grid}x{args.grid} grid of 20 nm pixels, standoff "
             f"{geometry.standoff_m * 1e9:.0f} nm, additive noise {args.noise:g} x max S. "
             "Mean ± 95 % interval over samples; inversion under F2.", "",
             "| method | GMSD | Hungarian F1 | SWD | density MSE |", "|---|---|---|---|---|"]
    for name, g in scores.items():
        lines.append(f"| {name} | " + " | ".join(interval(g[m]) for m in METRICS) + " |")
    for name, p in PAPER_F2.items():
        lines.append(f"| paper: {name} (F2, 512 x 3 samples, z0 = 1 px) | "
                     + " | ".join(f"{v:g}" for v in p) + " |")
    lines += verdicts(scores)
    counts = {sep: args.samples * sum(sep == c.split("/")[1] for c in rx.SCENE_CLASSES)
              for sep in SEPARATIONS}
    lines += ["", "Hungarian F1 by separation class (mean ± 95 % interval; close 2-4 px, medium 4-8 px, "
              "far 8-16 px; the F2 kernel's FWHM is "
              f"{kernel_fwhm_px(geometry):.1f} px at this standoff):", "",
              "| method | " + " | ".join(f"{s} ({counts[s]} samples)" for s in SEPARATIONS) + " |",
              "|---|" + "---|" * len(SEPARATIONS)]
    for name, g in f1_by_sep.items():
        lines.append(f"| {name} | " + " | ".join(interval(g[s]) for s in SEPARATIONS) + " |")
    lines += ["", "Larmor frequency at the source pixels (absolute error, MHz, median / mean / 90th "
              "percentile; band 1.5-2.5 GHz):", "",
              "| estimator | sources | " + " | ".join(SEPARATIONS) + " | all |", "|---|---|" + "---|" * 4]
    for name, by_sep in larmor_err.items():
        every = np.concatenate([np.asarray(by_sep[s]) for s in SEPARATIONS])
        cells = [larmor_stats(by_sep[s]) for s in SEPARATIONS] + [larmor_stats(every)]
        lines.append(f"| {name} | {len(every)} | " + " | ".join(cells) + " |")
    lines += ["", "Transverse-kernel data (the 'close' classes), inverted under F2 and under F2T:", "",
              "| operator | method | GMSD | Hungarian F1 | SWD | density MSE |", "|---|---|---|---|---|---|"]
    for (op, name), g in transverse.items():
        lines.append(f"| {op} | {name} | " + " | ".join(interval(g[m]) for m in METRICS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
