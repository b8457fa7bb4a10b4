"""Writes ``docs/results/reconstruction_ii.md``: seed 001 (relaxometry) and seed 002 (DIP), fair set-ups.

Runs ``relaxometry_fair.py``, ``relaxometry_larmor.py`` and ``dip_magnetisation.py`` with their
defaults (or ``--full``) and puts their tables under a fixed description of the set-ups. The
verdicts printed with the tables are computed; the seed-001 note ('how far from the paper') is
written by hand from the default run, whose seeds are fixed, and says so.

    python benchmarks/reconstruction_ii.py --write docs/results/reconstruction_ii.md   # ~20 min
    python benchmarks/reconstruction_ii.py --full --write ...   # 16 samples/class with the neural field,
                                                                # 5 (cold 3) Larmor seeds, DIP --full
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = """# Reconstruction II: relaxometry neural fields (seed 001) and deep image prior (seed 002)

Regenerate with `python benchmarks/reconstruction_ii.py --write docs/results/reconstruction_ii.md`
(2 shared CPU cores, torch CPU, one thread; the run time is at the end). Earlier runs at the paper's
geometry (z0 = 1 pixel, 1 % proportional noise, no identity baseline) are kept as raw logs beside
this file (`relaxometry_table_run1.txt`, `relaxometry_table_netmy2000.txt`,
`dip_orientation_scan.txt`); at that geometry the observed map itself scores Hungarian F1 1.00, so
those tables do not rank methods.

## Seed 001: cross-fidelity relaxometry that can fail

Set-up (`benchmarks/relaxometry_fair.py`, `instrument/reconstruction/relaxometry.py`):

- Data from the direct simulator F3 (source-by-source, float64, Lorentzian at the source), never
  from the operators that invert it.
- Geometry: 32 x 32 grid of 20 nm pixels (the paper: 64 x 64, for run time) and a standoff of 4
  pixels, 80 nm (the paper: 20 nm, 1 pixel). At the paper's standoff the F2 kernel's FWHM is 1.1 px,
  every scene class's sources are at least 2 px apart, and the observed map already scores F1 1.00:
  nothing needs deconvolving. At 4 px the FWHM is 3.6 px, so the 'close' classes (2-4 px) merge in
  the observed map and 'medium' (4-8 px) partly. This is still the paper's physics (its own P4: sources
  closer than O(z0) merge) and an ordinary NV depth (shallow implanted NV layers are 10-100 nm deep).
- Noise: the paper's additive model, sigma = 0.05 x max(S) at every pixel and frequency
  (`noise_model="additive"`); the paper does not state its level ("matched to per-sample dynamic
  range"). On the tuning seeds the ranking at 0.01 was the same; 0.05 is the harder of the two.
- Tuning: standoff, noise, epochs and iteration counts were chosen on data seeds 100-102; the table
  is data seed 0 and the neural-field section data seeds 0-2 (the scenes of seed 0 recur there,
  which is not tuning).
- Baselines: the identity (the observed noise map, summed over frequency, as the density, with the
  paper's energy-ratio scale; a method that does not beat it has deconvolved nothing) and
  non-negative least squares on the noise map (scipy's `nnls`; F2 is linear in rho once the Larmor
  field is fixed at mid-band, so this is the plain deconvolution with positivity as its only prior).
- Why the paper's baselines lost to the identity in the previous run (8 samples, 200 Tikhonov
  epochs, 25 x 15 ADMM iterations: identity F1 0.79, methods 0.49-0.57). Measured on the tuning
  seeds: not the training length (Tikhonov with the log-MSE D at 1500 epochs: F1 0.54 against the
  identity's 0.75 on seed 102), not the peak threshold or the metric (NNLS scores F1 1.00 on the same
  data with the same metric), not a lack of information (the same NNLS result). It is the data term:
  the paper's D compares log10 of max-normalised maps, so merged sources are explained best by one
  peak between them; and with additive noise 22-37 % of the pixels of the frequency-summed map are
  <= 0 (three scenes of tuning seed 100), clipped and sent to log10(1e-10) = -10, which a positive
  predicted map cannot follow: they make 94-97 % of D at the true density, so the background, not
  the sources, sets D. On a pair 3 px apart at this standoff, Tikhonov with D returns one peak between the
  two sources and Tikhonov with R_nm returns both (`test_mean_normalised_fidelity_...` in
  `tests/reconstruction/test_relaxometry.py`); the paper calls this centre collapse (its P3). The
  table therefore runs Tikhonov and ADMM twice: with D (the paper's baselines as published) and with
  the paper's own mean-normalised noise-map MSE R_nm (App. D.4) as the fidelity, a squared error on
  the linear map, which is what additive Gaussian noise calls for (`fidelity="mean-normalised"`).
- ADMM with our penalty 1 and with the paper's 1e-3 (l1 weight 1e-2 in both). The scaled dual u
  accumulates rho - z, so with 1e-3 the shrink threshold of 10 is crossed after some iterations
  rather than zeroing the density for good. Tikhonov 1000 epochs (the paper: 5000), ADMM 50 x 30
  iterations (the paper: up to 200 x 30), for run time.
- Intervals: mean ± 1.96 standard errors over the 64 samples (8 per class); F1 is also split by
  separation class, where the identity baseline is strong ('far') and where it cannot be ('close').
- Larmor field: a per-pixel Lorentzian least-squares fit of the same spectra (known width; grid
  search and parabolic refinement), scored at the source pixels by separation class.
- Transverse operator: F2 sums the noise power along the NV axis (kernel sum_a G_az^2 =
  (3 z^2 + R^2)/R^8), while T1 responds to the transverse components, for isotropic fluctuators
  sum_a (G_ax^2 + G_ay^2) = (5 r^2 + 2 z^2)/R^8: half the on-axis value and wider. `F2T` offers it
  (`kernels()["transverse"]`, `forward_numpy`, `TorchOperator`, `reconstruct_nnls`); the last table
  makes data with it (close classes) and inverts them under F2 (the paper's model) and under F2T.

"""

LARMOR_HEADER = """
### Seed 001: the neural field, its Larmor branch and its density

Set-up (`benchmarks/relaxometry_larmor.py`): the fair benchmark's data (same standoff and noise) and
a neural field of 600 + 1200 epochs (hidden 64, 4 layers, 8 octaves; the paper: 320, 6, 12 and 3000
+ 7000 epochs, for run time; 3000 epochs beat 700 on tuning seed 104, F1 0.77 against 0.60), one
scene per class per data seed; the cold start on data seed 0 only (three with `--full`). Before the
fix (the 'cold' rows) the Larmor head started at the band centre, for two failures: (1) the reported
field is 0 Hz off the predicted support (rho > 0.3 max rho, the paper's mask), so every source the
support misses costs its whole frequency, about 2 GHz (the masked column); (2) the head itself does
not find the dips (the band-field column): its only signal is a weak per-pixel spectral-shape term,
and it settles on a smooth average over neighbouring sources. The fix: the head outputs a correction
to the logit of the per-pixel Lorentzian fit (its output layer starts at zero), so it starts where
the sceptic's baseline ends and can only be credited with what it changes; the band field is
returned unmasked (`extras['larmor_band_hz']`) so that missed sources are scored on the estimate,
with the masked column and the support coverage beside it. 'cold' is the old start, kept as an
option (`NeuralFieldConfig(larmor_warm_start=False)`) to show the failure. The last table scores the
neural field's density on the same scenes next to the identity and NNLS.

"""

NOTE_001 = """
### Seed 001: how far from the paper, and why

Written by hand from the default run (all seeds fixed; the run is deterministic on one thread, so
regenerating gives the same numbers):

- The observed map is the baseline to beat. At the paper's geometry it scores F1 1.00 on our F3
  data (the earlier logs), above every method of the paper's table (best: neural field 0.882), so
  the paper's table, as we reproduce it, does not show deconvolution. At 4 px it scores F1
  0.80 ± 0.06 (0.56 on the 'close' classes), which leaves room for a method to show one.
- The paper's baselines with its log-MSE fidelity D lose to the identity on F1 (0.40-0.42) and do
  not beat it on SWD: they collapse merged sources, as the paper's ADMM does (its F1 0.084). Our
  Tikhonov with D is far below the paper's 0.762 for it; the geometry (merged sources, which z0 = 1
  px does not have), the shorter runs (1000 epochs against 5000) and the unstated noise level all
  differ, and we have not separated their shares.
- With the paper's own R_nm as the fidelity, the same two baselines beat the identity on all three
  metrics (F1 0.91 and 0.93; 'close' 0.77 and 0.80); the data term, not the regulariser or the
  run length, decides whether they deconvolve.
- Plain NNLS on the noise map (positivity only) is the best method on F1, GMSD and density MSE
  (F1 0.996, GMSD 0.015; 'close' 0.99; on SWD the R_nm baselines are lower, 0.018-0.021 against
  0.054), at this noise (0.05 x max S per frequency, summed over 50 frequencies).
  The benchmark at this noise is therefore easy for a linear solver; the ranking above it says which
  solvers use the information the data carry, not that the problem is hard.
- The neural field (the paper's method, smaller and 5.6 x shorter than the paper's) is not separated
  from the identity on F1 (0.79 ± 0.10 against 0.79 ± 0.10, the same 24 scenes) and beats it on SWD
  (0.031 against 0.086); NNLS on the same scenes scores F1 0.996. The paper's claim that the neural
  field localises best is not reproduced here: on comparable scene sets (identity and NNLS score
  the same on both) the R_nm baselines and NNLS are ahead of it on F1 and GMSD, and ADMM with R_nm
  also on SWD. Whether the paper's full network
  and 10,000 epochs close the gap we have not run (`--full` does not either).
- Larmor field. The earlier 56.0 MHz mean / 8.5 median (fair table) and 35.8 / 12.0 (Larmor
  script) were both correct, for the same estimator on different 8-scene draws: the fair script drew
  the transverse-kernel data from the same random stream, so every scene after the first 'close'
  class differed; with 43-46 sources the mean follows a few close-class sources. Not a bug in the
  fit, but the two tables were not comparable; the transverse data now have their own stream and
  the fit is reported on 370 sources by separation class: median 6.6 MHz 'far', 11.2 'medium', 85
  'close' (where a source pixel's spectrum mixes its neighbours' lines at this standoff), mean 52.5
  overall. The issue's 1-3 MHz holds for isolated sources at 0.01 noise (0.8 MHz at 0.01 and 4.0
  MHz at 0.05 for one isolated source, one draw). With the warm start the neural field's Larmor
  field ends where the fit starts it (17.1 against 17.3 MHz, within the seed spread); cold, it is
  109 MHz against the fit's 13 on data seed 0. The paper reports no Larmor error to compare with.
- Transverse physics. On data made with the T1 (transverse) kernel, NNLS scores F1 0.41 when it
  inverts under the paper's F2 and 0.96 under the matching F2T (ADMM with R_nm: 0.21 and 0.62). At
  this standoff the kernel choice decides most of the deconvolution, so a real T1 measurement
  inverted with the paper's F2 would lose most of it.

"""

DIP_HEADER = """
## Seed 002: deep image prior scored on the magnetisation

Set-up (`benchmarks/dip_magnetisation.py`; baselines in
`instrument/reconstruction/magnetisation_baselines.py`):

- Textures made by the benchmark, not from the DIP's masks: a uniform ellipse 500 x 150 nm with
  flower-tilted ends (the paper's dipole); a uniform disc 300 nm across whose direction is drawn per
  seed from 0-360 deg; a Landau ellipse 1200 x 700 nm (the paper's) with 30 nm wide walls and a
  10 nm vortex core (Mz); a vortex disc 900 nm across with a 10 nm Gaussian core (Mz).
  Ms = 800 kA/m, 20 nm film.
- Data not made by the reconstruction's forward model: all three components of M on a 6 nm grid,
  the field sampled at the 30 nm scan points, the true standoff drawn from 50-70 nm, the NV azimuth
  off by a draw of N(0, 3 deg), white noise 0.3 mT (about the paper's dipole residual, 0.34 mT).
  Every reconstruction assumes in-plane M on the 30 nm grid, 60 nm standoff, azimuth 0.
- DIP: the paper's learning rates (1e-4 dipole and uniform disc, 7.5e-4 Landau and vortex), its
  AdamW/ReduceLROnPlateau schedule, a 16/32-channel encoder-decoder, a fixed epoch budget. With the
  texture's mask (the direction of each domain fixed by the mask; tanh sets sign and size per
  pixel: the paper's setting) or with a free mask (the support on both components: the direction is
  left to the data and the network).
- Baselines: the mask alone (where there is one); the best uniform direction on the support (two
  parameters); the minimum-norm least-squares M on the support (noise sigma, prior width Ms).
- Controls: for the vortex, every method is run again on the field of the opposite-chirality vortex
  (same core, same noise); for the Landau mask, the DIP is run on data made by its own forward model
  from that mask (the inverse crime) and from that mask with 30 nm walls.
- Score: mean cosine between recovered and true in-plane direction inside the support (the core,
  where in-plane |M| < 5 % Ms, excluded): 1 is right, 0 is chance, -1 reversed. A reconstruction with
  M = 0 scores 0. Mean ± standard deviation over seeds; each seed draws the standoff, the azimuth
  error, the noise, the network's initialisation and the disc's direction.

"""

DIP_FOOTER = """
### Seed 002: why a uniform patch is recoverable and a vortex is not (issue 18)

**Exact (from the code, and tested).** In `instrument.physics.fourier.magnetization_kernel` the
in-plane magnetisation enters B~(k) only through kx Mx~ + ky My~, that is through its magnetic
charge: -div M inside the film and M.n on its edge. The transverse part of M (k . M~ = 0:
divergence-free and tangent to the edges) makes no field at any standoff, NV axis, film thickness
or field component: it is the null space of the stray-field operator of a film of uniform thickness
(`test_transverse_magnetization_makes_no_field`: a random transverse M gives |B| < 1e-12 of the
full field).

- A uniform patch carries edge charge Ms t cos(angle between M and the edge normal) all round its
  boundary. That charge pattern fixes the direction, so the direction is in the data and any
  method that fits the data with a near-uniform M finds it (the 'uniform disc' rows: the DIP with
  a free mask next to the two-parameter fit). The minimum-norm least squares keeps only the
  charge-carrying (longitudinal) part of M (34 % of the uniform ellipse's norm, 46 % of a uniform
  disc's, on the null-space test's grid), which points along M in the middle but not near the
  edges, so it scores below 1 even there.
- An ideal vortex on a disc (M tangent to circles) has div M = 0 inside and M.n = 0 on the edge:
  its in-plane part is transverse, so it makes no field, and both chiralities make the same field.
  What field it does make on a pixel grid comes from the staircase edge and is an artefact: 0.037 of
  a uniform disc's RMS on the 25 nm grid, 0.0046 on a 4x finer grid
  (`test_disc_vortex_is_nearly_invisible_and_indistinguishable`,
  `test_disc_vortex_field_is_a_pixelation_artefact`). So **no method can recover the in-plane
  direction or the chirality of a vortex from B_NV**, and a second standoff, a second NV axis or the
  full vector field do not help (the transverse part gives B = 0 at every height and in every
  component). The chirality-control table tests exactly this on the benchmark's data: each method is
  run again on the field of the opposite-chirality vortex (same core, same noise) and its in-plane
  answer is compared with its first one. The in-plane cosines in the vortex rows are therefore not
  measurements: with a vortex mask they are the mask's direction times the sign tanh happens to
  take on that seed, at the same misfit for both chiralities; without a mask the DIP returns a small
  in-plane M (the mean |M| column) whose direction does not follow the data's chirality. What the field does
  contain is the core: its position, its moment (so the polarity) and, fitted with it, the standoff
  (`core_fit`, last table).
- The Landau ellipse's domains cross its curved edge, so it makes a field (0.38 of the uniform
  state's RMS on the 25 nm grid), but 97 % of its norm is in the null space, against 66 % for the
  uniform ellipse (`test_benchmark_landau_on_ellipse_is_mostly_null_space_but_not_field_free`). The
  data fix the few per cent that carry charge; the rest comes from the mask and the network. The
  two Landau controls tell the optimiser apart from the physics: on the inverse crime the DIP has
  to reproduce its own mask, on the walled mask (same operator, same geometry) only the wall
  profile differs from what the mask allows, so any drop between them is caused by the walls alone.

**How the paper's setting differs.** The paper (seed 002) neither claims to recover a vortex nor
scores M against a truth. Its two cases are a Landau (four-domain) ellipse and a dipole ellipse; the
masks come from MFM and micromagnetic simulation and fix the direction of every domain, and tanh
then sets only sign and size; it scores the B-field misfit (RMSE, SNR of eq. 8, line profiles), the
mean |M| and the agreement with MFM. It states the ambiguity itself: a Landau domain and a
four-domain flux closure give nearly identical B (its Fig. 1B), and without masks "the network
converges rapidly to the forward-propagated B with very low error, but the reconstructed M was
rarely physically accurate". In that setting the in-plane direction of a closure texture is an
input (the mask), and the mask-orientation scan ranks masks by misfit, which it can do only through
the charge-carrying part of M. The 'DIP, Landau mask (paper)' and 'DIP, vortex mask' rows are that
setting; the 'mask alone' rows are the mask's own answer, with no data.

**What would make a vortex's in-plane part recoverable** (not implemented): a constraint that ties
the null space to the visible part (micromagnetic energy, exchange plus demagnetisation, in the loss
selects a vortex on a disc, but still not its chirality, which costs no energy), a film whose
thickness or edge is known to vary at the 10 nm level (then div(t M) is not zero), or a probe of M
rather than of its stray field (XMCD-PEEM, Lorentz TEM; MFM senses the stray field and is blind to
it too).
"""


def run(script: str, extra: list[str]) -> str:
    cmd = [sys.executable, str(HERE / script), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    relax = ["--samples", "16", "--neural-field"] if args.full else []
    warm = ["--seeds", "0", "1", "2", "3", "4"] if args.full else ["--seeds", "0", "1", "2"]
    cold = ["--seeds", "0", "1", "2"] if args.full else ["--seeds", "0"]
    started = time.perf_counter()
    dipx = ["--full"] if args.full else []
    text = (HEADER + run("relaxometry_fair.py", relax) + "\n" + LARMOR_HEADER
            + run("relaxometry_larmor.py", [*warm, "--variants", "warm"]) + "\n\n"
            + run("relaxometry_larmor.py", [*cold, "--variants", "cold"]) + "\n" + NOTE_001
            + DIP_HEADER
            + run("dip_magnetisation.py", dipx) + "\n" + DIP_FOOTER)
    flag = " --full" if args.full else ""
    text += (f"\nThe whole document: `python benchmarks/reconstruction_ii.py{flag}` in "
             f"{time.perf_counter() - started:.0f} s on this machine (2 shared cores).\n")
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
