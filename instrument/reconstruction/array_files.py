"""Read and write the arrays the neural reconstructions consume and produce (.npy, .npz, .h5).

The CLI hands reconstruction functions file paths; these helpers turn them into arrays with clear
errors (missing file, unknown extension, missing dataset) and write results back next to a figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def load_array(path: str | Path, dataset: str | None = None) -> np.ndarray:
    """Load one array from ``.npy``, ``.npz`` (``dataset`` = key) or ``.h5/.hdf5`` (``dataset`` = path).

    With ``dataset=None`` an .npz or HDF5 file must hold exactly one array.
    """
    array = _load(Path(path), dataset)
    return _checked(Path(path), array)


def _checked(path: Path, array: np.ndarray) -> np.ndarray:
    """Only real numbers go to a reconstruction: refuse empty, complex or non-numeric arrays by name."""
    if array.dtype.kind == "c":
        raise ValueError(f"{path} holds complex values ({array.dtype}); the reconstructions take real "
                         "values: save the magnitude (np.abs) or the real part")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {array.dtype} values, not numbers; save a numeric array")
    if array.size == 0:
        raise ValueError(f"{path} holds an empty array (shape {array.shape})")
    return array


def _load_npy(path: Path, loader: Callable[[], np.ndarray]) -> np.ndarray:
    try:
        return loader()
    except KeyError:
        raise  # a missing key of an .npz: _pick's message says which keys there are
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{path} holds pickled Python objects, which are never loaded (a pickle can "
                             "run code); save a plain numeric array with numpy.save") from None
        raise ValueError(f"{path} is not a readable NumPy file ({exc}); save the array with numpy.save") \
            from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a NumPy file ({exc}); save the array with numpy.save") from None
    except Exception as exc:  # noqa: BLE001 - unpickling garbage raises anything; the file is the problem
        raise ValueError(f"{path} is not a NumPy file ({type(exc).__name__}); save the array with "
                         "numpy.save") from None


def _load(path: Path, dataset: str | None) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"no such array file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with open(path, "rb") as f:
            head = f.read(6)
        if head != b"\x93NUMPY":  # text, a pickle, anything else: never handed to np.load's pickle path
            kind = "a Python pickle" if head[:1] == b"\x80" else "text or other data"
            raise ValueError(f"{path} is not a NumPy .npy file (no .npy header; it looks like {kind}); "
                             "save the array with numpy.save")
        return _load_npy(path, lambda: np.load(path, allow_pickle=False))
    if suffix == ".npz":
        def npz() -> np.ndarray:
            with np.load(path, allow_pickle=False) as data:
                return _pick(path, dict(data), dataset)
        return _load_npy(path, npz)
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            if dataset is not None:
                if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                    raise KeyError(f"{path} has no dataset {dataset!r}")
                return np.asarray(f[dataset][()])
            names: list[str] = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            if len(names) != 1:
                raise KeyError(f"{path} holds datasets {names}; name one with dataset=...")
            return np.asarray(f[names[0]][()])
    raise ValueError(f"unsupported array file {path}: use .npy, .npz, .h5 or .hdf5")


def _pick(path: Path, arrays: dict[str, np.ndarray], key: str | None) -> np.ndarray:
    if key is not None:
        if key not in arrays:
            raise KeyError(f"{path} has no array {key!r}; it holds {sorted(arrays)}")
        return arrays[key]
    if len(arrays) != 1:
        raise KeyError(f"{path} holds arrays {sorted(arrays)}; name one with dataset=...")
    return next(iter(arrays.values()))


def save_arrays(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write named result arrays to one ``.npz`` (or ``.h5``) file and return its path."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=np.asarray(value))
        return path
    if path.suffix.lower() != ".npz":
        raise ValueError(f"results go to .npz or .h5, got {path}")
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def free_stem(output_dir: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... : the first name with neither its .npz nor its .png taken,
    so a second reconstruction never overwrites the first."""
    n, name = 1, stem
    while (output_dir / f"{name}.npz").exists() or (output_dir / f"{name}.png").exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def write_result(output_dir: str | Path, stem: str, draw: Callable[[Path], Path],
                 **arrays: np.ndarray) -> tuple[Path, Path]:
    """Write ``<stem>.npz`` and the figure ``draw(<stem>.png)`` into ``output_dir`` (made if missing).

    An earlier result is kept: the new one then goes to ``<stem>-2`` (``-3``...). Returns the arrays
    file and the figure path.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = free_stem(out, stem)
    return save_arrays(out / f"{stem}.npz", **arrays), draw(out / f"{stem}.png")
