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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such array file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return _pick(path, dict(data), dataset)
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


def write_result(output_dir: str | Path, stem: str, draw: Callable[[Path], Path],
                 **arrays: np.ndarray) -> tuple[Path, Path]:
    """Write ``<stem>.npz`` and the figure ``draw(<stem>.png)`` into ``output_dir`` (made if missing).

    Returns the arrays file and the figure path.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return save_arrays(out / f"{stem}.npz", **arrays), draw(out / f"{stem}.png")
