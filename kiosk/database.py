"""The kiosk's SQLite database: opening, schema migrations, transactions, timestamps.

The kiosk window and the command-line tools may have the same file open at
once, so every connection uses WAL (readers never block the writer), a busy
timeout (writers queue instead of failing with "database is locked") and
writes go through ``transaction()``, which takes the write lock up front.
A connection belongs to the thread that opened it (sqlite3's default); give
each thread its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from kiosk.errors import KioskError

log = logging.getLogger(__name__)

DB_FILENAME = "kiosk.db"
BUSY_TIMEOUT_S = 10.0

# Each migration is a list of statements, applied in one transaction; migration
# i (0-based) takes the schema from version i to i + 1. Only ever append.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # name_key is the case-folded name: uniqueness must ignore case for all
        # scripts, and SQLite's NOCASE only folds ASCII.
        """CREATE TABLE person (
            id          INTEGER PRIMARY KEY,
            name        TEXT NOT NULL,
            name_key    TEXT NOT NULL UNIQUE,
            external_id TEXT UNIQUE,
            active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created     TEXT NOT NULL
        )""",
        """CREATE TABLE template (
            id        INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES person (id) ON DELETE CASCADE,
            dim       INTEGER NOT NULL CHECK (dim > 0),
            embedding BLOB NOT NULL CHECK (length(embedding) = 4 * dim),
            quality   REAL NOT NULL,
            source    TEXT NOT NULL,
            created   TEXT NOT NULL
        )""",
        "CREATE INDEX template_person ON template (person_id)",
        # Thumbnails live apart so that loading the embeddings does not page them in.
        """CREATE TABLE template_thumbnail (
            template_id INTEGER PRIMARY KEY REFERENCES template (id) ON DELETE CASCADE,
            jpeg        BLOB NOT NULL
        )""",
        # Bumped by triggers on every change that can alter Gallery.matrix(), by any
        # connection or process; the matrix cache compares against it.
        """CREATE TABLE gallery_state (
            id      INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )""",
        "INSERT INTO gallery_state (id, version) VALUES (1, 0)",
        """CREATE TRIGGER template_insert_bumps AFTER INSERT ON template
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        """CREATE TRIGGER template_update_bumps AFTER UPDATE ON template
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        """CREATE TRIGGER template_delete_bumps AFTER DELETE ON template
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        """CREATE TRIGGER person_active_bumps AFTER UPDATE OF active ON person
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        # AUTOINCREMENT: ids are never reused, even after a purge empties the
        # table, so live views can poll for id > last seen.
        """CREATE TABLE access_event (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            time      TEXT NOT NULL,
            camera    TEXT NOT NULL,
            person_id INTEGER REFERENCES person (id) ON DELETE SET NULL,
            name      TEXT,
            score     REAL,
            decision  TEXT NOT NULL CHECK (decision IN ('granted', 'denied')),
            reason    TEXT NOT NULL,
            liveness  TEXT,
            door      TEXT
        )""",
        "CREATE INDEX access_event_time ON access_event (time)",
        "CREATE INDEX access_event_person ON access_event (person_id)",
        "CREATE INDEX access_event_decision ON access_event (decision, time)",
        """CREATE TABLE access_thumbnail (
            event_id INTEGER PRIMARY KEY REFERENCES access_event (id) ON DELETE CASCADE,
            jpeg     BLOB NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaVersionError(KioskError):
    """The database was written by a newer kiosk than this one."""


def database_path(data_dir: str | Path) -> Path:
    """The database file inside a data directory."""
    return Path(data_dir) / DB_FILENAME


def open_database(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the kiosk database and bring its schema up to date.

    Raises SchemaVersionError if the file comes from a newer kiosk version.
    """
    # isolation_level=None: no implicit transactions; transaction() issues BEGIN itself.
    conn = sqlite3.connect(os.fspath(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":  # e.g. on a network file system; still correct, just more locking
            log.warning("%s: WAL unavailable, using journal_mode=%s", path, mode)
        # FULL, not NORMAL: in WAL mode NORMAL can lose the last commits on power
        # loss, and an access decision must be on disk before the door opens.
        # The price is one fsync per commit, a few per minute at a door.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: str | Path) -> None:
    known = len(MIGRATIONS)
    version = _schema_version(conn)  # read without a lock: usually already current
    while version < known:
        with transaction(conn):
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = _schema_version(conn)
            if version < known:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version:d}")
                log.info("%s: migrated schema to version %d", path, version)
    if version > known:
        raise SchemaVersionError(
            f"{path} has schema version {version}, but this kiosk only knows versions "
            f"up to {known}; upgrade face-kiosk or use another data directory"
        )


def _schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


@contextmanager
def transaction(
    conn: sqlite3.Connection, mode: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE"
) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction: COMMIT on success, ROLLBACK on any exception.

    IMMEDIATE (for writes) takes the write lock at BEGIN, where the busy timeout
    applies; a deferred transaction that upgrades to writing in WAL mode fails
    at once with SQLITE_BUSY instead of waiting. DEFERRED gives a consistent
    read snapshot without blocking writers.
    """
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def utc_datetime(when: datetime | str | None = None) -> datetime:
    """`when` (default now) as an aware UTC datetime; ISO 8601 strings are parsed.

    Naive datetimes are refused, as the kiosk cannot know which zone they meant.
    """
    if when is None:
        return datetime.now(timezone.utc)
    if isinstance(when, str):
        text = when.strip()
        # fromisoformat() only accepts a trailing "Z" from Python 3.11 on.
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if when.utcoffset() is None:
        raise ValueError(f"time {when.isoformat()} has no time zone; give a UTC offset or 'Z'")
    return when.astimezone(timezone.utc)


def timestamp(when: datetime | str | None = None) -> str:
    """The stored time format: ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.000Z.

    One fixed format makes text comparison in SQL equal time comparison.
    """
    utc = utc_datetime(when)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"
