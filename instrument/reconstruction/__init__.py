"""Reconstruction of sources from field maps: arrays in, arrays out."""
