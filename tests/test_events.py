"""Events out: a real mosquitto broker (restarted mid-stream), a real HTTP receiver that is down,
then failing, then up; the persistent outbox in between. Nothing is lost, nothing arrives twice
at the webhook, everything in order."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from kiosk.camera import CameraState
from kiosk.events import LAST_RETRY_S, EventPublisher
from kiosk.mqtt_events import MqttDestination
from kiosk.outbox import FILE_NAME, Outbox
from kiosk.webhook import SIGNATURE_HEADER, WebhookDestination, signature
from tests.servers import MOSQUITTO, Mosquitto, Receiver, Subscriber

needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (.ci/run installs it)")


class Grant:
    """The two fields of a Decision and an AccessEvent that an access event reads."""

    def __init__(self, n: int, decision: str = "granted") -> None:
        self.decision, self.reason, self.name = decision, "match" if decision == "granted" else "unknown", f"P{n}"
        self.person_id, self.score, self.liveness = n, 0.8, None
        self.id, self.camera = n, "video door.avi"


def first_copies(events: list[dict]) -> list[dict]:
    seen: set[str] = set()
    return [e for e in events if not (e["id"] in seen or seen.add(e["id"]))]


@pytest.fixture
def broker():
    server = Mosquitto().start()
    yield server
    server.close()


@pytest.fixture
def subscriber(broker):
    client = Subscriber(broker.port)
    yield client
    client.close()


def publisher(tmp_path, *destinations) -> EventPublisher:
    return EventPublisher(Outbox(tmp_path / FILE_NAME), "front-door", list(destinations)).start()


@needs_mosquitto
def test_mqtt_events_survive_a_broker_restart_in_order(tmp_path, broker, subscriber):
    events = publisher(tmp_path, MqttDestination(broker.url, "front-door"))
    sent = [events.access(Grant(i), Grant(i))["id"] for i in range(5)]
    subscriber.wait_for(lambda m: len([t for t, *_ in m if t == "face-kiosk/front-door/access"]) == 5)

    broker.stop()
    sent += [events.access(Grant(i, "denied"), Grant(i))["id"] for i in range(5, 10)]
    sent.append(events.camera(CameraState.RECONNECTING, "camera 0 lost; retrying in 1.0 s")["id"])
    time.sleep(1.0)
    assert events.outbox.count("mqtt") >= 6  # waiting, committed to disk
    broker.start()

    subscriber.wait_for(lambda m: len([t for t, *_ in m if t == "face-kiosk/front-door/camera"]) == 1)
    # MQTT's QoS 1 is "at least once": a message in flight when the broker stopped may come twice
    # (the event's id tells); none may be missing and the first copies come in order.
    access = first_copies(subscriber.on("face-kiosk/front-door/access"))
    assert [e["id"] for e in access] + [e["id"] for e in subscriber.on("face-kiosk/front-door/camera")] == sent
    assert [e["decision"] for e in access] == ["granted"] * 5 + ["denied"] * 5
    assert access[0]["door"] == "front-door" and access[0]["name"] == "P0" and access[0]["type"] == "access"
    assert "thumbnail" not in json.dumps(access)
    assert events.close(drain_s=10) == 0


@needs_mosquitto
def test_the_outbox_keeps_events_across_a_kiosk_restart(tmp_path, broker, subscriber):
    broker.stop()
    events = publisher(tmp_path, MqttDestination(broker.url, "front-door"))
    sent = [events.access(Grant(i), Grant(i))["id"] for i in range(3)]
    assert events.close(drain_s=0.5) == 6  # three events, each on its topic and the retained state topic

    broker.start()
    events = publisher(tmp_path, MqttDestination(broker.url, "front-door"))
    subscriber.wait_for(lambda m: len([t for t, *_ in m if t == "face-kiosk/front-door/access"]) == 3)
    assert [e["id"] for e in first_copies(subscriber.on("face-kiosk/front-door/access"))] == sent
    assert events.close(drain_s=10) == 0


@needs_mosquitto
def test_home_assistant_discovery_state_and_availability_with_a_last_will(tmp_path, broker, subscriber):
    events = publisher(tmp_path, MqttDestination(broker.url, "front-door"))
    events.access(Grant(1), Grant(1))
    events.camera(CameraState.LIVE, "camera 0 live")
    subscriber.wait_for(lambda m: any(t == "face-kiosk/front-door/state/camera" for t, *_ in m))
    configs = {t: json.loads(p) for t, p, _ in subscriber.messages if t.startswith("homeassistant/")}
    assert set(configs) == {f"homeassistant/sensor/face_kiosk_front_door/{key}/config"
                            for key in ("last_decision", "last_person", "camera")}
    decision = configs["homeassistant/sensor/face_kiosk_front_door/last_decision/config"]
    assert decision["state_topic"] == "face-kiosk/front-door/state/access"
    assert decision["availability_topic"] == "face-kiosk/front-door/availability"
    assert subscriber.on("face-kiosk/front-door/state/access")[-1]["decision"] == "granted"
    assert [p for t, p, _ in subscriber.messages if t == "face-kiosk/front-door/availability"][-1] == "online"
    events.close()
    subscriber.wait_for(lambda m: [p for t, p, _ in m if t.endswith("/availability")][-1] == "offline")

    # A kiosk that dies without a word: the broker publishes its last will.
    script = ("import sys, time; from kiosk.mqtt_events import MqttDestination as M; "
              f"m = M('{broker.url}', 'back-door', discovery_prefix=None); m.open(); "
              "assert m._connected.wait(10); print('up', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        subscriber.wait_for(lambda m: ("face-kiosk/back-door/availability", "online", False) in m
                            or ("face-kiosk/back-door/availability", "online", True) in m)
        child.kill()
    finally:
        child.wait()
    subscriber.wait_for(lambda m: [p for t, p, _ in m if t == "face-kiosk/back-door/availability"][-1] == "offline")


def test_a_webhook_receiver_that_is_down_then_failing_gets_every_event_once_signed(tmp_path):
    receiver = Receiver()  # not listening yet: connection refused
    hook = WebhookDestination(receiver.url, auth="Bearer door-token", secret="s3cret",
                              first_retry_s=0.2, last_retry_s=1.0)
    events = publisher(tmp_path, hook)
    sent = [events.access(Grant(1), Grant(1)), events.lockout(30, 2), events.tamper("access_log_chain", "broken"),
            events.camera(CameraState.ENDED, "end of video door.avi")]
    time.sleep(3.0)  # down for a while: every event waits in the outbox
    assert events.outbox.count("webhook") == 4
    receiver.fail_next = 2
    receiver.start()
    try:
        received = receiver.wait_for(4)
        assert receiver.failed == 2
        time.sleep(1.0)  # nothing more comes: each event once
        assert len(receiver.received) == 4 and events.outbox.count() == 0
        bodies = [json.loads(body) for _, body in received]
        assert [b["id"] for b in bodies] == [e["id"] for e in sent]
        assert [b["type"] for b in bodies] == ["access", "lockout", "tamper", "camera"]
        for headers, body in received:
            assert headers["Authorization"] == "Bearer door-token"
            assert headers[SIGNATURE_HEADER] == signature("s3cret", body)
            assert headers["X-Face-Kiosk-Id"] == json.loads(body)["id"]
    finally:
        events.close()
        receiver.stop()


@pytest.mark.slow
def test_a_webhook_receiver_down_for_30_s_gets_every_event_once_in_order_afterwards(tmp_path):
    receiver = Receiver().start()
    hook = WebhookDestination(receiver.url, auth="Bearer door-token", secret="s3cret")  # the kiosk's own retry pace
    events = publisher(tmp_path, hook)
    try:
        sent = [events.access(Grant(0), Grant(0))["id"]]
        receiver.wait_for(1)
        receiver.stop()
        down = time.monotonic()
        while time.monotonic() - down < 30.0:  # the door keeps deciding while the receiver is down
            decision = Grant(len(sent), "denied" if len(sent) % 2 else "granted")
            sent.append(events.access(decision, decision)["id"])
            time.sleep(2.0)
        assert events.outbox.count("webhook") == len(sent) - 1
        receiver.start()
        receiver.wait_for(len(sent), timeout=LAST_RETRY_S + 15)  # the next retry may be a full pause away
        time.sleep(2.0)  # nothing more comes: each event once
        assert [json.loads(body)["id"] for _, body in receiver.received] == sent
        assert events.outbox.count() == 0
    finally:
        events.close()
        receiver.stop()


def test_bad_event_options_are_one_clear_error(tmp_path, capsys):
    from kiosk.cli import main

    video = tmp_path / "none.avi"
    cases = [(["--mqtt", "http://broker"], "mqtt://"), (["--webhook", "ftp://x"], "http://"),
             (["--mqtt", "mqtt://broker", "--door-id", "Front Door"], "door id")]
    for extra, message in cases:
        assert main(["--data-dir", str(tmp_path), "run", "--headless", "--camera", str(video), *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_event_settings_are_checked_and_kept_when_the_admin_saves(qtbot, tmp_path):
    from kiosk.settings import KioskSettings
    from kiosk.ui.admin_window import AdminWindow

    bad = KioskSettings(mqtt="http://broker", webhook="ftp://x", door_id="Front Door", door_timeout_s=0.0)
    assert [problem.split(":")[0] for problem in bad.problems()] == ["door_timeout_s", "mqtt", "webhook", "door_id"]
    KioskSettings(mqtt="mqtt://broker", webhook="https://example.org/hook", door_id="lobby",
                  door_timeout_s=2.5).save(tmp_path)
    # The settings tab has no widget for these: a save of the other fields must keep them.
    window = AdminWindow(tmp_path)
    qtbot.addWidget(window)
    try:
        window.settings_tab.retention_spin.setValue(30)
        assert window.settings_tab.save()
    finally:
        window.close()
    saved = KioskSettings.load(tmp_path)
    assert (saved.retention_days, saved.mqtt, saved.webhook, saved.door_id, saved.door_timeout_s) == (
        30, "mqtt://broker", "https://example.org/hook", "lobby", 2.5)


@needs_mosquitto
@pytest.mark.slow
def test_a_headless_run_sends_its_decisions_and_camera_states(tmp_path, broker, subscriber, engine, lfw, capsys):
    from kiosk.cli import main
    from kiosk.settings import KioskSettings
    from tests.videos import read_bgr, write_video

    person, stranger = "Jennifer_Capriati", "Gerhard_Schroeder"  # as in tests/test_cli.py
    photos = {name: [lfw.image_path(ref) for ref in lfw.images_of([name])[:14]] for name in (person, stranger)}
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "enroll", person, *map(str, photos[person][:3])]) == 0
    KioskSettings(liveness=False).save(data)
    video = write_video(tmp_path / "door.avi", [read_bgr(photos[person][11])] * 10  # as in tests/test_cli.py
                        + [read_bgr(p) for p in photos[stranger][:10]])
    receiver = Receiver().start()
    capsys.readouterr()
    try:
        assert main(["--data-dir", str(data), "--json", "run", "--headless", "--camera", str(video),
                     "--mqtt", broker.url, "--webhook", receiver.url, "--door-id", "lobby"]) == 0
        decisions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        hooked = [json.loads(body) for _, body in receiver.wait_for(4)]
    finally:
        receiver.stop()
    subscriber.wait_for(lambda m: len([t for t, *_ in m if t == "face-kiosk/lobby/access"]) >= 2)
    access = first_copies(subscriber.on("face-kiosk/lobby/access"))
    assert [(e["decision"], e["name"], e["event_id"]) for e in access] == [
        (d["decision"], d["name"], d["event_id"]) for d in decisions] == [
        ("granted", person, decisions[0]["event_id"]), ("denied", None, decisions[1]["event_id"])]
    logged = (data / "face-kiosk.log").read_text()
    assert f"INFO    kiosk.loop: access granted (match), event {decisions[0]['event_id']}" in logged
    assert "INFO    kiosk.events: event access denied queued for MQTT broker" in logged
    cameras = [e["state"] for e in first_copies(subscriber.on("face-kiosk/lobby/camera"))]
    assert cameras[0] == "live" and cameras[-1] in ("ended", "stopped")
    assert [e["type"] for e in hooked if e["type"] == "access"] == ["access", "access"]
    assert {e["id"] for e in hooked} == {e["id"] for e in access} | {
        e["id"] for e in first_copies(subscriber.on("face-kiosk/lobby/camera"))}


@needs_mosquitto
@pytest.mark.slow
def test_the_kiosk_window_sends_the_same_events_as_a_headless_run(qtbot, tmp_path, broker, subscriber, engine, lfw):
    # The window's recognition goes through the same loop as `run --headless`: with MQTT in the
    # settings its grants, denials, camera states and tamper findings reach the broker too.
    import sqlite3

    import numpy as np

    from kiosk.accesslog import AccessLog
    from kiosk.camera import Camera
    from kiosk.cli import main
    from kiosk.database import database_path, open_database
    from kiosk.settings import KioskSettings
    from kiosk.ui.kiosk_window import KioskWindow
    from tests.videos import read_bgr, write_video

    person, stranger, name = "Jennifer_Capriati", "Gerhard_Schroeder", "Jennifer Capriati"  # as in test_ui_kiosk
    photos = {who: [lfw.image_path(ref) for ref in lfw.images_of([who])[:14]] for who in (person, stranger)}
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "enroll", name, *map(str, photos[person][:3])]) == 0
    conn = open_database(database_path(data))
    AccessLog(conn).record(camera="front", decision="denied", reason="unknown", score=0.2)
    conn.close()
    raw = sqlite3.connect(database_path(data))  # someone edits the log behind the kiosk's back
    raw.execute("UPDATE access_event SET score = 0.99")
    raw.commit()
    raw.close()
    KioskSettings(liveness=False, mqtt=broker.url, door_id="lobby").save(data)
    blank = np.full((250, 250, 3), 128, np.uint8)
    video = write_video(tmp_path / "door.avi", [blank] * 4 + [read_bgr(photos[person][11])] * 12 + [blank] * 6
                        + [read_bgr(photos[stranger][0])] * 12 + [blank] * 6)

    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=data)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.banner_text == f"ACCESS GRANTED — {name}", timeout=60_000)
        qtbot.waitUntil(lambda: window.banner_text == "ACCESS DENIED — not recognised", timeout=60_000)
    finally:
        window.close()

    conn = open_database(database_path(data))
    try:
        logged = [(e.decision, e.name, e.id) for e in reversed(AccessLog(conn).query())][1:]  # after the edited one
    finally:
        conn.close()
    subscriber.wait_for(lambda m: len(first_copies(subscriber.on("face-kiosk/lobby/access"))) >= len(logged))
    access = first_copies(subscriber.on("face-kiosk/lobby/access"))
    assert [(e["decision"], e["name"], e["event_id"]) for e in access] == logged
    assert ("granted", name) in [(d, n) for d, n, _ in logged] and ("denied", None) in [(d, n) for d, n, _ in logged]
    tamper = subscriber.on("face-kiosk/lobby/tamper")
    assert [e["finding"] for e in tamper] == ["access_log_chain"] and "event 1" in tamper[0]["detail"]
    cameras = [e["state"] for e in first_copies(subscriber.on("face-kiosk/lobby/camera"))]
    assert cameras[0] == "live" and cameras[-1] == "stopped"
