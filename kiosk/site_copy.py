"""A door's local copy of its site's gallery, so that it can start while the server is away.

Every time a door loads the site's gallery it also writes what it read to ``site-gallery.sqlite``
in its data directory: the active people's templates exactly as the server holds them (still
sealed with the site key, so the file alone reveals no face), their names, the gallery's version,
the model that made the templates, the site-wide settings and the site key's check values. While
the door stays connected it notes, at most once a minute, that the copy is still current.

A door that starts while the server cannot be reached decides from this copy, for as long as its
``offline_hours`` allow counted from when the copy was last known current, and never with a key
file that is not the one the copy was sealed with. Without a copy it cannot decide, and says so.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.datadir import create_private_file

log = logging.getLogger(__name__)

COPY_FILENAME = "site-gallery.sqlite"
CONFIRM_EVERY_S = 60.0  # how often a connected door notes that its copy is still current

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS copy_state (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL,"
    " confirmed REAL NOT NULL, key_id INTEGER NOT NULL, key_check BLOB NOT NULL, log_check BLOB NOT NULL,"
    " model TEXT, site_settings TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS template (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, dim INTEGER NOT NULL,"
    " key_id INTEGER NOT NULL, embedding BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS person (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
)


@dataclass(frozen=True)
class CopyState:
    version: int  # the site gallery's version the copy holds
    confirmed: float  # time.time() when the copy was last known to be the site's gallery
    key_id: int  # the site's data key then
    key_check: bytes
    log_check: bytes
    model: str | None  # the model that made the templates (gallery_model), None for an empty gallery
    site_settings: dict[str, Any]

    def age_s(self) -> float:
        return max(time.time() - self.confirmed, 0.0)


class GalleryCopy:
    """The copy file of one data directory (used from one thread at a time per instance)."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.path = Path(data_dir) / COPY_FILENAME
        self._confirmed_at = 0.0  # time.monotonic() of the last confirm() written

    def exists(self) -> bool:
        return self.path.exists() and self.state() is not None

    def _connect(self) -> sqlite3.Connection:
        create_private_file(self.path)  # names of people
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            conn.execute(statement)
        return conn

    def save(self, version: int, templates: Iterable[tuple], names: dict[int, str], key_id: int,
             key_check: bytes, log_check: bytes, model: str | None, site_settings: dict[str, Any]) -> None:
        """Replace the copy with this gallery (rows: id, person_id, dim, key_id, sealed embedding), in one
        transaction: a door killed meanwhile keeps the previous copy whole."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM template")
                conn.execute("DELETE FROM person")
                conn.executemany("INSERT INTO template (id, person_id, dim, key_id, embedding) VALUES (?, ?, ?, ?, ?)",
                                 ((int(i), int(p), int(d), int(k), bytes(b)) for i, p, d, k, b in templates))
                conn.executemany("INSERT INTO person (id, name) VALUES (?, ?)", names.items())
                conn.execute("INSERT OR REPLACE INTO copy_state (id, version, confirmed, key_id, key_check, log_check,"
                             " model, site_settings) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                             (int(version), time.time(), int(key_id), bytes(key_check), bytes(log_check), model,
                              json.dumps(site_settings)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        self._confirmed_at = time.monotonic()

    def confirm(self, version: int) -> None:
        """The server still holds this version: the copy is current now (written at most once a minute)."""
        if time.monotonic() - self._confirmed_at < CONFIRM_EVERY_S:
            return
        self._confirmed_at = time.monotonic()
        try:
            conn = self._connect()
            try:
                conn.execute("UPDATE copy_state SET confirmed = ? WHERE version = ?", (time.time(), int(version)))
            finally:
                conn.close()
        except sqlite3.Error as exc:  # a full disk: the copy just looks older than it is
            log.warning("cannot note that the local gallery copy %s is current: %s", self.path, exc)

    def state(self) -> CopyState | None:
        if not self.path.exists():
            return None
        conn = self._connect()
        try:
            row = conn.execute("SELECT version, confirmed, key_id, key_check, log_check, model, site_settings"
                               " FROM copy_state").fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        return CopyState(row[0], row[1], row[2], bytes(row[3]), bytes(row[4]), row[5], json.loads(row[6]))

    def rows(self) -> tuple[list[tuple], dict[int, str]]:
        """The copied templates (id, person_id, dim, key_id, sealed embedding), grouped by person, and the names."""
        conn = self._connect()
        try:
            templates = conn.execute("SELECT id, person_id, dim, key_id, embedding FROM template"
                                     " ORDER BY person_id, id").fetchall()
            names = dict(conn.execute("SELECT id, name FROM person").fetchall())
        finally:
            conn.close()
        return templates, names
