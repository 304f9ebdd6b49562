"""The access log's keyed hash chain: tampering with the database file shows up at the right entry."""
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kiosk.accesslog import AccessLog
from kiosk.cli import main
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Six events (ids 1-6, one a minute); event 1 and 5 with door outcomes, thumbnails on 1 and 3."""
    conn = open_database(database_path(tmp_path))
    gallery, log = Gallery(conn), AccessLog(conn)
    ada, bob = gallery.add_person("Ada").id, gallery.add_person("Bob").id
    log.record(camera="front", decision="granted", reason="match", person_id=ada, score=0.9, thumbnail=b"t1", time=at(0))
    log.set_door_outcome(1, "ok")
    log.record(camera="front", decision="denied", reason="unknown", score=0.2, time=at(1))
    log.record(camera="back", decision="granted", reason="match", person_id=bob, score=0.8, thumbnail=b"t3", time=at(2))
    log.record(camera="back", decision="denied", reason="liveness_failed", person_id=ada, score=0.7, time=at(3))
    log.record(camera="front", decision="granted", reason="match", person_id=ada, score=0.85, time=at(4))
    log.set_door_outcome(5, "timeout")
    log.record(camera="front", decision="denied", reason="several_faces", time=at(5))
    conn.close()
    return tmp_path


@pytest.fixture
def conn(data_dir: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(database_path(data_dir))
    yield connection
    connection.close()


def tamper(data_dir: Path, *statements: str) -> None:
    """Edit the database as an attacker would: plain sqlite3, no keys, foreign keys off."""
    raw = sqlite3.connect(database_path(data_dir))
    for statement in statements:
        raw.execute(statement)
    raw.commit()
    raw.close()


def entry_of(conn, event_id: int, kind: str = "event") -> int:
    return conn.execute("SELECT seq FROM log_entry WHERE event_id = ? AND kind = ?", (event_id, kind)).fetchone()[0]


def test_intact_log_verifies(conn):
    report = AccessLog(conn).verify()
    assert report.ok and report.first is None
    assert (report.entries, report.events, report.head_seq, report.anchor_seq) == (8, 6, 8, 0)


@pytest.mark.parametrize("statement, event_id, problem", [
    ("UPDATE access_event SET decision = 'granted' WHERE id = 4", 4, "time, camera, decision or reason altered"),
    ("UPDATE access_event SET time = '2024-05-01T07:00:00.000Z' WHERE id = 4", 4, "time, camera, decision or reason"),
    ("UPDATE access_event SET name = 'Mallory' WHERE id = 4", 4, "name, score, liveness or thumbnail altered"),
    ("UPDATE access_event SET score = 0.99 WHERE id = 2", 2, "name, score"),
    ("UPDATE access_event SET person_id = 2 WHERE id = 4", 4, "linked to another person"),
    ("UPDATE access_event SET door = 'ok' WHERE id = 3", 3, "door outcome 'ok' differs from the logged None"),
    ("DELETE FROM access_thumbnail WHERE event_id = 3", 3, "thumbnail altered"),
    ("UPDATE access_event SET redacted = 1, name = NULL WHERE id = 4", 4, "marked erased, but no erasure was logged"),
])
def test_a_modified_field_is_found_at_its_entry(data_dir, conn, statement, event_id, problem):
    tamper(data_dir, statement)
    report = AccessLog(conn).verify()
    assert not report.ok
    assert report.first.event_id == event_id and report.first.seq == entry_of(conn, event_id)
    assert problem in report.first.problem
    assert len(report.problems) == 1  # the entries after it still verify against it


def test_a_changed_door_record_is_found(data_dir, conn):
    tamper(data_dir, "UPDATE log_entry SET detail = 'ok' WHERE kind = 'door' AND event_id = 5",
           "UPDATE access_event SET door = 'ok' WHERE id = 5")
    first = AccessLog(conn).verify().first
    assert first.seq == entry_of(conn, 5, "door") and "door outcome altered" in first.problem


def test_swapped_thumbnails_are_found(data_dir, conn):
    tamper(data_dir, "UPDATE access_thumbnail SET jpeg = (SELECT jpeg FROM access_thumbnail WHERE event_id = 3)"
                     " WHERE event_id = 1")
    first = AccessLog(conn).verify().first
    assert first.event_id == 1 and "thumbnail of event 1 fails authentication" in first.problem


def test_a_deleted_middle_event_is_found(data_dir, conn):
    tamper(data_dir, "DELETE FROM access_event WHERE id = 3")
    report = AccessLog(conn).verify()
    assert report.first.event_id == 3 and report.first.seq == entry_of(conn, 3)
    assert "event 3 was deleted" in report.first.problem


def test_a_deleted_middle_event_with_its_entry_is_found_at_the_next_entry(data_dir, conn):
    seq = entry_of(conn, 3)
    tamper(data_dir, "DELETE FROM access_event WHERE id = 3", f"DELETE FROM log_entry WHERE seq = {seq}")
    report = AccessLog(conn).verify()
    assert report.first.seq == seq + 1 and report.first.event_id == 4
    assert f"entry {seq} missing" in report.first.problem
    assert len(report.problems) == 1


def test_reordered_events_are_found_at_the_first_of_them(data_dir, conn):
    # Swap what events 2 and 3 say (time, camera, decision, reason, score): same rows, new order.
    tamper(data_dir,
           "UPDATE access_event SET id = -2 WHERE id = 2",
           "UPDATE access_event SET id = 2 WHERE id = 3",
           "UPDATE access_event SET id = 3 WHERE id = -2",
           "UPDATE access_thumbnail SET event_id = 2 WHERE event_id = 3")
    report = AccessLog(conn).verify()
    assert report.first.event_id == 2 and report.first.seq == entry_of(conn, 2)
    assert {p.event_id for p in report.problems} == {2, 3}


def test_reordered_entries_are_found(data_dir, conn):
    first, second = entry_of(conn, 2), entry_of(conn, 3)
    tamper(data_dir,
           f"UPDATE log_entry SET seq = -1 WHERE seq = {first}",
           f"UPDATE log_entry SET seq = {first} WHERE seq = {second}",
           f"UPDATE log_entry SET seq = {second} WHERE seq = -1")
    assert AccessLog(conn).verify().first.seq == first


def test_a_forged_event_is_found_where_it_was_slipped_in(data_dir, conn):
    tamper(data_dir,
           "INSERT INTO access_event (id, time, camera, name, decision, reason)"
           " VALUES (100, '2024-05-01T08:02:30.000Z', 'back', 'Mallory', 'granted', 'match')")
    report = AccessLog(conn).verify()
    assert report.first.event_id == 100 and report.first.seq is None
    assert "not in the chain" in report.first.problem and report.first.time == "2024-05-01T08:02:30.000Z"
    # A forged row with a small id is reported before the entries that follow it.
    tamper(data_dir, "DELETE FROM access_event WHERE id = 100",
           "UPDATE access_event SET decision = 'granted' WHERE id = 6",
           "INSERT INTO access_event (id, time, camera, decision, reason)"
           " VALUES (0, '2024-05-01T07:59:00.000Z', 'back', 'granted', 'match')")
    report = AccessLog(conn).verify()
    assert [p.event_id for p in report.problems] == [0, 6]


def test_a_forged_entry_is_found(data_dir, conn):
    tamper(data_dir,
           "INSERT INTO access_event (id, time, camera, decision, reason) VALUES"
           " (7, '2024-05-01T08:06:00.000Z', 'front', 'granted', 'match')",
           "INSERT INTO log_entry (seq, kind, event_id, time, digest) VALUES"
           " (9, 'event', 7, '2024-05-01T08:06:00.000Z', zeroblob(32))")
    report = AccessLog(conn).verify()
    assert report.first.seq == 9 and "digest mismatch" in report.first.problem


def test_purge_keeps_the_chain_valid_and_anchored(data_dir, conn):
    log = AccessLog(conn)
    assert log.purge_older_than(days=1, now=at(2.5) + timedelta(days=1)) == 3
    report = log.verify()
    assert report.ok, report.problems
    assert report.anchor_seq == entry_of(conn, 4) - 1 and report.entries == 4
    # Events recorded meanwhile chain on; a later purge empties the log and still verifies.
    log.record(camera="front", decision="denied", reason="unknown", time=at(10))
    assert log.purge_older_than(days=0) == 4
    report = log.verify()
    assert report.ok and report.entries == 0 and report.head_seq == report.anchor_seq == 9
    log.record(camera="front", decision="denied", reason="unknown")
    assert log.verify().ok and log.verify().head_seq == 10


def test_purge_out_of_time_order_records_what_it_deleted(data_dir, conn):
    log = AccessLog(conn)
    log.record(camera="front", decision="denied", reason="unknown", time=at(-60))  # a clock that was behind
    assert log.purge_older_than(days=1, now=at(-30) + timedelta(days=1)) == 1
    report = log.verify()
    assert report.ok and report.anchor_seq == 0
    assert conn.execute("SELECT kind, event_id FROM log_entry ORDER BY seq DESC LIMIT 1").fetchone() == ("purge", 7)


def test_tampering_with_the_purge_anchor_is_found(data_dir, conn):
    log = AccessLog(conn)
    log.purge_older_than(days=1, now=at(2.5) + timedelta(days=1))
    first_kept = entry_of(conn, 4)
    # Delete one more old entry and move the anchor over it: the anchor's MAC needs the key.
    tamper(data_dir,
           f"UPDATE log_anchor SET seq = {first_kept}, digest = (SELECT digest FROM log_entry WHERE seq = {first_kept})",
           f"DELETE FROM log_entry WHERE seq = {first_kept}", "DELETE FROM access_event WHERE id = 4")
    assert "purge anchor was altered" in log.verify().first.problem
    tamper(data_dir, "DELETE FROM log_anchor")
    first = log.verify().first
    assert first.seq == first_kept + 1 and f"entries 1 to {first_kept} missing" in first.problem


def test_erasure_keeps_the_chain_valid_and_shows_where(data_dir, conn):
    log = AccessLog(conn)
    assert log.erase_person("ada") == 3
    report = log.verify()
    assert report.ok and report.redacted == 3
    erased = [e for e in log.query(newest_first=False) if e.redacted]
    assert [e.id for e in erased] == [1, 4, 5]
    assert all(e.name is None and e.person_id is None and e.score is None and not e.has_thumbnail for e in erased)
    assert [(e.decision, e.door) for e in erased] == [("granted", "ok"), ("denied", None), ("granted", "timeout")]
    assert log.thumbnail(1) is None and log.thumbnail(3) == b"t3"
    assert log.erase_person("Ada") == 0  # nothing left to erase
    # Editing what an erasure left is still found.
    tamper(data_dir, "UPDATE access_event SET decision = 'denied' WHERE id = 5")
    assert log.verify().first.event_id == 5


def test_erasure_spares_a_renamed_persons_old_name(conn):
    gallery, log = Gallery(conn), AccessLog(conn)
    gallery.rename("Bob", "Robert")  # event 3 was logged as "Bob", linked to Robert
    gallery.add_person("Bob")
    log.record(camera="front", decision="granted", reason="match", person_id=gallery.get_person("Bob").id)
    assert log.erase_person("Bob") == 1  # only the new Bob's event
    assert log.query(person="Robert")[0].name == "Bob"


def test_cli_log_verify(data_dir, capsys):
    assert main(["--data-dir", str(data_dir), "log", "verify"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("access log intact: 8 entries, 6 events")
    tamper(data_dir, "UPDATE access_event SET reason = 'match' WHERE id = 2")
    assert main(["--data-dir", str(data_dir), "log", "verify", "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False and report["first"]["event_id"] == 2 and report["first"]["seq"] == 3
    assert report["first"]["time"] == "2024-05-01T08:01:00.000Z"
    assert captured.err.startswith("error: access log chain broken at entry 3 (event 2, 2024-05-01T08:01:00.000Z)")


@pytest.mark.parametrize("statement", [
    # Writing a person into the erased rows...
    "UPDATE access_event SET name = 'Mallory Evil', score = 0.99, liveness = 'passed' WHERE redacted",
    "UPDATE access_event SET person_id = 2 WHERE id = 4",
    # ...or putting the original values back, with or without the erased mark.
    "UPDATE access_event SET name = 'Ada', person_id = 1, score = 0.9 WHERE id = 1",
    "UPDATE access_event SET redacted = 0, name = 'Ada', person_id = 1, score = 0.9 WHERE id = 1",
])
def test_an_erased_event_verifies_as_erased_and_nothing_else(data_dir, conn, statement):
    log = AccessLog(conn)
    assert log.erase_person("Ada") == 3 and log.verify().ok
    tamper(data_dir, statement)
    report = log.verify()
    assert not report.ok
    assert report.first.event_id in (1, 4) and "erased" in report.first.problem


def test_an_erased_events_thumbnail_put_back_is_found(data_dir, conn):
    raw = sqlite3.connect(database_path(data_dir))
    saved = raw.execute("SELECT event_id, key_id, jpeg FROM access_thumbnail WHERE event_id = 1").fetchone()
    raw.close()
    log = AccessLog(conn)
    log.erase_person("Ada")
    tamper(data_dir, f"INSERT INTO access_thumbnail (event_id, key_id, jpeg) VALUES (1, {saved[1]}, x'{saved[2].hex()}')")
    assert "holds a name, link, score, liveness or thumbnail again" in log.verify().first.problem


def test_deleting_the_newest_entries_is_found(data_dir, conn, capsys):
    log = AccessLog(conn)
    report = log.verify()
    assert report.ok and report.recorded_head_seq == report.head_seq == 8
    # The last two events and every entry about them, as someone hiding them would.
    tamper(data_dir, "DELETE FROM log_entry WHERE event_id IN (5, 6)", "DELETE FROM access_event WHERE id IN (5, 6)")
    report = log.verify()
    assert not report.ok and report.head_seq == 5
    assert report.first.seq == 6 and "entries 6 to 8 missing at the end" in report.first.problem
    assert main(["--data-dir", str(data_dir), "log", "verify"]) == 1
    assert "entries 6 to 8 missing at the end" in capsys.readouterr().err


def test_deleting_the_whole_log_is_found(data_dir, conn):
    tamper(data_dir, "DELETE FROM log_entry", "DELETE FROM access_event")
    assert "entries 1 to 8 missing at the end" in AccessLog(conn).verify().first.problem


def test_a_replaced_log_of_the_same_length_is_found(data_dir, conn, tmp_path):
    # Another kiosk's log with as many entries, under the same keys, cannot pass for this one.
    log = AccessLog(conn)
    log.record(camera="front", decision="denied", reason="unknown", time=at(6))
    head = log.verify().head_seq
    tamper(data_dir, f"DELETE FROM log_entry WHERE seq = {head}", "DELETE FROM access_event WHERE id = 7")
    log.record(camera="front", decision="granted", reason="match", time=at(7))  # a new entry at the same number
    report = log.verify()
    assert not report.ok and [p.problem for p in report.problems] == [
        f"entry {head} differs from the one the kiosk recorded (the log was replaced)"]


def test_the_recorded_head_follows_purges_and_other_connections(data_dir, conn):
    other = open_database(database_path(data_dir))
    AccessLog(other).record(camera="back", decision="denied", reason="unknown", time=at(9))
    other.close()
    log = AccessLog(conn)
    assert log.purge_older_than(days=1, now=at(60 * 24 * 3)) == 7  # everything
    report = log.verify()
    assert report.ok and report.entries == 0 and report.recorded_head_seq == report.head_seq == report.anchor_seq
