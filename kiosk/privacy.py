"""Erasing a person: their templates and thumbnails, and on request their access-log details."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from kiosk.accesslog import AccessLog
from kiosk.connection import checkpoint, transaction
from kiosk.gallery import Gallery, PersonRef


@dataclass(frozen=True)
class Removal:
    name: str
    person_id: int
    templates: int  # templates (with their thumbnails) deleted
    events_erased: int  # access events redacted (0 unless the log was erased too)


def remove_person(conn: sqlite3.Connection, person: PersonRef, erase_log: bool = False) -> Removal:
    """Delete a person with their templates and thumbnails, all in one transaction.

    With `erase_log`, their access events are redacted too (AccessLog.erase_person): name,
    link, score, liveness and thumbnail go, the chained entry stays and is marked erased.
    """
    gallery, access_log = Gallery(conn), AccessLog(conn)
    with transaction(conn):
        found = gallery.get_person(person)
        erased = access_log.erase_person(found.name) if erase_log else 0
        templates = gallery.remove(found.id)
    # secure_delete zeroed the old pages in the WAL; copy them over the database file now
    # (fully only when no other connection is reading; otherwise at a later checkpoint).
    if getattr(conn, "backend", "sqlite") == "sqlite":
        checkpoint(conn)
    return Removal(found.name, found.id, templates, erased)
