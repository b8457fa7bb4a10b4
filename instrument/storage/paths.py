"""Checks on an output folder's path that SQLite and the file system would only fail later, obscurely."""

from __future__ import annotations

import os
from pathlib import Path

from instrument.storage.errors import StorageError

# SQLite's unix VFS keeps file names in MAX_PATHNAME = 512 bytes, and opens "<db>-journal" beside the
# database: measured with SQLite 3.40 here, a 500-byte database path opens and a 505-byte one fails
# with "unable to open database file". Keep a margin below that.
MAX_DB_PATH_BYTES = 500
NAME_MAX = 255  # Linux NAME_MAX: bytes in one path component


def run_folder(out_dir: Path, run_id: int) -> Path:
    """The folder of run ``run_id`` in ``out_dir``: the one place the ``run-NNNN`` layout is written."""
    return Path(out_dir) / f"run-{int(run_id):04d}"


def check_out_path(out_dir: Path | str, db_name: str = "runs.db") -> Path:
    """``out_dir`` made absolute, refused when its runs database's path would be too long to open.

    Raises:
        StorageError: a component over 255 bytes, or the database path over ``MAX_DB_PATH_BYTES``.
    """
    path = Path(os.path.abspath(Path(out_dir).expanduser()))
    for part in path.parts:
        if len(part.encode()) > NAME_MAX:
            raise StorageError(f"output folder name {part[:40]}... is {len(part.encode())} bytes long; "
                               f"a file system takes at most {NAME_MAX}; choose a shorter output folder")
    db = len(str(path / db_name).encode())
    if db > MAX_DB_PATH_BYTES:
        raise StorageError(f"output folder {str(path)[:60]}... is too deep: its runs database path would be "
                           f"{db} bytes and SQLite opens at most {MAX_DB_PATH_BYTES}; choose a shorter "
                           "output folder")
    return path
