"""Simulated sample for the algorithm tests of the reconstruction package."""

from __future__ import annotations

import dataclasses

from sim.world import Sample, World


def unscaled_world(shape: tuple[int, int]) -> World:
    """The bundled coils over a 150 um field without ``field_scale``: what these tests were set at.

    The algorithm tests use absolute noise levels (uT) chosen against the unscaled Biot-Savart fields
    with the coil array filling the map; the paper-matched sample (1.165 um pixels, fields below
    10 uT) is scored by ``benchmarks/seed000_table.py`` through ``sim.lockin_chain``.
    """
    sample = dataclasses.replace(Sample.load(), field_scale=1.0, fov_width_m=150e-6)
    return World(sample, shape=shape)
