"""Settings applied while the kiosk runs (kiosk.live_settings), without a screen: the mailbox
between threads, and LiveSettings on a real KioskRunner (the shipped model, a real SQLite file,
a real image folder as the camera)."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

from kiosk.accesslog import AccessLog
from kiosk.calibration import DEFAULT_RISK, STRICT_START_FAR
from kiosk.camera import Camera
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.live_settings import LiveSettings, Pending, SettingsMailbox, liveness_from_settings
from kiosk.liveness import LivenessGate
from kiosk.policy import DecisionPolicy
from kiosk.settings import KioskSettings


def test_a_kiosk_with_default_settings_checks_liveness(tmp_path):
    # A fresh kiosk (no settings file) and one whose settings file predates the switch both ask
    # for a head move before every grant; only an admin's explicit "off" removes the gate.
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "settings.json").write_text('{"version": 1, "retention_days": 30}')
    for settings in (KioskSettings(), KioskSettings.load(tmp_path), KioskSettings.load(tmp_path / "older")):
        assert isinstance(liveness_from_settings(settings), LivenessGate)
    assert liveness_from_settings(KioskSettings(liveness=False)) is None


def test_mailbox_hands_over_the_newest_and_wakes_a_waiting_thread(tmp_path):
    mailbox = SettingsMailbox()
    assert not mailbox.take() and mailbox.wait(0.01) is False
    first, second = KioskSettings(risk=1000), KioskSettings(risk=10000)
    mailbox.put_settings(first)
    mailbox.put_settings(second)  # newest wins: the worker never applies a stale one
    assert mailbox.take() == Pending(second, None)
    assert not mailbox.take()  # taken: empty again

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((120, 160, 3), 90, np.uint8))
    camera = Camera(str(frames))
    woke = []
    waiter = threading.Thread(target=lambda: woke.append((mailbox.wait(5.0), time.monotonic())))
    waiter.start()
    time.sleep(0.1)
    put_at = time.monotonic()
    mailbox.put_camera(camera)
    waiter.join(5)
    assert woke and woke[0][0] is True and woke[0][1] - put_at < 1.0
    assert mailbox.take() == Pending(None, camera)


@pytest.fixture
def runner(tmp_path, engine):
    from kiosk.engine import RiskEngine
    from kiosk.runner import KioskRunner

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((120, 160, 3), 90, np.uint8))
    conn = open_database(database_path(tmp_path))
    runner = KioskRunner(Camera(str(frames)), RiskEngine(engine), Gallery(conn),
                         AccessLog(conn), DecisionPolicy(), None, tracking=False)
    yield runner, conn
    conn.close()


def test_live_settings_apply_each_change_to_the_runner(runner, tmp_path, engine, caplog):
    runner, conn = runner
    log = AccessLog(conn)
    now = datetime.now(timezone.utc)
    for days in (100, 40, 1):
        log.record(camera="door", decision="denied", reason="unknown", time=now - timedelta(days=days))
    start = KioskSettings(liveness=False)  # as the runner's policy was built
    live = LiveSettings(runner, start, conn)

    same = live.apply(Pending(KioskSettings(liveness=False)))
    assert same.changes == () and same.camera is None
    # Nobody enrolled: the door starts at the card's strict starting rule.
    strict = engine.card.threshold_at_far(STRICT_START_FAR, 1 if engine.strategy == "mean" else None)
    assert same.rule.source == "strict start" and same.rule.threshold == pytest.approx(strict)

    caplog.set_level(logging.INFO, logger="kiosk.live_settings")
    new = KioskSettings(risk=10000, door_command="open-door --seconds 3", store_thumbnails=True,
                        liveness=True, analysis_fps=10.0, idle_analysis_fps=2.0, retention_days=30)
    applied = live.apply(Pending(new))
    assert runner.engine.risk == 10000 and applied.rule.risk == 10000
    assert runner.door.command == ["open-door", "--seconds", "3"]
    assert runner.thumbnails is True
    assert isinstance(runner.policy.liveness, LivenessGate)
    assert (runner.pace.busy_fps, runner.pace.idle_fps) == (10.0, 2.0)
    assert applied.changes == ("risk 1 in 10,000 visitors", "door command open-door --seconds 3", "thumbnails on",
                               "liveness on", "analysis 10/s, 2/s with nobody in view",
                               "retention 30 days (purged 2 access events)")
    assert len(log.query()) == 1  # the one from yesterday is kept
    assert "settings applied: risk 1 in 10,000 visitors" in caplog.text
    assert live.settings == new

    # Back to the shipped risk; an unusable door command leaves no door (and says why).
    off = KioskSettings(door_command='open "door', liveness=False, retention_days=30,
                        analysis_fps=10.0, idle_analysis_fps=2.0)
    applied = live.apply(Pending(off))
    assert runner.engine.risk == DEFAULT_RISK and applied.rule.risk == DEFAULT_RISK
    assert runner.door is None and "door action not usable" in caplog.text
    assert runner.policy.liveness is None and runner.thumbnails is False
    assert applied.changes == (f"risk 1 in {DEFAULT_RISK:,} visitors", "door none", "thumbnails off",
                               "liveness off")


def test_live_settings_switch_the_runners_camera(runner, tmp_path, engine):
    runner, conn = runner
    live = LiveSettings(runner, KioskSettings(), conn)
    folder = tmp_path / "second"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((120, 160, 3), 30, np.uint8))
    camera = Camera(str(folder))
    applied = live.apply(Pending(camera=camera))
    assert applied.camera is camera and applied.changes == ("image folder second",)
    assert runner.camera is camera and runner.camera_name == "image folder second"
    assert live.settings == KioskSettings()  # a camera alone changes no other setting


def test_after_a_failed_frame_the_runner_goes_on_with_the_next_one(tmp_path, engine, astronaut):
    from kiosk.runner import KioskRunner

    frames = tmp_path / "faces"
    frames.mkdir()
    for index in range(3):
        cv2.imwrite(str(frames / f"{index}.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    conn = open_database(database_path(tmp_path))
    runner = KioskRunner(Camera(str(frames), realtime=False), engine, Gallery(conn), AccessLog(conn),
                         DecisionPolicy(), None)
    conn.close()  # every frame with a face now fails where it reads the gallery
    tried, results = [], runner.run(every_frame=True)
    while len(tried) < 10:  # the old restart analysed the source's last frame forever
        try:
            next(results)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 (the worker catches everything too)
            assert "closed database" in str(exc)
            tried.append(runner.last_frame_index)
            results = runner.run(every_frame=True, newer_than=runner.last_frame_index)
    assert tried == [0, 1, 2]


def test_a_gallery_enrolled_by_another_model_is_refused_before_any_frame(tmp_path, engine):
    from kiosk.gallery import GalleryError
    from kiosk.runner import KioskRunner

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((120, 160, 3), 90, np.uint8))
    conn = open_database(database_path(tmp_path))
    other_size = engine.embedding_size + 1
    Gallery(conn).enroll("Ada", None, [np.ones(other_size, np.float32) / np.sqrt(other_size)], [0.9], ["camera"])
    with pytest.raises(GalleryError, match=f"{engine.embedding_size} does not match the gallery's {other_size}.*re-enrol"):
        KioskRunner(Camera(str(frames)), engine, Gallery(conn), AccessLog(conn), DecisionPolicy(), None)
    conn.close()


def test_a_gallery_of_another_model_with_templates_of_the_same_size_is_refused(tmp_path, engine):
    from kiosk.gallery import GalleryError
    from kiosk.runner import KioskRunner

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((120, 160, 3), 90, np.uint8))
    conn = open_database(database_path(tmp_path))
    try:
        gallery = Gallery(conn)
        gallery.bind_model(engine.embedding_size, "model 0123456789abcdef, scoring an older descriptor")
        size = engine.embedding_size
        gallery.enroll("Ada", None, [np.ones(size, np.float32) / np.sqrt(size)], [0.9], ["camera"])
        with pytest.raises(GalleryError, match="another model .*re-enrol"):
            KioskRunner(Camera(str(frames)), engine, Gallery(conn), AccessLog(conn), DecisionPolicy(), None)
        assert engine.model_identity.startswith("model ") and "scoring " in engine.model_identity
    finally:
        conn.close()
