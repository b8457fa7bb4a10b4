"""The Live tab of the main window: what is shown (source line), the image with its choice of view
(latest frame, fitted maps, a coil scan's field map) and the spectra at the chosen pixel."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from instrument.gui.live_data import IMAGE_LABELS
from instrument.gui.live_views import ImagePanel, SpectrumPanel

LIVE_FRAME = "latest frame"


class LivePane(QWidget):
    """Source line, image (with its view choice) and spectra, side by side."""

    def __init__(self, pixel_size_m: float | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image_panel = ImagePanel(pixel_size_m)
        self.image_choice = QComboBox()
        self.image_choice.addItem(LIVE_FRAME)
        self.spectrum_panel = SpectrumPanel()
        self.source_label = QLabel("no data yet: start a scan or open a stored run")
        image_box = QWidget()
        image_layout = QVBoxLayout(image_box)
        image_layout.setContentsMargins(0, 0, 0, 0)
        choice_row = QHBoxLayout()
        choice_row.addWidget(QLabel("show"))
        choice_row.addWidget(self.image_choice, 1)
        image_layout.addLayout(choice_row)
        image_layout.addWidget(self.image_panel, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(image_box)
        split.addWidget(self.spectrum_panel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.source_label)
        layout.addWidget(split, 1)

    def reset_image_choices(self) -> None:
        """Only the latest frame to choose (a new measurement or run), without a change signal."""
        self.image_choice.blockSignals(True)
        self.image_choice.clear()
        self.image_choice.addItem(LIVE_FRAME)
        self.image_choice.blockSignals(False)

    def offer(self, names: list[str], show: str) -> None:
        """Add the views ``names`` not offered yet and show ``show``."""
        for name in names:
            if self.image_choice.findText(name) < 0:
                self.image_choice.addItem(name)
        self.image_choice.setCurrentText(show)

    def set_spectrum_axes(self, x_name: str, x_unit: str, image_name: str, is_cw: bool) -> None:
        label = {"frequency_hz": "MW frequency", "tau_s": "pulse time"}.get(x_name, x_name)
        y_label, y_unit = IMAGE_LABELS.get(image_name, (image_name, ""))
        self.spectrum_panel.set_axes(label, x_unit, f"{y_label} ({y_unit})" if y_unit else y_label,
                                     {0: "I-off", 1: "I-on"} if is_cw else {0: "data"})
