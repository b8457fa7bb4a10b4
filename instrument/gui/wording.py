"""The GUI's words for the settings that error texts name (``instrument.settings``): widget labels."""

from __future__ import annotations

from instrument.settings import phrase

LABELS = {
    "points": "points",
    "center_hz": "centre",
    "span_hz": "span",
    "power_dbm": "MW power",
    "current_a": "coil current",
    "coils": "coils",
    "configs": "configurations",
    "frames_per_point": "frames per point",
    "exposure_s": "exposure",
    "frame_period_s": "frame period",
    "mw_stepping": "MW stepping",
    "seconds": "capture length",
    "start": "sweep start",
    "stop": "sweep stop",
    "pi_ns": "pi pulse",
    "frequency_hz": "MW frequency",
    "out": "output folder",
    "max_contrast_drift": "contrast drift",
    "max_rate_drift": "count-rate drift",
    "max_bias_drift_ut": "bias drift",
    "health_action": "on health failure",
    "repeats": "repeats",
    "order": "frequency order",
    "max_runtime": "max runtime",
}


def gui_label(setting: str) -> str:
    """The label of the widget that holds ``setting``, as the operator sees it."""
    return LABELS.get(setting, setting.replace("_", " "))


def gui_words(text: str) -> str:
    """An error text from the lower layers, its settings named by the GUI's widget labels."""
    return phrase(text, gui_label)
