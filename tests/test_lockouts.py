"""Per-face lockouts end to end: the runner over a real video file, the real detector and model,
real SQLite; the kiosk screen over a looped video.

A stranger who is denied again and again is locked out, and the access log says so once; the
enrolled person who steps up next is still recognised and let in. A lockout for a claimed
person (someone failed liveness challenges as them) holds that person back and nobody else.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from videos import read_bgr, write_video
from windows import enter_admin_mode

from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.cli import main as cli_main
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.policy import DecisionPolicy
from kiosk.ratelimit import RateLimits
from kiosk.settings import KioskSettings

# People well clear of the shipped model's threshold (tests/test_ui_kiosk.py).
PERSON, STRANGER, NAME = "Jennifer_Capriati", "Gerhard_Schroeder", "Jennifer Capriati"
SIDE = 250


@pytest.fixture(scope="module")
def faces(lfw) -> dict[str, np.ndarray]:
    """BGR frames: the person's probe photo, the stranger, nobody."""
    person = [lfw.image_path(ref) for ref in lfw.images_of([PERSON])[:12]]
    stranger = lfw.image_path(lfw.images_of([STRANGER])[0])
    return {"person": read_bgr(person[11]), "stranger": read_bgr(stranger),
            "blank": np.full((SIDE, SIDE, 3), 128, np.uint8), "enrol": person[:3]}


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, faces, engine) -> Path:
    data_dir = tmp_path_factory.mktemp("kiosk-data")
    assert cli_main(["--data-dir", str(data_dir), "enroll", NAME, *map(str, faces["enrol"])]) == 0
    return data_dir


def run(data_dir: Path, engine, video: Path, limits: RateLimits | None = None):
    """Every frame of `video` through KioskRunner (recognition alone, no liveness); the results
    and the events it logged."""
    from kiosk.runner import KioskRunner

    conn = open_database(database_path(data_dir))
    try:
        access_log = AccessLog(conn)
        before = {e.id for e in access_log.query()}
        runner = KioskRunner(Camera(str(video), realtime=False), engine, Gallery(conn), access_log,
                             DecisionPolicy(), None, rate_limits=limits)
        results = list(runner.run(every_frame=True))
        events = [e for e in reversed(access_log.query()) if e.id not in before]
        return runner, results, events
    finally:
        conn.close()


def test_a_stranger_denied_again_and_again_is_locked_out_and_the_next_face_is_recognised(
        tmp_path, engine, enrolled, faces):
    stranger, blank, person = faces["stranger"], faces["blank"], faces["person"]
    # Six visits of the stranger (three frames, then nobody), the stranger lingering, then the
    # enrolled person steps up.
    frames = [stranger, stranger, stranger, blank] * 6 + [stranger] * 4 + [blank] + [person] * 6
    runner, results, events = run(enrolled, engine, write_video(tmp_path / "door.avi", frames))

    assert [(e.decision, e.reason) for e in events] == [("denied", "unknown")] * 5 + [
        ("denied", "rate_limited"), ("granted", "match")]
    assert events[-1].name == NAME
    locked = [r for r in results if r.locked_s > 0]
    assert len(locked) == 3 + 4 and all(r.faces for r in locked)  # the stranger's last visit and lingering
    assert locked[0].decision.detail == "too many attempts, wait 30 s"
    assert all(r.locked_s == 0 for r in results[-6:])  # the lockout is the stranger's alone
    assert [key for key in runner.rate_limits.keys() if key[0] == "person"] == []


def test_a_lockout_for_a_claimed_person_holds_back_that_person_only(tmp_path, engine, enrolled, faces):
    conn = open_database(database_path(enrolled))
    try:
        person_id = Gallery(conn).people()[0].id
    finally:
        conn.close()
    # One denial locks out: as after failed liveness challenges for her.
    limits = RateLimits(max_denials=1)
    assert limits.record_denial(("person", person_id)) == 30.0
    frames = [faces["person"]] * 5 + [faces["blank"]] + [faces["stranger"]] * 3
    _, results, events = run(enrolled, engine, write_video(tmp_path / "claimed.avi", frames), limits)

    assert [(e.decision, e.reason, e.person_id, e.name) for e in events] == [
        ("denied", "rate_limited", person_id, NAME), ("denied", "unknown", None, None)]
    assert [r.locked_s > 0 for r in results] == [True] * 5 + [False] * 4


def test_the_kiosk_screen_shows_a_lockout_only_to_the_locked_face(qtbot, tmp_path, engine, enrolled, faces):
    from kiosk.ui.kiosk_window import KioskWindow

    data_dir = tmp_path / "data"
    shutil.copytree(enrolled, data_dir)  # her enrolment, none of the other tests' events
    KioskSettings(liveness=False).save(data_dir)
    stranger, blank, person = faces["stranger"], faces["blank"], faces["person"]
    video = write_video(tmp_path / "door.avi", [stranger] * 3 + [blank] * 2)
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=data_dir)
    qtbot.addWidget(window)
    window.resize(1024, 600)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.banner_text.startswith("Too many attempts — wait "), timeout=90_000)
        # The enrolled person steps up while the stranger is still locked out.
        other = write_video(tmp_path / "person.avi", [blank] * 2 + [person] * 10)
        window.apply_settings(KioskSettings(liveness=False, camera=str(other)))
        qtbot.waitUntil(lambda: window.banner_text == f"ACCESS GRANTED — {NAME}", timeout=30_000)
    finally:
        window.close()
    reasons = [d.reason for d in window.decisions]
    assert reasons[:6] == ["unknown"] * 5 + ["rate_limited"] and reasons[-1] == "match", reasons


def test_door_decisions_pause_and_the_capture_has_its_own_preview_while_an_admin_enrols(qtbot, tmp_path, engine, enrolled, faces):
    from kiosk.admin_secret import AdminSecret
    from kiosk.ui.kiosk_window import KioskWindow

    data_dir = tmp_path / "data"
    shutil.copytree(enrolled, data_dir)
    KioskSettings(liveness=False).save(data_dir)
    AdminSecret(data_dir).set_pin("2468")
    video = write_video(tmp_path / "door.avi", [faces["stranger"]] * 3 + [faces["blank"]] * 2)
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=data_dir)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.banner_text == "ACCESS DENIED — not recognised", timeout=60_000)
        enter_admin_mode(qtbot, window, "2468")
        dialog = window.admin_window.people_tab.enroll_new()
        qtbot.waitUntil(lambda: window.banner_text == "Enrolment in progress — the door is paused", timeout=2_000)
        assert not dialog.preview.isVisible()
        dialog.start_capture()  # the capture has a live picture of its own: the dialog may cover the kiosk's
        qtbot.waitUntil(lambda: dialog.preview.has_frame and dialog.preview.isVisible(), timeout=5_000)
        decided, analysed = len(window.decisions), window.frames_analysed
        qtbot.wait(3_000)  # the stranger comes and goes three times: nobody is judged or logged
        assert len(window.decisions) == decided and window.frames_analysed > analysed
        dialog.reject()
        qtbot.waitUntil(lambda: len(window.decisions) > decided, timeout=10_000)
    finally:
        window.close()
