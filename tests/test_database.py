import sqlite3
import stat
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from kiosk import connection, database
from kiosk.accesslog import AccessLog
from kiosk.connection import timestamp, transaction
from kiosk.database import SCHEMA_VERSION, SchemaVersionError, database_path, open_database
from kiosk.datadir import default_data_dir, resolve_data_dir
from kiosk.gallery import Gallery


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return database_path(tmp_path)


# Data directory


def test_default_data_dir_follows_platform_conventions(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_data_dir() == tmp_path / ".local" / "share" / "face-kiosk"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "face-kiosk"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # invalid per the spec: ignored
    assert default_data_dir() == tmp_path / ".local" / "share" / "face-kiosk"

    monkeypatch.setattr("sys.platform", "darwin")
    assert default_data_dir() == tmp_path / "Library" / "Application Support" / "face-kiosk"

    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert default_data_dir() == tmp_path / "Local" / "face-kiosk"


def test_resolve_data_dir_prefers_explicit_then_env_then_default(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("KIOSK_DATA_DIR", raising=False)
    assert resolve_data_dir(None) == tmp_path / "xdg" / "face-kiosk"

    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "from-env"))
    assert resolve_data_dir(None) == tmp_path / "from-env"

    explicit = resolve_data_dir(tmp_path / "explicit" / "nested")
    assert explicit == tmp_path / "explicit" / "nested"
    assert explicit.is_dir()
    assert stat.S_IMODE(explicit.stat().st_mode) == 0o700


# Opening and migrating


def test_empty_file_is_migrated_and_reopens_with_data(db_path):
    db_path.touch()
    conn = open_database(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"person", "template", "access_event", "gallery_state"} <= tables
    with transaction(conn):
        conn.execute(
            "INSERT INTO person (name, name_key, created) VALUES ('Ada', 'ada', ?)", (timestamp(),)
        )
    conn.close()

    conn = open_database(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT name FROM person").fetchall() == [("Ada",)]
    conn.close()


def test_connection_settings(db_path):
    conn = open_database(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()


def test_newer_schema_version_is_refused(db_path):
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaVersionError, match="upgrade face-kiosk"):
        open_database(db_path)


def test_failed_migration_leaves_previous_version(db_path, monkeypatch):
    open_database(db_path).close()
    broken = ("CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(database, "MIGRATIONS", database.MIGRATIONS + (broken,))
    with pytest.raises(sqlite3.OperationalError):
        open_database(db_path)

    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    raw.close()


def test_foreign_keys_cascade(db_path):
    conn = open_database(db_path)
    with transaction(conn):
        person = conn.execute(
            "INSERT INTO person (name, name_key, created) VALUES ('Ada', 'ada', '')"
        ).lastrowid
        template = conn.execute(
            "INSERT INTO template (person_id, dim, key_id, embedding, quality, source, created)"
            " VALUES (?, 1, 1, zeroblob(32), 1.0, 'test', '')",
            (person,),
        ).lastrowid
        conn.execute(
            "INSERT INTO template_thumbnail (template_id, key_id, jpeg) VALUES (?, 1, x'00')",
            (template,),
        )
    with pytest.raises(sqlite3.IntegrityError):
        with transaction(conn):
            conn.execute(
                "INSERT INTO template (person_id, dim, key_id, embedding, quality, source, created)"
                " VALUES (999, 1, 1, zeroblob(32), 1.0, 'test', '')"
            )
    with transaction(conn):
        conn.execute("DELETE FROM person WHERE id = ?", (person,))
    assert conn.execute("SELECT count(*) FROM template").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM template_thumbnail").fetchone()[0] == 0
    conn.close()


def test_transaction_rolls_back_on_error(db_path):
    conn = open_database(db_path)
    with pytest.raises(RuntimeError):
        with transaction(conn):
            conn.execute("INSERT INTO person (name, name_key, created) VALUES ('A', 'a', '')")
            raise RuntimeError("boom")
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM person").fetchone()[0] == 0
    conn.close()


def test_nested_transaction_is_a_savepoint_of_the_outer_one(db_path):
    conn = open_database(db_path)
    with transaction(conn):
        conn.execute("INSERT INTO person (name, name_key, created) VALUES ('A', 'a', '')")
        with pytest.raises(RuntimeError):
            with transaction(conn):
                conn.execute("INSERT INTO person (name, name_key, created) VALUES ('B', 'b', '')")
                raise RuntimeError("inner fails alone")
        with transaction(conn):
            conn.execute("INSERT INTO person (name, name_key, created) VALUES ('C', 'c', '')")
        assert conn.in_transaction  # the inner blocks did not commit the outer one
    assert [r[0] for r in conn.execute("SELECT name FROM person ORDER BY name")] == ["A", "C"]
    with pytest.raises(RuntimeError):
        with transaction(conn):
            with transaction(conn):
                conn.execute("INSERT INTO person (name, name_key, created) VALUES ('D', 'd', '')")
            raise RuntimeError("outer fails: the inner block goes too")
    assert conn.execute("SELECT count(*) FROM person").fetchone()[0] == 2
    conn.close()


def test_next_id_never_reuses_a_deleted_id(db_path):
    conn = open_database(db_path)
    with transaction(conn):
        assert connection.next_id(conn, "access_event") == 1
        conn.execute("INSERT INTO access_event (id, time, camera, decision, reason) VALUES (5, '', '', 'denied', 'x')")
        assert connection.next_id(conn, "access_event") == 6
        conn.execute("DELETE FROM access_event")
        assert connection.next_id(conn, "access_event") == 6
    conn.close()


# Concurrency: the kiosk window and a CLI tool, each with its own connection


def test_writer_waits_for_another_connections_transaction(db_path):
    open_database(db_path).close()
    holding = threading.Event()
    errors: list[BaseException] = []

    def hold_write_lock() -> None:
        conn = open_database(db_path)
        try:
            with transaction(conn):
                conn.execute("INSERT INTO person (name, name_key, created) VALUES ('A', 'a', '')")
                holding.set()
                threading.Event().wait(0.5)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)
        finally:
            conn.close()

    thread = threading.Thread(target=hold_write_lock)
    thread.start()
    assert holding.wait(5)
    conn = open_database(db_path)
    with transaction(conn):  # blocks until the other commits, instead of "database is locked"
        conn.execute("INSERT INTO person (name, name_key, created) VALUES ('B', 'b', '')")
    thread.join()
    assert not errors
    assert conn.execute("SELECT count(*) FROM person").fetchone()[0] == 2
    conn.close()


def test_kiosk_and_cli_write_concurrently(db_path):
    open_database(db_path).close()
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    rounds = 25
    embedding = np.ones(8, np.float32) / np.sqrt(8)

    def cli_enrols() -> None:
        conn = open_database(db_path)
        try:
            gallery = Gallery(conn)
            start.wait()
            for i in range(rounds):
                gallery.add_person(f"person {i}")
                gallery.add_templates(f"person {i}", [embedding], [1.0], ["cli"])
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)
        finally:
            conn.close()

    def kiosk_logs() -> None:
        conn = open_database(db_path)
        try:
            gallery, log = Gallery(conn), AccessLog(conn)
            start.wait()
            for _ in range(rounds):
                gallery.matrix()
                log.record(camera="front", decision="denied", reason="unknown")
        except BaseException as error:
            errors.append(error)
        finally:
            conn.close()

    threads = [threading.Thread(target=cli_enrols), threading.Thread(target=kiosk_logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    conn = open_database(db_path)
    assert Gallery(conn).matrix()[0].shape == (rounds, 8)
    assert AccessLog(conn).count() == rounds
    conn.close()


# Timestamps


def test_timestamp_is_utc_with_milliseconds():
    plus_two = timezone(timedelta(hours=2))
    assert timestamp(datetime(2024, 5, 1, 14, 0, 0, 123456, plus_two)) == "2024-05-01T12:00:00.123Z"
    assert timestamp("2024-05-01T12:00:00Z") == "2024-05-01T12:00:00.000Z"
    assert timestamp().endswith("Z")
    with pytest.raises(ValueError, match="time zone"):
        timestamp(datetime(2024, 5, 1))
