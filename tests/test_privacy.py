"""Erasing people, the retention schedule and the admin commands' permission rule (no model needed)."""
import json
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from kiosk.accesslog import AccessLog
from kiosk.cli import main
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.retention import RetentionPurge, purge_expired
from kiosk.settings import KioskSettings


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Ada (2 templates with thumbnails, 2 events with a thumbnail) and Bob (1 template, 1 event)."""
    conn = open_database(database_path(tmp_path))
    gallery, log = Gallery(conn), AccessLog(conn)
    for name, seeds in (("Ada", [1, 2]), ("Bob", [3])):
        gallery.add_person(name)
        gallery.add_templates(name, [unit(s) for s in seeds], [1.0] * len(seeds), ["cam"] * len(seeds),
                              [b"face of " + name.encode()] * len(seeds))
    ada, bob = gallery.get_person("Ada").id, gallery.get_person("Bob").id
    log.record(camera="front", decision="granted", reason="match", person_id=ada, score=0.9, thumbnail=b"ada at door")
    log.record(camera="front", decision="granted", reason="match", person_id=bob, score=0.8)
    log.record(camera="back", decision="denied", reason="liveness_failed", person_id=ada, score=0.7,
               thumbnail=b"ada again")
    conn.close()
    return tmp_path


def cli(capsys, data_dir: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--data-dir", str(data_dir), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(data_dir: Path, sql: str) -> list:
    raw = sqlite3.connect(database_path(data_dir))
    try:
        return raw.execute(sql).fetchall()
    finally:
        raw.close()


def test_remove_with_erase_log(data_dir, capsys):
    code, out, err = cli(capsys, data_dir, "--json", "people", "remove", "ada", "--erase-log")
    assert code == 0, err
    assert json.loads(out) == {"removed": "Ada", "person_id": 1, "templates": 2, "events_erased": 2}
    assert rows(data_dir, "SELECT person_id FROM template") == [(2,)]
    assert rows(data_dir, "SELECT count(*) FROM template_thumbnail") == [(1,)]
    assert rows(data_dir, "SELECT event_id FROM access_thumbnail") == []
    assert rows(data_dir, "SELECT id, name, person_id, score, liveness, redacted FROM access_event ORDER BY id") == [
        (1, None, None, None, None, 1), (2, "Bob", 2, 0.8, None, 0), (3, None, None, None, None, 1)]
    code, out, _ = cli(capsys, data_dir, "log", "verify")
    assert code == 0 and "(2 erased)" in out
    code, out, _ = cli(capsys, data_dir, "log")
    assert out.count("(erased)") == 2 and "Bob" in out
    stored = b"".join(path.read_bytes() for path in data_dir.glob("kiosk.db*"))
    assert b"Ada" not in stored  # the person row and logged names are overwritten, not just unlinked


def test_remove_without_erase_log_keeps_the_logged_name(data_dir, capsys):
    code, out, err = cli(capsys, data_dir, "people", "remove", "Ada")
    assert code == 0 and out == "removed Ada and 2 templates\n"
    assert rows(data_dir, "SELECT name, person_id, redacted FROM access_event WHERE id = 1") == [("Ada", None, 0)]
    assert cli(capsys, data_dir, "log", "verify")[0] == 0  # unlinking by removal is not tampering


def test_erasure_failure_removes_nothing(data_dir, capsys):
    before = rows(data_dir, "SELECT * FROM access_event ORDER BY id"), rows(data_dir, "SELECT * FROM template")
    code, _, err = cli(capsys, data_dir, "people", "remove", "Nobody", "--erase-log")
    assert code == 1 and err == "error: no person named 'Nobody'\n"
    assert (rows(data_dir, "SELECT * FROM access_event ORDER BY id"), rows(data_dir, "SELECT * FROM template")) == before


@pytest.mark.parametrize("target", ["dir", "db"])
def test_admin_commands_refuse_a_writable_data_directory(data_dir, capsys, target):
    path = data_dir if target == "dir" else database_path(data_dir)
    os.chmod(path, 0o770 if target == "dir" else 0o664)
    before = rows(data_dir, "SELECT * FROM person")
    for argv in (["people", "remove", "Ada"], ["people", "rename", "Ada", "Eve"], ["keys"], ["keys", "rotate"],
                 ["enroll", "Eve", "eve.jpg"]):
        code, _, err = cli(capsys, data_dir, *argv)
        assert code == 1, argv
        assert err.startswith("error: refusing an admin command:") and f"chmod go-w {path}" in err, argv
    assert rows(data_dir, "SELECT * FROM person") == before
    # Reading stays possible, so the problem can be looked into.
    assert cli(capsys, data_dir, "people")[0] == 0 and cli(capsys, data_dir, "log", "verify")[0] == 0
    os.chmod(path, 0o700 if target == "dir" else 0o600)
    assert cli(capsys, data_dir, "people", "rename", "Ada", "Eve")[0] == 0


def age(days: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=days)


def test_retention_purges_at_start_then_periodically(data_dir):
    settings = KioskSettings()
    settings.retention_days = 30
    settings.save(data_dir)
    conn = open_database(database_path(data_dir))
    log = AccessLog(conn)
    log.record(camera="front", decision="denied", reason="unknown", time=age(40))
    retention = RetentionPurge(data_dir, interval_s=0.2)
    try:
        assert retention.start(conn) == 1
        log.record(camera="front", decision="denied", reason="unknown", time=age(31))  # expired meanwhile
        deadline = time.monotonic() + 10
        while (log.count(), retention.purged) != (3, 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.count() == 3 and retention.purged == 2
    finally:
        retention.stop()
    assert log.verify().ok
    conn.close()


def test_retention_zero_keeps_everything(data_dir):
    settings = KioskSettings()
    settings.retention_days = 0
    settings.save(data_dir)
    conn = open_database(database_path(data_dir))
    AccessLog(conn).record(camera="front", decision="denied", reason="unknown", time=age(4000))
    assert purge_expired(conn, data_dir) == 0 and AccessLog(conn).count() == 4
    conn.close()
