"""Schema version 2: seal templates and thumbnails at rest, and chain the access log; version 4:
start the state file beside the key file (kiosk.sealstate).

Runs inside open_database()'s migration transaction (with foreign keys off, so that the
template table can be rebuilt without cascading), on a connection that carries its keys:
every plain embedding and thumbnail is sealed, and every existing access event (with its
door outcome) is entered into the log chain. secure_delete overwrites the plain pages.
"""
from __future__ import annotations

import sqlite3
from dataclasses import replace

from kiosk import logchain
from kiosk.sealing import access_thumbnail_aad, sealer, template_aad, template_thumbnail_aad
from kiosk.sealstate import SealState, update_state

_CREATE = (
    # current_key: the data key writers seal with, read inside their transaction, so a key
    # rotation by another process takes effect at once. log_check tells a wrong log key.
    """CREATE TABLE key_state (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        current_key INTEGER NOT NULL,
        log_check   BLOB NOT NULL
    )""",
    # A sealed constant per data key in use: tells a wrong key file at open.
    "CREATE TABLE key_check (key_id INTEGER PRIMARY KEY, sealed BLOB NOT NULL)",
    # AUTOINCREMENT: sealed embeddings are bound to their id, which must never be reused.
    """CREATE TABLE template_sealed (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id INTEGER NOT NULL REFERENCES person (id) ON DELETE CASCADE,
        dim       INTEGER NOT NULL CHECK (dim > 0),
        key_id    INTEGER NOT NULL,
        embedding BLOB NOT NULL CHECK (length(embedding) = 4 * dim + 28),
        quality   REAL NOT NULL,
        source    TEXT NOT NULL,
        created   TEXT NOT NULL
    )""",
    "ALTER TABLE template_thumbnail ADD COLUMN key_id INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE access_thumbnail ADD COLUMN key_id INTEGER NOT NULL DEFAULT 0",
    # An erased person's events keep their place (and digest) in the chain, content removed.
    "ALTER TABLE access_event ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0",
    *logchain.SCHEMA,
)

_REPLACE_TEMPLATE_TABLE = (
    "DROP TABLE template",  # its index and triggers go with it
    "ALTER TABLE template_sealed RENAME TO template",
    "CREATE INDEX template_person ON template (person_id)",
    """CREATE TRIGGER template_insert_bumps AFTER INSERT ON template
       BEGIN UPDATE gallery_state SET version = version + 1; END""",
    # Not when a key rotation re-seals a row: the embedding itself is unchanged, and a
    # running kiosk need not rebuild its matrix after every batch.
    """CREATE TRIGGER template_update_bumps AFTER UPDATE ON template WHEN new.key_id = old.key_id
       BEGIN UPDATE gallery_state SET version = version + 1; END""",
    """CREATE TRIGGER template_delete_bumps AFTER DELETE ON template
       BEGIN UPDATE gallery_state SET version = version + 1; END""",
    "UPDATE gallery_state SET version = version + 1",
)


def migrate(conn: sqlite3.Connection) -> None:
    keys = sealer(conn)
    for statement in _CREATE:
        conn.execute(statement)
    current = keys.keyring.current
    conn.execute(
        "INSERT INTO key_state (id, current_key, log_check) VALUES (1, ?, ?)",
        (current, keys.log_key_check()),
    )
    conn.execute("INSERT INTO key_check (key_id, sealed) VALUES (?, ?)", (current, keys.key_check(current)))

    rows = conn.execute(
        "SELECT id, person_id, dim, embedding, quality, source, created FROM template ORDER BY id"
    ).fetchall()
    for template_id, person_id, dim, embedding, quality, source, created in rows:
        key_id, sealed = keys.seal(conn, embedding, template_aad(template_id, person_id, dim))
        conn.execute(
            "INSERT INTO template_sealed (id, person_id, dim, key_id, embedding, quality, source, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (template_id, person_id, dim, key_id, sealed, quality, source, created),
        )
    for statement in _REPLACE_TEMPLATE_TABLE:
        conn.execute(statement)

    for table, id_column, aad in (
        ("template_thumbnail", "template_id", template_thumbnail_aad),
        ("access_thumbnail", "event_id", access_thumbnail_aad),
    ):
        for row_id, jpeg in conn.execute(f"SELECT {id_column}, jpeg FROM {table}").fetchall():
            key_id, sealed = keys.seal(conn, jpeg, aad(row_id))
            conn.execute(
                f"UPDATE {table} SET jpeg = ?, key_id = ? WHERE {id_column} = ?", (sealed, key_id, row_id)
            )

    events = conn.execute(
        "SELECT e.id, e.time, e.camera, e.person_id, e.name, e.score, e.decision, e.reason,"
        " e.liveness, e.door, EXISTS (SELECT 1 FROM access_thumbnail a WHERE a.event_id = e.id)"
        " FROM access_event e ORDER BY e.id"
    ).fetchall()
    for event_id, time, camera, person_id, name, score, decision, reason, liveness, door, thumb in events:
        logchain.chain_event(conn, logchain.EventFields(
            event_id, time, camera, decision, reason, bool(thumb), person_id, name, score, liveness,
        ))
        if door is not None:
            logchain.chain_record(conn, "door", event_id, detail=door, time=time)


def record_state(conn: sqlite3.Connection) -> None:
    """Record the log's head and, as removed, every template id below the highest ever given
    that no row holds (ids are never reused, so those belonged to removed templates)."""
    keys = sealer(conn)
    highest = conn.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'template'), 0),"
        " coalesce((SELECT max(id) FROM template), 0))"
    ).fetchone()[0]
    gaps, expected = [], 1
    for (template_id,) in conn.execute("SELECT id FROM template ORDER BY id"):
        if template_id > expected:
            gaps.append((expected, template_id - 1))
        expected = template_id + 1
    if highest >= expected:
        gaps.append((expected, highest))
    seq, digest = logchain.head(conn)

    def start(state: SealState) -> SealState:
        state = state.with_removed(gaps)
        # A record ahead of this log is kept: it tells that the log lost entries.
        return replace(state, head_seq=seq, head_digest=digest) if seq >= state.head_seq else state

    update_state(keys.keyring.path, keys.log_key, start)
