"""Opening a site database, and bringing a kiosk's own SQLite file into one.

    conn = open_site_database("postgresql://kiosk@db.example/site", data_dir, door="front")

The first door to open an empty site database creates its tables and its site key (the key file
in that door's data directory, as for a kiosk of its own). Every further door must hold the same
key file before it connects (SECURITY.md, README "A site with several doors"): templates stay
sealed with it and the log chains are keyed with it, so the server alone reveals no face and
cannot forge a log entry.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiosk.connection import DatabaseUnavailable, transaction
from kiosk.database import SCHEMA_VERSION, SchemaVersionError, open_database
from kiosk.events import check_door_id, default_door_id
from kiosk.keystore import KeyFileError, create_keyring, key_file_path, load_keyring
from kiosk.sealing import Sealer
from kiosk.site_copy import GalleryCopy
from kiosk.site_keys import check_site_key
from kiosk.sitedb import SiteConnection, redacted_url

log = logging.getLogger(__name__)


def open_site_database(url: str, data_dir: str | os.PathLike, door: str | None = None,
                       offline_hours: float | None = None) -> SiteConnection:
    """Connect to the site database as `door` (default: the machine's name), creating its schema
    on an empty database. The site key is the key file of `data_dir` (kiosk.keystore).

    Raises DatabaseUnavailable if the server cannot be reached, KeyFileError if this door lacks the
    site key or holds another one, SchemaVersionError if the site was set up by a newer kiosk.
    """
    from kiosk import site_schema
    from kiosk.sitelink import OUTBOX_FILENAME, SiteOutbox

    door = check_door_id(door or default_door_id())
    try:
        conn = SiteConnection(url, door)
    except DatabaseUnavailable as exc:
        return _open_offline(url, data_dir, door, offline_hours, exc)
    conn.offline_limit_s = None if offline_hours is None else offline_hours * 3600.0
    try:
        key_file = key_file_path(data_dir)
        with transaction(conn):  # the writers' lock: two doors starting on an empty site take turns
            version = site_schema.migrate(conn)
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(f"the site database {redacted_url(url)} has schema version {version}, "
                                         f"but this kiosk only knows versions up to {SCHEMA_VERSION}; upgrade face-kiosk")
            if conn.execute("SELECT 1 FROM key_state").fetchone() is None:  # a new site: this door's key is its key
                keys = Sealer(load_keyring(key_file) if key_file.exists() else create_keyring(key_file))
                conn.execute("INSERT INTO key_state (id, current_key, log_check) VALUES (1, ?, ?)",
                             (keys.keyring.current, keys.log_key_check()))
                conn.execute("INSERT INTO key_check (key_id, sealed) VALUES (?, ?)",
                             (keys.keyring.current, keys.key_check(keys.keyring.current)))
            elif not key_file.exists():
                raise KeyFileError(
                    f"this door holds no site key ({key_file}): copy the key file from a door of the site "
                    f"(keys/kiosk.key in its data directory) before connecting to {redacted_url(url)}")
            else:
                keys = Sealer(load_keyring(key_file))
            conn.sealer = keys
            current, check, log_check = conn.execute(
                "SELECT k.current_key, c.sealed, k.log_check FROM key_state k"
                " LEFT JOIN key_check c ON c.key_id = k.current_key").fetchone()
            check_site_key(keys, current, check, log_check, f"the site {redacted_url(url)}")
        conn.outbox = SiteOutbox(Path(data_dir) / OUTBOX_FILENAME, conn)
        conn.copy = GalleryCopy(data_dir)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_offline(url: str, data_dir: str | os.PathLike, door: str, offline_hours: float | None,
                  unreachable: DatabaseUnavailable) -> SiteConnection:
    """The server cannot be reached: a door that has a local copy of the site's gallery starts from
    it (kiosk.site_copy) and connects later; one without cannot decide, and the caller is told so."""
    from kiosk.sitelink import OUTBOX_FILENAME, SiteOutbox

    copy = GalleryCopy(data_dir)
    state = copy.state()
    if state is None:
        raise DatabaseUnavailable(f"{unreachable}; this door holds no copy of the site's gallery yet (it makes one "
                                  "when it first connects), so it cannot decide until the server can be reached")
    key_file = key_file_path(data_dir)
    if not key_file.exists():
        raise KeyFileError(f"this door holds no site key ({key_file}): copy the key file from a door of the site")
    keys = Sealer(load_keyring(key_file))
    check_site_key(keys, state.key_id, state.key_check, state.log_check, f"this door's gallery copy {copy.path}")
    conn = SiteConnection(url, door, connect=False)
    conn.offline_limit_s = None if offline_hours is None else offline_hours * 3600.0
    conn.sealer = keys
    conn.copy = copy
    conn.offline_since = time.monotonic() - state.age_s()
    conn.outbox = SiteOutbox(Path(data_dir) / OUTBOX_FILENAME, conn)
    log.warning("%s; starting from the local copy of the site's gallery (%.0f min old)", unreachable,
                state.age_s() / 60)
    return conn


@dataclass(frozen=True)
class Imported:
    people: int
    templates: int
    events: int


def import_kiosk(site: SiteConnection, data_dir: str | os.PathLike,
                 progress: Callable[[str], None] | None = None) -> Imported:
    """Copy a kiosk's own database (its people, templates with thumbnails, access events with
    their door outcomes and thumbnails) into the site database, as the events of `site`'s door.

    Refuses a kiosk whose log chain does not verify (what it holds may have been altered). The
    templates are opened with the kiosk's key and sealed again with the site key, bound to their
    new ids; the events are chained anew in the door's chain. One transaction: all or nothing.
    Names already at the site are refused (GalleryError) rather than merged.
    """
    from kiosk.accesslog import AccessLog
    from kiosk.database import database_path
    from kiosk.errors import KioskError
    from kiosk.gallery import Gallery

    source_path = database_path(data_dir)
    if not source_path.exists():
        raise KioskError(f"no kiosk database in {data_dir}")
    source = open_database(source_path)
    try:
        report = AccessLog(source).verify()
        if not report.ok:
            raise KioskError(f"the kiosk's access log does not verify ({report.first.problem}); "
                             "not imported: run `log verify` there")
        old, new = Gallery(source), Gallery(site)
        people = templates = events = 0
        identity = source.execute("SELECT identity FROM gallery_model").fetchone()
        with transaction(site):
            if identity is not None:
                first = old.templates()
                if first:
                    new.bind_model(first[0].embedding.size, identity[0])
            ids: dict[int, int] = {}
            for person in old.people():
                kept = old.templates(person.id)
                made = new.add_person(person.name, person.external_id)
                if not person.active:
                    new.set_active(made.id, False)
                ids[person.id] = made.id
                if kept:
                    new.add_templates(made.id, [t.embedding for t in kept], [t.quality for t in kept],
                                      [t.source for t in kept], [old.thumbnail(t.id) for t in kept])
                people += 1
                templates += len(kept)
            old_log, new_log = AccessLog(source), AccessLog(site)
            for event in old_log.query(newest_first=False):
                written = new_log.write(
                    camera=event.camera, decision=event.decision, reason=event.reason,
                    person_id=ids.get(event.person_id) if event.person_id is not None else None,
                    name=event.name, score=event.score, liveness=event.liveness, time=event.time,
                    door_name=site.door, thumbnail=old_log.thumbnail(event.id) if event.has_thumbnail else None)
                if event.door is not None:
                    new_log.write_door_outcome(written.id, event.door)
                events += 1
                if progress is not None and events % 1000 == 0:
                    progress(f"{events} events imported")
    finally:
        source.close()
    return Imported(people, templates, events)
