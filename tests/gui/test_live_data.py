import numpy as np
import pytest

from instrument.gui.live_data import SweepCube
from instrument.storage.runs import Step


def _step(i, config, f, value, shape=(3, 4)):
    img = np.full(shape, value, np.float32)
    return Step(i, {"config": config, "frequency_hz": f, "mean_signal": value}, {"signal": img})


def test_spectra_split_by_group_sorted_and_unmeasured_points_left_out():
    cube = SweepCube()
    cube.open({}, {"signal": (3, 4)}, 6)
    # written out of frequency order on purpose: spectra come back sorted by frequency
    cube.write(_step(0, 0, 2.0e9, 5.0))
    cube.write(_step(1, 0, 1.0e9, 7.0))
    cube.write(_step(3, 1, 1.0e9, 11.0))
    spectra = cube.pixel_spectra(2, 3)
    assert spectra.x_name == "frequency_hz"
    assert sorted(spectra.x) == [0, 1]
    np.testing.assert_array_equal(spectra.x[0], [1.0e9, 2.0e9])
    np.testing.assert_array_equal(spectra.y[0], [7.0, 5.0])
    np.testing.assert_array_equal(spectra.y[1], [11.0])
    np.testing.assert_array_equal(cube.mean_spectra().y[0], [7.0, 5.0])
    assert cube.steps_written == 3


def test_pixel_outside_the_image_is_refused_with_its_coordinates():
    cube = SweepCube()
    cube.open({}, {"signal": (3, 4)}, 2)
    with pytest.raises(IndexError, match=r"\(3, 0\) is outside the 3x4 image"):
        cube.pixel_spectra(3, 0)
    with pytest.raises(IndexError):
        cube.pixel_spectra(0, -1)


def test_open_resets_a_previous_run():
    cube = SweepCube()
    cube.open({}, {"signal": (3, 4)}, 2)
    cube.write(_step(0, 0, 1e9, 1.0))
    cube.open({}, {"signal": (2, 2)}, 4)
    assert cube.image_shape == (2, 2)
    assert cube.steps_written == 0
    assert cube.pixel_spectra(1, 1).x == {}


def test_sequence_without_the_image_gives_empty_spectra_not_an_error():
    cube = SweepCube("signal")
    cube.open({}, {"other": (2, 2)}, 2)
    cube.write(Step(0, {"frequency_hz": 1e9}, {"other": np.zeros((2, 2))}))
    assert cube.image_shape is None
    assert cube.pixel_spectra(0, 0).y == {}


def test_swept_quantity_and_pixel_size_come_from_the_stored_run():
    from instrument.gui.live_data import pixel_size_of, swept_name

    assert swept_name(["mean_signal", "config", "frequency_hz"]) == "frequency_hz"
    assert swept_name(["tau_s", "signal", "reference", "ratio", "ratio_err"]) == "tau_s"
    snapshot = {"instruments": {"camera": {"pixel_size_m": 9.375e-6}}}
    assert pixel_size_of({"station_snapshot": snapshot}) == 9.375e-6
    assert pixel_size_of(snapshot) == 9.375e-6
    # a station without a camera (the SPAD station) has no pixel size: the axes stay in pixels
    assert pixel_size_of({"station_snapshot": {"instruments": {"spad": {}}}}) is None
    assert pixel_size_of({}) is None
