"""ODMR fitting, field maps and sensitivity: arrays in, arrays out.

- ``odmr.fit_odmr``: per-pixel fits of (..., F) spectral cubes (numpy or dask), 1-8 Lorentzian or
  Gaussian lines, 15N/14N multiplets, reason codes for rejected pixels.
- ``fieldmap``: B_NV from line centres (I-on minus I-off, or a line pair), the vector field from the
  four NV axes, polynomial background removal.
- ``runs.analyse_maps``: every map of a run in one parallel dask computation, locally or on a
  dask.distributed cluster; what ``acquire analyse`` calls.
"""
