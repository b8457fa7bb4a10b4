"""Fit all maps of a run in parallel with dask, locally or on a dask.distributed cluster.

``analyse_maps`` is what ``acquire analyse RUN`` calls: arrays in (the sweep, the spectral cubes
of every map, optionally the field-off reference), fit results and field maps out. Maps may be
numpy arrays or dask arrays (for instance read lazily from the run's HDF5 file); each is split into
chunks of pixels and all chunks of all maps form one dask graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instrument.analysis.fieldmap import b_nv_from_centers, remove_polynomial_background
from instrument.analysis.odmr import (
    OdmrFit,
    fit_dask_packed,
    make_setup,
    saturation_level_for,
    single_threaded_blas,
    unpack,
)
from instrument.analysis.odmr import (
    fit_options as resolved_fit_options,
)

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
DEFAULT_PIXELS_PER_TASK = 16384


@dataclass
class RunAnalysis:
    """Results of fitting every map of a run."""

    fits: list[OdmrFit]
    """One fit per map, in the order given."""
    reference: OdmrFit | None
    """Fit of the field-off reference cube, if one was given."""
    b_nv_t: np.ndarray | None
    """(maps, ...) field projection on the NV axis, map minus reference (T); NaN where a fit failed;
    with its polynomial background removed when ``background_order`` was given. None without a
    reference."""


def analyse_maps(
    freqs: np.ndarray,
    maps,
    *,
    reference=None,
    scheduler=None,
    background_order: int | None = None,
    branch: int = -1,
    pixels_per_task: int = DEFAULT_PIXELS_PER_TASK,
    connect_timeout_s: float = 10.0,
    **fit_options,
) -> RunAnalysis:
    """Fit every map of a run (all in one parallel dask computation) and derive field maps.

    Args:
        freqs: (F,) sweep in Hz.
        maps: (M, ..., F) array or a sequence of M (..., F) arrays, numpy or dask.
        reference: optional (..., F) field-off cube; with it, ``b_nv_t`` = B_NV(map) - B_NV(reference)
            from the (first) fitted line.
        scheduler: None or "threads" (local threads, the default), "processes", "synchronous", a
            dask.distributed scheduler address ("tcp://host:8786") or a ``distributed.Client``.
        background_order: if given, subtract a 2-D polynomial of this order from each B_NV map
            (0: offset, 1: plane); needs 2-D maps.
        branch: -1 if the fitted line is the ms=0 -> ms=-1 line, +1 for the upper one.
        pixels_per_task: pixels per dask task (the unit of parallel work).
        connect_timeout_s: how long to try reaching a scheduler address.
        **fit_options: passed to ``fit_odmr`` (see ``odmr.fit_options``: model, n_peaks, hyperfine,
            min_snr, max_center_err_hz, max_center_err_fwhm, fwhm_range_hz, saturation_level,
            precision, max_iter).

    Returns:
        RunAnalysis with one OdmrFit per map.
    """
    import dask.array as da

    cubes = list(maps) if not hasattr(maps, "ndim") else [maps[i] for i in range(maps.shape[0])]
    if not cubes:
        raise ValueError("no maps to fit")
    if reference is not None:
        cubes.append(reference)
    shape = cubes[0].shape
    for i, cube in enumerate(cubes):
        if cube.shape != shape:
            raise ValueError(f"map {i} has shape {cube.shape}, map 0 has {shape}; all maps must match")
    fit_options_ = dict(fit_options)
    sat = saturation_level_for(cubes[0].dtype, fit_options.pop("saturation_level", None))
    with single_threaded_blas():
        setup = make_setup(freqs, shape, saturation_level=sat, **fit_options)
    lazy = []
    for cube in cubes:
        arr = (
            cube
            if type(cube).__module__.startswith("dask")
            else da.from_array(cube, chunks=_chunks(shape, pixels_per_task))
        )
        lazy.append(fit_dask_packed(setup, arr))
    packed = _compute(lazy, scheduler, connect_timeout_s)
    fits = [unpack(np.asarray(p), setup.n_peaks, setup.shape, fit_options.get("hyperfine")) for p in packed]
    used = {**resolved_fit_options(**fit_options_), "saturation_level": sat}
    for fit in fits:
        fit.options = used
    ref_fit = fits.pop() if reference is not None else None
    b_nv = None
    if ref_fit is not None:
        off = _first_line(ref_fit.center, setup.n_peaks)
        b_nv = np.stack([b_nv_from_centers(_first_line(f.center, setup.n_peaks), off, branch) for f in fits])
        if background_order is not None:
            if b_nv.ndim != 3:
                raise ValueError(f"background removal needs 2-D maps, the maps have shape {shape[:-1]}")
            b_nv = np.stack([remove_polynomial_background(m, background_order)[0] for m in b_nv])
    return RunAnalysis(fits, ref_fit, b_nv)


def _first_line(center: np.ndarray, n_peaks: int) -> np.ndarray:
    return center[..., 0] if n_peaks > 1 else center


def _chunks(shape: tuple[int, ...], pixels_per_task: int) -> tuple:
    """Chunks over the leading (row) axis of about ``pixels_per_task`` pixels; the sweep stays whole."""
    if len(shape) == 1:
        return (shape[0],)
    per_row = int(np.prod(shape[1:-1], dtype=np.int64)) or 1
    rows = max(1, pixels_per_task // per_row)
    return (rows, *shape[1:-1], shape[-1])


def _compute(lazy: Sequence, scheduler, connect_timeout_s: float = 10.0):
    """Compute dask collections on the chosen scheduler."""
    import dask

    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        return dask.compute(*lazy, scheduler=scheduler or "threads")
    if isinstance(scheduler, str):
        from distributed import Client

        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s}s", set_as_default=False)
        except OSError as exc:
            raise ConnectionError(
                f"cannot reach the dask scheduler at {scheduler!r} ({exc}); start it with "
                "`dask scheduler` and workers with `dask worker ADDRESS`, or leave `scheduler` out "
                "to fit locally"
            ) from exc
        with client:
            return client.gather(client.compute(list(lazy)))
    return scheduler.gather(scheduler.compute(list(lazy)))
