"""Re-analysis of a stored CW-ODMR run with other options (``acquire analyse RUN``).

The fit, drift correction, binning, outlier refit and background are ``analysis.cw_run``'s; this
module checks the options, turns a sample region into the background mask, and stores the results
beside the run (analysis-TAG.h5, figure-TAG.png, optionally analysis-TAG.nc or .mat with provenance)
and their summary in the run's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrument.services.errors import RequestError
from instrument.services.runs import add_run_metadata

ESTIMATORS = {"lsq": "least_squares", "least_squares": "least_squares", "poisson": "poisson"}
EXPORTS = {"netcdf": ".nc", "mat": ".mat"}


@dataclass(frozen=True)
class CwAnalysisOptions:
    """How to re-fit a stored CW-ODMR run.

    ``background_region`` (row0, row1, col0, col1), half-open, in pixels of the fitted (binned) map:
    the sample's region, left out of a "masked-polynomial" fit and interpolated over by "interpolate".
    """

    model: str = "lorentzian"
    hyperfine: str | None = "15N"
    background_order: int | None = None
    scheduler: str | None = None
    estimator: str = "lsq"
    bin_factor: int = 1
    outliers: bool = False
    background: str | None = None
    background_region: tuple[int, int, int, int] | None = None
    sigma_px: float = 10.0
    export: str | None = None

    def tag(self) -> str:
        """A default analysis name from the options that differ from a plain re-fit."""
        parts = [self.model, self.hyperfine]
        if self.estimator != "lsq":
            parts.append(self.estimator)
        if self.bin_factor != 1:
            parts.append(f"bin{self.bin_factor}")
        if self.outliers:
            parts.append("outliers")
        if self.background:
            parts.append(self.background.replace("-", "_"))
        if self.background_order is not None:
            parts.append(str(self.background_order))
        return "_".join(str(p) for p in parts if p is not None)


@dataclass
class CwReanalysis:
    result: Any  # instrument.analysis.cw_run.CwFieldMap
    analysis_file: Path
    figure: Path | None
    export_file: Path | None
    summary: dict[str, Any] = field(default_factory=dict)


def check_options(options: CwAnalysisOptions) -> None:
    """Refuse options that cannot work, naming the option and what it takes.

    Raises:
        RequestError: an option out of range or missing what it needs.
    """
    from instrument.analysis.cw_run import BACKGROUNDS

    if options.estimator not in ESTIMATORS:
        raise RequestError(f"`estimator` must be lsq or poisson, got {options.estimator!r}")
    if options.bin_factor < 1:
        raise RequestError(f"`bin` must be a whole number >= 1 (1: no binning), got {options.bin_factor}")
    if options.background is not None and options.background not in BACKGROUNDS:
        raise RequestError(f"`background` must be one of {', '.join(BACKGROUNDS)}, "
                           f"got {options.background!r}")
    if options.background in ("masked-polynomial", "interpolate") and options.background_region is None:
        raise RequestError(f"`background` {options.background} needs `background_region` R0:R1,C0:C1 "
                           "(the sample's region, left out of the background)")
    if options.background_order is not None and not 0 <= options.background_order <= 5:
        raise RequestError(f"`background_order` must be 0..5, got {options.background_order}")
    if not options.sigma_px > 0:
        raise RequestError(f"`sigma_px` must be > 0, got {options.sigma_px}")
    if options.export is not None and options.export not in EXPORTS:
        raise RequestError(f"`export` must be netcdf or mat, got {options.export!r}")


def region_mask(shape: tuple[int, int], region: tuple[int, int, int, int]) -> np.ndarray:
    """True outside the half-open region (row0, row1, col0, col1): the background pixels."""
    r0, r1, c0, c1 = region
    if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
        raise RequestError(f"`background_region` {r0}:{r1},{c0}:{c1} is not inside the fitted "
                           f"{shape[0]}x{shape[1]} map (rows 0..{shape[0]}, columns 0..{shape[1]})")
    mask = np.ones(shape, dtype=bool)
    mask[r0:r1, c0:c1] = False
    return mask


def provenance(stored: Any, options: CwAnalysisOptions, result: Any) -> dict[str, Any]:
    """Where the maps come from: the run, the software, the fit and the corrections."""
    import instrument

    md = stored.metadata
    return {"run_id": stored.run_id, "run_dir": str(stored.run_dir), "command": md.get("command"),
            "started_at": md.get("started_at"), "simulated": md.get("simulated"),
            "run_software_version": md.get("software_version"),
            "analysis_software_version": instrument.__version__, "analysis_options": asdict(options),
            "fit_options": result.fit_off.options, "corrections": result.corrections, "drift": result.drift}


def reanalyse_cw(out: Path, stored: Any, options: CwAnalysisOptions, tag: str,
                 figure: bool = True) -> CwReanalysis:
    """Re-fit ``stored`` (a CW-ODMR run in ``out``) with ``options``; results go beside it as ``tag``.

    Raises:
        RequestError: options that cannot work.
        ValueError: the run cannot be fitted (incomplete, or data the estimator refuses).
        ConnectionError: the dask scheduler cannot be reached.
    """
    from instrument.analysis.cw_run import analyse_cw_run, save_analysis
    from instrument.services.report import pixel_size_of, plot_cw_result

    check_options(options)
    mask = None
    if options.background_region is not None:
        rows, cols = stored.images("signal").shape[1:]
        f = options.bin_factor
        mask = region_mask((rows // f, cols // f), options.background_region)
    result = analyse_cw_run(stored, isotope=options.hyperfine, model=options.model,
                            background_order=options.background_order, scheduler=options.scheduler,
                            estimator=ESTIMATORS[options.estimator], bin_factor=options.bin_factor,
                            outliers=options.outliers, background=options.background,
                            background_mask=mask, sigma_px=options.sigma_px)
    stored_options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()}
    path = save_analysis(result, stored.run_dir, f"analysis-{tag}.h5", stored_options)
    pixel = pixel_size_of(stored.metadata)
    binned_pixel = None if pixel is None else pixel * options.bin_factor
    fig = None
    if figure:
        fig = plot_cw_result(result, stored.run_dir / f"figure-{tag}.png",
                             title=f"run {stored.run_id} re-analysed: {tag}", pixel_size_m=binned_pixel)
    export_file = None
    if options.export is not None:
        export_file = export_maps(result, stored.run_dir / f"analysis-{tag}{EXPORTS[options.export]}",
                                  options.export, binned_pixel, provenance(stored, options, result))
    lo, hi = result.field_range_t
    summary = {"file": str(path), **stored_options, "b_nv_range_t": [lo, hi],
               "converged_fraction": result.converged_fraction, "corrections": result.corrections,
               "drift": result.drift, "export_file": None if export_file is None else str(export_file)}
    add_run_metadata(out, stored.run_id, {f"analysis_{tag}": summary})
    return CwReanalysis(result, path, fig, export_file, summary)


def export_maps(result: Any, path: Path, fmt: str, pixel_size_m: float | None,
                provenance_: dict[str, Any]) -> Path:
    """Write the field and resonance maps to netCDF or .mat with coordinates and provenance.

    Without a known pixel size the coordinates are in pixels of 1 m (said in the provenance).
    """
    from instrument.analysis.export import to_mat, to_netcdf

    maps = {"b_nv_t": result.b_nv_t, "b_nv_err_t": result.b_nv_err_t,
            "center_off_hz": result.center_off_hz, "center_on_hz": result.center_on_hz,
            "converged": result.converged.astype(np.int8)}
    if pixel_size_m is None:
        provenance_ = {**provenance_, "pixel_size": "unknown: coordinates are pixel indices"}
    writer = to_netcdf if fmt == "netcdf" else to_mat
    return writer(maps, path, pixel_size_m or 1.0, provenance_)
