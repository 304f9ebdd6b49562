"""The kiosk window and the admin window on a site database: a real PostgreSQL server
(tests/postgres.py), real widgets (offscreen), a real video file as the camera, the shipped model."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QTimer
from videos import read_bgr, write_video
from windows import close_all_shown, shown

pytest.importorskip("psycopg")  # the site extra (the test extra installs it)

from benchmarks.site import door_folder  # noqa: E402
from kiosk import app  # noqa: E402
from kiosk.accesslog import AccessLog  # noqa: E402
from kiosk.settings import KioskSettings  # noqa: E402
from kiosk.site import open_site_database  # noqa: E402
from kiosk.store import Store  # noqa: E402
from kiosk.ui.admin_window import AdminWindow  # noqa: E402
from kiosk.ui.kiosk_window import KioskWindow  # noqa: E402
from kiosk.ui.log_model import DOOR_COLUMN  # noqa: E402

postgres_module = pytest.importorskip("tests.postgres")


@pytest.fixture(scope="module")
def server():
    server = postgres_module.started_server()
    yield server
    server.close()


def with_password(url: str) -> str:
    """The site's URL with a password in it (the test server trusts the loopback and ignores it)."""
    return url.replace("postgresql://kiosk@", "postgresql://kiosk:s3cret@")


def doors_shown(model) -> list[str]:
    return [model.data(model.index(row, DOOR_COLUMN)) for row in range(model.rowCount())]


def test_admin_window_shows_every_door_with_a_door_filter_and_the_server_state(qtbot, server, tmp_path):
    site = with_password(server.new_database())
    front_dir = door_folder(tmp_path, "front", None)
    front = open_site_database(site, front_dir, "front", offline_hours=24.0)
    back = open_site_database(site, door_folder(tmp_path, "back", front_dir), "back")
    for conn, decision in ((front, "granted"), (back, "denied"), (back, "granted")):
        AccessLog(conn).record(camera="cam", decision=decision, reason="match" if decision == "granted" else "unknown")
    back.close()

    window = AdminWindow(Store.choose(front_dir, site, "front"))
    qtbot.addWidget(window)
    tab = window.log_tab
    try:
        assert sorted(doors_shown(tab.model)) == ["back", "back", "front"]
        assert [tab.door_combo.itemText(i) for i in range(tab.door_combo.count())] == ["All doors", "back", "front"]
        tab.door_combo.setCurrentIndex(tab.door_combo.findData("back"))
        assert doors_shown(tab.model) == ["back", "back"] and tab.model.total() == 2
        tab.door_combo.setCurrentIndex(0)
        assert tab.model.rowCount() == 3

        masked = site.replace(":s3cret@", ":***@")
        qtbot.waitUntil(lambda: window.database.text() == f"site database {masked}: connected", timeout=5_000)
        assert window.settings_tab.database_label.text() == window.database.text()
        assert "s3cret" not in window.database.text()

        server.stop()
        try:
            qtbot.waitUntil(lambda: "offline since" in window.database.text(), timeout=10_000)
            AccessLog(front).record(camera="cam", decision="denied", reason="unknown")  # queued at this door
            qtbot.waitUntil(lambda: "1 event waiting in the outbox" in window.database.text(), timeout=5_000)
            assert "deciding from the gallery as of" in window.database.text()
            assert "of the 24 h allowed" in window.settings_tab.database_label.text()
            qtbot.wait(1_500)  # the log's polls meet the server away: the rows stay, nothing breaks
            assert tab.model.rowCount() == 3
        finally:
            server.start()
        qtbot.waitUntil(lambda: window.database.text() == f"site database {masked}: connected", timeout=15_000)
        qtbot.waitUntil(lambda: tab.model.rowCount() == 4, timeout=10_000)  # the queued event arrived
        assert sorted(doors_shown(tab.model)) == ["back", "back", "front", "front"]
    finally:
        window.close()
        front.close()


def test_an_admin_window_on_a_kiosk_of_its_own_names_its_file(qtbot, tmp_path):
    window = AdminWindow(tmp_path)
    qtbot.addWidget(window)
    try:
        assert window.database.text() == f"database {tmp_path / 'kiosk.db'}"
        assert window.settings_tab.database_label.text() == window.database.text()
    finally:
        window.close()


def test_the_kiosk_program_on_a_site_waits_for_the_server_then_grants_at_its_door(qtbot, server, tmp_path, capsys,
                                                                                  engine, lfw):
    """`face-kiosk --database URL --camera VIDEO` at a door that never reached the server: it says it cannot
    decide yet; once the server is up it recognises someone enrolled at another door, and logs the grant as
    its own door's. The server away meanwhile: the admin's status line says so, and then that it is back."""
    from tests.test_cli import ENROLL, PERSON, PROBE, cli

    site = server.new_database()
    photos = [lfw.image_path(ref) for ref in lfw.images_of([PERSON])[:14]]
    front_dir = door_folder(tmp_path, "front", None)
    code, out, err = cli(capsys, "--data-dir", front_dir, "--database", site, "--door-id", "front", "enroll",
                         PERSON, *photos[ENROLL])
    assert code == 0, err
    code, out, err = cli(capsys, "--data-dir", front_dir, "--database", site, "site", "settings", "retention_days=7")
    assert code == 0, err
    back_dir = door_folder(tmp_path, "back", front_dir)
    KioskSettings(liveness=False).save(back_dir)  # this test is about the site, not the liveness challenge
    blank = np.full((250, 250, 3), 128, np.uint8)
    video = write_video(tmp_path / "door.avi", [blank] * 4 + [read_bgr(photos[PROBE])] * 12 + [blank] * 6)
    engine.embed(cv2.cvtColor(read_bgr(photos[PROBE]), cv2.COLOR_BGR2RGB))  # load and trace now, not on camera
    name = PERSON  # as enrolled by the command line
    seen: dict[str, object] = {}

    def drive() -> None:
        try:
            window = shown(KioskWindow)
            qtbot.waitUntil(lambda: window.banner_text.startswith("Cannot decide yet"), timeout=60_000)
            seen["waiting"] = window.technical_text
            server.start()
            qtbot.waitUntil(lambda: window.banner_text == f"ACCESS GRANTED — {name}", timeout=60_000)
            qtbot.waitUntil(lambda: "connected" in window.technical_text, timeout=5_000)
            seen["visitor online"] = window.status.text()
            # Settings saved at this door (its own retention, 90 days) keep the site's retention in force.
            with qtbot.waitSignal(window._worker.reconfigured, timeout=10_000) as applied:
                window.apply_settings(KioskSettings.load(back_dir))
            seen["retention"] = applied.args[0].settings.retention_days
            server.stop()
            qtbot.waitUntil(lambda: "offline since" in window.technical_text, timeout=10_000)
            seen["visitor offline"] = window.status.text()
            server.start()
            qtbot.waitUntil(lambda: "connected" in window.technical_text, timeout=15_000)
        finally:
            close_all_shown()

    server.stop()
    try:
        QTimer.singleShot(0, drive)
        assert app.main(["--data-dir", str(back_dir), "--database", site, "--door-id", "back",
                         "--camera", str(video), "--loop"]) == 0
    finally:
        if server.process.poll() is not None:
            server.start()
    assert "cannot decide yet" in seen["waiting"] and "holds no copy of the site's gallery" in seen["waiting"]
    assert seen["visitor online"] == seen["visitor offline"] == "Ready"  # the visitor is told nothing
    assert seen["retention"] == 7
    conn = open_site_database(site, front_dir, "front")
    events = AccessLog(conn).query(door_name="back")
    assert ("granted", name) in {(e.decision, e.name) for e in events}
    assert AccessLog(conn).verify().ok
    conn.close()
    assert (Path(back_dir) / "site-gallery.sqlite").exists()  # a copy now: the next start needs no server

    def offline_drive() -> None:
        try:
            window = shown(KioskWindow)
            qtbot.waitUntil(lambda: window.banner_text == f"ACCESS GRANTED — {name}", timeout=60_000)
            qtbot.waitUntil(lambda: "offline since" in window.technical_text, timeout=5_000)
            seen["offline start"] = window.technical_text
        finally:
            close_all_shown()

    server.stop()  # the door starts again with the server down: it decides from its copy
    try:
        QTimer.singleShot(0, offline_drive)
        assert app.main(["--data-dir", str(back_dir), "--database", site, "--door-id", "back",
                         "--camera", str(video), "--loop"]) == 0
    finally:
        server.start()
    assert "events waiting in the outbox" in seen["offline start"] or "1 event waiting" in seen["offline start"]
