"""Key rotation: re-seal every template and thumbnail with a new data key, safe against a crash.

1. key file: a new key is added and made current; the old ones are marked retiring;
2. database: key_state names the new key, so every writer seals with it from now on;
3. database, in small transactions: rows still sealed with an old key are re-sealed;
4. key file: the old keys are removed, once no row uses them.

Each step is durable before the next starts, so a SIGKILL anywhere leaves a key file that
opens every row (until step 4 it holds old and new keys). A rotation that was cut short is
finished by the next open_database() or `keys rotate`. Small transactions keep the kiosk,
which may be running meanwhile, from waiting on the database.

A site's database (several doors, kiosk.sitedb) is rotated in one server transaction instead
(rotate_site_keys); each door then needs the new key file. Either way every sealed row is
checked first: a damaged one stops the rotation before anything changed, and is named.
"""
from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace

from kiosk.connection import transaction
from kiosk.errors import KioskError
from kiosk.keystore import KEY_BYTES, keyring_lock, save_keyring
from kiosk.sealing import (
    Sealer,
    SealError,
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


class RotationError(KioskError):
    """A key rotation refused before it changed anything (a sealed row that cannot be opened)."""


def rotate_keys(conn: sqlite3.Connection, progress: Progress | None = None) -> Rotation:
    """Seal everything with a new data key and drop the old ones (see the module's steps).

    RotationError, with nothing changed, if a sealed row cannot be opened: re-sealing stops there,
    so every row is checked first. On a site database, rotate_site_keys()."""
    keys = sealer(conn)
    if getattr(conn, "backend", "sqlite") == "postgresql":
        return rotate_site_keys(conn, progress)
    with keyring_lock(keys.keyring.path):
        keys.reload()
        check_every_row_opens(conn, keys)
        if keys.keyring.retiring:
            _note(progress, f"finishing the interrupted rotation to key {keys.keyring.current}")
            _finish(conn, keys, progress)
        ring = keys.keyring.with_new_key()
        save_keyring(ring)
        keys.reload()
        _note(progress, f"new key {ring.current} added to {ring.path}")
        resealed = _finish(conn, keys, progress)
    return Rotation(ring.retiring, ring.current, resealed)


def rotate_site_keys(conn: sqlite3.Connection, progress: Progress | None = None) -> Rotation:
    """A site's rotation, run at one door: a new data key in this door's key file, and in one server
    transaction every sealed row of the site re-sealed with it, the site's current key set to it and
    the gallery's version moved, so that every door reloads at once. A door whose key file lacks the
    new key then refuses to decide, naming the key it needs, until the new key file is copied there
    (docs/site.md). All or nothing: the key file is put back if the transaction fails."""
    keys = sealer(conn)
    with keyring_lock(keys.keyring.path):
        keys.reload()
        check_every_row_opens(conn, keys)
        before = keys.keyring
        new_id = max(max(before.data_keys), current_key_id(conn)) + 1
        ring = replace(before, data_keys={**before.data_keys, new_id: secrets.token_bytes(KEY_BYTES)},
                       current=new_id, retiring=tuple(sorted(before.data_keys)))
        save_keyring(ring)  # durable before any row needs it
        keys.reload()
        _note(progress, f"new key {new_id} added to {ring.path}")
        try:
            with transaction(conn):
                conn.execute("INSERT INTO key_check (key_id, sealed) VALUES (?, ?)", (new_id, keys.key_check(new_id)))
                done = 0
                for table, id_column, column, extra, aad in _SEALED:
                    rows = conn.execute(f"SELECT {id_column}, key_id, {column}{extra} FROM {table}"
                                        f" WHERE key_id != ? ORDER BY {id_column}", (new_id,)).fetchall()
                    for row_id, key_id, blob, *more in rows:
                        associated = aad(row_id, *more)
                        plain = keys.open(key_id, blob, associated, f"{table} row {row_id}")
                        conn.execute(f"UPDATE {table} SET {column} = ?, key_id = ? WHERE {id_column} = ?",
                                     (keys.seal_with(new_id, plain, associated)[1], new_id, row_id))
                    done += len(rows)
                conn.execute("UPDATE key_state SET current_key = ?", (new_id,))
                conn.execute("DELETE FROM key_check WHERE key_id != ?", (new_id,))
                # Every door reloads its gallery now, and one without the new key says so.
                conn.execute("UPDATE gallery_state SET version = version + 1")
                conn.execute("SELECT pg_notify('kiosk_gallery', '')")
        except BaseException:
            save_keyring(before)
            keys.reload()
            raise
        _note(progress, f"re-sealed {done} rows")
        save_keyring(keys.keyring.without_retiring())
        keys.reload()
    return Rotation(tuple(sorted(before.data_keys)), new_id, done)


def check_every_row_opens(conn: sqlite3.Connection, keys: Sealer) -> None:
    """RotationError naming the first sealed row that cannot be opened (altered, moved, or sealed
    with a key the key file lacks)."""
    for table, id_column, column, extra, aad in _SEALED:
        for row_id, key_id, blob, *more in conn.execute(
                f"SELECT {id_column}, key_id, {column}{extra} FROM {table} ORDER BY {id_column}").fetchall():
            try:
                keys.open(key_id, blob, aad(row_id, *more), f"{table} row {row_id}")
            except SealError as exc:
                owner = f" (person {more[0]})" if table == "template" else ""
                raise RotationError(
                    f"{table} row {row_id}{owner} is damaged, so the keys were not rotated and nothing was "
                    f"changed: {exc}. Remove that row (or restore it from a backup), then rotate again") from None


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
