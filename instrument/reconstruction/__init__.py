"""Reconstruction of sample properties from measured maps: arrays in, arrays out."""
