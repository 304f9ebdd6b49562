"""The access log: one row per access decision, with an optional face thumbnail.

Every write is also entered into the log's keyed hash chain (kiosk.logchain), so edits
made to the database outside the kiosk show up in ``verify()``. Thumbnails are sealed
(kiosk.sealing), bound to their event.
"""

from __future__ import annotations

import csv
import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kiosk import logchain
from kiosk.atomic import atomic_open
from kiosk.connection import DatabaseUnavailable, timestamp, transaction, utc_datetime
from kiosk.gallery import name_key
from kiosk.logchain import ChainReport
from kiosk.sealing import access_thumbnail_aad, sealer

DECISIONS = ("granted", "denied")
NO_LIMIT = 2**63 - 1  # LIMIT for "all": both backends take a 64-bit integer there

When = datetime | str  # an aware datetime or an ISO 8601 string with an offset


@dataclass(frozen=True)
class AccessEvent:
    id: int
    time: str  # ISO 8601 UTC with milliseconds
    camera: str
    person_id: int | None  # None when unknown or when the person was since removed
    name: str | None  # the name at the time of the event
    score: float | None
    decision: str  # "granted" | "denied"
    reason: str  # "match", "unknown", "low_quality", "several_faces", "ambiguous", ...
    liveness: str | None
    door: str | None  # outcome of the door action, filled in after the decision
    has_thumbnail: bool
    redacted: bool = False  # the person's details were erased (privacy); time and outcome remain
    door_name: str | None = None  # the door (kiosk) that decided; None for events from before doors were named
    queued: bool = False  # held in the door's outbox until the site database is back (its id is provisional)


_EVENT_COLUMNS = """
    SELECT e.id, e.time, e.camera, e.person_id, e.name, e.score, e.decision, e.reason,
           e.liveness, e.door,
           EXISTS (SELECT 1 FROM access_thumbnail a WHERE a.event_id = e.id), e.redacted, e.door_name
    FROM access_event e"""

# Columns a free-text search looks in.
_SEARCH_COLUMNS = ("name", "camera", "decision", "reason", "liveness", "door", "door_name")
_CSV_COLUMNS = [f.name for f in fields(AccessEvent) if f.name not in ("has_thumbnail", "queued")]


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), +cmd|...).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a leading ' before a text that would be a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _event(row: Sequence) -> AccessEvent:
    return AccessEvent(*row[:10], has_thumbnail=bool(row[10]), redacted=bool(row[11]), door_name=row[12])


def _check_decision(decision: str) -> None:
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")


@dataclass(frozen=True)
class _Filter:
    """The filters query(), count() and export_csv() share, compiled to a WHERE clause."""

    since: When | None = None  # inclusive
    until: When | None = None  # exclusive
    person: str | None = None  # current name of a gallery person, or the name logged
    decision: str | None = None
    reason: str | None = None
    search: str | None = None  # case-insensitive substring of any text column
    after_id: int | None = None  # only events newer than this id (live updates)
    door_name: str | None = None  # only this door's events

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            clauses.append("e.time >= ?")
            params.append(timestamp(self.since))
        if self.until is not None:
            clauses.append("e.time < ?")
            params.append(timestamp(self.until))
        if self.person is not None:
            # Also finds a renamed person's older events (by id) and a removed
            # person's events (by the logged name).
            clauses.append(
                "(e.person_id IN (SELECT id FROM person WHERE name_key = ?)"
                " OR lower(e.name) = lower(?))"
            )
            params += [name_key(self.person), self.person.strip()]
        if self.decision is not None:
            _check_decision(self.decision)
            clauses.append("e.decision = ?")
            params.append(self.decision)
        if self.reason is not None:
            clauses.append("e.reason = ?")
            params.append(self.reason)
        if self.search and self.search.strip():
            escaped = self.search.strip().replace("\\", "\\\\").replace("%", "\\%")
            pattern = "%" + escaped.replace("_", "\\_") + "%"
            clauses.append(
                "(" + " OR ".join(f"e.{c} LIKE ? ESCAPE '\\'" for c in _SEARCH_COLUMNS) + ")"
            )
            params += [pattern] * len(_SEARCH_COLUMNS)
        if self.after_id is not None:
            clauses.append("e.id > ?")
            params.append(int(self.after_id))
        if self.door_name is not None:
            clauses.append("e.door_name = ?")
            params.append(self.door_name)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class AccessLog:
    """Reads and writes the access log (one instance per connection)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._sealer = sealer(conn)  # refuses a connection without keys

    def record(
        self,
        *,
        camera: str,
        decision: str,
        reason: str,
        person_id: int | None = None,
        name: str | None = None,
        score: float | None = None,
        liveness: str | None = None,
        thumbnail: bytes | None = None,
        time: When | None = None,
    ) -> AccessEvent:
        """Log a decision. It is committed (and synced) when this returns, so open the door after.

        Without a name, the person's current gallery name is logged. On a site database the
        event goes through the door's outbox (kiosk.sitelink): committed there first, then
        written to the server, or kept in order until the server is back (``queued``).
        """
        _check_decision(decision)
        if not reason:
            raise ValueError("an access event needs a reason")
        # sqlite3 cannot bind numpy scalars, which is what matching hands out.
        person_id = None if person_id is None else int(person_id)
        # SQLite would store NaN as NULL; say so up front so the chain covers what is stored.
        score = None if score is None or math.isnan(float(score)) else float(score)
        fields = dict(camera=camera, decision=decision, reason=reason, person_id=person_id, name=name,
                      score=score, liveness=liveness, time=timestamp(time),
                      door_name=getattr(self._conn, "door", None))
        outbox = getattr(self._conn, "outbox", None)
        if outbox is not None:
            if name is None and person_id is not None:  # the name as it is now, not when the event reaches the server
                try:
                    row = self._conn.execute("SELECT name FROM person WHERE id = ?", (person_id,)).fetchone()
                    fields["name"] = row[0] if row else None
                except DatabaseUnavailable:
                    pass
            return outbox.record(fields, thumbnail)
        return self.write(**fields, thumbnail=thumbnail)

    def write(
        self, *, camera: str, decision: str, reason: str, person_id: int | None, name: str | None,
        score: float | None, liveness: str | None, time: str, door_name: str | None,
        thumbnail: bytes | None = None,
    ) -> AccessEvent:
        """Write one checked event (record()'s fields) to this database, in one transaction."""
        stamp = time
        with transaction(self._conn):
            if name is None and person_id is not None:
                row = self._conn.execute(
                    "SELECT name FROM person WHERE id = ?", (person_id,)
                ).fetchone()
                name = row[0] if row else None
            event_id = self._conn.execute(
                "INSERT INTO access_event"
                " (time, camera, person_id, name, score, decision, reason, liveness, door_name)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (stamp, camera, person_id, name, score, decision, reason, liveness, door_name),
            ).lastrowid
            if thumbnail is not None:
                key_id, sealed = self._sealer.seal(
                    self._conn, bytes(thumbnail), access_thumbnail_aad(event_id)
                )
                self._conn.execute(
                    "INSERT INTO access_thumbnail (event_id, key_id, jpeg) VALUES (?, ?, ?)",
                    (event_id, key_id, sealed),
                )
            logchain.chain_event(self._conn, logchain.EventFields(
                event_id, stamp, camera, decision, reason, thumbnail is not None,
                person_id, name, score, liveness, door_name,
            ))
        return AccessEvent(
            event_id, stamp, camera, person_id, name, score, decision, reason,
            liveness, None, thumbnail is not None, door_name=door_name,
        )

    def set_door_outcome(self, event_id: int, outcome: str) -> None:
        """Record what the door did for an event (chained as an entry of its own)."""
        outbox = getattr(self._conn, "outbox", None)
        if outbox is not None:
            outbox.door_outcome(int(event_id), outcome)
            return
        self.write_door_outcome(int(event_id), outcome)

    def write_door_outcome(self, event_id: int, outcome: str) -> None:
        """set_door_outcome() on this database itself."""
        with transaction(self._conn):
            cursor = self._conn.execute(
                "UPDATE access_event SET door = ? WHERE id = ?", (outcome, int(event_id))
            )
            if cursor.rowcount == 0:
                raise LookupError(f"no access event with id {event_id}")
            logchain.chain_record(self._conn, "door", int(event_id), detail=outcome)

    def query(
        self,
        *,
        since: When | None = None,
        until: When | None = None,
        person: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
        search: str | None = None,
        after_id: int | None = None,
        door_name: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[AccessEvent]:
        """Events matching all the given filters; `since` is inclusive, `until` exclusive."""
        flt = _Filter(since, until, person, decision, reason, search, after_id, door_name)
        return list(self._select(flt, limit, offset, newest_first))

    def count(
        self,
        *,
        since: When | None = None,
        until: When | None = None,
        person: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
        search: str | None = None,
        after_id: int | None = None,
        door_name: str | None = None,
    ) -> int:
        where, params = _Filter(since, until, person, decision, reason, search, after_id, door_name).where()
        row = self._conn.execute(f"SELECT count(*) FROM access_event e{where}", params).fetchone()
        return row[0]

    def thumbnail(self, event_id: int) -> bytes | None:
        row = self._conn.execute(
            "SELECT key_id, jpeg FROM access_thumbnail WHERE event_id = ?", (int(event_id),)
        ).fetchone()
        if row is None:
            return None
        return self._sealer.open(
            row[0], row[1], access_thumbnail_aad(event_id), f"thumbnail of event {event_id}"
        )

    def export_csv(
        self,
        path: str | Path,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        **filters: Any,
    ) -> int:
        """Write the matching events (no thumbnails) to a CSV file; returns the row count.

        Takes query()'s arguments. The file appears complete or not at all (temporary file
        beside it, fsync, rename over), readable by its owner only: it names people. Where the
        target may be is the caller's decision (kiosk.exports.check_export_target).
        """
        events = self._select(_Filter(**filters), limit, offset, newest_first)
        rows = 0
        with atomic_open(path, "w", permissions=0o600, newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(_CSV_COLUMNS)
            for event in events:
                writer.writerow([spreadsheet_safe(getattr(event, column)) for column in _CSV_COLUMNS])
                rows += 1
        return rows

    def purge_older_than(self, days: float, now: When | None = None) -> int:
        """Delete events (and their thumbnails) older than `days` days; returns how many.

        The chain keeps verifying: its oldest entries go with them, behind a MACed anchor.
        """
        if days < 0:
            raise ValueError("days must not be negative")
        cutoff = timestamp(utc_datetime(now) - timedelta(days=days))
        with transaction(self._conn):
            ids = [row[0] for row in self._conn.execute(
                "SELECT id FROM access_event WHERE time < ? ORDER BY id", (cutoff,)
            )]
            if ids:
                self._conn.execute("DELETE FROM access_event WHERE time < ?", (cutoff,))
                logchain.forget_events(self._conn, ids)
            return len(ids)

    def erase_person(self, name: str) -> int:
        """Erase a person's details from their events; returns how many events were erased.

        The events are those ``query(person=name)`` shows, except other people's: linked to the
        person now named so, or unlinked and logged under that name. Name, person link, score,
        liveness and thumbnail go; time, camera, decision, reason and door stay, marked redacted
        and chained as erased, so the chain still verifies and shows where erasure happened.
        """
        key = name_key(name)
        with transaction(self._conn):
            ids = [
                event_id
                for event_id, linked, logged in self._conn.execute(
                    "SELECT id, person_id IN (SELECT id FROM person WHERE name_key = ?), name"
                    " FROM access_event WHERE redacted = 0"
                    " AND (person_id IS NULL AND name IS NOT NULL"
                    "      OR person_id IN (SELECT id FROM person WHERE name_key = ?))"
                    " ORDER BY id",
                    (key, key),
                )
                if linked or (logged.strip() and name_key(logged) == key)
            ]
            for event_id in ids:
                self._conn.execute(
                    "UPDATE access_event SET person_id = NULL, name = NULL, score = NULL,"
                    " liveness = NULL, redacted = 1 WHERE id = ?", (event_id,),
                )
                self._conn.execute("DELETE FROM access_thumbnail WHERE event_id = ?", (event_id,))
                logchain.chain_record(self._conn, "erase", event_id)
        return len(ids)

    def doors(self) -> list[str]:
        """The doors that logged events, by name."""
        return [row[0] for row in self._conn.execute(
            "SELECT DISTINCT door_name FROM access_event WHERE door_name IS NOT NULL ORDER BY door_name")]

    def verify(self) -> ChainReport:
        """Check the log against its hash chains, one per door (see kiosk.logchain)."""
        return logchain.verify(self._conn)

    def latest_id(self) -> int:
        """The newest event's id, 0 if none; poll query(after_id=...) for live updates."""
        return self._conn.execute("SELECT coalesce(max(id), 0) FROM access_event").fetchone()[0]

    def _select(
        self, flt: _Filter, limit: int | None, offset: int, newest_first: bool
    ) -> Iterator[AccessEvent]:
        where, params = flt.where()
        order = "DESC" if newest_first else "ASC"
        cursor = self._conn.execute(
            f"{_EVENT_COLUMNS}{where} ORDER BY e.time {order}, e.id {order} LIMIT ? OFFSET ?",
            [*params, NO_LIMIT if limit is None else int(limit), int(offset)],
        )
        return (_event(row) for row in cursor)
