"""Export of fitted maps with pixel coordinates and the run's provenance.

- ``to_xarray``: an ``xarray.Dataset`` with ``y``/``x`` coordinates in metres (and a ``component``
  axis for vector maps), units per variable and the provenance (run id, software version, fit
  options) as attributes; ``to_netcdf`` writes it with the h5netcdf engine.
- ``to_mat``: the same maps as a MATLAB ``.mat`` file (``scipy.io.savemat``), one variable per map
  plus ``x_m``, ``y_m`` and a ``provenance`` JSON string, for MATLAB tools such as QDMlab (the
  variable names are ours: QDMlab's own file layout is not reproduced).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

UNITS = {"b": "T", "b_t": "T", "b_err_t": "T", "b_nv_t": "T", "b_nv_err_t": "T", "d_hz": "Hz", "e_hz": "Hz",
         "d_err_hz": "Hz", "e_err_hz": "Hz", "center": "Hz", "center_err": "Hz", "fwhm": "Hz",
         "center_off_hz": "Hz", "center_on_hz": "Hz"}


def _coords(shape: tuple[int, int], pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    if not pixel_size_m > 0:
        raise ValueError(f"pixel_size_m must be > 0, got {pixel_size_m}")
    return np.arange(shape[0]) * pixel_size_m, np.arange(shape[1]) * pixel_size_m


def _check(maps: dict[str, np.ndarray]) -> tuple[int, int]:
    if not maps:
        raise ValueError("no maps to export")
    shapes = {np.shape(v)[:2] for v in maps.values()}
    if len(shapes) != 1 or any(np.ndim(v) not in (2, 3) for v in maps.values()):
        raise ValueError(f"maps must share one (rows, cols) shape, optionally with a last axis: {shapes}")
    return shapes.pop()


def to_xarray(maps: dict[str, np.ndarray], pixel_size_m: float, provenance: dict | None = None):
    """Dataset of 2-D maps (rows, cols) and vector maps (rows, cols, 3) with coordinates in metres."""
    import xarray as xr

    shape = _check(maps)
    y, x = _coords(shape, pixel_size_m)
    data = {}
    for name, value in maps.items():
        value = np.asarray(value)
        dims = ("y", "x") if value.ndim == 2 else ("y", "x", "component")
        data[name] = xr.DataArray(value, dims=dims, attrs={"units": UNITS.get(name, "")})
    coords = {"y": ("y", y, {"units": "m"}), "x": ("x", x, {"units": "m"})}
    lengths = {np.shape(v)[-1] for v in maps.values() if np.ndim(v) == 3}
    if lengths:
        if lengths != {3}:
            raise ValueError(f"vector maps must have 3 components on their last axis, got {lengths}")
        coords["component"] = ("component", ["x", "y", "z"])
    attrs = {"provenance": json.dumps(provenance or {}, default=str),
             "frame": "instrument.physics.nv.NV_AXES"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def to_netcdf(
    maps: dict[str, np.ndarray], path: Path, pixel_size_m: float, provenance: dict | None = None
) -> Path:
    """Write ``to_xarray(...)`` to a netCDF-4 file (h5netcdf engine)."""
    path = Path(path)
    to_xarray(maps, pixel_size_m, provenance).to_netcdf(path, engine="h5netcdf")
    return path


def to_mat(
    maps: dict[str, np.ndarray], path: Path, pixel_size_m: float, provenance: dict | None = None
) -> Path:
    """Write the maps, their coordinates and the provenance to a MATLAB .mat file."""
    from scipy.io import savemat

    shape = _check(maps)
    y, x = _coords(shape, pixel_size_m)
    path = Path(path)
    content = {name: np.asarray(value, dtype=np.float64) for name, value in maps.items()}
    content.update({"x_m": x, "y_m": y, "provenance": json.dumps(provenance or {}, default=str)})
    savemat(path, content, do_compression=True)
    return path
