import csv
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from kiosk.accesslog import AccessLog
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(database_path(tmp_path))
    yield connection
    connection.close()


@pytest.fixture
def log(conn: sqlite3.Connection) -> AccessLog:
    return AccessLog(conn)


@pytest.fixture
def gallery(conn: sqlite3.Connection) -> Gallery:
    return Gallery(conn)


@pytest.fixture
def filled(log: AccessLog, gallery: Gallery) -> AccessLog:
    """Five events: Ada twice, Bob once, two strangers."""
    ada = gallery.add_person("Ada").id
    bob = gallery.add_person("Bob").id
    log.record(camera="front", decision="granted", reason="match", person_id=ada, score=0.9,
               liveness="live", thumbnail=b"jpeg-ada", time=at(0))
    log.record(camera="front", decision="denied", reason="unknown", score=0.3, time=at(10))
    log.record(camera="back", decision="granted", reason="match", person_id=bob, score=0.8,
               time=at(20))
    log.record(camera="back", decision="denied", reason="liveness_failed", person_id=ada,
               score=0.85, liveness="spoof", time=at(30))
    log.record(camera="front", decision="denied", reason="several_faces", time=at(40))
    return log


def test_record_returns_the_committed_event(log, conn, gallery):
    ada = gallery.add_person("Ada")
    event = log.record(camera="front", decision="granted", reason="match", person_id=ada.id,
                       score=np.float32(0.75), thumbnail=b"jpeg", time=at(0))
    assert event.name == "Ada"  # looked up from the gallery
    assert event.time == "2024-05-01T08:00:00.000Z"
    assert isinstance(event.score, float) and event.score == pytest.approx(0.75)
    assert event.has_thumbnail and event.door is None
    assert not conn.in_transaction
    assert log.query() == [event]
    assert log.thumbnail(event.id) == b"jpeg"


def test_record_validates(log):
    with pytest.raises(ValueError, match="decision"):
        log.record(camera="front", decision="maybe", reason="match")
    with pytest.raises(ValueError, match="time zone"):
        log.record(camera="front", decision="denied", reason="unknown", time=datetime(2024, 5, 1))
    assert log.count() == 0


def test_door_outcome(log):
    event = log.record(camera="front", decision="granted", reason="match")
    log.set_door_outcome(event.id, "opened")
    assert log.query()[0].door == "opened"
    with pytest.raises(LookupError):
        log.set_door_outcome(event.id + 1, "opened")


def test_query_order_and_paging(filled):
    times = [e.time[11:16] for e in filled.query()]
    assert times == ["08:40", "08:30", "08:20", "08:10", "08:00"]
    assert [e.time[11:16] for e in filled.query(newest_first=False, limit=2)] == ["08:00", "08:10"]
    assert [e.time[11:16] for e in filled.query(limit=2, offset=1)] == ["08:30", "08:20"]
    assert [e.time[11:16] for e in filled.query(offset=3)] == ["08:10", "08:00"]


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"since": at(10), "until": at(30)}, ["08:20", "08:10"]),  # since inclusive, until not
        ({"since": "2024-05-01T10:25:00+02:00"}, ["08:40", "08:30"]),
        ({"person": "ada"}, ["08:30", "08:00"]),
        ({"decision": "granted"}, ["08:20", "08:00"]),
        ({"reason": "unknown"}, ["08:10"]),
        ({"search": "SPOOF"}, ["08:30"]),  # liveness column, any case
        ({"search": "back"}, ["08:30", "08:20"]),  # camera column
        ({"search": "%"}, []),  # wildcards are taken literally
        ({"decision": "denied", "person": "Ada", "since": at(5)}, ["08:30"]),
    ],
)
def test_filters_in_query_and_count(filled, filters, expected):
    assert [e.time[11:16] for e in filled.query(**filters)] == expected
    assert filled.count(**filters) == len(expected)


def test_after_id_for_live_updates(filled):
    last = filled.latest_id()
    assert filled.query(after_id=last) == []
    new = filled.record(camera="front", decision="denied", reason="low_quality")
    assert filled.latest_id() == new.id > last
    assert filled.query(after_id=last) == [new]


def test_person_filter_follows_renames_and_removals(filled, gallery):
    gallery.rename("Ada", "Ada Lovelace")
    assert filled.count(person="Ada Lovelace") == 2  # logged as "Ada", same person id
    assert filled.count(person="Ada") == 2  # the name logged at the time
    gallery.remove("Ada Lovelace")
    events = filled.query(person="Ada")
    assert len(events) == 2
    assert all(e.person_id is None and e.name == "Ada" for e in events)  # ON DELETE SET NULL


def test_purge_older_than(filled):
    assert filled.purge_older_than(days=1, now=at(25) + timedelta(days=1)) == 3
    assert [e.time[11:16] for e in filled.query()] == ["08:40", "08:30"]
    with pytest.raises(ValueError):
        filled.purge_older_than(days=-1)


def test_purge_removes_thumbnails_and_ids_are_not_reused(filled, conn):
    last = filled.latest_id()
    assert filled.purge_older_than(days=0) == 5
    assert conn.execute("SELECT count(*) FROM access_thumbnail").fetchone()[0] == 0
    assert filled.latest_id() == 0
    new = filled.record(camera="front", decision="denied", reason="unknown")
    assert new.id > last  # a live view polling for id > last still sees it


def test_export_csv(filled, tmp_path):
    out = tmp_path / "exports" / "log.csv"
    out.parent.mkdir()
    out.write_text("old contents")
    assert filled.export_csv(out, decision="denied", newest_first=False) == 3
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "id", "time", "camera", "person_id", "name", "score", "decision", "reason",
        "liveness", "door", "redacted", "door_name",
    ]
    assert [r["reason"] for r in rows] == ["unknown", "liveness_failed", "several_faces"]
    assert rows[1]["name"] == "Ada" and float(rows[1]["score"]) == pytest.approx(0.85)
    assert rows[0]["person_id"] == "" and rows[0]["name"] == ""
    assert sorted(p.name for p in out.parent.iterdir()) == ["log.csv"]  # no temp file left


def test_export_csv_failure_leaves_no_file(filled, tmp_path):
    out = tmp_path / "exports" / "log.csv"
    out.parent.mkdir()
    with pytest.raises(TypeError):
        filled.export_csv(out, no_such_filter=1)
    with pytest.raises(ValueError):
        filled.export_csv(out, since=datetime(2024, 1, 1))  # naive: refused
    assert list(out.parent.iterdir()) == []
