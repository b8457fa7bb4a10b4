"""Folder and station locks: one owner at a time, the holder named, nothing stale after kill -9."""

import subprocess
import sys

import pytest

from instrument.storage import folder_lock
from instrument.storage.errors import FolderBusy

HOLD = ("import sys, time; from instrument.storage import folder_lock as f; "
        "getattr(f, sys.argv[1])(sys.argv[2], 'acquire odmr --points 61'); print('locked', flush=True); "
        "time.sleep(60)")


def hold(kind, target):
    p = subprocess.Popen([sys.executable, "-c", HOLD, kind, str(target)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


@pytest.mark.parametrize("kind", ["lock_folder", "lock_station"])
def test_a_held_lock_names_its_holder_and_dies_with_it(tmp_path, kind, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    target = tmp_path / ("out" if kind == "lock_folder" else "station.yaml")
    target.mkdir() if kind == "lock_folder" else target.write_text("name: x\n")
    holder = hold(kind, target)
    try:
        with pytest.raises(FolderBusy, match=rf"in use by process {holder.pid} \(acquire odmr --points 61\) "
                                             r"since \d{4}-\d\d-\d\d"):
            getattr(folder_lock, kind)(target, "acquire second")
    finally:
        holder.kill()
        holder.wait()
    path = getattr(folder_lock, kind)(target, "acquire second")  # the kernel freed the dead holder's lock
    assert folder_lock.held_here(path)
    folder_lock.release_all()
    assert not folder_lock.held_here(path)


def test_locks_are_reentrant_within_a_process(tmp_path):
    first = folder_lock.lock_folder(tmp_path, "a")
    assert folder_lock.lock_folder(tmp_path, "a") == first
    folder_lock.release(first)
    assert folder_lock.held_here(first) and not folder_lock.folder_is_free(tmp_path)
    folder_lock.release(first)
    assert not folder_lock.held_here(first) and folder_lock.folder_is_free(tmp_path)
