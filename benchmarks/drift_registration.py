"""Drift between the passes of a CW-ODMR run: registration accuracy and the field-map error it removes.

Registration is scored on two textures: the analytic one of the test runs (a blob on a periodic
ripple: beyond ~32 px the ripple's periods dominate and the registration may lock a period off, as
it would on a periodic sample such as a coil array) and a smooth random one.

Synthetic sample (``tests/analysis/cw_synthetic.py``): an analytic PL texture, a 300 kHz/px strain
gradient of the I-off line and a 20 uT coil field, 1e6 counts, Poisson noise; the I-on pass is the
same sample evaluated at shifted coordinates (no interpolation in the truth). Prints, over repeats
with random shifts, the registration error of one phase cross-correlation and of the refined one,
and the median B_NV error of the map without and with the correction, against a run without drift.

Run: ``python benchmarks/drift_registration.py`` (about a minute on two cores).
"""

from __future__ import annotations

import tempfile
import warnings

import numpy as np

from instrument.analysis.cw_run import analyse_cw_run
from instrument.analysis.drift import DriftWarning, register_sweeps
from instrument.storage.runs import load_run
from tests.analysis.cw_synthetic import pass_images, true_b_nv_t, write_run

REPEATS = 8


def random_texture_pair(shape, shift, rng) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture (Gaussian-filtered noise, 3 px) and its Fourier-shifted copy, both cut
    from the middle of a canvas twice as large (real content at the edges, no wrap-around)."""
    from scipy.ndimage import fourier_shift, gaussian_filter

    canvas = gaussian_filter(rng.normal(size=(2 * shape[0], 2 * shape[1])), 3.0)
    canvas = 1e6 * np.clip(1 + 0.2 * canvas / canvas.std(), 0.05, None)
    moved = np.fft.ifftn(fourier_shift(np.fft.fftn(canvas), shift)).real
    cut = (slice(shape[0] // 2, shape[0] // 2 + shape[0]), slice(shape[1] // 2, shape[1] // 2 + shape[1]))
    return rng.poisson(canvas[cut]).astype(float), rng.poisson(moved[cut]).astype(float)


def registration(shape: tuple[int, int], rng: np.random.Generator, texture: str):
    """Errors (px) of one-pass and refined registrations that passed the texture test, and how many
    were refused as unreliable (their shift is 0, not guessed)."""
    single, refined, refused = [], [], 0
    for _ in range(REPEATS):
        shift = rng.uniform(-3, 3, 2)
        if texture == "analytic":
            a = pass_images(shape, (0.0, 0.0), False, 1e6, rng).mean(axis=0)
            b = pass_images(shape, shift, False, 1e6, rng).mean(axis=0)
        else:
            a, b = random_texture_pair(shape, shift, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DriftWarning)
            one = register_sweeps(np.stack([a, b]), refine=0)
            two = register_sweeps(np.stack([a, b]))
        if not two.reliable[1]:
            refused += 1
            continue
        single.append(np.hypot(*(one.shifts_px[1] - shift)))
        refined.append(np.hypot(*(two.shifts_px[1] - shift)))
    return np.array(single), np.array(refined), refused


def map_errors(rng: np.random.Generator) -> dict[str, list[float]]:
    errors: dict[str, list[float]] = {"no drift": [], "drift, not corrected": [], "drift, corrected": []}
    truth = true_b_nv_t()[3:-3, 3:-3]
    with tempfile.TemporaryDirectory() as out:
        for i in range(REPEATS // 2):
            shift = rng.uniform(0.8, 2.0, 2) * rng.choice([-1, 1], 2)
            still = load_run(out, write_run(out, seed=100 + i))
            moved = load_run(out, write_run(out, drift_px=tuple(shift), seed=200 + i))
            for label, run, drift in (("no drift", still, True), ("drift, not corrected", moved, False),
                                      ("drift, corrected", moved, True)):
                b = analyse_cw_run(run, isotope=None, drift=drift).b_nv_t[3:-3, 3:-3]
                errors[label].append(float(np.nanmedian(np.abs(b - truth))))
    return errors


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"registration error (px) over {REPEATS} random shifts in [-3, 3] px, mean / max")
    for texture in ("analytic", "random"):
        for shape in ((24, 24), (32, 32), (64, 64), (128, 128)):
            single, refined, refused = registration(shape, rng, texture)
            if single.size == 0:
                print(f"  {texture:8s} {shape[0]}x{shape[1]}: all {refused} refused as unreliable")
                continue
            print(f"  {texture:8s} {shape[0]}x{shape[1]}: one pass {single.mean():.3f} / {single.max():.3f}, "
                  f"refined {refined.mean():.3f} / {refined.max():.3f}; {refused} refused as unreliable")
    print(f"median |B_NV - truth| (uT) on 32x32 maps, {REPEATS // 2} runs each (3 px border left out)")
    for label, values in map_errors(rng).items():
        v = np.array(values) * 1e6
        print(f"  {label:22s} {v.mean():.3f} (spread {v.min():.3f} .. {v.max():.3f})")


if __name__ == "__main__":
    main()
