"""Face pictures of denied visitors in the access log: off by default, chosen in the settings tab
with the privacy trade-off beside the choice, stored sealed like templates, shown in the log's
detail panel, and deleted with their events by the retention purge.

Real widgets (offscreen), the shipped model, a real video file as the camera, real LFW photos,
real SQLite.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import numpy as np
import test_ui_screen
from videos import read_bgr, write_video

from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.database import database_path, open_database
from kiosk.retention import purge_expired
from kiosk.settings import KioskSettings
from kiosk.ui.admin_window import AdminWindow
from kiosk.ui.kiosk_window import KioskWindow

NAME = test_ui_screen.NAME
enrolled = test_ui_screen.enrolled  # a fixture: her data dir and a probe photo

JPEG = b"\xff\xd8"


def test_denied_faces_are_kept_sealed_shown_to_the_admin_and_purged_with_their_events(qtbot, tmp_path, enrolled,
                                                                                       lfw):
    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    assert not KioskSettings().denied_thumbnails and not KioskSettings().store_thumbnails  # off by default

    # The admin chooses it, reading what it costs.
    admin = AdminWindow(data)
    qtbot.addWidget(admin)
    tab = admin.settings_tab
    assert tab.thumbnails_combo.currentData() == "none"
    assert "personal data" in tab.thumbnails_note.text() and "deleted with their events" in tab.thumbnails_note.text()
    tab.thumbnails_combo.setCurrentIndex(tab.thumbnails_combo.findData("denied"))
    tab.liveness_check.setChecked(False)  # about the log, not the challenge
    tab.retention_spin.setValue(30)
    assert tab.save()
    admin.close()
    assert KioskSettings.load(data).denied_thumbnails

    stranger = read_bgr(lfw.image_path(lfw.images_of(["Gerhard_Schroeder"])[0]))
    blank = np.full_like(probe, 128)
    video = write_video(tmp_path / "door.avi", [blank] * 3 + [stranger] * 10 + [blank] * 3 + [probe] * 10)
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=data)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: {d.decision for d in window.decisions} == {"granted", "denied"}, timeout=60_000)
    finally:
        window.close()

    conn = open_database(database_path(data))
    try:
        rows = conn.execute("SELECT e.id, e.decision, t.jpeg FROM access_event e"
                            " LEFT JOIN access_thumbnail t ON t.event_id = e.id ORDER BY e.id").fetchall()
        denied = [(event_id, jpeg) for event_id, decision, jpeg in rows if decision == "denied"]
        assert denied and all(jpeg is not None for _, jpeg in denied)
        assert all(jpeg is None for _, decision, jpeg in rows if decision == "granted")  # only who tried
        # Sealed at rest, like templates: no stored blob is or holds the picture it opens to. (Two
        # bytes such as the JPEG marker turn up by chance in a few kilobytes of ciphertext, so the
        # check looks for the picture's own first 64 bytes.)
        for event_id, sealed in denied:
            picture = AccessLog(conn).thumbnail(event_id)
            assert picture.startswith(JPEG) and not sealed.startswith(JPEG) and picture[:64] not in sealed

        # The guard sees the denied face in the detail panel; a grant has none.
        admin = AdminWindow(data)
        qtbot.addWidget(admin)
        try:
            log = admin.log_tab
            qtbot.waitUntil(lambda: log.model.rowCount() == len(rows), timeout=5_000)
            decisions = [log.model.event_at(r).decision for r in range(log.model.rowCount())]
            log.view.selectRow(decisions.index("denied"))
            assert log.selected_thumbnail_shown()
            assert log.details.text().splitlines()[:2] == ["Unknown", "denied (not recognised)"]
            log.view.selectRow(decisions.index("granted"))
            assert not log.selected_thumbnail_shown() and log.thumbnail.text() == "No thumbnail\nstored"
            assert log.details.text().splitlines()[0] == NAME
        finally:
            admin.close()

        # The log's keeping time ends: the pictures go with their events.
        assert purge_expired(conn, data, now=datetime.now(timezone.utc) + timedelta(days=31)) == len(rows)
        assert conn.execute("SELECT count(*) FROM access_thumbnail").fetchone()[0] == 0
    finally:
        conn.close()
