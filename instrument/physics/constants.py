"""Physical constants used across the suite (SI units)."""

import math

D_HZ = 2.870e9
"""NV ground-state zero-field splitting."""

GAMMA_E_HZ_PER_T = 28.025e9
"""Electron gyromagnetic ratio of the NV centre."""

HYPERFINE_15N_HZ = 3.03e6
"""15N hyperfine splitting (doublet); the seed-000 diamond is 15N."""

HYPERFINE_14N_HZ = 2.16e6
"""14N hyperfine splitting (triplet)."""

MU0 = 4e-7 * math.pi
"""Vacuum permeability in T m / A."""
