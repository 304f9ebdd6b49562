"""A site database: one PostgreSQL server shared by every door (kiosk) of a site.

The gallery, the access log and its chain are written for one storage layer with sqlite3's
interface; SiteConnection gives a psycopg 3 connection that interface, so they run unchanged
on either backend. What differs between the two SQL dialects is translated here, in one place:

- ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``);
- ``BEGIN IMMEDIATE`` (a writer) also takes a site-wide advisory lock, so writers queue one
  after another as they do on a SQLite file, and ids handed out before an insert (sealed
  templates are bound to their id) never collide between doors; ``BEGIN DEFERRED`` (a reader's
  consistent snapshot) is a REPEATABLE READ transaction;
- ``LIKE`` is case-insensitive as in SQLite (ILIKE);
- an INSERT into a table whose id the server gives (person, access_event) returns it
  (``cursor.lastrowid``).

A connection lost to the server raises DatabaseUnavailable; the next statement outside a
transaction reconnects (at most once a second), so a kiosk picks up where it was once the server
is back. A BEGIN, or a SELECT outside a transaction, that finds the connection dead (the server
restarted since it was last used) goes once more on a new connection: nothing was done on the old.

A door that starts while the server is away (kiosk.site, from its local copy of the gallery) is
made with ``connect=False``: it is "away" until its watch first reaches the server.

GalleryWatch keeps one more connection that LISTENs for the gallery triggers' NOTIFY
(kiosk.site_schema): a change made at any door (an enrolment, a removal, a person deactivated)
reaches every other door within a fraction of a second, and the kiosk's Gallery reloads its
matrix only then, never per frame. While the server is unreachable the watch says since when;
on its return it re-reads the gallery's version at once, so a person removed meanwhile is
refused from the next frame on.
"""
from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from kiosk.connection import DatabaseUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3
RECONNECT_EVERY_S = 1.0
WRITER_LOCK = 0x6B696F736B  # the advisory lock every writing transaction holds ("kiosk")
NOTIFY_CHANNEL = "kiosk_gallery"
CHECK_EVERY_S = 2.0  # how often an idle watch makes sure the server is still there
RETRY_S = 0.5  # between attempts to reach a server that is away
_RETURNS_ID = re.compile(r"^\s*INSERT INTO (person|access_event)\b", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """The URL without its password, for messages and the admin window."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def translate(sql: str) -> str:
    """SQLite-flavoured SQL as PostgreSQL runs it (see the module's docstring)."""
    sql = sql.replace("%", "%%").replace("?", "%s")
    sql = re.sub(r"\bLIKE\b", "ILIKE", sql)
    if _RETURNS_ID.match(sql) and "RETURNING" not in sql.upper():
        sql += " RETURNING id"
    return sql


class SiteCursor:
    """The part of sqlite3.Cursor the kiosk uses."""

    def __init__(self, cursor: psycopg.Cursor, returns_id: bool) -> None:
        self._cursor = cursor
        self.lastrowid: int | None = None
        self.rowcount = cursor.rowcount
        if returns_id:
            row = cursor.fetchone()
            self.lastrowid = row[0] if row else None

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())


class SiteConnection:
    """A PostgreSQL connection that the kiosk's storage code uses like its sqlite3 connection.

    Carries what kiosk.site.open_site_database() attaches: the keys (sealer), the door this kiosk is (``door``,
    which names its events and its log chain), and, for a kiosk, the local outbox (kiosk.sitelink)
    and the gallery watch.
    """

    backend = "postgresql"

    def __init__(self, url: str, door: str, connect: bool = True) -> None:
        """`connect=False`: a door starting while the server is away (kiosk.site): it connects later."""
        self.url = url
        self.door = door
        self.chain = door  # one log chain per door
        self.sealer = None
        self.after_commit: list[Callable[[Any], None]] | None = None
        self.outbox = None  # kiosk.sitelink.SiteOutbox, set by open_database() for a data directory
        self.watch = None  # GalleryWatch, started by the first Gallery.matrix()
        self.offline_limit_s: float | None = None  # how long Gallery decides offline; None: no limit
        self.copy = None  # kiosk.site_copy.GalleryCopy: the gallery as last loaded, kept in the data directory
        self.started_offline = not connect  # the server was away when the door started
        self.offline_since: float | None = None  # started offline: time.monotonic() the copy was last current
        self._conn: psycopg.Connection | None = None
        self._last_try = 0.0
        self._lock = threading.RLock()
        if connect:
            self._connect()

    # -- connection -------------------------------------------------------------------

    def _connect(self) -> None:
        self._last_try = time.monotonic()
        try:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                         application_name=f"face-kiosk {self.door}"[:63])
        except psycopg.OperationalError as exc:
            self._conn = None
            raise DatabaseUnavailable(f"cannot reach the site database {redacted_url(self.url)}: "
                                      f"{_first_line(exc)}") from None

    @property
    def online(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def away(self) -> bool:
        """The gallery watch, once it has reached the server, has lost it (and is trying again)."""
        return self.watch is not None and not self.watch.online and (
            self.watch.version is not None or self.started_offline)

    def _live(self) -> psycopg.Connection:
        if self.online:
            return self._conn
        # While the watch says the server is away, the door's loop does not wait for a connection
        # timeout of its own (seconds, where a network drops packets): the watch reconnects.
        if self.away or time.monotonic() - self._last_try < RECONNECT_EVERY_S:
            raise DatabaseUnavailable(f"the site database {redacted_url(self.url)} is unreachable")
        self._connect()
        return self._conn

    @property
    def in_transaction(self) -> bool:
        return self.online and self._conn.info.transaction_status in (
            TransactionStatus.INTRANS, TransactionStatus.INERROR, TransactionStatus.ACTIVE)

    # -- sqlite3's interface ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> SiteCursor:
        statement = sql.strip()
        with self._lock:
            if statement.upper().startswith("BEGIN"):
                return self._begin(statement.upper())
            idle = not self.in_transaction
            text = translate(sql)
            # A read outside a transaction may go again on a fresh connection: the server may
            # have restarted since this connection was last used.
            retry = idle and statement[:6].upper() == "SELECT"
            try:
                cursor = self._run(lambda conn: conn.execute(text, tuple(params) or None), idle, retry)
                return SiteCursor(cursor, text.endswith(" RETURNING id"))
            except psycopg.IntegrityError as exc:  # as sqlite3 says it: callers handle one kind
                raise sqlite3.IntegrityError(_first_line(exc)) from exc
            except psycopg.Error as exc:
                raise sqlite3.DatabaseError(_first_line(exc)) from exc

    def start_watch(self) -> GalleryWatch:
        """The gallery watch, started on first use; it sends the outbox on reconnecting."""
        with self._lock:
            if self.watch is None:
                flush = (lambda: self.outbox.try_flush(force=True)) if self.outbox is not None else None
                self.watch = GalleryWatch(self.url, self.door, flush, self.offline_since)
            return self.watch

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.outbox is not None:
            self.outbox.close()
        if self._conn is not None:
            self._conn.close()

    # -- helpers -------------------------------------------------------------------------

    def _begin(self, statement: str) -> SiteCursor:
        def begin(conn: psycopg.Connection) -> psycopg.Cursor:
            if "DEFERRED" in statement:
                return conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            conn.execute("BEGIN")
            return conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))

        return SiteCursor(self._run(begin, True, True), False)

    def _run(self, step: Callable[[psycopg.Connection], psycopg.Cursor], idle: bool, retry: bool) -> psycopg.Cursor:
        """`step` on the live connection; once more on a new one if it was lost and `retry` allows."""
        try:
            return step(self._live() if idle else self._conn)
        except psycopg.OperationalError as exc:
            self._lost(exc)
            if retry:
                self._last_try = 0.0
                try:
                    return step(self._live())
                except psycopg.OperationalError as again:
                    self._lost(again)
                    exc = again
            raise DatabaseUnavailable(f"lost the site database {redacted_url(self.url)}: "
                                      f"{_first_line(exc)}") from None

    def _lost(self, exc: Exception) -> None:
        log.warning("site database %s: %s", redacted_url(self.url), _first_line(exc))
        if self._conn is not None:  # a server shutting down may leave it open but useless
            self._conn.close()
            self._conn = None
            self._last_try = time.monotonic()


class GalleryWatch:
    """The site's gallery version, kept current by LISTEN/NOTIFY on a thread of its own."""

    def __init__(self, url: str, door: str, on_reconnect: Callable[[], object] | None = None,
                 offline_since: float | None = None) -> None:
        """`offline_since`: time.monotonic() the door last knew the server's gallery (it starts offline)."""
        self.url = url
        self.door = door
        self.version: int | None = None  # the newest gallery version seen; None before the first
        self.online = False
        self._offline_since = time.monotonic() if offline_since is None else offline_since
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"site-watch-{door}", daemon=True)
        self._thread.start()

    def offline_for(self) -> float:
        """Seconds since the server was last reachable (0 while it is)."""
        return 0.0 if self.online else time.monotonic() - self._offline_since

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                     application_name=f"face-kiosk {self.door} watch"[:63]) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._read(conn, came_back=True)
                    checked = time.monotonic()
                    while not self._stop.is_set():
                        changed = False
                        for _ in conn.notifies(timeout=0.2, stop_after=1):
                            changed = True
                        if changed or time.monotonic() - checked > CHECK_EVERY_S:
                            self._read(conn, came_back=not changed)
                            checked = time.monotonic()
            except psycopg.Error as exc:
                if self.online:
                    log.warning("site database %s unreachable: %s", redacted_url(self.url), exc)
                    with self._state_lock:
                        self.online = False
                        self._offline_since = time.monotonic()
                self._stop.wait(RETRY_S)

    def _read(self, conn: psycopg.Connection, came_back: bool = False) -> None:
        """Read the gallery's version; `came_back` (on connecting, and at every idle check) also
        has the outbox send what waits in it."""
        version = conn.execute("SELECT version FROM gallery_state").fetchone()[0]
        with self._state_lock:
            if not self.online:
                log.info("site database %s reachable (gallery version %d)", redacted_url(self.url), version)
            self.version = version
            self.online = True
        if came_back and self._on_reconnect is not None:
            self._on_reconnect()



def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
