"""Settings saved in admin mode take effect in the running kiosk, without a restart.

Real widgets (offscreen), the shipped model, a real SQLite file, real LFW photos in real video
files as cameras. Jennifer Capriati is enrolled; Gerhard Schroeder's second photo scores well below
the door's threshold against her templates. The kiosk starts with an older kiosk's similarity
override of 0.0 in its settings file, which once let everyone in: now it is ignored and he is
denied. Then the admin, through the Settings tab, sets a stricter risk and switches to a second
video of her: the status line names the new video and the rule in force, the old camera is
stopped, the risk reaches the recognition thread, and she is let in there.
"""
from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest
from qt_threads import assert_no_thread_left
from videos import read_bgr, write_video
from windows import enter_admin_mode

from kiosk.accesslog import AccessLog
from kiosk.admin_secret import AdminSecret
from kiosk.camera import Camera, CameraState
from kiosk.cli import main as cli_main
from kiosk.database import database_path, open_database
from kiosk.settings import KioskSettings, settings_path
from kiosk.ui.kiosk_window import KioskWindow

PERSON, STRANGER = "Jennifer_Capriati", "Gerhard_Schroeder"
NAME = "Jennifer Capriati"
SIDE = 250
PIN = "2468"


@pytest.mark.lfw
def test_risk_and_camera_changes_apply_without_a_restart(qtbot, tmp_path, engine, lfw, capsys):
    data_dir = tmp_path / "data"
    enroll = [str(lfw.image_path(ref)) for ref in lfw.images_of([PERSON])[:3]]
    assert cli_main(["--data-dir", str(data_dir), "enroll", NAME, *enroll]) == 0, capsys.readouterr().err
    stranger = read_bgr(lfw.image_path(lfw.images_of([STRANGER])[1]))
    person = read_bgr(lfw.image_path(lfw.images_of([PERSON])[11]))  # photo 12: clear of the strictest rule
    blank = np.full((SIDE, SIDE, 3), 128, np.uint8)
    first = write_video(tmp_path / "door.avi", [blank] * 2 + [stranger] * 20)
    second = write_video(tmp_path / "door2.avi", [blank] * 2 + [person] * 20)
    # No liveness challenge: still photos cannot turn their heads.
    KioskSettings(camera=str(first), liveness=False).save(data_dir)
    settings = json.loads(settings_path(data_dir).read_text())
    settings_path(data_dir).write_text(json.dumps({**settings, "threshold": 0.0}))  # an older kiosk's "let all in"
    AdminSecret(data_dir).set_pin(PIN)
    engine.embed(cv2.cvtColor(stranger, cv2.COLOR_BGR2RGB))  # load and trace now, not on camera

    threads_before = set(threading.enumerate())
    old_camera = Camera(str(first), loop=True).start()
    window = KioskWindow(old_camera, data_dir=data_dir, loop=True)
    qtbot.addWidget(window)
    window.resize(1024, 600)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.banner_text == "ACCESS DENIED — not recognised", timeout=60_000)
        assert "video door.avi" in window.technical_text and "(strict start)" in window.technical_text

        enter_admin_mode(qtbot, window, PIN)
        tab = window.admin_window.settings_tab
        assert tab.camera_edit.text() == str(first)

        # Refused before anything is saved or stopped: a missing file, a file that is no video.
        broken = tmp_path / "broken.avi"
        broken.write_text("not a video")
        for source, problem in ((tmp_path / "no-such.avi", "no such file"), (broken, "cannot open video broken.avi")):
            tab.camera_edit.setText(str(source))
            tab.save_button.click()
            assert tab.message.text().startswith(f"Not saved: camera: {problem}"), tab.message.text()
            assert KioskSettings.load(data_dir).camera == str(first) and old_camera.state is not CameraState.STOPPED

        assert "strict starting rule" in tab.rule_label.text()  # one person enrolled: the rule in force, in words
        tab.risk_combo.setCurrentIndex(tab.risk_combo.findData(10000))
        tab.camera_edit.setText(str(second))
        tab.sound_check.setChecked(False)
        assert window._worker._runner.pace.busy_fps == 15.0  # the settings' default, at start
        tab.analysis_spin.setValue(8)
        tab.save_button.click()
        assert tab.message.text() == "Saved; the kiosk is using it now, with video door2.avi."
        assert old_camera.state is CameraState.STOPPED  # stopped cleanly, at once
        assert window._sound.enabled is False
        assert "video door2.avi" in window.technical_text
        # The worker applies the risk between two frames, on its own thread.
        qtbot.waitUntil(lambda: window._worker._runner.engine.risk == 10000, timeout=10_000)
        assert window._worker._runner.pace.busy_fps == 8.0  # applied with the risk
        qtbot.waitUntil(lambda: window.banner_text == f"ACCESS GRANTED — {NAME}", timeout=60_000)
        assert "video door2.avi" in window.technical_text and "(strict start)" in window.technical_text
    finally:
        window.close()
    assert_no_thread_left(window, threads_before)

    conn = open_database(database_path(data_dir))
    try:
        events = [(e.camera, e.decision, e.reason, e.name) for e in AccessLog(conn).query()]
    finally:
        conn.close()
    assert ("video door.avi", "denied", "unknown", None) in events
    assert ("video door2.avi", "granted", "match", NAME) in events
    assert not any(camera == "video door.avi" and decision == "granted" for camera, decision, _, _ in events)
    assert KioskSettings.load(data_dir).risk == 10000
