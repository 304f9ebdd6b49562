"""A kiosk database connection and what every storage module does with one: the write
transaction and its commit hooks, the next row id, and the stored time format.

The same on a kiosk's own SQLite file and on a site's PostgreSQL database (kiosk.sitedb), and
below both: opening a database (kiosk.database), its migrations, the log chain and key
rotation all build on it.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Literal

from kiosk.errors import KioskError
from kiosk.sealing import Sealer


class DatabaseUnavailable(KioskError):
    """The site database's server cannot be reached (kiosk.sitedb)."""


class KioskConnection(sqlite3.Connection):
    """A connection that carries its database's keys (set by open_database)."""

    backend = "sqlite"
    sealer: Sealer | None = None
    door: str | None = None  # the door (kiosk) whose events this connection logs
    chain = ""  # the log chain it extends: one per database file
    after_commit: list[Callable[[sqlite3.Connection], None]] | None = None  # run once the outermost transaction commits


def on_commit(conn: sqlite3.Connection, callback: Callable[[sqlite3.Connection], None]) -> None:
    """Run `callback(conn)` after the current (outermost) transaction commits, once; at once outside one.

    For records kept outside the database that must never get ahead of what it committed.
    """
    if not conn.in_transaction:
        callback(conn)
        return
    hooks = getattr(conn, "after_commit", None)
    if hooks is None:
        hooks = conn.after_commit = []
    if callback not in hooks:
        hooks.append(callback)


@contextmanager
def transaction(
    conn: sqlite3.Connection, mode: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE"
) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction: COMMIT on success, ROLLBACK on any exception.

    IMMEDIATE (for writes) takes the write lock at BEGIN, where the busy timeout
    applies; a deferred transaction that upgrades to writing in WAL mode fails
    at once with SQLITE_BUSY instead of waiting. DEFERRED gives a consistent
    read snapshot without blocking writers. Inside another transaction the block
    becomes a savepoint of it: it commits with the outer one, or alone rolls back.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT nested")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
            raise
        conn.execute("RELEASE nested")
        return
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        _take_hooks(conn)  # what they would record did not happen
        raise
    for hook in _take_hooks(conn):
        hook(conn)


def _take_hooks(conn: sqlite3.Connection) -> list[Callable[[sqlite3.Connection], None]]:
    hooks = getattr(conn, "after_commit", None) or []
    if hooks:
        conn.after_commit = []
    return hooks


def next_id(conn: sqlite3.Connection, table: str) -> int:
    """The id the next row of an AUTOINCREMENT table gets; call inside the write transaction.

    Sealed blobs are bound to their row's id, so it must be known before the insert.
    """
    if getattr(conn, "backend", "sqlite") == "postgresql":  # a forward-only sequence (kiosk.site_schema)
        return conn.execute(f"SELECT nextval('{table}_ids')").fetchone()[0]
    return conn.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0),"
        f" coalesce((SELECT max(id) FROM {table}), 0)) + 1",
        (table,),
    ).fetchone()[0]


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
    # %Y would drop the leading zeros of years before 1000, and text order would no longer be time order.
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


def checkpoint(conn: sqlite3.Connection, attempts: int = 40, wait_s: float = 0.05) -> bool:
    """Copy every page of the WAL into the database file and empty the WAL (pages that
    secure_delete zeroed then replace their plain originals in the file). A reader elsewhere
    can make one try stop short, so it is retried for up to attempts x wait_s; False if some
    pages are still only in the WAL (a later checkpoint copies them)."""
    for attempt in range(attempts):
        busy, in_log, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy and in_log == copied:
            return True
        time.sleep(wait_s)
    return False
