"""Figures: physical axes with a scale bar, plain colour-bar numbers, fits drawn apart from data, and
no backend switching by the library."""

import io
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

from instrument.analysis.cw_run import CwFieldMap
from instrument.services.report import cw_figure, pixel_size_of, plot_cw_result, scale_bar_um

ROWS, COLS = 8, 10


def _fit(center_hz):
    shape = (ROWS, COLS)
    return SimpleNamespace(model="lorentzian", hyperfine=None, center=center_hz, fwhm=np.full(shape, 1e6),
                           baseline=np.full(shape, 100.0), amplitude=np.full(shape, 10.0))


@pytest.fixture
def result():
    freqs = np.linspace(2.780e9, 2.790e9, 21)
    rng = np.random.default_rng(0)
    center_off = 2.7852e9 + rng.normal(0, 20e3, (ROWS, COLS))  # the map the old colour bar read as +2.785e3
    b_nv = rng.normal(0, 2e-6, (ROWS, COLS))
    center_on = center_off - b_nv * 28.025e9
    spectra = np.zeros((2, ROWS, COLS, len(freqs)))
    return CwFieldMap(freqs, spectra, center_off, center_on, b_nv, np.full_like(b_nv, 1e-7),
                      np.ones((ROWS, COLS), bool), _fit(center_off), _fit(center_on))


def _drawn(fig):
    fig.savefig(io.BytesIO(), format="png")  # draws: tick labels and offsets are decided now
    return fig


def test_maps_have_micrometre_axes_and_a_scale_bar(result):
    fig = _drawn(cw_figure(result, pixel_size_m=1.5e-6))
    spectrum, resonance, field = fig.axes[:3]
    for ax in (resonance, field):
        assert ax.get_xlabel() == "x (um)" and ax.get_ylabel() == "y (um)"
        assert ax.images[0].get_extent() == pytest.approx([0, COLS * 1.5, ROWS * 1.5, 0])
        assert any(t.get_text() == "2 um" for t in ax.texts)  # 15 um wide: a 2 or 5 um bar, not 7.3
    assert spectrum.get_xlabel() == "MW frequency (MHz)"


def test_without_a_pixel_size_the_axes_say_pixels(result):
    fig = cw_figure(result)
    assert fig.axes[1].get_xlabel() == "column (px)" and not fig.axes[1].texts


def test_colour_bars_read_in_plain_numbers(result):
    fig = _drawn(cw_figure(result, pixel_size_m=1e-6))
    bars = [ax for ax in fig.axes[3:]]
    assert bars, "a colour bar per map"
    for bar in bars:
        assert bar.yaxis.get_major_formatter().get_offset() == ""
        labels = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
        assert labels and not any("e" in text or text.startswith("+") for text in labels), labels
    resonance_labels = [float(t.get_text().replace("\u2212", "-")) for t in bars[0].get_yticklabels()
                        if t.get_text()]
    assert all(2784 < v < 2786.5 for v in resonance_labels)  # MHz, as the label says, not offsets
    assert bars[0].get_ylabel() == "fitted resonance, I-off (MHz)"


def test_fit_lines_are_drawn_apart_from_the_data_points(result):
    spectrum = cw_figure(result).axes[0]
    styles = {line.get_label(): (line.get_linestyle(), line.get_marker()) for line in spectrum.lines}
    assert styles["I-off data"] == ("None", "o") and styles["I-on data"] == ("None", "o")
    assert styles["I-off fit"][0] == "-" and styles["I-off fit"][1] in ("None", "", None)


def test_saving_a_figure_never_switches_the_backend(result, tmp_path):
    before = matplotlib.get_backend()
    path = plot_cw_result(result, tmp_path / "f.png", pixel_size_m=1e-6)
    assert path.stat().st_size > 10_000
    assert matplotlib.get_backend() == before


def test_scale_bar_and_pixel_size_helpers():
    assert scale_bar_um(150.0) == 25 or scale_bar_um(150.0) == 20
    assert scale_bar_um(10.0) == 2
    assert pixel_size_of({"station_snapshot": {"instruments": {"camera": {"pixel_size_m": 5e-7}}}}) == 5e-7
    assert pixel_size_of({"instruments": {"mw": {}}}) is None
