"""Reconstruction of sources from field maps: dictionary LASSO / pseudo-inverse, Fourier inversions, scores.

Arrays in, arrays out; nothing here imports ``sim`` or ``drivers``.
"""
