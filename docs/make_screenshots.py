#!/usr/bin/env python3
"""Make the README's screenshots by running the real kiosk program on a virtual screen.

    export LFW_DIR=/path/to/lfw
    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python docs/make_screenshots.py

Everything is real: ``kiosk.app.main`` (what ``python main.py`` runs) on video files built from
LFW photos, the shipped model, a fresh data directory. The script then works the kiosk the way
an admin does (PIN dialog, Settings tab, People tab, enrollment dialog) and saves, in docs/:

- kiosk-challenge.png George W Bush, enrolled from three other photos, is recognised and asked
                      for a head move (liveness is on, as by default);
- kiosk-granted.png   ...he makes it and is let in;
- kiosk-denied.png    a stranger (Gerhard Schroeder) is turned away;
- pin-keypad.png      the admin PIN asked for on the on-screen keypad;
- admin-log.png       the access log with the events of this run (nothing written by hand), his
                      grant selected: how the liveness check went (face pictures are kept of
                      denials only), and the kiosk's figures in the status bar;
- admin-log-denied.png the stranger's denial selected: his face picture, for the guard;
- admin-settings.png  the Settings tab: the face-picture choice with its privacy note;
- enroll-dialog.png   enrolling Tony Blair: two photos from files, one file without a face, two
                      guided captures from the camera, its live picture and feedback for the third;
- startup-error.png   the kiosk started on a camera file that is not there: the problem, what
                      to do, and Try again, in the window;
- kiosk-first-run.png a fresh data folder: the first-run screen over the video (choose a PIN,
                      then enrol);
- kiosk-guidance.png  the member standing too far away: the outline to step into, "Come closer";
- kiosk-lockout.png   the stranger, denied again and again, is locked out (shown to him alone:
                      the member who steps up next is recognised as usual).

LFW has no videos, so a visit is a sequence of LFW photos of the same person at different head
poses (the photos tests/test_liveness_pipeline.py checks): frontal, a nod, frontal, a turn to
his left, frontal, looped. The kiosk draws the move it asks for at random; a nod or a left turn
passes, a right turn fails (he turns the other way), so the script waits for a visit that passes.
The enrollment camera is switched in the Settings tab while the kiosk runs (no restart).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")  # a real X server (Xvfb), as on a kiosk
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from kiosk import app  # noqa: E402
from kiosk.admin_secret import AdminSecret  # noqa: E402
from kiosk.cli import main as cli_main  # noqa: E402
from kiosk.liveness import Challenge  # noqa: E402
from kiosk.settings import KioskSettings  # noqa: E402
from kiosk.ui.kiosk_window import KioskWindow  # noqa: E402
from kiosk.ui.startup_problem import StartupProblemWindow  # noqa: E402
from training.lfw import LFW, ImageRef  # noqa: E402

DOCS = REPO / "docs"
FRAME = (640, 480)  # a webcam's picture
FPS = 5
PIN = "2468"
# LFW photo numbers. The member's are tests/test_liveness_pipeline.py's (frontal photos to
# enroll, another frontal one, a nod, a turn to his left); the newcomer's were read with the
# detector (yaw +1, +0 and -16 degrees).
MEMBER, MEMBER_NAME = "George_W_Bush", "George W Bush"
MEMBER_ENROLL, MEMBER_FRONTAL, MEMBER_NOD, MEMBER_LEFT = (25, 31, 37), 15, 6, 5
STRANGER, STRANGER_PHOTO = "Gerhard_Schroeder", 1
NEWCOMER, NEWCOMER_NAME = "Tony_Blair", "Tony Blair"
NEWCOMER_FILES, NEWCOMER_FRONTAL, NEWCOMER_LEFT = (18, 35), 2, 12


def on_camera(photo: Path) -> np.ndarray:
    """An LFW photo (250 x 250) as a 4:3 webcam picture: the middle rows, enlarged."""
    image = cv2.imread(str(photo))
    rows = round(image.shape[1] * FRAME[1] / FRAME[0])
    top = (image.shape[0] - rows) // 2
    return cv2.resize(image[top:top + rows], FRAME, interpolation=cv2.INTER_CUBIC)


def empty_room() -> np.ndarray:
    """The door with nobody in front of it: a dim wall, lighter at the top."""
    shade = np.linspace(70, 35, FRAME[1], dtype=np.float32)[:, None, None]
    return np.broadcast_to(shade * np.array([1.0, 0.95, 0.9]), (FRAME[1], FRAME[0], 3)).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, FRAME)
    if not writer.isOpened():
        raise RuntimeError("this OpenCV build cannot write MJPG .avi")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Run the event loop until `condition()` holds; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    timer = QTimer(interval=50)

    def check() -> None:
        if condition() or time.monotonic() > deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    if not condition():
        raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def pause(seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()


def save(widget, name: str) -> None:
    path = DOCS / name
    if not widget.grab().save(str(path)):
        raise RuntimeError(f"cannot write {path}")
    print(f"wrote {path.relative_to(REPO)} ({widget.width()}x{widget.height()})")


def prepare(work: Path, lfw: LFW) -> tuple[Path, Path, list[Path]]:
    """The data dir (one person enrolled, PIN set, camera in the settings) and the two videos."""
    def photo(name: str, number: int) -> Path:
        return lfw.image_path(ImageRef(name, number))

    data_dir = work / "data"
    if cli_main(["--data-dir", str(data_dir), "enroll", MEMBER_NAME,
                 *(str(photo(MEMBER, n)) for n in MEMBER_ENROLL)]):
        raise RuntimeError("enrolling the member failed")
    AdminSecret(data_dir).set_pin(PIN)
    room = empty_room()
    frontal, nod, left = (on_camera(photo(MEMBER, n)) for n in (MEMBER_FRONTAL, MEMBER_NOD, MEMBER_LEFT))
    visit = [frontal] * 5 + [nod] * 2 + [frontal] * 3 + [left] * 2 + [frontal] * 4
    door = write_video(work / "door.avi", [room] * 3 + visit + [room] * 4
                       + [on_camera(photo(STRANGER, STRANGER_PHOTO))] * 12 + [room] * 4)
    desk = write_video(work / "enrollment-desk.avi", [on_camera(photo(NEWCOMER, NEWCOMER_FRONTAL))] * 10
                       + [on_camera(photo(NEWCOMER, NEWCOMER_LEFT))] * 10)
    # main() opens the settings' camera; liveness is on (the default); face pictures of denials only.
    KioskSettings(camera=str(door), denied_thumbnails=True).save(data_dir)
    no_face = work / "badge-scan.png"
    cv2.imwrite(str(no_face), np.tile(np.linspace(90, 200, 400, dtype=np.uint8), (300, 1)))
    return data_dir, desk, [photo(NEWCOMER, n) for n in NEWCOMER_FILES] + [no_face]


def save_challenge(window: KioskWindow, visits: int = 5) -> None:
    """kiosk-challenge.png, grabbed only while the banner still asks for the move: a visit can pass
    its challenge within half a second, and a fixed pause once saved the grant under this name."""
    def challenging() -> bool:
        return any(window.banner_text.startswith(c.prompt) for c in Challenge)

    for _ in range(visits):  # the door video loops: a missed challenge comes round again
        wait_until(challenging, 120, "a liveness challenge")
        pause(0.3)  # a frame or two more: the face box drawn on the one shown
        if challenging():
            save(window, "kiosk-challenge.png")
            return
    raise RuntimeError(f"each of {visits} challenges was answered before it could be photographed")


def drive(desk: Path, files: list[Path]) -> None:
    """Inside main()'s event loop: work the kiosk like a visitor and an admin, taking pictures."""
    window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, KioskWindow))
    window.resize(1024, 600)
    save_challenge(window)
    wait_until(lambda: window.banner_text == f"ACCESS GRANTED — {MEMBER_NAME}", 180, "a visit that passes")
    save(window, "kiosk-granted.png")
    wait_until(lambda: window.banner_text == "ACCESS DENIED — not recognised", 60, "the stranger's denial")
    save(window, "kiosk-denied.png")

    window.request_admin()
    wait_until(lambda: window._pin_dialog is not None, 5, "the PIN dialog")
    for key in PIN[:2]:  # half typed on the on-screen keypad
        window._pin_dialog.keypad.keys[key].click()
    pause(0.3)
    save(window._pin_dialog, "pin-keypad.png")
    window._pin_dialog.pin.setText(PIN)
    window._pin_dialog.ok_button.click()
    wait_until(lambda: window.admin_window is not None, 10, "the admin window")
    admin = window.admin_window
    admin.resize(1000, 600)
    log = admin.log_tab
    wait_until(lambda: log.model.rowCount() >= 3, 10, "three access events in the log")
    granted = next(row for row in range(log.model.rowCount()) if log.model.event_at(row).decision == "granted")
    log.view.selectRow(granted)
    pause(0.5)
    save(admin, "admin-log.png")
    denied = next(row for row in range(log.model.rowCount()) if log.model.event_at(row).decision == "denied")
    log.view.selectRow(denied)
    pause(0.5)
    save(admin, "admin-log-denied.png")

    admin.tabs.setCurrentWidget(admin.settings_tab)
    pause(0.5)
    save(admin, "admin-settings.png")

    admin.tabs.setCurrentWidget(admin.settings_tab)  # the enrollment desk's camera, without a restart
    admin.settings_tab.camera_edit.setText(str(desk))
    admin.settings_tab.save_button.click()
    wait_until(lambda: "enrollment-desk.avi" in window.technical_text, 10, "the new camera")

    admin.tabs.setCurrentWidget(admin.people_tab)
    dialog = admin.people_tab.enroll_new()
    dialog.name_edit.setText(NEWCOMER_NAME)
    dialog.badge_edit.setText("B-0043")
    dialog.add_files(files)
    wait_until(lambda: not dialog.busy, 120, "the photos to be checked")
    dialog.start_capture()
    wait_until(lambda: len(dialog.samples) >= 4 and "(now " in dialog.feedback.text(),
               120, "two captures, and live feedback for the third")
    pause(0.3)
    save(dialog, "enroll-dialog.png")
    dialog.reject()
    window.close()


def top_window(kind):
    return next(w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible())


def drive_startup_error() -> None:
    problem = top_window(StartupProblemWindow)
    problem.resize(1024, 600)
    pause(0.5)
    save(problem, "startup-error.png")
    problem.close()


def save_kiosk_when(banner: str, name: str, what: str, first_run: bool = False) -> None:
    """The kiosk window, once its banner reads `banner` (and, for `first_run`, its setup hint shows), as `name`."""
    window = top_window(KioskWindow)
    window.resize(1024, 600)
    wait_until(lambda: window.banner_text == banner and (window.setup_hint.isVisible() or not first_run), 120, what)
    pause(0.5)
    save(window, name)
    window.close()


def drive_first_run() -> None:
    save_kiosk_when("Look at the camera", "kiosk-first-run.png", "the first-run screen with the kiosk ready",
                    first_run=True)


def drive_guidance() -> None:
    save_kiosk_when("Come closer", "kiosk-guidance.png", "the hint to come closer")


def far_video(work: Path, lfw: LFW) -> Path:
    """The member standing well back from the door: his face about 45 px wide."""
    room = empty_room()
    face = cv2.resize(cv2.imread(str(lfw.image_path(ImageRef(MEMBER, MEMBER_FRONTAL)))), (110, 110))
    room[150:260, 265:375] = face
    return write_video(work / "far.avi", [room] * 10)


def drive_lockout() -> None:
    window = top_window(KioskWindow)
    window.resize(1024, 600)
    wait_until(lambda: window.banner_text.startswith("Too many attempts — wait ") and window.video.boxes, 180,
               "the stranger's lockout")
    pause(0.3)
    save(window, "kiosk-lockout.png")
    window.close()


def run_kiosk(step: Callable[[], None], args: list[str]) -> int:
    """app.main(args) with `step` driving its window; a failure is printed and ends the window."""
    failure: list[str] = []

    def run() -> None:
        try:
            step()
        except Exception:  # report it, and let main() return instead of hanging
            failure.append(traceback.format_exc())
            for window in QApplication.topLevelWidgets():
                if isinstance(window, (KioskWindow, StartupProblemWindow)):
                    window.close()

    QTimer.singleShot(0, run)
    code = app.main(args)
    if failure:
        print(failure[0], file=sys.stderr)
        return 1
    return code


def lockout_setup(work: Path, data_dir: Path, lfw: LFW) -> Path:
    """A copy of the data dir whose camera shows the stranger coming and going, then staying."""
    locked = work / "data-lockout"
    shutil.copytree(data_dir, locked)
    stranger, room = on_camera(lfw.image_path(ImageRef(STRANGER, STRANGER_PHOTO))), empty_room()
    video = write_video(work / "again.avi", ([stranger] * 3 + [room] * 2) * 6 + [stranger] * 20)
    KioskSettings(camera=str(video)).save(locked)
    return locked


def main() -> int:
    if os.environ["QT_QPA_PLATFORM"] == "xcb" and not os.environ.get("DISPLAY"):
        sys.exit("no X display: run me under xvfb-run (see the docstring)")
    lfw = LFW.locate(cache_dir=Path(os.environ.get("KIOSK_CACHE_DIR") or tempfile.mkdtemp()))
    with tempfile.TemporaryDirectory(prefix="kiosk-screenshots-") as tmp:
        work = Path(tmp)
        data_dir, desk, files = prepare(work, lfw)
        locked = lockout_setup(work, data_dir, lfw)
        if run_kiosk(drive_startup_error, ["--camera", str(work / "door-camera.mp4"),
                                           "--data-dir", str(data_dir)]) != 2:
            return 1
        if run_kiosk(drive_first_run, ["--camera", str(work / "door.avi"), "--loop",
                                       "--data-dir", str(work / "new-kiosk")]):
            return 1
        if run_kiosk(drive_lockout, ["--data-dir", str(locked), "--loop"]):
            return 1
        if run_kiosk(drive_guidance, ["--camera", str(far_video(work, lfw)), "--loop", "--data-dir", str(locked)]):
            return 1
        return run_kiosk(lambda: drive(desk, files), ["--data-dir", str(data_dir), "--loop"])


if __name__ == "__main__":
    sys.exit(main())
