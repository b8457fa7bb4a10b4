"""ODMR fitting, field maps and sensitivity: arrays in, arrays out.

- ``odmr.fit_odmr``: per-pixel fits of (..., F) spectral cubes (numpy or dask), 1-8 Lorentzian or
  Gaussian lines, 15N/14N multiplets, reason codes for rejected pixels.
- ``fieldmap``: B_NV from line centres (I-on minus I-off, or a line pair), the vector field from the
  four NV axes, polynomial background removal.
- ``hamiltonian.fit_vector_field``: B vector, D and E per pixel from the eight lines of a {100}
  diamond with the exact ground-state Hamiltonian (``vector_run`` for stored runs, ``acquire analyse
  --vector``).
- corrections: ``drift`` (sweep registration), ``background`` (mean, Gaussian, masked polynomial,
  interpolated region), ``preprocess`` (binning, global fluorescence), ``outliers`` (refit from
  neighbours); ``export`` (netCDF/xarray, .mat); ``torch_lm`` (``fit_odmr(backend="torch")``).
- ``runs.analyse_maps``: every map of a run in one parallel dask computation, locally or on a
  dask.distributed cluster; what ``acquire analyse`` calls.
"""
