"""The events' outbox: a SQLite file in the data directory holding what is not yet delivered.

An event is written here (committed) once per destination ("mqtt", "webhook") before anyone
tries to send it, and a row is deleted only once its destination has acknowledged it, so a
broker restarting, a receiver that is down or the kiosk itself restarting loses nothing: the
rows wait and go out in order. Delivery is at least once (an acknowledgement lost on the way
means one more copy); every event carries an id for receivers that must not act twice.

A destination down for a long time would grow the file without end: past MAX_ROWS rows per
destination the oldest are dropped, with a warning in the log.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kiosk.datadir import create_private_file

log = logging.getLogger(__name__)

FILE_NAME = "outbox.sqlite"
MAX_ROWS = 100_000  # per destination: days of a busy door


@dataclass(frozen=True)
class Pending:
    row: int
    destination: str
    body: str  # what the destination sends, as text (JSON)


class Outbox:
    """Thread-safe: the kiosk's loop adds, each destination's thread takes and deletes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        create_private_file(self.path)  # events name people
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # a committed event survives a power cut
            self._conn.execute("CREATE TABLE IF NOT EXISTS pending (row INTEGER PRIMARY KEY AUTOINCREMENT, "
                               "destination TEXT NOT NULL, body TEXT NOT NULL)")
            self._conn.execute("CREATE INDEX IF NOT EXISTS pending_destination ON pending (destination, row)")

    def add(self, entries: Iterable[tuple[str, str]]) -> None:
        """Queue (destination, body) pairs, all or none."""
        entries = list(entries)
        if not entries:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT INTO pending (destination, body) VALUES (?, ?)", entries)
                for destination in {d for d, _ in entries}:
                    self._trim(destination)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._added.notify_all()

    def next(self, destination: str, timeout: float | None = None) -> Pending | None:
        """The oldest row for `destination`, waiting up to `timeout` s for one; None if there is none."""
        with self._lock:
            found = self._oldest(destination)
            if found is None and timeout:
                self._added.wait(timeout)  # woken by add() or wake(); the caller asks again if still None
                found = self._oldest(destination)
            return found

    def wake(self) -> None:
        """Make threads waiting in next() look again (to notice they should stop)."""
        with self._lock:
            self._added.notify_all()

    def done(self, pending: Pending) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM pending WHERE row = ?", (pending.row,))

    def count(self, destination: str | None = None) -> int:
        with self._lock:
            if destination is None:
                return self._conn.execute("SELECT count(*) FROM pending").fetchone()[0]
            return self._conn.execute("SELECT count(*) FROM pending WHERE destination = ?",
                                      (destination,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _oldest(self, destination: str) -> Pending | None:
        found = self._conn.execute("SELECT row, destination, body FROM pending WHERE destination = ? "
                                   "ORDER BY row LIMIT 1", (destination,)).fetchone()
        return Pending(*found) if found else None

    def _trim(self, destination: str) -> None:
        extra = self._conn.execute("SELECT count(*) FROM pending WHERE destination = ?",
                                   (destination,)).fetchone()[0] - MAX_ROWS
        if extra > 0:
            self._conn.execute("DELETE FROM pending WHERE row IN (SELECT row FROM pending WHERE destination = ? "
                               "ORDER BY row LIMIT ?)", (destination, extra))
            log.warning("outbox for %s full: dropped its %d oldest events", destination, extra)
