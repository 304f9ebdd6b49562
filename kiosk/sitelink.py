"""A door's outbox to its site database.

SiteOutbox makes "logged before the door acts" hold without the server: every access event and
door outcome is first committed to a small SQLite file in the door's data directory (synced),
then written to the server in the order it was made, each in one server transaction that also
records the outbox row as delivered (outbox_delivery), so a row sent again after a lost
acknowledgement is never logged twice. While the server is away events wait there (with a
provisional, negative id); they go out as soon as the watch sees the server again.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kiosk.connection import DatabaseUnavailable, transaction
from kiosk.sitedb import RETRY_S, SiteConnection

log = logging.getLogger(__name__)

OUTBOX_FILENAME = "site-outbox.sqlite"


class SiteOutbox:
    """The door's events on their way to the site database (thread-safe)."""

    def __init__(self, path: str | os.PathLike, site: SiteConnection) -> None:
        self.path = Path(path)
        self._site = site
        self._sender: SiteConnection | None = None  # its own server connection: flushes run on any thread
        self._lock = threading.RLock()
        self._failed_at = -1e9
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # events name people: owner only
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # committed before the door acts, through a power cut
        self._db.execute("CREATE TABLE IF NOT EXISTS pending (row INTEGER PRIMARY KEY AUTOINCREMENT,"
                         " kind TEXT NOT NULL CHECK (kind IN ('event', 'door')), body TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT)")
        # The file's own name: a recreated outbox starts its rows at 1 again and must not be
        # taken for the old one's rows already delivered.
        self._db.execute("INSERT OR IGNORE INTO outbox (id, name) VALUES (1, ?)", (uuid.uuid4().hex,))
        self.name = self._db.execute("SELECT name FROM outbox").fetchone()[0]

    # -- what the access log hands over ------------------------------------------------

    def record(self, fields: dict[str, Any], thumbnail: bytes | None):
        """Commit an event here, then try to write it (and everything before it) to the server;
        the AccessEvent as logged, or as queued (provisional id -row) while the server is away.
        A face thumbnail goes along only when the event reaches the server at once."""
        from kiosk.accesslog import AccessEvent

        with self._lock:
            row = self._add("event", fields)
            delivered = self.try_flush({row: thumbnail} if thumbnail is not None else None)
            if row in delivered:
                return delivered[row]
            return AccessEvent(-row, fields["time"], fields["camera"], fields["person_id"], fields["name"],
                               fields["score"], fields["decision"], fields["reason"], fields["liveness"], None,
                               False, door_name=fields["door_name"], queued=True)

    def door_outcome(self, event_id: int, outcome: str) -> None:
        """Commit what the door did for an event (a provisional id names a queued one), then send."""
        with self._lock:
            self._add("door", {"event_id": event_id, "outcome": outcome})
            self.try_flush()

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM pending").fetchone()[0]

    # -- sending -----------------------------------------------------------------------

    def try_flush(self, thumbnails: dict[int, bytes] | None = None, force: bool = False) -> dict[int, Any]:
        """flush(), for a caller that must go on (the door's loop, the watch): what is committed
        here stays here, and a row the server refuses is tried again later, never dropped."""
        try:
            return self.flush(thumbnails, force)
        except Exception:
            log.exception("cannot send the outbox's events to the site database; they wait")
            return {}

    def flush(self, thumbnails: dict[int, bytes] | None = None, force: bool = False) -> dict[int, Any]:
        """Write the waiting rows to the server in order, each exactly once; stops at the first
        that cannot be written. Returns {row: AccessEvent} for the events written now."""
        from kiosk.accesslog import AccessLog

        delivered: dict[int, Any] = {}
        with self._lock:
            rows = self._db.execute("SELECT row, kind, body FROM pending ORDER BY row").fetchall()
            # While the server is away the watch says when it is back; a door does not wait for a
            # connection timeout at every decision.
            if not rows or (not force and (self._site.away or time.monotonic() - self._failed_at < RETRY_S * 2)):
                return delivered
            try:
                sender = self._connection()
                access_log = AccessLog(sender)
                for row, kind, body in rows:
                    fields = json.loads(body)
                    with transaction(sender):
                        done = sender.execute("SELECT event_id FROM outbox_delivery WHERE outbox = ? AND row = ?",
                                              (self.name, row)).fetchone()
                        if done is None:
                            event_id = self._write(sender, access_log, kind, fields, (thumbnails or {}).get(row))
                            if kind == "event":
                                delivered[row] = event_id
                                event_id = event_id.id
                            sender.execute("INSERT INTO outbox_delivery (outbox, row, event_id) VALUES (?, ?, ?)",
                                           (self.name, row, event_id))
                    self._db.execute("DELETE FROM pending WHERE row = ?", (row,))
            except DatabaseUnavailable as exc:
                self._failed_at = time.monotonic()
                log.info("site database away, %d events wait in the outbox: %s", len(rows) - len(delivered), exc)
        return delivered

    def _write(self, sender: SiteConnection, access_log, kind: str, fields: dict[str, Any], thumbnail: bytes | None):
        if kind == "event":
            person_id = fields["person_id"]
            if person_id is not None and sender.execute("SELECT 1 FROM person WHERE id = ?", (person_id,)).fetchone() is None:
                # Removed at another door while this one was offline: the event keeps the name, as
                # the events of a removed person do (ON DELETE SET NULL).
                fields = {**fields, "person_id": None}
            return access_log.write(**fields, thumbnail=thumbnail)
        event_id = fields["event_id"]
        if event_id < 0:  # queued when it was decided: its server id is in the delivery record
            found = sender.execute("SELECT event_id FROM outbox_delivery WHERE outbox = ? AND row = ?",
                                   (self.name, -event_id)).fetchone()
            event_id = found[0] if found else None
        try:
            if event_id is None:
                raise LookupError("its event never reached the site database")
            access_log.write_door_outcome(event_id, fields["outcome"])
        except LookupError as exc:  # purged meanwhile
            log.warning("door outcome %r for event %s not logged: %s", fields["outcome"], fields["event_id"], exc)
        return event_id

    def _connection(self) -> SiteConnection:
        if self._sender is None:
            self._sender = SiteConnection(self._site.url, self._site.door)
            self._sender.sealer = self._site.sealer
        return self._sender

    def _add(self, kind: str, body: dict[str, Any]) -> int:
        return self._db.execute("INSERT INTO pending (kind, body) VALUES (?, ?)",
                                (kind, json.dumps(body, ensure_ascii=False))).lastrowid

    def close(self) -> None:
        with self._lock:
            if self._sender is not None:
                self._sender.close()
            self._db.close()
