"""Exclusive locks on an output folder (and on a station): one process measures into a folder at a time.

The lock is ``fcntl.flock`` on a small file holding who took it (pid, command, start time). The
kernel releases a flock when its process dies, kill -9 and power cuts included, so a stale lock file
never blocks the next run; its contents only tell a second process who is in the way. Locks are
held per process and re-entrant: a process that already holds a folder's lock (a GUI measuring twice,
a coil scan's configurations) takes it again for free.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from instrument.storage.errors import FolderBusy

LOCK_NAME = ".acquire.lock"

_held: dict[str, tuple[IO[str], int]] = {}  # resolved lock path -> (open file, hold count)
_guard = threading.Lock()


def _holder_text(path: Path) -> str:
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process (its lock file says nothing more)"
    pid, command, since = info.get("pid", "?"), info.get("command", "?"), info.get("since", "?")
    return f"process {pid} ({command}) since {since}"


def acquire(lock_path: Path, what: str, command: str) -> Path:
    """Take the exclusive lock ``lock_path`` for this process, or raise ``FolderBusy`` at once.

    Args:
        lock_path: the lock file (created if missing).
        what: what the lock guards, for the message (``output folder /data/runs``).
        command: this process's command line, recorded for whoever finds the lock taken.

    Raises:
        FolderBusy: another live process holds it; the message says which (pid, command, since).
    """
    key = str(Path(lock_path).resolve())
    with _guard:
        if key in _held:
            f, count = _held[key]
            _held[key] = (f, count + 1)
            return Path(key)
        f = open(key, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise FolderBusy(f"{what} is in use by {_holder_text(Path(key))}; wait for it to finish, "
                             f"or stop it, or use another one") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "command": command,
                            "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        f.flush()
        _held[key] = (f, 1)
        return Path(key)


def release(lock_path: Path) -> None:
    """Drop one hold of ``lock_path``; the last one unlocks it (the file stays: it is harmless)."""
    key = str(Path(lock_path).resolve())
    with _guard:
        if key not in _held:
            return
        f, count = _held[key]
        if count > 1:
            _held[key] = (f, count - 1)
            return
        del _held[key]
        f.close()  # closing the descriptor releases the flock


def release_all() -> None:
    """Drop every lock this process holds (at the end of a command)."""
    with _guard:
        files = [f for f, _ in _held.values()]
        _held.clear()
    for f in files:
        f.close()


def held_here(lock_path: Path) -> bool:
    """Whether this process holds ``lock_path``."""
    return str(Path(lock_path).resolve()) in _held


def folder_is_free(out_dir: Path) -> bool:
    """Whether no process (this one included) holds the lock on ``out_dir`` right now."""
    path = Path(out_dir) / LOCK_NAME
    if held_here(path):
        return False
    if not path.exists():
        return True
    try:
        with open(path, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True  # closing releases it again
    except OSError:
        return False


def lock_folder(out_dir: Path, command: str) -> Path:
    """Take the lock on output folder ``out_dir`` (see ``acquire``)."""
    return acquire(Path(out_dir) / LOCK_NAME, f"output folder {out_dir}", command)


def station_lock_path(station_file: str | Path | None) -> Path:
    """The lock file of a real station: one per station file, in the user's runtime directory."""
    import hashlib

    from platformdirs import user_runtime_dir

    name = str(Path(station_file).resolve()) if station_file else "bundled-default-station"
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    try:
        folder = Path(user_runtime_dir("qdm-acquire", appauthor=False, ensure_exists=True))
    except OSError:  # no usable runtime directory (a container without /run/user)
        import tempfile

        folder = Path(tempfile.gettempdir()) / f"qdm-acquire-{os.getuid()}"
        folder.mkdir(exist_ok=True)
    return folder / f"station-{digest}.lock"


def lock_station(station_file: str | Path | None, command: str) -> Path:
    """Take the lock on a real station: its instruments can have only one owner."""
    label = f"station {station_file}" if station_file else "the default station"
    return acquire(station_lock_path(station_file), label, command)
