"""The ledger of a combinatorial coil scan: one row per configuration, updated atomically.

It lives beside the runs (``OUT/coil_scan.sqlite``) and is what makes a scan crash-safe: every state
change is one SQLite transaction, so a ``kill -9`` at any moment leaves each configuration either
``pending``, ``running`` (with the run id of the attempt in flight), or finished (``done`` with its
run id and summary, or ``open_coil``). A configuration is a primary key, so the results hold it
exactly once whatever happened in between. An ``events`` table keeps the scan's story (started,
resumed, open coil, health warnings, pauses) for the operator who reads it in the morning.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrument.storage.runs import add_run_metadata, check_writable

LEDGER_NAME = "coil_scan.sqlite"
FINISHED = ("done", "open_coil")
STATUSES = ("pending", "running", "failed", *FINISHED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (
    position INTEGER PRIMARY KEY,
    mask INTEGER NOT NULL UNIQUE,
    label TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    run_id INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    note TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    position INTEGER,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


class LedgerMismatch(ValueError):
    """The output directory already holds a different scan."""


@dataclass(frozen=True)
class ConfigRow:
    position: int
    mask: int
    label: str
    status: str
    run_id: int | None
    attempts: int
    summary: dict[str, Any] | None
    note: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class ScanLedger:
    """Opens (or creates) the ledger of the scan in ``out_dir``.

    Args:
        out_dir: the scan's output directory.
        plan: what identifies the scan (coils, configurations and their order, sweep settings);
            re-opening with a different plan raises ``LedgerMismatch``.
        masks: the configurations in scan order (bit k set = coil k on).
        labels: a readable name per configuration.
    """

    def __init__(self, out_dir: Path, plan: dict[str, Any], masks: Sequence[int],
                 labels: Sequence[str]) -> None:
        self.path = check_writable(Path(out_dir)) / LEDGER_NAME
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a finished configuration survives power loss
        self._db.executescript(_SCHEMA)
        text = json.dumps(plan, sort_keys=True)
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key='plan'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('plan', ?)", (text,))
                db.execute("INSERT INTO meta VALUES ('created_at', ?)", (_now(),))
                db.executemany(
                    "INSERT INTO configs (position, mask, label, updated_at) VALUES (?, ?, ?, ?)",
                    [(i, int(m), lab, _now()) for i, (m, lab) in enumerate(zip(masks, labels, strict=True))],
                )
                self.created = True
            elif row[0] != text:
                raise LedgerMismatch(_difference(json.loads(row[0]), plan, self.path))
            else:
                self.created = False

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # ---- reading ---------------------------------------------------------------------------------

    def rows(self) -> list[ConfigRow]:
        return _rows(self._db)

    def counts(self) -> dict[str, int]:
        found = dict(self._db.execute("SELECT status, COUNT(*) FROM configs GROUP BY status").fetchall())
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def events(self) -> list[tuple[str, int | None, str, str]]:
        return self._db.execute("SELECT at, position, kind, message FROM events ORDER BY id").fetchall()

    # ---- writing (each call is one transaction) ----------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def event(self, kind: str, message: str, position: int | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO events (at, position, kind, message) VALUES (?, ?, ?, ?)",
                       (_now(), position, kind, message))

    def start(self, position: int, run_id: int | None = None) -> None:
        """Record that an attempt at ``position`` began (``run_id`` once the run has opened)."""
        with self._transaction() as db:
            db.execute("UPDATE configs SET status='running', run_id=?, attempts=attempts+1, updated_at=? "
                       "WHERE position=?", (run_id, _now(), position))

    def attach_run(self, position: int, run_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE configs SET run_id=?, updated_at=? WHERE position=?",
                       (run_id, _now(), position))

    def finish(self, position: int, status: str, run_id: int | None = None,
               summary: dict[str, Any] | None = None, note: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown configuration status {status!r}; expected one of {STATUSES}")
        with self._transaction() as db:
            db.execute(
                "UPDATE configs SET status=?, run_id=?, summary=?, note=?, updated_at=? WHERE position=?",
                (status, run_id, None if summary is None else json.dumps(summary), note, _now(), position),
            )


def _difference(old: dict[str, Any], new: dict[str, Any], path: Path) -> str:
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return (
        f"{path.parent} already holds a different coil scan (differs in: {', '.join(changed)}); "
        "re-run with the same options to resume it, or choose a new `out` folder for a new scan"
    )


def read_ledger(out_dir: Path) -> list[ConfigRow]:
    """The configuration rows of the scan in ``out_dir``, for reports and the results file."""
    path = Path(out_dir) / LEDGER_NAME
    if not path.exists():
        raise FileNotFoundError(f"no coil scan in {out_dir} (expected {LEDGER_NAME})")
    with closing(sqlite3.connect(path)) as db:
        if db.execute("SELECT name FROM sqlite_master WHERE name='configs'").fetchone() is None:
            return []  # the scan was stopped before it wrote its plan
        return _rows(db)


def _rows(db: sqlite3.Connection) -> list[ConfigRow]:
    cur = db.execute("SELECT position, mask, label, status, run_id, attempts, summary, note "
                     "FROM configs ORDER BY position")
    return [ConfigRow(p, m, lab, s, r, a, json.loads(js) if js else None, n)
            for p, m, lab, s, r, a, js, n in cur.fetchall()]


def mark_run(out_dir: Path, run_id: int, **tags: Any) -> None:
    """Add metadata to a stored run (e.g. ``status='abandoned'`` for an attempt a crash cut short)."""
    add_run_metadata(out_dir, run_id, tags)
