"""Send a fitted CW-ODMR field map to the dictionary reconstruction; show coefficients and maps.

The dictionary is one B_NV map per coil at the reference drive. For a run of a coil scan it is the
single-coil configurations that scan measured (``instrument.storage.scan_results.measured_dictionary``), so
the result holds on a real station as well. For any other CW-ODMR run it is measured on the
simulated sample (as ``acquire --sim reconstruct`` does), which needs a simulated station.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from instrument.gui.live_views import ImagePanel


@dataclass
class Reconstruction:
    """Coefficients per coil (units of the reference drive) and the maps they explain (T)."""

    run_id: int
    coil_names: list[str]
    coefficients: np.ndarray
    expected: np.ndarray  # from the run's coil currents, NaN where unknown
    measured_t: np.ndarray
    reconstructed_t: np.ndarray
    source: str = "dictionary measured on the simulated sample"


def reconstruct_run_map(station: Any, run_id: int, b_nv_t: np.ndarray, currents_a: np.ndarray,
                        seed: int = 0) -> Reconstruction:
    """LASSO coefficients of the coils that explain ``b_nv_t``, with the sample's dictionary.

    Raises:
        ValueError: no simulated sample to measure the dictionary on, or the map does not match it.
    """
    from instrument.reconstruction.dictionary import DictionaryReconstructor
    from instrument.reconstruction.seed000 import measure_basis
    from instrument.station import simulated_field_maps

    if not station.simulated:
        raise ValueError("reconstruction needs a dictionary of single-coil maps; on a real station "
                         "those come from a coil scan: run one and reconstruct its runs")
    maps = simulated_field_maps(station, seed=seed)
    basis = measure_basis(maps.measure, maps.n_sources, averages=2)
    if basis.shape[1:] != b_nv_t.shape:
        raise ValueError(f"run {run_id}'s map is {b_nv_t.shape[0]}x{b_nv_t.shape[1]} but the station's "
                         f"dictionary is {basis.shape[1]}x{basis.shape[2]}; open the GUI with the run's "
                         "--image-shape")
    measured = np.asarray(b_nv_t, dtype=float)
    # Pixels whose fit failed carry no information: give them the median so they pull on nothing.
    filled = np.where(np.isfinite(measured), measured, np.nanmedian(measured))
    rec = DictionaryReconstructor(basis)
    coefficients = rec.fit(filled)
    names = [station.sample.coil_names[i] for i in maps.live]
    currents = np.asarray(currents_a, dtype=float)
    expected = np.array([currents[i] / maps.drive_current_a if i < len(currents) else np.nan
                         for i in maps.live])
    return Reconstruction(run_id, names, np.asarray(coefficients), expected, measured,
                          rec.reconstruct(coefficients))


def reconstruct_coil_scan_run(run: Any) -> Reconstruction:
    """LASSO coefficients of a coil-scan run's B_NV map, with the dictionary its own scan measured.

    The run's map is its stored analysis (the one the scan made); the dictionary is every
    single-coil configuration of the same scan measured so far. Pixels a dictionary map could not
    fit are left out of the fit. "Driven" is 1 for the coils the configuration switched on.

    Raises:
        ValueError: the run is not part of a coil scan, or its scan has no single-coil map yet.
    """
    import h5py

    from instrument.analysis.cw_run import ANALYSIS_NAME, analyse_cw_run
    from instrument.reconstruction.dictionary import DictionaryReconstructor
    from instrument.storage.scan_results import measured_dictionary

    info = run.metadata.get("coil_scan")
    if not info:
        raise ValueError(f"run {run.run_id} is not part of a coil scan")
    folder = run.run_dir.parent
    names = list(info["coils"])
    dictionary = measured_dictionary(folder, names)
    if not dictionary:
        raise ValueError(f"the coil scan in {folder} has no single-coil configuration measured yet, so "
                         f"no dictionary; measure {', '.join(names)} alone first")
    analysis = run.run_dir / ANALYSIS_NAME
    if analysis.exists():
        with h5py.File(analysis, "r") as f:
            measured = f["b_nv_t"][...].astype(float)
    else:
        measured = analyse_cw_run(run).b_nv_t.astype(float)
    coils = [n for n in names if n in dictionary]
    basis = np.stack([dictionary[n][1] for n in coils]).astype(float)
    if basis.shape[1:] != measured.shape:
        raise ValueError(f"run {run.run_id}'s map is {measured.shape} but its scan's dictionary maps are "
                         f"{basis.shape[1:]}")
    unfit = ~np.isfinite(basis).all(axis=0)
    rec = DictionaryReconstructor(np.where(unfit, 0.0, basis))
    coefficients = np.asarray(rec.fit(np.where(unfit, np.nan, measured)))
    mask = int(info["mask"])
    driven = np.array([float(mask >> names.index(n) & 1) for n in coils])
    runs = ", ".join(f"{n} run {dictionary[n][0]}" for n in coils)
    missing = [n for n in names if n not in dictionary]
    source = (f"dictionary measured by the coil scan in {folder} ({runs})"
              + (f"; not yet measured alone: {', '.join(missing)}" if missing else ""))
    return Reconstruction(run.run_id, coils, coefficients, driven, measured, rec.reconstruct(coefficients),
                          source)


class ReconstructionView(QWidget):
    """Bar chart of the coefficient per coil (fitted and driven) and reconstructed vs measured map."""

    def __init__(self, pixel_size_m: float | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Select a CW-ODMR run in 'Runs' and press Reconstruct.")
        self.summary.setWordWrap(True)
        self.bars = pg.PlotWidget(title="coefficient per coil (1 = the reference drive)")
        self.bars.addLegend()
        self.measured = ImagePanel(pixel_size_m)
        self.reconstructed = ImagePanel(pixel_size_m)
        maps = QHBoxLayout()
        maps.addWidget(self.measured)
        maps.addWidget(self.reconstructed)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.bars, 1)
        layout.addLayout(maps, 2)
        self.result: Reconstruction | None = None

    def show_result(self, result: Reconstruction) -> None:
        self.result = result
        n = len(result.coil_names)
        x = np.arange(n)
        self.bars.clear()
        self.bars.addItem(pg.BarGraphItem(x=x - 0.2, height=result.coefficients, width=0.4,
                                          brush="#1f77b4", name="reconstructed"))
        self.bars.addItem(pg.BarGraphItem(x=x + 0.2, height=np.nan_to_num(result.expected), width=0.4,
                                          brush="#bbbbbb", name="driven in the run"))
        self.bars.getAxis("bottom").setTicks([list(zip(x.tolist(), result.coil_names, strict=True))])
        lim = np.nanmax(np.abs(result.measured_t)) * 1e6
        self.measured.set_image(result.measured_t * 1e6, f"run {result.run_id}: measured B_NV", "uT",
                                "diverging")
        self.reconstructed.set_image(result.reconstructed_t * 1e6, "reconstructed from the dictionary", "uT",
                                     "diverging")
        pairs = zip(result.coil_names, result.coefficients, strict=True)
        active = [name for name, c in pairs if abs(c) > 0.1]
        self.summary.setText(f"run {result.run_id}: active coils {', '.join(active) or 'none'} "
                             f"(|coefficient| > 0.1); map range +-{lim:.1f} uT; {result.source}")
