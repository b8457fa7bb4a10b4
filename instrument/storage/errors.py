"""Storage errors, importable without h5py or QCoDeS (front ends catch them in ``acquire --help`` time).

Every message names the file or folder, says what is wrong and what to do; none names a CLI flag.
"""

from __future__ import annotations

import errno
import sqlite3


class StorageError(RuntimeError):
    """The output location cannot be used; the message says why and what to do."""


class StorageWriteFailed(StorageError):
    """A step could not be stored (full disk, I/O error): the run stops, what was stored is kept.

    Attributes:
        steps_kept: steps stored completely (in the database and the image file) before the failure.
        disk_full: whether the cause is a full disk (or quota).
    """

    def __init__(self, message: str, steps_kept: int, disk_full: bool) -> None:
        super().__init__(message)
        self.steps_kept = steps_kept
        self.disk_full = disk_full


class FolderBusy(StorageError):
    """Another process holds the lock on an output folder (or a station); the message says who."""


class CorruptDatabase(StorageError):
    """The runs database cannot be read; the message names the file and how to recover."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (OSError, sqlite3 or h5py error, or one raised from it) means "no space left"."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e).lower()
        if isinstance(e, sqlite3.Error) and ("disk is full" in text or "disk i/o" in text and "full" in text):
            return True
        if "no space left" in text or "disk is full" in text or "quota exceeded" in text:
            return True
        e = e.__cause__ or e.__context__
    return False
