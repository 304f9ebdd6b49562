"""Starting the kiosk program (kiosk.app.main) as autostart would: every problem shows in a window,
with what to do. Real widgets (offscreen), real video files, real data folders.
"""
from __future__ import annotations

import logging
import stat

import numpy as np
from PySide6.QtCore import QTimer
from videos import write_video
from windows import close_all_shown, shown

from kiosk import app
from kiosk.camera import Camera
from kiosk.ui.kiosk_window import KioskWindow
from kiosk.ui.startup_problem import StartupProblemWindow


def test_a_missing_camera_file_is_shown_in_the_window_and_try_again_starts_the_kiosk(qtbot, tmp_path, capsys):
    video = tmp_path / "door.avi"  # not there yet
    seen: dict[str, object] = {}

    def drive() -> None:
        problem = shown(StartupProblemWindow)
        try:
            seen["headline"] = problem.headline.text()
            seen["todo"] = problem.todo.text()
            seen["detail"] = problem.detail.text()
            problem.try_again()  # still missing: the window stays, saying so
            seen["still"] = shown(StartupProblemWindow) is problem
            write_video(video, [np.full((120, 160, 3), 128, np.uint8)] * 5)
            problem.try_again()
            qtbot.waitUntil(lambda: shown(KioskWindow) is not None, timeout=5_000)
            seen["kiosk"] = shown(KioskWindow).video is not None and not problem.isVisible()
        finally:
            close_all_shown()

    QTimer.singleShot(0, drive)
    assert app.main(["--camera", str(video), "--data-dir", str(tmp_path / "data")]) == 0
    assert seen["headline"] == "The camera cannot be opened"
    assert "--camera" in seen["todo"] and "Try again" in seen["todo"]
    assert str(video) in seen["detail"] and seen["still"] and seen["kiosk"]
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("face-kiosk: error: The camera cannot be opened"), errors


def test_closing_the_problem_window_exits_with_status_2(qtbot, tmp_path):
    QTimer.singleShot(0, lambda: shown(StartupProblemWindow).close())
    assert app.main(["--camera", str(tmp_path / "none.mp4"), "--data-dir", str(tmp_path / "data")]) == 2


def test_a_new_data_folder_is_created_and_the_first_run_screen_says_how_to_set_up(qtbot, tmp_path):
    video = write_video(tmp_path / "door.avi", [np.full((120, 160, 3), 128, np.uint8)] * 5)
    data_dir = tmp_path / "new" / "kiosk-data"
    seen: dict[str, object] = {}

    def drive() -> None:
        window = shown(KioskWindow)
        try:
            qtbot.waitUntil(lambda: window.setup_hint.isVisible(), timeout=5_000)
            seen["hint"] = window.setup_hint.text()
            qtbot.waitUntil(lambda: window.banner_text in ("Look at the camera", "Face detected"), timeout=60_000)
            seen["banner"] = window.banner_text
        finally:
            window.close()

    QTimer.singleShot(0, drive)
    assert app.main(["--camera", str(video), "--loop", "--data-dir", str(data_dir)]) == 0
    assert data_dir.is_dir() and stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert "not set up yet" in seen["hint"] and "choose an admin PIN" in seen["hint"]
    assert f"A new data folder was created: {data_dir}" in seen["hint"]
    assert (data_dir / "kiosk.db").exists()  # the database was opened there: no "Database unavailable"


def test_a_data_folder_that_cannot_be_created_is_shown_in_the_window(qtbot, tmp_path):
    blocker = tmp_path / "a-file"  # a file where a folder should be: no user may create the folder
    blocker.write_text("not a folder")
    video = write_video(tmp_path / "door.avi", [np.full((120, 160, 3), 128, np.uint8)] * 5)
    seen: dict[str, str] = {}

    def drive() -> None:
        problem = shown(StartupProblemWindow)
        seen.update(headline=problem.headline.text(), todo=problem.todo.text(), detail=problem.detail.text())
        problem.close()

    QTimer.singleShot(0, drive)
    assert app.main(["--camera", str(video), "--data-dir", str(blocker / "data")]) == 2
    assert seen["headline"] == "The kiosk's data folder cannot be created"
    assert "--data-dir" in seen["todo"] and seen["detail"] == f"{blocker / 'data'}: Not a directory"


def start_until_ready(qtbot, tmp_path, caplog) -> list[str]:
    """A kiosk window on a grey looping video, until recognition is ready; the window's log lines."""
    video = write_video(tmp_path / "door.avi", [np.full((120, 160, 3), 128, np.uint8)] * 5)
    caplog.set_level(logging.INFO, logger="kiosk.ui.kiosk_window")
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=tmp_path / "data")
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.banner_text == "Look at the camera", timeout=60_000)
    finally:
        window.close()
    return [r.getMessage() for r in caplog.records]


def test_the_banner_shows_each_start_up_step_until_recognition_is_ready(qtbot, tmp_path, engine, caplog):
    shown = [m for m in start_until_ready(qtbot, tmp_path, caplog) if m.startswith("start-up: ")]
    assert shown == ["start-up: Starting — loading the face recogniser (step 1 of 3)…",
                     "start-up: Starting — opening the database (step 2 of 3)…",
                     "start-up: Starting — warming up (step 3 of 3)…"]


def test_the_live_video_is_on_screen_before_the_recogniser_starts_loading(qtbot, tmp_path, engine, caplog):
    # Loading the recogniser holds the interpreter lock for seconds: it must not delay the first frame.
    messages = start_until_ready(qtbot, tmp_path, caplog)
    first_step = next(i for i, m in enumerate(messages) if m.startswith("start-up: "))
    assert "first camera frame shown" in messages[:first_step], messages


def test_a_camera_without_a_picture_does_not_hold_recognition_back(qtbot, tmp_path, engine, caplog):
    caplog.set_level(logging.INFO, logger="kiosk.ui.kiosk_window")
    window = KioskWindow(Camera("rtsp://127.0.0.1:9/none").start(), data_dir=tmp_path / "data")  # nothing there
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: any(r.getMessage().startswith("start-up: ") for r in caplog.records), timeout=10_000)
        assert window.frames_shown == 0
    finally:
        window.close()
