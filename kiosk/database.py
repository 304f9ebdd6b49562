"""The kiosk's SQLite database: opening it, its schema migrations and its keys.

The kiosk window and the command-line tools may have the same file open at
once, so every connection uses WAL (readers never block the writer), a busy
timeout (writers queue instead of failing with "database is locked") and
writes go through ``transaction()`` (kiosk.connection), which takes the write lock up front.
A connection belongs to the thread that opened it (sqlite3's default); give
each thread its own.

Face templates and thumbnails are sealed (AES-GCM) and the access log is a keyed hash
chain; the keys live in a separate key file (kiosk.keystore), which open_database() loads,
or creates for a new database, and attaches to the connection.
"""

from __future__ import annotations

import hmac
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Union

from kiosk import seal_migration
from kiosk.connection import KioskConnection, checkpoint, transaction
from kiosk.datadir import create_private_file
from kiosk.errors import KioskError
from kiosk.keystore import KeyFileError, Keyring, create_keyring, key_file_path, load_keyring
from kiosk.rotation import finish_interrupted_rotation
from kiosk.sealing import Sealer

log = logging.getLogger(__name__)

DB_FILENAME = "kiosk.db"
DATABASE_URL_ENV = "KIOSK_DATABASE_URL"  # a site's PostgreSQL database instead of the file (kiosk.site)
BUSY_TIMEOUT_S = 10.0


def _name_doors(conn: sqlite3.Connection) -> None:
    # A log chained by this version's migration 2 already has its chain columns.
    for table, column, kind in (("access_event", "door_name", "TEXT"), ("log_entry", "chain", "TEXT NOT NULL DEFAULT ''"),
                                ("log_anchor", "chain", "TEXT NOT NULL DEFAULT ''")):
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    conn.execute("CREATE INDEX IF NOT EXISTS access_event_door ON access_event (door_name, time)")
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS log_anchor_chain ON log_anchor (chain)")


UNRECORDED_MODEL = "a model from before models were recorded (schema 2)"

# Each migration is a list of statements, or a function of the connection (which carries its
# keys), applied in one transaction; migration i (0-based) takes the schema from version i to
# i + 1. Only ever append.
Migration = Union[tuple[str, ...], Callable[[sqlite3.Connection], None]]
# Shared with kiosk.site_schema, so the column is the same on both backends.
LIVENESS_EXEMPT_COLUMN = ("ALTER TABLE person ADD COLUMN liveness_exempt INTEGER NOT NULL DEFAULT 0 "
                          "CHECK (liveness_exempt IN (0, 1))")

MIGRATIONS: tuple[Migration, ...] = (
    (
        # name_key is the case-folded name: uniqueness must ignore case for all
        # scripts, and SQLite's NOCASE only folds ASCII.
        """CREATE TABLE person (
            id          INTEGER PRIMARY KEY,
            name        TEXT NOT NULL,
            name_key    TEXT NOT NULL UNIQUE,
            external_id TEXT UNIQUE,
            active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created     TEXT NOT NULL
        )""",
        """CREATE TABLE template (
            id        INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES person (id) ON DELETE CASCADE,
            dim       INTEGER NOT NULL CHECK (dim > 0),
            embedding BLOB NOT NULL CHECK (length(embedding) = 4 * dim),
            quality   REAL NOT NULL,
            source    TEXT NOT NULL,
            created   TEXT NOT NULL
        )""",
        "CREATE INDEX template_person ON template (person_id)",
        # Thumbnails live apart so that loading the embeddings does not page them in.
        """CREATE TABLE template_thumbnail (
            template_id INTEGER PRIMARY KEY REFERENCES template (id) ON DELETE CASCADE,
            jpeg        BLOB NOT NULL
        )""",
        # Bumped by triggers on every change that can alter Gallery.matrix(), by any
        # connection or process; the matrix cache compares against it.
        """CREATE TABLE gallery_state (
            id      INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )""",
        "INSERT INTO gallery_state (id, version) VALUES (1, 0)",
        """CREATE TRIGGER template_insert_bumps AFTER INSERT ON template
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        """CREATE TRIGGER template_update_bumps AFTER UPDATE ON template
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        """CREATE TRIGGER template_delete_bumps AFTER DELETE ON template
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        """CREATE TRIGGER person_active_bumps AFTER UPDATE OF active ON person
           BEGIN UPDATE gallery_state SET version = version + 1; END""",
        # AUTOINCREMENT: ids are never reused, even after a purge empties the
        # table, so live views can poll for id > last seen.
        """CREATE TABLE access_event (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            time      TEXT NOT NULL,
            camera    TEXT NOT NULL,
            person_id INTEGER REFERENCES person (id) ON DELETE SET NULL,
            name      TEXT,
            score     REAL,
            decision  TEXT NOT NULL CHECK (decision IN ('granted', 'denied')),
            reason    TEXT NOT NULL,
            liveness  TEXT,
            door      TEXT
        )""",
        "CREATE INDEX access_event_time ON access_event (time)",
        "CREATE INDEX access_event_person ON access_event (person_id)",
        "CREATE INDEX access_event_decision ON access_event (decision, time)",
        """CREATE TABLE access_thumbnail (
            event_id INTEGER PRIMARY KEY REFERENCES access_event (id) ON DELETE CASCADE,
            jpeg     BLOB NOT NULL
        )""",
    ),
    # 2: templates and thumbnails sealed with the data key, the access log chained.
    seal_migration.migrate,
    # 3: which model made the gallery's templates (kiosk.gallery.Gallery.bind_model): two models
    # can make templates of one size that mean different things. Templates already enrolled were
    # made by a model no one recorded, and every model shipped before this one differs from it:
    # such a gallery is refused until re-enrolled.
    (
        """CREATE TABLE gallery_model (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            identity TEXT NOT NULL
        )""",
        f"""INSERT INTO gallery_model (id, identity) SELECT 1, '{UNRECORDED_MODEL}'
            WHERE EXISTS (SELECT 1 FROM template)""",
    ),
    # 4: the state file beside the key file (kiosk.sealstate) starts with the log's head and the
    # ids of every template removed so far (the gaps below the highest id ever given).
    seal_migration.record_state,
    # 5: doors. Every event names the door (kiosk) that decided it; the log has one chain per
    # door where several doors share a site database (kiosk.site_schema: its first version). A
    # kiosk's own file keeps its one chain, named "".
    _name_doors,
    # 6: people exempt from the liveness challenge (someone who cannot turn their head); the access
    # log records each grant made without it. (kiosk.site_schema.LATER[0] on a site database.)
    (LIVENESS_EXEMPT_COLUMN,),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaVersionError(KioskError):
    """The database was written by a newer kiosk than this one."""


def database_path(data_dir: str | Path) -> Path:
    """The database file inside a data directory."""
    return Path(data_dir) / DB_FILENAME


def open_database(path: str | Path, door: str | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the kiosk database and bring its schema up to date.

    Loads the database's key file (kiosk.keystore.key_file_path), or creates it for a
    database that holds no sealed data yet, and finishes a key rotation that was
    interrupted. Raises SchemaVersionError if the file comes from a newer kiosk version,
    KeyFileError if the key file is missing, not private, or not this database's. Events are
    logged as `door`'s (default: the machine's name).
    """
    path = Path(path)
    _create_private(path)
    # isolation_level=None: no implicit transactions; transaction() issues BEGIN itself.
    conn = sqlite3.connect(
        os.fspath(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, factory=KioskConnection
    )
    conn.door = door or default_door_id()
    try:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            raise _unopenable(path, exc) from exc
        if mode != "wal":  # e.g. on a network file system; still correct, just more locking
            log.warning("%s: WAL unavailable, using journal_mode=%s", path, mode)
        # FULL, not NORMAL: in WAL mode NORMAL can lose the last commits on power
        # loss, and an access decision must be on disk before the door opens.
        # The price is one fsync per commit, a few per minute at a door.
        conn.execute("PRAGMA synchronous = FULL")
        # Deleted rows (erased people, plain embeddings replaced by sealed ones) are
        # overwritten, not left readable in free pages of the file.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA foreign_keys = OFF")  # while migrating: table rebuilds must not cascade
        conn.sealer = Sealer(_keyring(conn, path))
        _migrate(conn, path)
        _check_keys(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        finish_interrupted_rotation(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class DatabaseAccessError(KioskError):
    """The database file or its folder cannot be opened for writing."""


def _create_private(path: Path) -> None:
    try:
        create_private_file(path)
    except OSError as exc:
        raise DatabaseAccessError(f"cannot create the database {path}: {exc.strerror}") from exc


def _unopenable(path: Path, exc: sqlite3.Error) -> KioskError:
    """SQLite's "unable to open database file", with the path and the likely cause."""
    folder = path.parent
    if not os.access(folder, os.W_OK):
        cause = f"the data directory {folder} is not writable (read-only, or owned by another user)"
    elif not os.access(path, os.W_OK):
        cause = "the database file is not writable (read-only, or owned by another user)"
    else:
        cause = str(exc)
    return DatabaseAccessError(f"cannot open the database {path}: {cause}; the kiosk needs to write "
                               f"there, and next to it (its -wal and -shm files)")


def _keyring(conn: sqlite3.Connection, path: Path) -> Keyring:
    key_file = key_file_path(path.parent)
    if key_file.exists():
        return load_keyring(key_file)
    if _has_key_state(conn):
        # Never make a new key here: the data sealed with the old one would be lost for good.
        raise KeyFileError(
            f"{path} holds data sealed with a key, but its key file {key_file} is missing; "
            f"restore the key file (or set $KIOSK_KEY_FILE to where it is kept)"
        )
    return create_keyring(key_file)


def _has_key_state(conn: sqlite3.Connection) -> bool:
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'key_state'"
    ).fetchone() is not None


def _check_keys(conn: KioskConnection) -> None:
    """Refuse a key file that is not the one this database was sealed with."""
    sealer = conn.sealer
    current, log_check = conn.execute("SELECT current_key, log_check FROM key_state").fetchone()
    check = conn.execute("SELECT sealed FROM key_check WHERE key_id = ?", (current,)).fetchone()
    if (
        not sealer.has_key(current)
        or check is None
        or not sealer.matches_key_check(current, check[0])
        or not hmac.compare_digest(log_check, sealer.log_key_check())
    ):
        raise KeyFileError(
            f"the key file {sealer.keyring.path} does not hold this database's keys (data key "
            f"{current} and the log key); is $KIOSK_KEY_FILE pointing at another kiosk's key file?"
        )


def _migrate(conn: sqlite3.Connection, path: str | Path) -> None:
    known = len(MIGRATIONS)
    version = _schema_version(conn)  # read without a lock: usually already current
    while version < known:
        with transaction(conn):
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = _schema_version(conn)
            if version < known:
                migration = MIGRATIONS[version]
                if callable(migration):
                    migration(conn)
                else:
                    for statement in migration:
                        conn.execute(statement)
                broken = conn.execute("PRAGMA foreign_key_check").fetchone()
                if broken is not None:
                    raise sqlite3.IntegrityError(f"migration {version + 1} broke a foreign key: {broken}")
                version += 1
                conn.execute(f"PRAGMA user_version = {version:d}")
                log.info("%s: migrated schema to version %d", path, version)
        # Move the replaced pages (zeroed by secure_delete) from the WAL into the file now.
        if not checkpoint(conn):
            log.warning("%s: the WAL could not be copied into the database file yet; a later checkpoint "
                        "overwrites the replaced pages", path)
    if version > known:
        raise SchemaVersionError(
            f"{path} has schema version {version}, but this kiosk only knows versions "
            f"up to {known}; upgrade face-kiosk or use another data directory"
        )


def _schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def default_door_id() -> str:
    """The machine's name, made a valid door id (kiosk.events.check_door_id)."""
    from kiosk.events import default_door_id as host_door

    return host_door()
