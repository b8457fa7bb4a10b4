"""Live views: an image with colour bar and a cursor readout in physical units, and spectra plots.

Images are row-major (row, col) arrays; the axes show micrometres on the sample, from the image's
top-left corner, using the camera's pixel size.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

from instrument.gui.live_data import Spectra

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

CW_GROUPS = {0: "I-off", 1: "I-on"}
# Axis of a swept quantity by its SI unit: (display unit, scale).
DISPLAY_UNITS = {"Hz": ("MHz", 1e-6), "s": ("us", 1e6)}
GROUP_PENS = {0: "#1f77b4", 1: "#d62728"}
REFRESH_INTERVAL_MS = 33  # at most ~30 repaints/s: smooth for the eye
MAX_GUI_SHARE = 0.25
"""Largest fraction of the time the live repaint may take: the rest is left to the acquisition."""


def next_refresh_ms(update_cost_ms: float) -> int:
    """The refresh timer's next interval after an update (repaint included) that took ``update_cost_ms``:
    put off so the GUI takes at most ``MAX_GUI_SHARE`` of the time, never sooner than the normal rate."""
    return max(REFRESH_INTERVAL_MS, int(update_cost_ms * (1 / MAX_GUI_SHARE - 1)))


class ImagePanel(QWidget):
    """An image with a colour bar; hovering reads out position (um) and value, clicking picks a pixel.

    Signals:
        pixel_chosen(row, col)
    """

    pixel_chosen = pyqtSignal(int, int)

    def __init__(self, pixel_size_m: float | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixel_size_m = pixel_size_m
        self.unit = ""
        self.data: np.ndarray | None = None
        self.pixel = (0, 0)
        self.frames_shown = 0

        self.canvas = pg.GraphicsLayoutWidget()
        self.plot = self.canvas.addPlot()
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        axis_unit = "um" if pixel_size_m else "px"
        self.plot.setLabel("bottom", f"x ({axis_unit})")
        self.plot.setLabel("left", f"y ({axis_unit})")
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.marker = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("r", width=2), brush=None)
        self.plot.addItem(self.marker)
        self.colour_bar = pg.ColorBarItem(colorMap=pg.colormap.get("viridis"), interactive=False)
        self.colour_bar.setImageItem(self.image, insert_in=self.plot)
        self.title = QLabel("no image yet")
        self.readout = QLabel("move the cursor over the image; click to choose the spectrum's pixel")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.readout)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._mouse_clicked)

    @property
    def _scale(self) -> float:
        """Axis units per pixel."""
        return self.pixel_size_m * 1e6 if self.pixel_size_m else 1.0

    def set_image(self, image: np.ndarray, title: str, unit: str, colour_map: str = "viridis") -> None:
        """Show ``image`` (rows, cols) in ``unit``; NaN pixels stay transparent."""
        first = self.data is None or self.data.shape != image.shape
        self.data = np.asarray(image, dtype=float)
        self.unit = unit
        finite = self.data[np.isfinite(self.data)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if colour_map == "diverging":
            lim = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -lim, lim
            cmap = pg.colormap.get("CET-D1")
        else:
            cmap = pg.colormap.get(colour_map)
        if hi <= lo:
            hi = lo + 1.0
        self.colour_bar.setColorMap(cmap)
        self.image.setImage(self.data, autoLevels=False)
        self.colour_bar.setLevels((lo, hi))
        if first:
            rows, cols = self.data.shape
            self.image.setRect(QRectF(0, 0, cols * self._scale, rows * self._scale))
            self.set_pixel(rows // 2, cols // 2, emit=False)
            self.fit_view()
        self.title.setText(f"{title} ({unit})" if unit else title)
        self.frames_shown += 1

    def fit_view(self) -> None:
        """Show the whole image and nothing much beside it (the view follows the image, not the marker)."""
        if self.data is None:
            return
        rows, cols = self.data.shape
        self.plot.vb.disableAutoRange()
        self.plot.setRange(xRange=(0, cols * self._scale), yRange=(0, rows * self._scale), padding=0)

    def view_rect(self) -> tuple[float, float, float, float]:
        """The visible (x0, x1, y0, y1) in axis units."""
        (x0, x1), (y0, y1) = self.plot.vb.viewRange()
        return x0, x1, y0, y1

    def set_pixel(self, row: int, col: int, emit: bool = True) -> None:
        self.pixel = (row, col)
        s = self._scale
        self.marker.setData([(col + 0.5) * s], [(row + 0.5) * s])
        if emit:
            self.pixel_chosen.emit(row, col)

    def pixel_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(row, col) under a scene position, or None outside the image."""
        if self.data is None:
            return None
        p = self.plot.vb.mapSceneToView(scene_pos)
        row, col = int(np.floor(p.y() / self._scale)), int(np.floor(p.x() / self._scale))
        rows, cols = self.data.shape
        return (row, col) if 0 <= row < rows and 0 <= col < cols else None

    def readout_text(self, row: int, col: int) -> str:
        assert self.data is not None
        value = self.data[row, col]
        where = (f"x = {(col + 0.5) * self._scale:.1f} um, y = {(row + 0.5) * self._scale:.1f} um"
                 if self.pixel_size_m else "")
        return f"{where} (row {row}, col {col}): {value:.5g} {self.unit}".strip()

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        hit = self.pixel_at(scene_pos)
        if hit is not None:
            self.readout.setText(self.readout_text(*hit))

    def _mouse_clicked(self, event: object) -> None:
        hit = self.pixel_at(event.scenePos())  # type: ignore[attr-defined]
        if hit is not None:
            self.set_pixel(*hit)


class SpectrumPanel(QWidget):
    """The spectrum at the chosen pixel and the image-mean spectrum, one curve per sweep group."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = pg.GraphicsLayoutWidget()
        self.pixel_plot = self.canvas.addPlot(row=0, col=0, title="spectrum at pixel")
        self.mean_plot = self.canvas.addPlot(row=1, col=0, title="mean spectrum")
        for plot in (self.pixel_plot, self.mean_plot):
            plot.setLabel("bottom", "MW frequency (MHz)")
            plot.setLabel("left", "lock-in signal (counts)")
            plot.addLegend(offset=(-10, 10))
            plot.showGrid(x=True, y=True, alpha=0.3)
        self.mean_plot.setXLink(self.pixel_plot)
        self._curves: dict[tuple[str, int], pg.PlotDataItem] = {}
        self.group_names: dict[int, str] = dict(CW_GROUPS)
        self.x_scale = 1e-6
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

    def set_axes(self, x_label: str, x_unit: str, y_label: str, group_names: dict[int, str]) -> None:
        """Axis labels for a run: the swept quantity in display units (MHz, us), the signal's name."""
        shown, self.x_scale = DISPLAY_UNITS.get(x_unit, (x_unit, 1.0))
        self.group_names = dict(group_names)
        for plot in (self.pixel_plot, self.mean_plot):
            plot.setLabel("bottom", f"{x_label} ({shown})" if shown else x_label)
            plot.setLabel("left", y_label)
            if plot.legend is not None:
                plot.legend.clear()
            plot.clear()
        self._curves.clear()

    def _curve(self, plot_name: str, group: int, fit: bool = False) -> pg.PlotDataItem:
        key = (plot_name + ("-fit" if fit else ""), group)
        if key not in self._curves:
            plot = self.pixel_plot if plot_name == "pixel" else self.mean_plot
            colour = GROUP_PENS.get(group, "k")
            name = self.group_names.get(group, f"group {group}") + (" fit" if fit else "")
            if fit:
                # Dashed and drawn over the data: a fit is told apart from the measured points at a glance.
                item = plot.plot(pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine), name=name)
                item.setZValue(10)
            else:
                # Lines without symbols: symbols cost more to paint than the live view can afford.
                item = plot.plot(pen=pg.mkPen(colour, width=1.5), name=name)
            self._curves[key] = item
        return self._curves[key]

    def clear(self) -> None:
        for item in self._curves.values():
            item.setData([], [])

    def show_spectra(self, pixel: Spectra, mean: Spectra, row: int, col: int) -> None:
        self.pixel_plot.setTitle(f"spectrum at pixel (row {row}, col {col})")
        for plot_name, spectra in (("pixel", pixel), ("mean", mean)):
            for group, x in spectra.x.items():
                self._curve(plot_name, group).setData(x * self.x_scale, spectra.y[group], connect="finite")

    def show_fit(self, frequencies_hz: np.ndarray, curves: dict[int, np.ndarray]) -> None:
        for group, y in curves.items():
            self._curve("pixel", group, fit=True).setData(frequencies_hz * self.x_scale, y, connect="finite")

    def points_shown(self, plot_name: str = "pixel") -> int:
        """Finite points currently plotted (for tests and the benchmark)."""
        total = 0
        for (name, _), item in self._curves.items():
            if name == plot_name and item.yData is not None:
                total += int(np.count_nonzero(np.isfinite(item.yData)))
        return total
