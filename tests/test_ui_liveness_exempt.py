"""A person who cannot turn their head is exempt from the liveness head move: set in the admin
window's People tab (after it says what that costs) or with `people exempt`, and recorded in the
access log with each grant made without it.

Real widgets (offscreen), the shipped model, a real video file as the camera, real LFW photos,
real SQLite.
"""
from __future__ import annotations

import shutil

import test_ui_screen
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from videos import write_video

from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.cli import main as cli_main
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.liveness import Challenge
from kiosk.settings import KioskSettings
from kiosk.ui.admin_window import AdminWindow
from kiosk.ui.kiosk_window import KioskWindow

NAME = test_ui_screen.NAME
enrolled = test_ui_screen.enrolled  # a fixture: her data dir and a probe photo


def answer_ok(answered: list[str]) -> None:
    """Press OK in the question box as soon as it is open."""
    box = QApplication.activeModalWidget()
    if not isinstance(box, QMessageBox):
        QTimer.singleShot(20, lambda: answer_ok(answered))
        return
    answered.append(box.text())
    box.button(QMessageBox.StandardButton.Ok).click()


def test_a_person_exempt_from_the_head_move_is_let_in_without_it_and_the_log_says_so(qtbot, tmp_path, enrolled,
                                                                                       capsys):
    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    assert KioskSettings.load(data).liveness  # the head move is asked of everyone else

    admin = AdminWindow(data)
    qtbot.addWidget(admin)
    try:
        tab = admin.people_tab
        assert tab.select(NAME) and tab.exempt_button.text() == "No head move…"
        answered: list[str] = []
        QTimer.singleShot(20, lambda: answer_ok(answered))
        assert tab.toggle_liveness_exempt_selected()
        assert "A photo or video of them could then open the door" in answered[0]
        assert tab.table.item(0, 4).text() == "exempt" and tab.exempt_button.text() == "Ask for the head move"
    finally:
        admin.close()

    # A still photo of her: without the exemption it would be asked to move, then denied.
    video = write_video(tmp_path / "her.avi", [probe] * 10)
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=data)
    qtbot.addWidget(window)
    window.resize(1024, 600)
    window.show()
    prompts = tuple(c.prompt for c in Challenge)
    banners: set[str] = set()
    try:
        qtbot.waitUntil(lambda: banners.add(window.banner_text) or any(d.granted for d in window.decisions),
                        timeout=60_000)
    finally:
        window.close()
    granted = next(d for d in window.decisions if d.granted)
    assert granted.name == NAME and granted.liveness.startswith("exempt")
    assert not any(text.startswith(prompts) for text in banners)  # never asked to move
    conn = open_database(database_path(data))
    try:
        event = next(e for e in AccessLog(conn).query() if e.decision == "granted")
        assert event.name == NAME and event.liveness.startswith("exempt:") and "cannot turn their head" in event.liveness
    finally:
        conn.close()

    # The command line lists it and takes it back; an unknown name is one clear error line.
    assert cli_main(["--data-dir", str(data), "people"]) == 0
    assert "(no head move)" in capsys.readouterr().out
    assert cli_main(["--data-dir", str(data), "people", "exempt", NAME, "--off"]) == 0
    assert "asked for the head move again" in capsys.readouterr().out
    assert cli_main(["--data-dir", str(data), "people", "exempt", "Nobody Here"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no person named 'Nobody Here'"]
    conn = open_database(database_path(data))
    try:
        assert not Gallery(conn).get_person(NAME).liveness_exempt
    finally:
        conn.close()
