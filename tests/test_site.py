"""Several doors on one site database: a real PostgreSQL server (tests/postgres.py), doors as
separate connections and as separate processes."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("psycopg")  # the site extra (the test extra installs it)

from benchmarks.site import door_folder  # noqa: E402
from kiosk.accesslog import AccessLog  # noqa: E402
from kiosk.database import database_path, open_database  # noqa: E402
from kiosk.gallery import Gallery  # noqa: E402
from kiosk.keystore import KeyFileError  # noqa: E402
from kiosk.site import import_kiosk, open_site_database  # noqa: E402

postgres_module = pytest.importorskip("tests.postgres")
ROOT = Path(__file__).resolve().parents[1]
DIM = 16


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture(scope="module")
def server():
    server = postgres_module.started_server()
    yield server
    server.close()


@pytest.fixture
def site(server) -> str:
    return server.new_database()


def door_dir(tmp_path: Path, name: str, site_key_from: Path | None = None) -> Path:
    """A door's data directory, holding a copy of the site key when `site_key_from` is given."""
    return door_folder(tmp_path, name, site_key_from)


def enrol(gallery: Gallery, name: str, seeds: list[int]):
    return gallery.enroll(name, None, [unit(s) for s in seeds], [0.9] * len(seeds), ["test"] * len(seeds))


def test_two_doors_share_people_and_each_keeps_a_chain(site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    front = open_site_database(site, front_dir, "front")
    with pytest.raises(KeyFileError, match="holds no site key"):
        open_site_database(site, door_dir(tmp_path, "keyless"), "keyless")
    back = open_site_database(site, door_dir(tmp_path, "back", site_key_from=front_dir), "back")

    ada = enrol(Gallery(front), "Ada", [1, 2])
    templates, ids = Gallery(back).matrix()
    assert ids.tolist() == [ada.id, ada.id] and np.allclose(templates[0], unit(1))
    for conn, decision in ((front, "granted"), (back, "denied"), (front, "denied")):
        event = AccessLog(conn).record(camera="cam", decision=decision, reason="match", person_id=ada.id, score=0.8)
        AccessLog(conn).set_door_outcome(event.id, "opened")
    log = AccessLog(back)
    assert [e.door_name for e in log.query(newest_first=False)] == ["front", "back", "front"]
    assert [e.decision for e in log.query(door_name="front", newest_first=False)] == ["granted", "denied"]
    assert log.doors() == ["back", "front"] and log.count(door_name="back") == 1
    report = log.verify()
    assert report.ok and report.entries == 6 and report.chains == ("front",) and report.head_seq == 2

    # An event moved to another door, and a door's entry deleted, are both found and named.
    raw = open_site_database(site, door_dir(tmp_path, "admin", site_key_from=front_dir), "admin")
    raw.execute("UPDATE access_event SET door_name = 'back' WHERE id = 1")
    raw.execute("DELETE FROM log_entry WHERE chain = 'back' AND seq = 2")
    problems = [p.problem for p in AccessLog(raw).verify().problems]
    assert any(p.startswith("door front:") and "digest mismatch" in p for p in problems)
    assert any(p.startswith("door back:") for p in problems)
    for conn in (front, back, raw):
        conn.close()


def test_the_sqlite_kiosk_names_its_door_too(tmp_path):
    conn = open_database(database_path(tmp_path), door="lab")
    AccessLog(conn).record(camera="cam", decision="denied", reason="unknown")
    assert AccessLog(conn).query()[0].door_name == "lab"
    conn.execute("UPDATE access_event SET door_name = 'front'")
    assert not AccessLog(conn).verify().ok  # the door is covered by the chain
    conn.close()


WATCHER = """
import sys, time
from kiosk.gallery import Gallery
from kiosk.site import open_site_database
conn = open_site_database(sys.argv[1], sys.argv[2], "back")
gallery = Gallery(conn)
print("ready", sorted(set(gallery.matrix()[1].tolist())), flush=True)
seen = None
while True:
    ids = sorted(set(gallery.matrix()[1].tolist()))
    if ids != seen:
        print(time.time(), *ids, flush=True)
        seen = ids
    time.sleep(0.02)
"""


def watch_process(url: str, data_dir: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", WATCHER, url, str(data_dir)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = process.stdout.readline()
    assert line.startswith("ready"), process.stderr.read()
    return process


def changes(process: subprocess.Popen, until, timeout: float = 10.0) -> tuple[float, list[int]]:
    """The first line the door process prints (time, ids) for which until(ids) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline().split()
        stamp, ids = float(line[0]), [int(i) for i in line[1:]]
        if until(ids):
            return stamp, ids
    raise AssertionError("the other door never saw the change")


def test_a_change_at_one_door_reaches_another_door_process_within_2_s(site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    front = open_site_database(site, front_dir, "front")
    gallery = Gallery(front)
    ada = enrol(gallery, "Ada", [1])
    process = watch_process(site, door_dir(tmp_path, "back", site_key_from=front_dir))
    try:
        assert changes(process, lambda ids: ids == [ada.id])[1] == [ada.id]
        grace = enrol(gallery, "Grace", [2])
        enrolled = time.time()
        assert changes(process, lambda ids: grace.id in ids)[0] - enrolled < 2.0
        gallery.remove("Ada")
        removed = time.time()
        assert changes(process, lambda ids: ada.id not in ids)[0] - removed < 2.0
        gallery.set_active("Grace", False)
        deactivated = time.time()
        assert changes(process, lambda ids: ids == [])[0] - deactivated < 2.0
    finally:
        process.kill()
        process.wait()
        front.close()


ENROLLER = """
import sys
import numpy as np
from kiosk.gallery import Gallery
from kiosk.site import open_site_database
conn = open_site_database(sys.argv[1], sys.argv[2], sys.argv[3])
gallery = Gallery(conn)
for i in range(int(sys.argv[4])):
    rng = np.random.default_rng([int(sys.argv[5]), i])
    vectors = [v / np.linalg.norm(v) for v in rng.normal(size=(2, 16)).astype(np.float32)]
    gallery.enroll(f"{sys.argv[3]} person {i}", None, vectors, [0.9, 0.9], ["test", "test"])
    AccessLog = __import__("kiosk.accesslog", fromlist=["AccessLog"]).AccessLog
    AccessLog(conn).record(camera="cam", decision="granted", reason="match")
conn.close()
"""


def test_concurrent_enrolments_at_two_doors(site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    open_site_database(site, front_dir, "front").close()
    doors = [(name, door_dir(tmp_path, name, site_key_from=front_dir)) for name in ("east", "west")]
    processes = [subprocess.Popen([sys.executable, "-c", ENROLLER, site, str(folder), name, "15", str(seed)],
                                  cwd=ROOT, stderr=subprocess.PIPE, text=True)
                 for seed, (name, folder) in enumerate(doors)]
    for process in processes:
        assert process.wait(120) == 0, process.stderr.read()
    conn = open_site_database(site, front_dir, "front")
    gallery = Gallery(conn)
    people = gallery.people()
    assert len(people) == 30 and all(p.template_count == 2 for p in people)
    templates, ids = gallery.matrix()
    assert len(templates) == 60 and not gallery.damaged
    assert len({t.id for t in gallery.templates()}) == 60
    report = AccessLog(conn).verify()
    assert report.ok and report.events == 30 and set(report.chains) == {"east", "west"}
    conn.close()


class Link:
    """A TCP forwarder between a door and the server: cut it and the door is offline, the server up."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets = []

    def restore(self) -> None:
        self.up = True


def wait_until(condition, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_door_cut_off_decides_from_its_gallery_and_refuses_a_removal_on_reconnecting(server, site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    admin = open_site_database(site, front_dir, "admin")
    ada, grace = enrol(Gallery(admin), "Ada", [1]), enrol(Gallery(admin), "Grace", [2])
    link = Link(server.port)
    door = open_site_database(site.replace(f":{server.port}/", f":{link.port}/"),
                              door_dir(tmp_path, "back", site_key_from=front_dir), "back", offline_hours=1.0)
    gallery = Gallery(door)
    assert sorted(set(gallery.matrix()[1].tolist())) == [ada.id, grace.id]
    link.cut()
    wait_until(lambda: not door.watch.online)
    Gallery(admin).remove("Ada")  # while the door cannot hear it
    assert sorted(set(gallery.matrix()[1].tolist())) == [ada.id, grace.id]  # it goes on deciding
    assert gallery.get_person(grace.id).name == "Grace"
    queued = [AccessLog(door).record(camera="cam", decision="granted", reason="match", person_id=person.id,
                                     name=person.name) for person in (grace, ada)]
    assert all(e.queued and e.id < 0 for e in queued)
    link.restore()
    assert wait_until(lambda: ada.id not in gallery.matrix()[1]) < 3.0
    wait_until(lambda: door.outbox.count() == 0)
    # Ada's event arrives after her removal: it keeps her name, without the link to a person gone.
    assert [(e.door_name, e.person_id, e.name) for e in AccessLog(admin).query(newest_first=False)] == [
        ("back", grace.id, "Grace"), ("back", None, "Ada")]
    assert AccessLog(admin).verify().ok
    door.close()
    admin.close()


def test_offline_past_the_allowed_time_recognises_nobody(server, site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    admin = open_site_database(site, front_dir, "admin")
    enrol(Gallery(admin), "Ada", [1])
    link = Link(server.port)
    door = open_site_database(site.replace(f":{server.port}/", f":{link.port}/"),
                              door_dir(tmp_path, "back", site_key_from=front_dir), "back", offline_hours=0.0005)
    gallery = Gallery(door)
    assert gallery.matrix()[1].size == 1
    link.cut()
    wait_until(lambda: not door.watch.online)
    wait_until(lambda: gallery.matrix()[1].size == 0, timeout=5.0)  # after 1.8 s offline
    link.restore()
    wait_until(lambda: gallery.matrix()[1].size == 1)
    door.close()
    admin.close()


def test_server_stopped_mid_run_events_queue_and_arrive_once_in_order(server, site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    door = open_site_database(site, front_dir, "front", offline_hours=1.0)
    ada = enrol(Gallery(door), "Ada", [1])
    gallery, log = Gallery(door), AccessLog(door)
    assert gallery.matrix()[1].tolist() == [ada.id]
    made = []

    def decide(i: int):
        event = log.record(camera="cam", decision="granted" if i % 2 else "denied", reason=f"r{i}",
                           person_id=ada.id, score=0.5 + i / 100)
        log.set_door_outcome(event.id, f"opened {i}")
        made.append(event)

    for i in range(3):
        decide(i)
    server.stop()
    try:
        wait_until(lambda: not door.watch.online)
        for i in range(3, 10):
            assert gallery.matrix()[1].tolist() == [ada.id]  # decisions go on
            decide(i)
        assert all(e.queued for e in made[3:]) and door.outbox.count() == 14
    finally:
        server.start()
    wait_until(lambda: door.outbox.count() == 0, timeout=15.0)
    decide(10)
    events = AccessLog(open_site_database(site, front_dir, "front")).query(newest_first=False)
    assert [e.reason for e in events] == [f"r{i}" for i in range(11)]
    assert [e.door for e in events] == [f"opened {i}" for i in range(11)]
    report = log.verify()
    assert report.ok and report.events == 11 and report.head_seq == 22 and report.recorded_head_seq == 22
    door.close()


def test_delivery_is_exactly_once_when_the_acknowledgement_is_lost(site, tmp_path):
    """The outbox row went to the server but the door died before deleting it: sent again, logged once."""
    front_dir = door_dir(tmp_path, "front")
    door = open_site_database(site, front_dir, "front")
    AccessLog(door).record(camera="cam", decision="denied", reason="unknown")
    outbox = door.outbox
    outbox._db.execute("INSERT INTO pending (row, kind, body) SELECT 1, 'event', ?",
                       (json.dumps(dict(camera="cam", decision="denied", reason="unknown", person_id=None,
                                        name=None, score=None, liveness=None, time="2024-01-01T00:00:00.000Z",
                                        door_name="front")),))
    outbox.flush(force=True)
    assert outbox.count() == 0 and AccessLog(door).count() == 1
    door.close()


def test_import_an_existing_kiosk(site, tmp_path):
    kiosk_dir = door_dir(tmp_path, "old-kiosk")
    old = open_database(database_path(kiosk_dir), door="lab")
    gallery = Gallery(old)
    ada = gallery.enroll("Ada", "1042", [unit(1), unit(2)], [0.9, 0.8], ["a.jpg", "b.jpg"], [b"jpeg-a", None])
    enrol(gallery, "Grace", [3])
    gallery.set_active("Grace", False)
    log = AccessLog(old)
    first = log.record(camera="cam", decision="granted", reason="match", person_id=ada.id, score=0.9,
                       thumbnail=b"face")
    log.set_door_outcome(first.id, "opened")
    log.record(camera="cam", decision="denied", reason="unknown")
    old.close()

    site_dir = door_dir(tmp_path, "front")
    open_site_database(site, site_dir, "front").close()  # the site exists with its own key
    conn = open_site_database(site, door_dir(tmp_path, "lab", site_key_from=site_dir), "lab")
    done = import_kiosk(conn, kiosk_dir)
    assert (done.people, done.templates, done.events) == (2, 3, 2)
    new = Gallery(conn)
    people = {p.name: p for p in new.people()}
    assert people["Ada"].external_id == "1042" and not people["Grace"].active
    templates = new.templates(people["Ada"].id)
    assert [t.source for t in templates] == ["a.jpg", "b.jpg"]
    assert np.array_equal(templates[1].embedding, unit(2)) and new.thumbnail(templates[0].id) == b"jpeg-a"
    events = AccessLog(conn).query(newest_first=False)
    assert [(e.decision, e.door, e.door_name, e.has_thumbnail) for e in events] == [
        ("granted", "opened", "lab", True), ("denied", None, "lab", False)]
    assert events[0].person_id == people["Ada"].id and AccessLog(conn).thumbnail(events[0].id) == b"face"
    assert AccessLog(conn).verify().ok
    conn.close()


def cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiosk", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_command_line_on_a_site(site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    conn = open_site_database(site, front_dir, "front")
    AccessLog(conn).record(camera="cam", decision="denied", reason="unknown")
    conn.close()
    back_dir = door_dir(tmp_path, "back", site_key_from=front_dir)
    conn = open_site_database(site, back_dir, "back")
    AccessLog(conn).record(camera="cam", decision="granted", reason="match")
    conn.close()
    done = cli("--data-dir", str(back_dir), "--door-id", "back", "--json", "log", "--door", "front",
               env={"KIOSK_DATABASE_URL": site})
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["door_name"] for line in done.stdout.splitlines()] == ["front"]
    done = cli("--data-dir", str(back_dir), "--door-id", "back", "--database", site, "log", "verify")
    assert done.returncode == 0 and "access log intact" in done.stdout and "1 other door" in done.stdout
    done = cli("--data-dir", str(tmp_path / "new"), "--database", site, "log")
    assert done.returncode == 1 and done.stderr.startswith("error: this door holds no site key")
    done = cli("--data-dir", str(back_dir), "--database", "mysql://x", "log")
    assert done.returncode == 1 and "must be a postgresql:// URL" in done.stderr


@pytest.fixture(scope="module")
def photos(lfw) -> dict[str, list[Path]]:
    from tests.test_cli import PERSON, STRANGER

    return {name: [lfw.image_path(ref) for ref in lfw.images_of([name])[:14]] for name in (PERSON, STRANGER)}


def test_enrolled_at_one_door_recognised_at_another_and_refused_once_removed(site, tmp_path, capsys, engine, photos):
    """The real model and command line: enrol at the front door, the back door's kiosk grants; remove
    at the front, the back door denies."""
    from kiosk.settings import KioskSettings
    from tests.test_cli import ENROLL, PERSON, PROBE, STRANGER, cli, json_lines, write_video

    front_dir = door_dir(tmp_path, "front")
    front = ("--data-dir", front_dir, "--database", site, "--door-id", "front", "--json")
    code, out, err = cli(capsys, *front, "enroll", PERSON, *photos[PERSON][ENROLL])
    assert code == 0, err
    back_dir = door_dir(tmp_path, "back", site_key_from=front_dir)
    back = ("--data-dir", back_dir, "--database", site, "--door-id", "back", "--json")
    code, out, err = cli(capsys, *back, "identify", photos[PERSON][PROBE])
    assert code == 0 and json_lines(out)[0]["name"] == PERSON, err

    KioskSettings(liveness=False).save(back_dir)  # this test is about the site, not the liveness challenge
    video = write_video(tmp_path / "door.avi", [photos[PERSON][PROBE]] * 10 + photos[STRANGER][:10])
    code, out, err = cli(capsys, *back, "run", "--camera", video, "--headless")
    assert code == 0, err
    assert [(d["decision"], d["name"]) for d in json_lines(out)] == [("granted", PERSON), ("denied", None)]

    code, out, err = cli(capsys, *front, "people", "remove", PERSON)
    assert code == 0, err
    code, out, err = cli(capsys, *back, "run", "--camera", video, "--headless")
    assert code == 0, err
    refused = json_lines(out)  # nobody is enrolled now: one unknown visitor from start to end
    assert refused and all((d["decision"], d["name"]) == ("denied", None) for d in refused)
    code, out, err = cli(capsys, *front, "log", "--door", "back")
    assert [e["decision"] for e in json_lines(out)] == ["denied"] * len(refused) + ["denied", "granted"]
    code, out, err = cli(capsys, *front, "log", "verify")
    assert code == 0, out + err


@pytest.mark.slow
def test_a_running_kiosk_goes_on_deciding_while_the_server_is_down(server, site, tmp_path, capsys, engine, photos):
    """`python -m kiosk run` as its own process: the server stopped mid-run, decisions go on and their
    events wait in the outbox; the server back, every event arrives once, in order, and the log verifies."""
    import cv2

    from kiosk.settings import KioskSettings
    from tests.test_cli import ENROLL, PERSON, PROBE, STRANGER, cli, write_video

    front_dir = door_dir(tmp_path, "front")
    code, out, err = cli(capsys, "--data-dir", front_dir, "--database", site, "enroll", PERSON, *photos[PERSON][ENROLL])
    assert code == 0, err
    KioskSettings(liveness=False).save(front_dir)
    blank = tmp_path / "blank.png"  # an empty doorway between visitors ends each visit
    cv2.imwrite(str(blank), np.full((250, 250, 3), 128, np.uint8))
    video = write_video(tmp_path / "door.avi",
                        [photos[PERSON][PROBE]] * 6 + [blank] * 2 + photos[STRANGER][:6] + [blank] * 2)
    process = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--data-dir", str(front_dir), "--database", site, "--door-id", "front",
         "--json", "run", "--camera", str(video), "--headless", "--loop"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    decisions: list[dict] = []
    reader = threading.Thread(target=lambda: decisions.extend(json.loads(line) for line in process.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(decisions) >= 2, timeout=90)
        server.stop()
        stopped = len(decisions)
        try:
            wait_until(lambda: len(decisions) >= stopped + 2, timeout=30)  # decisions go on
        finally:
            server.start()
        assert [d for d in decisions[stopped:] if d["event_id"] < 0]  # queued, with provisional ids
        outbox = sqlite3.connect(front_dir / "site-outbox.sqlite")
        wait_until(lambda: outbox.execute("SELECT count(*) FROM pending").fetchone()[0] == 0, timeout=30)
        outbox.close()
        assert all(d["decision"] == ("granted" if d["name"] == PERSON else "denied") for d in decisions)
    finally:
        process.terminate()
        process.wait(30)
        print(process.stderr.read())
    assert process.returncode == 0
    conn = open_site_database(site, front_dir, "front")
    events = AccessLog(conn).query(newest_first=False)
    # Every decision printed is one event, in the order decided; none lost, none twice.
    assert [(e.decision, e.name) for e in events] == [(d["decision"], d["name"]) for d in decisions]
    assert [e.time for e in events] == [d["time"] for d in decisions]
    report = AccessLog(conn).verify()
    assert report.ok and report.events == len(decisions)
    conn.close()


def test_site_wide_settings_are_shared_and_checked(site, tmp_path):
    from kiosk.retention import purge_expired
    from kiosk.settings import KioskSettings
    from kiosk.site_settings import with_site

    front_dir = door_dir(tmp_path, "front")
    open_site_database(site, front_dir, "front").close()
    back_dir = door_dir(tmp_path, "back", site_key_from=front_dir)
    KioskSettings(risk=1000, retention_days=30, camera="2").save(back_dir)
    admin = ("--data-dir", str(front_dir), "--database", site, "--door-id", "front")
    done = cli(*admin, "site", "settings", "risk=20")
    assert done.returncode == 1 and "confirm it with looser_risk_confirmed" in done.stderr
    done = cli(*admin, "site", "settings", "camera=3")
    assert done.returncode == 1 and "camera is not a site-wide setting" in done.stderr
    done = cli(*admin, "--json", "site", "settings", "risk=10000", "retention_days=1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["site_settings"] == {"risk": 10000, "retention_days": 1}

    conn = open_site_database(site, back_dir, "back")
    settings = with_site(KioskSettings.load(back_dir), conn)
    assert (settings.risk, settings.retention_days, settings.camera) == (10000, 1, "2")  # the camera is the door's
    AccessLog(conn).record(camera="cam", decision="denied", reason="unknown", time="2020-01-01T00:00:00Z")
    AccessLog(conn).record(camera="cam", decision="denied", reason="unknown")
    assert purge_expired(conn, back_dir) == 1  # the site's retention, not the door's 30 days
    assert AccessLog(conn).verify().ok
    conn.close()


def test_a_door_starts_while_the_server_is_down_from_its_copy_and_catches_up(server, site, tmp_path):
    """The server stopped before the door starts: a door that connected once decides from its local copy
    of the site's gallery, queues its events and sends them once the server is back; a door that never
    connected says it cannot decide yet."""
    from kiosk.connection import DatabaseUnavailable
    from kiosk.site_settings import set_site_values, site_values

    front_dir = door_dir(tmp_path, "front")
    admin = open_site_database(site, front_dir, "admin")
    ada = enrol(Gallery(admin), "Ada", [1])
    enrol(Gallery(admin), "Grace", [2])
    Gallery(admin).set_active("Grace", False)
    set_site_values(admin, {"risk": "10000"})
    back_dir = door_dir(tmp_path, "back", site_key_from=front_dir)
    door = open_site_database(site, back_dir, "back", offline_hours=1.0)
    assert Gallery(door).matrix()[1].tolist() == [ada.id]  # this load leaves a copy in the data directory
    door.close()
    admin.close()
    assert (back_dir / "site-gallery.sqlite").stat().st_mode & 0o077 == 0
    copied = sqlite3.connect(back_dir / "site-gallery.sqlite")
    blobs = [row[0] for row in copied.execute("SELECT embedding FROM template")]
    copied.close()
    assert len(blobs) == 1 and unit(1).tobytes() not in blobs[0]  # still sealed with the site key
    new_dir = door_dir(tmp_path, "new", site_key_from=front_dir)

    server.stop()
    try:
        with pytest.raises(DatabaseUnavailable, match="holds no copy of the site's gallery yet"):
            open_site_database(site, new_dir, "new")
        door = open_site_database(site, back_dir, "back", offline_hours=1.0)
        gallery = Gallery(door)
        assert gallery.matrix()[1].tolist() == [ada.id] and not door.watch.online
        gallery.check_model(DIM, "no model bound yet")  # from the copy: nobody bound a model
        assert gallery.get_person(ada.id).name == "Ada"
        assert site_values(door) == {"risk": 10000}
        queued = AccessLog(door).record(camera="cam", decision="granted", reason="match", person_id=ada.id,
                                        name="Ada")
        assert queued.queued and door.outbox.count() == 1
    finally:
        server.start()
    wait_until(lambda: door.outbox.count() == 0, timeout=15.0)
    wait_until(lambda: door.watch.online)
    assert [(e.door_name, e.name) for e in AccessLog(door).query()] == [("back", "Ada")]
    assert AccessLog(door).verify().ok
    door.close()


def test_a_door_started_offline_with_an_old_copy_recognises_nobody(server, site, tmp_path):
    front_dir = door_dir(tmp_path, "front")
    admin = open_site_database(site, front_dir, "front", offline_hours=1.0)
    enrol(Gallery(admin), "Ada", [1])
    assert Gallery(admin).matrix()[1].size == 1
    admin.close()
    copy = sqlite3.connect(front_dir / "site-gallery.sqlite")
    copy.execute("UPDATE copy_state SET confirmed = confirmed - 7200")  # two hours ago
    copy.commit()
    copy.close()
    server.stop()
    try:
        door = open_site_database(site, front_dir, "front", offline_hours=1.0)
        assert Gallery(door).matrix()[1].size == 0
        door.close()
    finally:
        server.start()


def test_keys_rotate_across_two_doors(site, tmp_path):
    """`keys rotate` at one door re-seals the whole site with a new key; the other door refuses to
    decide, naming the key it needs, until the new key file is copied there. A damaged row stops the
    rotation before anything changed, and is named."""
    import shutil

    from kiosk.keystore import key_file_path
    from kiosk.rotation import RotationError, rotate_keys

    front_dir = door_dir(tmp_path, "front")
    front = open_site_database(site, front_dir, "front")
    ada = Gallery(front).enroll("Ada", None, [unit(1), unit(2)], [0.9, 0.9], ["a", "b"], [b"jpeg-a", None])
    back_dir = door_dir(tmp_path, "back", site_key_from=front_dir)
    back = open_site_database(site, back_dir, "back")
    event = AccessLog(back).record(camera="cam", decision="granted", reason="match", person_id=ada.id,
                                   thumbnail=b"face")
    back_gallery = Gallery(back)
    assert back_gallery.matrix()[1].tolist() == [ada.id, ada.id]

    key_file = key_file_path(front_dir)
    key_before = key_file.read_bytes()
    rows_before = front.execute("SELECT id, key_id, embedding FROM template ORDER BY id").fetchall()
    second = rows_before[1][0]
    front.execute("UPDATE template SET embedding = ? WHERE id = ?", (bytes(len(rows_before[1][2])), second))
    with pytest.raises(RotationError, match=f"template row {second} \\(person {ada.id}\\) is damaged"):
        rotate_keys(front)
    assert key_file.read_bytes() == key_before  # all or nothing: neither the key file nor a row changed
    assert front.execute("SELECT current_key FROM key_state").fetchone()[0] == 1
    assert {row[0] for row in front.execute("SELECT key_id FROM template")} == {1}
    front.execute("UPDATE template SET embedding = ? WHERE id = ?", (rows_before[1][2], second))

    done = rotate_keys(front)
    assert (done.old_keys, done.new_key, done.resealed) == ((1,), 2, 4)  # 2 templates, 1 thumbnail each kind
    assert key_file.read_bytes() != key_before and front.execute("SELECT current_key FROM key_state").fetchone()[0] == 2
    assert Gallery(front).matrix()[1].tolist() == [ada.id, ada.id]

    # The back door, running, hears of the rotation and refuses to decide, naming the key it needs.
    def refuses() -> bool:
        try:
            back_gallery.matrix()
        except KeyFileError as exc:
            assert "does not hold data key 2" in str(exc) and "keys rotate" in str(exc)
            return True
        return False

    wait_until(refuses, timeout=5.0)
    with pytest.raises(KeyFileError, match="does not hold data key 2"):
        open_site_database(site, back_dir, "back-again")
    shutil.copy2(key_file, key_file_path(back_dir))  # the installer copies the new key file
    assert back_gallery.matrix()[1].tolist() == [ada.id, ada.id]
    assert AccessLog(back).thumbnail(event.id) == b"face"
    assert Gallery(back).thumbnail(Gallery(back).templates(ada.id)[0].id) == b"jpeg-a"
    assert AccessLog(back).verify().ok
    for conn in (front, back):
        conn.close()
    done = cli("--data-dir", str(back_dir), "--database", site, "--door-id", "back", "keys", "rotate")
    assert done.returncode == 0, done.stderr
    assert "rotated the site to key 3" in done.stdout and "copy" in done.stdout and "holds key 3" in done.stdout


def test_keys_rotate_names_a_damaged_row_and_changes_nothing_on_a_kiosk(tmp_path):
    from kiosk.keystore import key_file_path

    data_dir = door_dir(tmp_path, "kiosk")
    conn = open_database(database_path(data_dir))
    ada = enrol(Gallery(conn), "Ada", [1, 2])
    template = conn.execute("SELECT max(id) FROM template").fetchone()[0]
    conn.execute("UPDATE template SET embedding = zeroblob(length(embedding)) WHERE id = ?", (template,))
    conn.close()
    key_before = key_file_path(data_dir).read_bytes()
    done = cli("--data-dir", str(data_dir), "keys", "rotate")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: template row {template} (person {ada.id}) is damaged, so the keys were "
                                  "not rotated and nothing was changed")
    assert key_file_path(data_dir).read_bytes() == key_before


def test_run_starts_while_the_server_is_down(server, site, tmp_path, capsys, engine, photos):
    """`run --headless` at a door whose server is down: without a copy of the site's gallery it says once
    that it cannot decide yet and keeps trying until the server is up; with one (made by that run) it
    decides from it at once, and its events wait in the outbox until the server is back."""
    from kiosk.settings import KioskSettings
    from tests.test_cli import ENROLL, PERSON, PROBE, STRANGER, cli, json_lines, write_video

    front_dir = door_dir(tmp_path, "front")
    code, out, err = cli(capsys, "--data-dir", front_dir, "--database", site, "enroll", PERSON, *photos[PERSON][ENROLL])
    assert code == 0, err
    back_dir = door_dir(tmp_path, "back", site_key_from=front_dir)
    KioskSettings(liveness=False).save(back_dir)
    video = write_video(tmp_path / "door.avi", [photos[PERSON][PROBE]] * 10 + photos[STRANGER][:10])
    back = ("--data-dir", back_dir, "--database", site, "--door-id", "back", "--json")

    server.stop()
    later = threading.Timer(4.0, server.start)
    later.start()
    try:
        code, out, err = cli(capsys, *back, "run", "--camera", video, "--headless")
    finally:
        later.join()
    assert code == 0, err
    waiting = [line for line in err.splitlines() if "cannot decide yet" in line]
    assert len(waiting) == 1 and "holds no copy of the site's gallery" in waiting[0]
    assert [(d["decision"], d["name"]) for d in json_lines(out)] == [("granted", PERSON), ("denied", None)]

    server.stop()
    try:
        code, out, err = cli(capsys, *back, "run", "--camera", video, "--headless")
    finally:
        server.start()
    assert code == 0 and "cannot decide yet" not in err, err
    offline = json_lines(out)
    assert [(d["decision"], d["name"]) for d in offline] == [("granted", PERSON), ("denied", None)]
    assert all(d["event_id"] < 0 for d in offline)  # queued in the outbox
    conn = open_site_database(site, back_dir, "back")
    conn.outbox.flush(force=True)
    assert conn.outbox.count() == 0
    events = AccessLog(conn).query(door_name="back", newest_first=False)
    assert [(e.decision, e.name) for e in events] == [("granted", PERSON), ("denied", None)] * 2
    assert AccessLog(conn).verify().ok
    conn.close()
