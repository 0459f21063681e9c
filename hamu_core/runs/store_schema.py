"""The run store's SQLite layer: file format, migrations, safe opening, retried transactions.

``RunStore`` speaks runs and steps; this module is everything below it. A store is one
SQLite file. Its header carries HAMU's ``application_id`` (so a foreign
database is recognised, not mistaken for an empty store) and a ``user_version`` equal to
the number of migrations applied. ``MIGRATIONS`` is append-only: a released entry is never
edited, and opening an older file applies the missing entries in order, each in its own
transaction, so an interrupted upgrade leaves the file at a consistent earlier version.

Everything that can go wrong (a read-only folder, a text file, a foreign or newer database,
a damaged page) becomes a ``StoreError`` naming the path and the problem, never an sqlite3
trace. Values are stored as JSON (NaN kept: records use it for "not applicable"; floats
round-trip exactly) and weights as ``torch.save`` blobs read back with ``weights_only=True``.
"""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import torch

from hamu_core.jsonable import to_jsonable
from hamu_core.models.checkpoint import CheckpointError, read_state_dict

APP_ID = 0x48414D55  # "HAMU" in ASCII: marks the file as a HAMU Studio run store
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
BUSY_TIMEOUT_S = 10.0  # how long one statement waits for another writer's lock
RETRY_S = 60.0  # how long a write transaction keeps retrying while other processes hold the lock
STATUSES = ("running", "finished", "interrupted", "failed")

_V1 = (
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,                 -- uuid4 hex
        created TEXT NOT NULL,               -- ISO 8601, UTC
        updated TEXT NOT NULL,               -- ISO 8601, UTC; bumped by every write (heartbeat)
        status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
        writer TEXT NOT NULL,                -- host:pid:start of the process that holds the run
        settings TEXT NOT NULL,              -- JSON: the rule's settings, "method" included
        dataset TEXT NOT NULL,               -- JSON: name, fingerprint, model and train config
        forget_ids TEXT NOT NULL,            -- JSON list of sample ids
        seed INTEGER NOT NULL,
        retain_batch_size INTEGER NOT NULL,
        forget_batch_size INTEGER            -- NULL: the whole forget set every step
    )""",
    """CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,               -- 1-based, contiguous within a run
        record TEXT NOT NULL,                -- JSON: StepRecord.to_dict()
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID""",
    """CREATE TABLE checkpoints (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,               -- weights after this many steps (0: the base model)
        blob BLOB NOT NULL,                  -- torch.save of a state dict
        PRIMARY KEY (run_id, step)
    )""",
    f"PRAGMA application_id = {APP_ID}",
)

_V2 = (
    "ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT ''",
    """CREATE TABLE evaluations (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,               -- the step the metrics were measured after
        metrics TEXT NOT NULL,               -- JSON object of metric name -> value
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID""",
)

_V3 = (  # runs are audit records: a went-back run continues as a branch; who asked for it is recorded
    "ALTER TABLE runs ADD COLUMN request_ref TEXT NOT NULL DEFAULT ''",  # ticket id, requester
    "ALTER TABLE runs ADD COLUMN parent_id TEXT",  # the run this one branched from (NULL: none)
    "ALTER TABLE runs ADD COLUMN branch_step INTEGER",  # the parent's step it branched at (NULL: none)
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)  # entry i takes user_version i to i + 1
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = ("runs", "steps", "checkpoints", "evaluations")
T = TypeVar("T")


class StoreError(RuntimeError):
    """The run store cannot be used; the message names the file or folder and what is wrong."""


def _check_folder(folder: Path) -> None:
    """Create ``folder`` if needed and prove it writable by creating a file in it.

    A real write, not ``os.access``: root passes every permission check, yet a read-only
    mount or an immutable folder still refuses it.
    """
    hint = "set the HAMU_DATA_DIR environment variable to a writable folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".hamu-write-probe-"):
            pass
    except OSError as err:
        kind = "read-only" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "unusable"
        raise StoreError(f"the run store folder {folder} is {kind} ({err.strerror}); {hint}") from None


def _check_header(path: Path) -> None:
    if not path.is_file():
        if path.exists():
            raise StoreError(f"{path} is not a file, so it cannot hold a HAMU run store")
        return
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a HAMU run store: it is not an SQLite database file "
                         f"(starts with {head[:8]!r}); move it away or choose another HAMU_DATA_DIR")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the missing migrations in order, each atomically with its version bump."""
    while True:
        conn.execute("BEGIN IMMEDIATE")  # re-read under the write lock: another process may migrate too
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _check_identity(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if tables and app_id != APP_ID:
        raise StoreError(f"{path} is an SQLite database but not a HAMU run store (application id "
                         f"{app_id:#x}, tables {tables[:6]}); move it away or choose another HAMU_DATA_DIR")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} has run-store schema version {version}, newer than the {SCHEMA_VERSION} "
                         f"this HAMU Studio understands; upgrade HAMU Studio to open it")


def open_database(path: Path) -> sqlite3.Connection:
    """A connection to the store at ``path``: WAL, busy timeout, foreign keys, current schema.

    ``synchronous=NORMAL`` with WAL makes a commit a plain write to the log, with no fsync:
    a killed process loses nothing it committed (only a power cut can lose the last few).
    """
    _check_folder(path.parent)
    _check_header(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _check_identity(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn)
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = sorted(set(TABLES) - present)
        if missing:
            raise StoreError(f"{path} is a damaged HAMU run store: tables {missing} are missing")
    except StoreError:
        conn.close()
        raise
    except sqlite3.Error as err:
        conn.close()
        raise StoreError(f"{path} cannot be opened as a HAMU run store: {err}") from None
    return conn


class Database:
    """One store connection shared by threads: plain reads, and writes in retried transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = open_database(path)
        self._lock = threading.RLock()

    def _fail(self, err: sqlite3.Error) -> StoreError:
        damaged = type(err) is sqlite3.DatabaseError  # corruption; operational errors are subclasses
        hint = "; the file is damaged: restore a backup or move it away to start a new store" if damaged else ""
        return StoreError(f"run store {self.path}: {err}{hint}")

    def read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise self._fail(err) from None

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(conn)`` in one IMMEDIATE transaction: all of it is committed or none.

        IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout
        instead of deadlocking on a read-to-write upgrade; a lock still held past the timeout
        is retried with backoff for up to RETRY_S. Any exception rolls the work back.
        """
        deadline, delay = time.monotonic() + RETRY_S, 0.005
        with self._lock:
            while True:
                try:
                    try:
                        self._conn.execute("BEGIN IMMEDIATE")
                        result = work(self._conn)
                        self._conn.execute("COMMIT")
                        return result
                    finally:
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
                except sqlite3.OperationalError as err:
                    code = getattr(err, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
                    if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                        raise self._fail(err) from None
                    time.sleep(delay)
                    delay = min(2 * delay, 0.25)
                except sqlite3.Error as err:
                    raise self._fail(err) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def now() -> str:
    """The current time as stored: ISO 8601 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value, *, sort_keys: bool = False) -> str:
    """Compact JSON as stored; NaN stays NaN and every float round-trips bit for bit."""
    return json.dumps(to_jsonable(value, keep_nonfinite=True), separators=(",", ":"), sort_keys=sort_keys)


def to_blob(state_dict: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({name: t.detach().cpu() for name, t in state_dict.items()}, buffer)
    return buffer.getvalue()


def from_blob(blob: bytes, where: str) -> dict[str, torch.Tensor]:
    """A stored state dict, loaded as data only (``checkpoint.read_state_dict``); StoreError naming ``where``."""
    try:
        return read_state_dict(io.BytesIO(blob), where)
    except CheckpointError as err:
        raise StoreError(str(err)) from None


def _process_start(pid: int) -> str | None:
    """``pid``'s start time in ticks since boot from /proc: None if gone or a zombie, "" if unknowable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else ""
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces; it ends at the last ")"
    return None if fields[0] in ("Z", "X") else fields[19]  # the state, then field 22 (starttime)


def writer_token() -> str:
    """host:pid:start of this process, stored with the runs it holds.

    The start time tells the original writer from a later process that reuses its pid.
    """
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or ''}"


def writer_alive(token: str) -> bool:
    """Whether the process a ``writer_token`` names still runs (another host's always counts as alive)."""
    host, pid, start = token.rsplit(":", 2)
    if host != socket.gethostname():
        return True  # it cannot be checked from here, so its run is left alone
    current = _process_start(int(pid))
    if current is None:
        return False
    if current and start:
        return current == start
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    return True
