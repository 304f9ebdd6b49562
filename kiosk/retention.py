"""The access log's retention rule, applied when the kiosk starts and every hour while it runs.

The kiosk window's recognition worker and ``python -m kiosk run`` both use RetentionPurge, so
they purge alike: ``retention_days`` from the data directory's settings (read afresh each
time, so a change in the admin window applies at the next purge; 0 keeps events forever).
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from kiosk.accesslog import AccessLog, When
from kiosk.database import database_path, open_database
from kiosk.settings import KioskSettings

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0


def purge_expired(conn: sqlite3.Connection, data_dir: str | os.PathLike, now: When | None = None) -> int:
    """Delete the access events older than the settings' retention; returns how many."""
    from kiosk.site_settings import with_site

    days = with_site(KioskSettings.load(data_dir), conn).retention_days  # the site's, where it set one
    return AccessLog(conn).purge_older_than(days, now) if days > 0 else 0


class RetentionPurge:
    """Purges at start on the caller's connection, then every `interval_s` on its own thread
    (with its own connection: SQLite connections belong to their thread)."""

    def __init__(self, data_dir: str | os.PathLike, interval_s: float = PURGE_INTERVAL_S,
                 opener: Callable[[], sqlite3.Connection] | None = None) -> None:
        self._data_dir = Path(data_dir)
        # How the thread opens its connection: the data directory's file, or the site database.
        self._open = opener or (lambda: open_database(database_path(self._data_dir)))
        self._interval_s = float(interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.purged = 0  # events removed so far, start included

    def start(self, conn: sqlite3.Connection) -> int:
        """Purge now, start the periodic purge; returns the events removed now."""
        now = self._purge(conn)
        self._thread = threading.Thread(target=self._loop, name="retention-purge", daemon=True)
        self._thread.start()
        return now

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                conn = self._open()
            except Exception:
                log.exception("retention purge: cannot open the database in %s", self._data_dir)
                continue
            try:
                self._purge(conn)
            finally:
                conn.close()

    def _purge(self, conn: sqlite3.Connection) -> int:
        # A failed purge must not stop recognition; it is retried at the next interval.
        try:
            removed = purge_expired(conn, self._data_dir)
        except Exception:
            log.exception("retention purge failed")
            return 0
        if removed:
            log.info("retention purge removed %d access events", removed)
        self.purged += removed
        return removed
