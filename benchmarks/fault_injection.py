"""Replay the faults of issue 16 against the simulated microscope and print what each one did.

    python benchmarks/fault_injection.py [--keep DIR]

Each fault runs the real ``acquire`` entry point (in this process, or as a child process where the
fault is a signal or a kill from outside) with the failure injected: a full disk (ENOSPC from SQLite
or HDF5, or a frame writer whose reserve no disk has), SIGTERM, Ctrl-C, kill -9, a second process on
the same folder, a damaged database, and bad input. For each it checks the exit status, what was kept
on disk, and the message, and prints one table row: fault, outcome, data kept, message. A fault
"survived cleanly" when the exit status follows the convention, nothing stored was lost or left
inconsistent, and the message is one line without a traceback that names the cause. The figures at
the end are what the issue asks for: faults tried, survived cleanly, data lost, unclear messages.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import io
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

FAST = ["--sim", "--image-shape", "8x8"]
ODMR = ["odmr", "--points", "5", "--frames-per-point", "1", "--no-figure"]
COIL_STATION = str(ROOT / "instrument" / "stations" / "sim_coil_board.yaml")
SIM_YAML = (ROOT / "instrument" / "stations" / "sim.yaml").read_text()


@dataclass
class Row:
    fault: str
    outcome: str
    kept: str
    message: str
    clean: bool
    lost: bool
    clear: bool


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(argv: list[str]) -> Result:
    """``acquire ARGV`` in this process; argparse's own refusals count as exit status 2."""
    from instrument.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


def child(argv: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "instrument.cli", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def one_line(text: str) -> str:
    lines = [s for s in text.strip().splitlines() if s.strip() and not s.startswith(("  ", "\r"))]
    return lines[-1].strip() if lines else ""


def clear(err: str, *must: str) -> bool:
    return "Traceback" not in err and all(m in err for m in must)


def run_status(out: Path, run_id: int = 1) -> tuple[str, int, int]:
    """(status, database rows, frames counted) of a stored run; ('missing', 0, 0) if there is none."""
    from instrument.storage.runs import StorageError, load_run

    try:
        run = load_run(out, run_id)
    except StorageError:
        return "missing", 0, 0
    rows = max((len(v) for v in run.scalars.values()), default=0)
    try:
        frames = run.steps_done
    except OSError:
        frames = -1
    return str(run.metadata.get("status")), rows, frames


def consistent(out: Path, run_id: int = 1) -> tuple[str, bool]:
    status, rows, frames = run_status(out, run_id)
    return f"run {run_id} {status}: {rows} rows, {frames} frames", rows == frames and status != "running"


@contextlib.contextmanager
def signal_at_step(at: int, signum: int) -> Iterator[None]:
    from sequences.cw_odmr import CwOdmrSweep

    real = CwOdmrSweep.run

    def run(self, instruments, *plan):  # the engine hands a planned sequence its plan
        for i, step in enumerate(real(self, instruments, *plan)):
            if i == at:
                os.kill(os.getpid(), signum)
            yield step

    with mock.patch.object(CwOdmrSweep, "run", run):
        yield


@contextlib.contextmanager
def rows_fail_after(n: int, exc: BaseException) -> Iterator[None]:
    from qcodes.dataset.data_set import DataSet

    real, calls = DataSet.add_results, {"n": 0}

    def add_results(self, results):
        calls["n"] += 1
        if calls["n"] > n:
            raise exc
        return real(self, results)

    with mock.patch.object(DataSet, "add_results", add_results):
        yield


# ---- the faults ---------------------------------------------------------------------------------

FAULTS: list[tuple[str, Callable[[Path], Row]]] = []


def fault(name: str) -> Callable:
    def register(fn: Callable[[Path], Row]) -> Callable[[Path], Row]:
        FAULTS.append((name, fn))
        return fn

    return register


@fault("odmr: database disk full (ENOSPC) at step 5")
def _db_full(d: Path) -> Row:
    with rows_fail_after(4, sqlite3.OperationalError("database or disk is full")):
        r = cli([*FAST, "--out", str(d), *ODMR])
    kept, ok = consistent(d)
    return Row(
        "",
        f"exit {r.code}",
        kept,
        one_line(r.err),
        r.code == 1 and ok,
        not ok,
        clear(r.err, "disk full at", "4 steps kept"),
    )


@fault("odmr: image file disk full (ENOSPC) at step 3")
def _h5_full(d: Path) -> Row:
    import h5py

    real, calls = h5py.File.flush, {"n": 0}

    def flush(self):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self)

    with mock.patch.object(h5py.File, "flush", flush):
        r = cli([*FAST, "--out", str(d), *ODMR])
    kept, ok = consistent(d)
    return Row(
        "", f"exit {r.code}", kept, one_line(r.err), r.code == 1 and ok, not ok, clear(r.err, "disk full at")
    )


REAL_FULL = """
import sys
from unittest import mock
sys.path.insert(0, {root!r})
import instrument.storage.budget as budget
from instrument.cli import main
with mock.patch.object(budget, "check_run_fits", lambda *a: 0):  # let it run into the full disk
    code = main(["--sim", "--image-shape", "64x64", "--out", sys.argv[1], "odmr", "--points", "200",
                 "--frames-per-point", "1", "--no-figure"])
from instrument.storage.runs import load_run
r = load_run(sys.argv[1], 1)
print("RESULT", code, r.metadata.get("status"), len(r.scalars["frequency_hz"]), r.steps_done)
"""


@fault("odmr: a real full disk (4 MB tmpfs, needs unshare)")
def _real_full(d: Path) -> Row:
    import shutil

    if not shutil.which("unshare"):
        return Row("", "not run (no unshare)", "-", "-", True, False, True)
    script = d / "full.py"
    script.write_text(REAL_FULL.format(root=str(ROOT)))
    mnt = d / "small"
    mnt.mkdir()
    cmd = f"mount -t tmpfs -o size=4m tmpfs {mnt} && {sys.executable} {script} {mnt / 'out'}"
    p = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=300)
    if "RESULT" not in p.stdout and "mount" in p.stderr:
        return Row("", "not run (mount refused)", "-", p.stderr.strip()[:80], True, False, True)
    parts = next((s.split() for s in p.stdout.splitlines() if s.startswith("RESULT")), ["RESULT", "?"] * 3)
    code, status, rows, frames = parts[1], parts[2], parts[3], parts[4]
    ok = code == "1" and status == "failed" and rows == frames
    line = next((s for s in p.stderr.splitlines() if "disk full at" in s), p.stderr.strip()[-120:])
    return Row(
        "",
        f"exit {code}",
        f"run 1 {status}: {rows} rows, {frames} frames",
        line[:120],
        ok,
        rows != frames,
        clear(p.stderr, "disk full at", "steps kept"),
    )


def _odmr_signal(signum: int, code: int, word: str) -> Callable[[Path], Row]:
    """A signal raised at step 4 of an ODMR run: exit ``code``, database and frames in step."""

    def run(d: Path) -> Row:
        with signal_at_step(3, signum):
            r = cli([*FAST, "--out", str(d), *ODMR])
        kept, ok = consistent(d)
        return Row(
            "",
            f"exit {r.code}",
            kept,
            one_line(r.err),
            r.code == code and ok,
            not ok,
            clear(r.err, word, "stored"),
        )

    return run


fault("odmr: SIGTERM at step 4")(_odmr_signal(signal.SIGTERM, 143, "SIGTERM"))
fault("odmr: Ctrl-C at step 4")(_odmr_signal(signal.SIGINT, 130, "Ctrl-C"))


@fault("odmr: SIGTERM swallowed by a catch-all in a driver")
def _swallowed(d: Path) -> Row:
    from sequences.cw_odmr import CwOdmrSweep

    real = CwOdmrSweep.run

    def run(self, instruments, *plan):  # the engine hands a planned sequence its plan
        for i, step in enumerate(real(self, instruments, *plan)):
            if i == 3:
                with contextlib.suppress(BaseException):  # the worst catch-all
                    os.kill(os.getpid(), signal.SIGTERM)
            yield step

    with mock.patch.object(CwOdmrSweep, "run", run):
        r = cli([*FAST, "--out", str(d), *ODMR])
    kept, ok = consistent(d)
    return Row(
        "", f"exit {r.code}", kept, one_line(r.err), r.code == 143 and ok, not ok, clear(r.err, "SIGTERM")
    )


@fault("odmr: SIGTERM from outside (child process, real signal)")
def _sigterm_outside(d: Path) -> Row:
    p = child([*FAST, "--out", str(d), "odmr", "--points", "400", "--frames-per-point", "2", "--no-figure"])
    # wait for the run to exist, then signal it
    deadline = time.monotonic() + 60
    while not (d / "run-0001" / "images.h5").exists() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    kept, ok = consistent(d)
    return Row(
        "",
        f"exit {p.returncode}",
        kept,
        one_line(err),
        p.returncode == 143 and ok,
        not ok,
        clear(err, "SIGTERM"),
    )


@fault("odmr: SIGTERM during the fit after the measurement")
def _sigterm_fit(d: Path) -> Row:
    import instrument.analysis.cw_run as cw_run

    with mock.patch.object(cw_run, "analyse_cw_run", lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM)):
        r = cli([*FAST, "--out", str(d), *ODMR])
    kept, ok = consistent(d)
    return Row(
        "", f"exit {r.code}", kept, one_line(r.err), r.code == 143 and ok, not ok, clear(r.err, "SIGTERM")
    )


@fault("odmr: kill -9 mid-run, then the next run and analyse")
def _kill9(d: Path) -> Row:
    p = child([*FAST, "--out", str(d), "odmr", "--points", "400", "--frames-per-point", "2", "--no-figure"])
    deadline = time.monotonic() + 60
    while not (d / "run-0001" / "images.h5").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    p.kill()
    p.communicate()
    r = cli([*FAST, "--out", str(d), *ODMR])
    status, rows, frames = run_status(d, 1)
    a = cli(["--out", str(d), "analyse", "1"])
    ok = status == "interrupted" and abs(rows - frames) <= 1 and r.code == 0
    return Row(
        "",
        f"exit -9, then {r.code}; analyse {a.code}",
        f"run 1 {status}: {rows} rows, {frames} frames",
        one_line(a.err),
        ok,
        not ok,
        clear(a.err, "interrupted"),
    )


@fault("two processes on one output folder")
def _two(d: Path) -> Row:
    holder = child(
        [*FAST, "--out", str(d), "odmr", "--points", "2000", "--frames-per-point", "2", "--no-figure"]
    )
    deadline = time.monotonic() + 60
    while not (d / "run-0001").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    r = cli([*FAST, "--out", str(d), *ODMR])
    holder.send_signal(signal.SIGTERM)
    holder.communicate(timeout=120)
    ok = r.code == 2 and f"process {holder.pid}" in r.err and run_status(d, 2)[0] == "missing"
    return Row(
        "",
        f"second: exit {r.code}",
        "first run untouched" if ok else "?",
        one_line(r.err),
        ok,
        not ok,
        clear(r.err, f"process {holder.pid}", "since"),
    )


@fault("stale lock file after kill -9 of its holder")
def _stale(d: Path) -> Row:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from instrument.storage.folder_lock import "
            f"lock_folder; lock_folder({str(d)!r}, 'acquire odmr'); print('locked', "
            "flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    holder.stdout.readline()
    holder.kill()
    holder.wait()
    r = cli([*FAST, "--out", str(d), *ODMR])
    return Row("", f"exit {r.code}", consistent(d)[0], one_line(r.out), r.code == 0, False, True)


@fault("damaged runs database: odmr")
def _corrupt_odmr(d: Path) -> Row:
    (d / "runs.db").write_bytes(b"garbage" * 200)
    r = cli([*FAST, "--out", str(d), *ODMR])
    return Row(
        "",
        f"exit {r.code}",
        "database left as it was for recovery",
        one_line(r.err)[:120],
        r.code == 1,
        False,
        clear(r.err, "runs.db", "damaged", "instrument.storage.recovery"),
    )


@fault("damaged runs database: coil scan (not 75)")
def _corrupt_scan(d: Path) -> Row:
    (d / "runs.db").write_bytes(b"garbage" * 200)
    r = cli(
        [
            *FAST,
            "--station",
            COIL_STATION,
            "coil-scan",
            "--points",
            "5",
            "--frames-per-point",
            "1",
            "--coils",
            "L1C1",
            "--out",
            str(d),
        ]
    )
    return Row(
        "",
        f"exit {r.code}",
        "ledger kept",
        one_line(r.err)[:120],
        r.code == 1,
        False,
        clear(r.err, "damaged"),
    )


@fault("scheduler killed and restarted")
def _scheduler(d: Path) -> Row:
    from instrument.scheduler import STATE_NAME, ScanQueue

    q = ScanQueue(d)
    (d / STATE_NAME).write_text('{"pid": 4242, "started": "2026-11-30 22:00:00", "running": "scan-0001"}')
    q.run(exit_when_empty=True)
    line = next((s for s in q.read_log().splitlines() if "RESTART" in s), "")
    return Row("", "logged", "queue kept", line[21:][:120], bool(line), False, "died" in line)


def _station_fault(old: str, new: str, must: str) -> Callable[[Path], Row]:
    def run(d: Path) -> Row:
        path = d / "station.yaml"
        if isinstance(new, bytes):
            path.write_bytes(new)
        else:
            path.write_text(SIM_YAML.replace(old, new))
        r = cli(["--sim", "--station", str(path), "--out", str(d / "o"), *ODMR])
        return Row(
            "", f"exit {r.code}", "nothing opened", one_line(r.err), r.code == 2, False, clear(r.err, must)
        )

    return run


fault("station file: binary garbage")(_station_fault("", bytes(range(256)) * 4, "not text"))
fault("station file: image_shape [-5, 300]")(
    _station_fault("image_shape: [300, 300]", "image_shape: [-5, 300]", "image_shape")
)
fault("station file: negative coil ceiling")(
    _station_fault("coil_current_max_a: 1.0e-3", "coil_current_max_a: -1.0e-3", "coil_current_max_a")
)
fault("station file: mw_power_max_dbm above the source")(
    _station_fault("mw_power_max_dbm: 10.0", "mw_power_max_dbm: 30.0", "maximum")
)


def _usage_fault(argv: list[str], must: str) -> Callable[[Path], Row]:
    def run(d: Path) -> Row:
        r = cli([*FAST, "--out", str(d), *argv])
        return Row(
            "", f"exit {r.code}", "nothing opened", one_line(r.err), r.code == 2, False, clear(r.err, must)
        )

    return run


fault("--points 10000000")(_usage_fault(["odmr", "--points", "10000000"], "--points"))
fault("negative --span-hz")(_usage_fault(["odmr", "--span-hz=-12e6"], "--span-hz"))
fault("pulsed --repetitions 0")(_usage_fault(["pulsed", "rabi", "--repetitions", "0"], "repetitions"))


@fault("--image-shape 100000x100000")
def _huge_image(d: Path) -> Row:
    r = cli(["--sim", "--image-shape", "100000x100000", "--out", str(d)])
    return Row(
        "", f"exit {r.code}", "nothing opened", one_line(r.err), r.code == 2, False, clear(r.err, "4096")
    )


@fault("--out path over the SQLite limit")
def _long_out(d: Path) -> Row:
    r = cli([*FAST, "--out", str(d / "/".join(["d" * 60] * 8)), *ODMR])
    return Row(
        "",
        f"exit {r.code}",
        "nothing opened",
        one_line(r.err)[:120],
        r.code == 2,
        False,
        clear(r.err, "SQLite"),
    )


@fault("run larger than the free disk")
def _too_big(d: Path) -> Row:
    import shutil

    from instrument.storage import budget

    real = shutil.disk_usage
    with mock.patch.object(budget.shutil, "disk_usage", lambda p: real(p)._replace(free=100 * 2**20)):
        r = cli(["--sim", "--image-shape", "300x300", "--out", str(d), "odmr", "--points", "1000"])
    return Row(
        "",
        f"exit {r.code}",
        "nothing opened",
        one_line(r.err)[:120],
        r.code == 2,
        False,
        clear(r.err, "would need about", "free at"),
    )


LOCKIN = ["--sim", "--image-shape", "16x16"]


@fault("lockin: full disk during the capture")
def _lockin_full(d: Path) -> Row:
    from instrument.storage import frame_process

    with mock.patch.object(
        frame_process,
        "ProcessFrameWriter",
        functools.partial(frame_process.ProcessFrameWriter, min_free_bytes=10**18),
    ):
        r = cli([*LOCKIN, "--out", str(d), "lockin", "--seconds", "1.2"])
    status = run_status(d)[0]
    return Row(
        "",
        f"exit {r.code}",
        f"run 1 {status}",
        one_line(r.err)[:120],
        r.code == 1 and status == "failed",
        False,
        clear(r.err, "disk nearly full"),
    )


def _lockin_signal(signum: int, code: int) -> Callable[[Path], Row]:
    def run(d: Path) -> Row:
        import sequences.temporal as temporal

        real = temporal.calibrate_slope

        def calibrate(*a, **k):
            os.kill(os.getpid(), signum)
            return real(*a, **k)

        with mock.patch.object(temporal, "calibrate_slope", calibrate):
            r = cli([*LOCKIN, "--out", str(d), "lockin", "--seconds", "1.2"])
        status = run_status(d)[0]
        return Row(
            "",
            f"exit {r.code}",
            f"run 1 {status}",
            one_line(r.err),
            r.code == code and status == "aborted",
            False,
            clear(r.err, "made safe"),
        )

    return run


fault("lockin: Ctrl-C")(_lockin_signal(signal.SIGINT, 130))
fault("lockin: SIGTERM")(_lockin_signal(signal.SIGTERM, 143))


@fault("lockin: early SIGTERM to the process group (real signal)")
def _lockin_early(d: Path) -> Row:
    p = child([*LOCKIN, "--out", str(d), "lockin", "--seconds", "20"], start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(d.glob("run-*/frames.h5")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    bad = [w for w in ("Traceback", "BrokenPipe", "leaked shared_memory") if w in err]
    status = run_status(d)[0]
    return Row(
        "",
        f"exit {p.returncode}",
        f"run 1 {status}",
        (one_line(err) + (f" [{', '.join(bad)}]" if bad else ""))[:120],
        p.returncode == 143 and not bad and status == "aborted",
        False,
        not bad,
    )


def _npy_fault(
    content: bytes | None, make: Callable[[Path], None] | None, must: str
) -> Callable[[Path], Row]:
    def run(d: Path) -> Row:
        spectra = d / "spectra.npy"
        if content is not None:
            spectra.write_bytes(content)
        elif make is not None:
            make(spectra)
        r = cli(["--out", str(d), "reconstruct", "neural-field", str(spectra), "--epochs", "2"])
        ok = r.code == 2 and "allow_pickle" not in r.err and "unsafe" not in r.err
        return Row(
            "",
            f"exit {r.code}",
            "input untouched",
            one_line(r.err)[:120],
            ok,
            False,
            clear(r.err, str(spectra), must),
        )

    return run


def _complex(path: Path) -> None:
    import numpy as np

    np.save(path, np.ones((8, 8, 8), complex))


fault("reconstruct: garbage .npy")(_npy_fault(b"\x93NUMPY\x01\x00garbage" * 30, None, "numpy.save"))
fault("reconstruct: text file as .npy")(_npy_fault(b"0.1 0.2 0.3\n", None, "is not a NumPy .npy file"))
fault("reconstruct: complex spectra")(_npy_fault(None, _complex, "complex"))


@fault("reconstruct: reversed --freq-range-hz")
def _reversed(d: Path) -> Row:
    import numpy as np

    np.save(d / "s.npy", np.ones((8, 8, 8)))
    r = cli(
        [
            "--out",
            str(d),
            "reconstruct",
            "neural-field",
            str(d / "s.npy"),
            "--freq-range-hz",
            "3e9",
            "1e9",
            "--epochs",
            "2",
        ]
    )
    return Row(
        "",
        f"exit {r.code}",
        "input untouched",
        one_line(r.err),
        r.code == 2,
        False,
        clear(r.err, "--freq-range-hz", "below the last"),
    )


def _dip_fault(b: Callable, mask: Callable, must: str) -> Callable[[Path], Row]:
    def run(d: Path) -> Row:
        import numpy as np

        np.save(d / "b.npy", b(np))
        np.save(d / "m.npy", mask(np))
        r = cli(
            [
                "--out",
                str(d),
                "reconstruct",
                "dip",
                str(d / "b.npy"),
                str(d / "m.npy"),
                "--pixel-m",
                "1e-6",
                "--standoff-m",
                "1e-6",
                "--thickness-m",
                "1e-8",
                "--epochs",
                "2",
            ]
        )
        return Row(
            "",
            f"exit {r.code}",
            "inputs untouched",
            one_line(r.err)[:120],
            r.code == 2,
            False,
            clear(r.err, must),
        )

    return run


def _nan_mask(np):
    m = np.ones((2, 16, 16))
    m[0, 2, 2] = np.nan
    return m


fault("reconstruct dip: empty B map")(
    _dip_fault(lambda np: np.zeros((0, 16)), lambda np: np.ones((2, 0, 16)), "empty")
)
fault("reconstruct dip: NaN mask")(_dip_fault(lambda np: np.zeros((16, 16)), _nan_mask, "NaN"))


@fault("reconstruct dip: a second run beside the first")
def _second(d: Path) -> Row:
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(d / "b.npy", rng.normal(0, 1e-6, (16, 16)))
    np.save(d / "m.npy", np.ones((2, 16, 16)))
    argv = [
        "--out",
        str(d),
        "reconstruct",
        "dip",
        str(d / "b.npy"),
        str(d / "m.npy"),
        "--pixel-m",
        "1e-6",
        "--standoff-m",
        "1e-6",
        "--thickness-m",
        "1e-8",
        "--epochs",
        "2",
    ]
    first, second = cli(argv), cli(argv)
    files = sorted(p.name for p in (d / "reconstructions" / "dip").glob("*.npz"))
    ok = first.code == second.code == 0 and files == ["dip_result-2.npz", "dip_result.npz"]
    line = next((s for s in second.out.splitlines() if "results" in s), "").strip()
    return Row(
        "", f"exit {first.code}, {second.code}", ", ".join(files), line[:120], ok, not ok, "-2" in line
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="keep each fault's folder under DIR")
    parser.add_argument("-k", dest="only", help="only faults whose name contains this")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    base = args.keep or Path(tempfile.mkdtemp(prefix="faults-"))
    for i, (name, fn) in enumerate(FAULTS):
        if args.only and args.only not in name:
            continue
        d = base / f"{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        try:
            row = fn(d)
        except Exception as exc:  # noqa: BLE001 - a fault the script itself did not survive is a row too
            row = Row("", "script error", "?", f"{type(exc).__name__}: {exc}"[:120], False, True, False)
        row.fault = name
        rows.append(row)
        mark = "ok " if row.clean and not row.lost and row.clear else "BAD"
        print(f"{mark} {name:55.55} | {row.outcome:24.24} | {row.kept:38.38} | {row.message}", flush=True)
    tried = len(rows)
    clean = sum(r.clean and not r.lost and r.clear for r in rows)
    lost = sum(r.lost for r in rows)
    unclear = sum(not r.clear for r in rows)
    print(f"\nfaults tried {tried}, survived cleanly {clean}, data lost {lost}, unclear messages {unclear}")
    return 0 if clean == tried else 1


if __name__ == "__main__":
    sys.exit(main())
