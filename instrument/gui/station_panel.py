"""Station panel: the instruments, their connection state, key settings with units, the safety limits.

Everything shown comes from ``Station.snapshot()`` (cached values, no instrument I/O beyond what the
drivers cache), and the snapshot is only refreshed while no run owns the instruments.
"""

from __future__ import annotations

from typing import Any

from PyQt6.QtWidgets import QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

LIMIT_UNITS = {
    "mw_power_max_dbm": ("MW power ceiling", "dBm", 1.0),
    "coil_current_max_a": ("coil current ceiling", "mA", 1e3),
    "coil_ramp_rate_a_per_s": ("coil ramp rate", "mA/s", 1e3),
    "pulse_min_s": ("shortest pulse", "ns", 1e9),
}
SIM_BANNER_STYLE = "background:#c62828;color:white;font-weight:bold;padding:6px;"


def format_value(value: Any, unit: str = "") -> str:
    """A setting as the operator reads it: numbers with their unit, other values as text."""
    if value is None:
        return "not read yet"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, dict):
        text = ", ".join(f"{v}" for v in value.values())
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def instrument_rows(snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    """(setting, value-with-unit-and-range) rows of one instrument's snapshot."""
    if "parameters" in snapshot:  # a QCoDeS instrument
        rows = []
        for name, p in snapshot["parameters"].items():
            if p.get("value") is None and name != "IDN":
                continue
            text = format_value(p.get("value"), p.get("unit", ""))
            vals = p.get("vals") or ""
            if vals.startswith("<Numbers"):
                text += f"   (range {vals.removeprefix('<Numbers ').removesuffix('>')})"
            rows.append((p.get("label") or name, text))
        return rows
    return [(key, format_value(value)) for key, value in snapshot.items() if key != "name"]


def connection_state(snapshot: dict[str, Any]) -> str:
    return f"error: {snapshot['snapshot_error']}" if "snapshot_error" in snapshot else "connected"


class StationPanel(QWidget):
    """Shows a station; ``refresh()`` re-reads its snapshot (call only while idle)."""

    def __init__(self, station: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        layout = QVBoxLayout(self)
        self.banner = QLabel(
            "SIMULATED STATION: no hardware is connected; data are marked simulated"
            if station.simulated else f"LIVE HARDWARE: {station.name}"
        )
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(SIM_BANNER_STYLE if station.simulated
                                  else "background:#2e7d32;color:white;font-weight:bold;padding:6px;")
        layout.addWidget(self.banner)
        layout.addWidget(QLabel(f"<b>{station.name}</b><br><small>{station.source}</small>"))
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["instrument / setting", "state / value"])
        self.tree.setColumnWidth(0, 170)
        layout.addWidget(self.tree)
        self.refresh_button = QPushButton("Refresh settings")
        self.refresh_button.clicked.connect(self.refresh)
        layout.addWidget(self.refresh_button)
        self.refresh()

    def set_busy(self, busy: bool) -> None:
        """While a run owns the instruments the snapshot is not re-read."""
        self.refresh_button.setEnabled(not busy)

    def refresh(self) -> None:
        snap = self.station.snapshot()
        self.tree.clear()
        for role, inst in snap["instruments"].items():
            kind = type(self.station.instruments[role]).__name__ if role in self.station.instruments else ""
            item = QTreeWidgetItem([f"{role} ({kind})", connection_state(inst)])
            for setting, value in instrument_rows(inst):
                item.addChild(QTreeWidgetItem([setting, value]))
            self.tree.addTopLevelItem(item)
            item.setExpanded(role != "mw")
        limits = QTreeWidgetItem(["safety limits", "from the station file"])
        for key, value in snap["limits"].items():
            label, unit, scale = LIMIT_UNITS.get(key, (key, "", 1.0))
            limits.addChild(QTreeWidgetItem([label, format_value(float(value) * scale, unit)]))
        self.tree.addTopLevelItem(limits)
        limits.setExpanded(True)
