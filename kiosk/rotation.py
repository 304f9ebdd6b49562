"""Key rotation: re-seal every template and thumbnail with a new data key, safe against a crash.

1. key file: a new key is added and made current; the old ones are marked retiring;
2. database: key_state names the new key, so every writer seals with it from now on;
3. database, in small transactions: rows still sealed with an old key are re-sealed;
4. key file: the old keys are removed, once no row uses them.

Each step is durable before the next starts, so a SIGKILL anywhere leaves a key file that
opens every row (until step 4 it holds old and new keys). A rotation that was cut short is
finished by the next open_database() or `keys rotate`. Small transactions keep the kiosk,
which may be running meanwhile, from waiting on the database.
"""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.connection import transaction
from kiosk.keystore import keyring_lock, save_keyring
from kiosk.sealing import (
    Sealer,
    access_thumbnail_aad,
    current_key_id,
    sealer,
    template_aad,
    template_thumbnail_aad,
)

log = logging.getLogger(__name__)

BATCH_ROWS = 100

# (table, id column, sealed column, further columns the associated data needs, associated data)
_SEALED: tuple[tuple[str, str, str, str, Callable[..., bytes]], ...] = (
    ("template", "id", "embedding", ", person_id, dim", template_aad),
    ("template_thumbnail", "template_id", "jpeg", "", template_thumbnail_aad),
    ("access_thumbnail", "event_id", "jpeg", "", access_thumbnail_aad),
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Rotation:
    old_keys: tuple[int, ...]
    new_key: int
    resealed: int  # rows re-sealed


def rotate_keys(conn: sqlite3.Connection, progress: Progress | None = None) -> Rotation:
    """Seal everything with a new data key and drop the old ones (see the module's steps)."""
    keys = sealer(conn)
    with keyring_lock(keys.keyring.path):
        keys.reload()
        if keys.keyring.retiring:
            _note(progress, f"finishing the interrupted rotation to key {keys.keyring.current}")
            _finish(conn, keys, progress)
        ring = keys.keyring.with_new_key()
        save_keyring(ring)
        keys.reload()
        _note(progress, f"new key {ring.current} added to {ring.path}")
        resealed = _finish(conn, keys, progress)
    return Rotation(ring.retiring, ring.current, resealed)


def finish_interrupted_rotation(conn: sqlite3.Connection) -> int | None:
    """Complete a rotation that was cut short; None if there is none (or one is running now)."""
    keys = sealer(conn)
    if not keys.keyring.retiring:
        return None
    try:
        with keyring_lock(keys.keyring.path, wait=False) as locked:
            if not locked:  # its owner is alive and will finish it
                return None
            keys.reload()
            return _finish(conn, keys, None) if keys.keyring.retiring else None
    except OSError as exc:  # e.g. a read-only key folder: every row is readable meanwhile
        log.warning("cannot finish the interrupted key rotation (%s); run `keys rotate`", exc)
        return None


def rows_by_key(conn: sqlite3.Connection) -> dict[int, int]:
    """How many sealed rows use each data key."""
    counts: dict[int, int] = {}
    for table, *_ in _SEALED:
        for key_id, count in conn.execute(f"SELECT key_id, count(*) FROM {table} GROUP BY key_id"):
            counts[key_id] = counts.get(key_id, 0) + count
    return counts


def _finish(conn: sqlite3.Connection, keys: Sealer, progress: Progress | None) -> int:
    target = keys.keyring.current
    with transaction(conn):  # step 2
        if current_key_id(conn) != target:
            conn.execute("UPDATE key_state SET current_key = ?", (target,))
        if conn.execute("SELECT 1 FROM key_check WHERE key_id = ?", (target,)).fetchone() is None:
            conn.execute("INSERT INTO key_check (key_id, sealed) VALUES (?, ?)", (target, keys.key_check(target)))
    total = sum(count for key_id, count in rows_by_key(conn).items() if key_id != target)
    done = 0
    for table, id_column, column, extra, aad in _SEALED:  # step 3
        while True:
            with transaction(conn):
                rows = conn.execute(
                    f"SELECT {id_column}, key_id, {column}{extra} FROM {table} WHERE key_id != ? LIMIT ?",
                    (target, BATCH_ROWS),
                ).fetchall()
                for row_id, key_id, blob, *more in rows:
                    associated = aad(row_id, *more)
                    plain = keys.open(key_id, blob, associated, f"{table} row {row_id}")
                    conn.execute(
                        f"UPDATE {table} SET {column} = ?, key_id = ? WHERE {id_column} = ?",
                        (keys.seal_with(target, plain, associated)[1], target, row_id),
                    )
            if not rows:
                break
            done += len(rows)
            _note(progress, f"re-sealed {done} of {total} rows")
    with transaction(conn):
        # Writers seal with the target since step 2, so nothing can need an old key any more.
        conn.execute("DELETE FROM key_check WHERE key_id != ?", (target,))
    save_keyring(keys.keyring.without_retiring())  # step 4
    keys.reload()
    return done


def _note(progress: Progress | None, text: str) -> None:
    log.info("key rotation: %s", text)
    if progress is not None:
        progress(text)
