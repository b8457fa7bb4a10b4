"""fit_odmr's torch backend against its numpy path on the realistic single-line cube, side by side.

Prints the device, both throughputs and their ratio, and the parity (|centre difference| / centre
error). On a machine without a GPU torch runs on the CPU, where it is slower than numpy (full
Jacobian, no compaction): the GPU figure needs a GPU.

Usage: python benchmarks/odmr_fit_torch.py [--size 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from odmr_fit import single_dip_cube  # noqa: E402

from instrument.analysis.odmr import fit_odmr  # noqa: E402
from instrument.analysis.torch_lm import default_device  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=200)
    args = ap.parse_args()
    freqs, cube, truth = single_dip_cube(args.size, 101, np.random.default_rng(0))
    n = truth.size
    fit_odmr(freqs, cube[:1, :8], backend="torch")  # warm-up: imports, kernels
    t = time.perf_counter()
    ref = fit_odmr(freqs, cube)
    t_np = time.perf_counter() - t
    t = time.perf_counter()
    got = fit_odmr(freqs, cube, backend="torch")
    t_torch = time.perf_counter() - t
    both = ref.converged & got.converged
    gap = np.abs(got.center - ref.center)[both] / ref.center_err[both]
    print(f"cube {cube.shape}, torch device: {default_device()}")
    print(f"  numpy : {n / t_np:10.0f} fits/s    torch : {n / t_torch:10.0f} fits/s    "
          f"ratio torch/numpy {t_np / t_torch:.2f}x")
    print(f"  parity: |centre difference| / centre_err median {np.median(gap):.1e}, "
          f"99th percentile {np.percentile(gap, 99):.1e}; converged numpy {ref.converged.mean():.2%}, "
          f"torch {got.converged.mean():.2%}")


if __name__ == "__main__":
    main()
