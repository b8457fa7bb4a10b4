"""Bad reconstruction inputs are refused naming the file and the fix; results are never overwritten."""

import pickle

import numpy as np
import pytest

from instrument.reconstruction.array_files import load_array, write_result
from instrument.reconstruction.relaxometry import RelaxometryGeometry


@pytest.mark.parametrize("content", [b"\x93NUMPY garbage \x00\xff" * 20, b"just some text\n", b""])
def test_a_garbage_or_text_npy_names_the_file_and_never_suggests_unsafe_loading(tmp_path, content):
    path = tmp_path / "b.npy"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_array(path)
    text = str(err.value)
    assert str(path) in text and "numpy.save" in text
    assert "allow_pickle" not in text and "unsafe" not in text
    if not content.startswith(b"\x93NUMPY"):
        assert "is not a NumPy .npy file" in text and "pickled" not in text


def test_a_pickled_object_array_is_refused_as_unsafe_to_load(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled Python objects, which are never loaded") as err:
        load_array(path)
    assert "allow_pickle" not in str(err.value)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"obj\.npy is not a NumPy \.npy file .*a Python pickle"):
        load_array(path)


def test_complex_and_empty_arrays_are_refused_by_name(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((4, 3, 3), complex))
    with pytest.raises(ValueError, match=r"c\.npy holds complex values.*np\.abs"):
        load_array(tmp_path / "c.npy")
    np.save(tmp_path / "e.npy", np.zeros((0, 5)))
    with pytest.raises(ValueError, match=r"e\.npy holds an empty array \(shape \(0, 5\)\)"):
        load_array(tmp_path / "e.npy")
    np.savez(tmp_path / "k.npz", a=np.ones(3))
    with pytest.raises(KeyError, match="it holds"):
        load_array(tmp_path / "k.npz", "b")


def test_a_reversed_frequency_range_is_refused():
    with pytest.raises(ValueError, match="frequencies_hz must increase"):
        RelaxometryGeometry(shape=(8, 8), frequencies_hz=tuple(np.linspace(3e9, 1e9, 10)))


def test_nan_mask_and_empty_map_are_refused_before_training():
    from instrument.reconstruction.dip import reconstruct_dip

    kw = {"pixel_m": 1e-6, "standoff_m": 1e-6, "thickness_m": 1e-8, "epochs": 1}
    mask = np.ones((2, 8, 8))
    mask[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="mask contains NaN"):
        reconstruct_dip(np.zeros((8, 8)), mask, **kw)
    with pytest.raises(ValueError, match=r"b_nv_t is empty .*shape \(0, 8\)"):
        reconstruct_dip(np.zeros((0, 8)), np.ones((2, 0, 8)), **kw)


def test_a_second_result_goes_beside_the_first(tmp_path):
    def draw(png):
        png.write_bytes(b"png")
        return png

    first = write_result(tmp_path, "dip_result", draw, m=np.ones(2))
    second = write_result(tmp_path, "dip_result", draw, m=np.zeros(2))
    assert first[0].name == "dip_result.npz" and second[0].name == "dip_result-2.npz"
    assert second[1].name == "dip_result-2.png"
    assert np.load(first[0])["m"].tolist() == [1, 1]
