"""What a visitor sees on the kiosk screen: real widgets (offscreen), the shipped model, real video
files as the camera, real LFW photos, real SQLite.

- The liveness instruction that is running is always on the banner, even right after a denial.
- The preview is a mirror by default (the analysed frame is not), and the setting turns it off.
- Visitors read plain words (figures are in admin mode), and their name under the banner scales with the window.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from videos import read_bgr, write_video
from windows import enter_admin_mode

from kiosk.camera import Camera
from kiosk.cli import main as cli_main
from kiosk.liveness import Challenge
from kiosk.settings import KioskSettings
from kiosk.ui.kiosk_window import VERDICT_S, KioskWindow

PERSON, NAME = "Jennifer_Capriati", "Jennifer Capriati"  # clear of the threshold (tests/test_ui_kiosk.py)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, lfw, engine) -> tuple[Path, np.ndarray]:
    """A data dir with her enrolled from three photos, and a probe photo of her (BGR)."""
    photos = [lfw.image_path(ref) for ref in lfw.images_of([PERSON])[:12]]
    data_dir = tmp_path_factory.mktemp("kiosk-data")
    assert cli_main(["--data-dir", str(data_dir), "enroll", NAME, *map(str, photos[:3])]) == 0
    return data_dir, read_bgr(photos[11])


def open_window(qtbot, camera: Camera, data_dir: Path) -> KioskWindow:
    window = KioskWindow(camera, data_dir=data_dir)
    qtbot.addWidget(window)
    window.resize(1024, 600)
    window.show()
    return window


def test_the_next_liveness_prompt_is_never_hidden_under_a_denial(qtbot, tmp_path, enrolled):
    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)  # liveness on, as by default
    # A photo of her held still: recognised, asked to move, denied after the time limit, then
    # recognised again at once, so the next challenge starts while the denial is on the banner.
    video = write_video(tmp_path / "still.avi", [probe] * 10)
    window = open_window(qtbot, Camera(str(video), loop=True).start(), data)
    prompts = tuple(c.prompt for c in Challenge)
    try:
        qtbot.waitUntil(lambda: any(d.reason == "liveness" for d in window.decisions), timeout=60_000)
        # Within the denial's time on the banner: the new instruction on top, the denial under it.
        qtbot.waitUntil(lambda: window.banner_text.startswith(prompts) and "ACCESS DENIED" in window.banner_text,
                        timeout=round(VERDICT_S * 1000))
        assert window.banner.styleSheet().startswith("background: #1565c0")  # an instruction's colour
    finally:
        window.close()


def painted(window: KioskWindow) -> np.ndarray:
    """The video area as painted on screen, RGB."""
    image = window.video.grab().toImage().convertToFormat(window.video.grab().toImage().Format.Format_RGB888)
    height, width = image.height(), image.width()
    return np.frombuffer(image.constBits(), np.uint8).reshape(height, image.bytesPerLine())[:, :width * 3] \
        .reshape(height, width, 3).copy()


@pytest.mark.parametrize("mirror", [True, False])
def test_the_preview_is_a_mirror_by_default_and_the_analysed_frame_is_not(qtbot, tmp_path, enrolled, mirror):
    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    settings = KioskSettings(liveness=False) if mirror else KioskSettings(liveness=False, mirror_preview=False)
    settings.save(data)
    # Her face on the left half of the picture, a white wall on the right half.
    frame = np.full((250, 500, 3), 255, np.uint8)
    frame[:, :250] = probe
    video = write_video(tmp_path / "left.avi", [frame] * 10)
    window = open_window(qtbot, Camera(str(video), loop=True).start(), data)
    try:
        qtbot.waitUntil(lambda: len(window.video.boxes) == 1, timeout=60_000)
        x1, _, x2, _ = window.video.boxes[0]
        assert x2 < 250  # found where the camera has it: the analysed frame is not flipped
        pixels = painted(window).astype(np.float32)
        rows = pixels[pixels.shape[0] // 2 - 20:pixels.shape[0] // 2 + 20]
        grey = cv2.cvtColor(rows.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
        columns = grey.mean(axis=0)
        lit = np.flatnonzero(columns > 5)  # the picture (the widget's margins are black)
        left, right = columns[lit[0]:lit[0] + len(lit) // 4], columns[lit[-1] - len(lit) // 4:lit[-1]]
        # The white wall is on the left of the screen in a mirror, on the right otherwise.
        assert (left.mean() > right.mean() + 40) == mirror, (left.mean(), right.mean())
    finally:
        window.close()


def test_the_end_of_a_video_is_shown_on_the_banner(qtbot, tmp_path, enrolled):
    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    video = write_video(tmp_path / "short.avi", [probe] * 8)  # played once: her face stays on the last frame
    window = open_window(qtbot, Camera(str(video)).start(), data)
    try:
        qtbot.waitUntil(lambda: window.banner_text == "End of the video — nothing more to recognise",
                        timeout=60_000)
        assert window.banner.styleSheet().startswith("background: #8a6d00")
    finally:
        window.close()


def test_camera_setting_messages_say_what_runs(qtbot, tmp_path, enrolled):
    from kiosk.admin_secret import AdminSecret

    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)  # the saved camera is the default, device 0
    AdminSecret(data).set_pin("2468")
    video = write_video(tmp_path / "door.avi", [probe] * 10)
    window = open_window(qtbot, Camera(str(video), loop=True).start(), data)  # as with --camera door.avi
    try:
        enter_admin_mode(qtbot, window, "2468")
        tab = window.admin_window.settings_tab
        assert tab.message.text().startswith("Running now: video door.avi (chosen when the kiosk was started)")
        tab.camera_edit.setText("7")  # no such device
        tab.save_button.click()
        assert tab.message.text() == "Saved; connecting to camera 7…"
        qtbot.waitUntil(lambda: tab.message.text().startswith("Saved, but camera 7 gives no picture ("),
                        timeout=10_000)
        assert "Check the camera number" in tab.message.text()
    finally:
        window.close()


def test_a_liveness_prompt_is_heard_as_well_as_read(qtbot, tmp_path, enrolled, monkeypatch):
    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)  # liveness on, sound on: the defaults
    # The platform's player is a real executable that writes down what it was asked to play.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    player = bin_dir / "aplay"
    player.write_text(f'#!/bin/sh\necho "$@" >> "{bin_dir}/played.log"\n')
    player.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    video = write_video(tmp_path / "still.avi", [probe] * 10)
    window = open_window(qtbot, Camera(str(video), loop=True).start(), data)
    prompts = tuple(c.prompt for c in Challenge)
    try:
        qtbot.waitUntil(lambda: window.banner_text.startswith(prompts), timeout=60_000)
        qtbot.waitUntil(lambda: (bin_dir / "played.log").exists(), timeout=5_000)
        assert (bin_dir / "played.log").read_text().split()[-1].endswith("prompt.wav")
    finally:
        window.close()


def test_the_banner_guides_the_person_at_the_camera(qtbot, tmp_path, enrolled, lfw):
    data_dir, _ = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    KioskSettings(liveness=False).save(data)
    stranger = read_bgr(lfw.image_path(lfw.images_of(["Gerhard_Schroeder"])[0]))
    wall = np.full((300, 600, 3), 110, np.uint8)
    far = wall.copy()
    far[85:85 + 130, 235:235 + 130] = cv2.resize(stranger, (130, 130))  # a face about 52 px wide
    two = wall.copy()
    two[25:275, 40:290], two[25:275, 310:560] = stranger, stranger
    aside = wall.copy()
    aside[25:275, 350:600] = stranger  # on the picture's right: the person's left
    # One long visit (never a face-less frame): each denial reason is given once, then the hints show.
    video = write_video(tmp_path / "guide.avi", [far] * 10 + [two] * 10 + [aside] * 10)
    window = open_window(qtbot, Camera(str(video), loop=True).start(), data)
    seen: set[str] = set()

    def saw(text: str) -> bool:
        seen.add(window.banner_text)
        return text in seen

    try:
        assert window.video.outline
        qtbot.waitUntil(lambda: saw("Come closer"), timeout=60_000)
        qtbot.waitUntil(lambda: saw("One person at a time, please"), timeout=60_000)
        qtbot.waitUntil(lambda: saw("Step a little to your right"), timeout=60_000)
    finally:
        window.close()


def words_px(window: KioskWindow) -> int:
    """The pixel size of the banner's second line (the name under ACCESS GRANTED), as painted."""
    sizes = re.findall(r"font-size:(\d+)px", window.banner.text())
    assert len(sizes) == 2, window.banner.text()
    return int(sizes[1])


def test_visitors_read_plain_words_and_their_name_scales_while_figures_go_to_admin_mode(qtbot, tmp_path, enrolled):
    from kiosk.admin_secret import AdminSecret

    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    KioskSettings(liveness=False).save(data)
    AdminSecret(data).set_pin("2468")
    video = write_video(tmp_path / "her.avi", [probe] * 10)
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=data)
    qtbot.addWidget(window)
    window.resize(800, 600)  # a small kiosk panel
    window.show()
    try:
        qtbot.waitUntil(lambda: window.banner_text == f"ACCESS GRANTED — {NAME}", timeout=60_000)
        qtbot.waitUntil(lambda: "threshold" in window.technical_text, timeout=2_000)
        small = words_px(window)
        visitor = window.status.text()
        # Plain words only, and all of them on the screen: no rates, milliseconds, accuracy or threshold.
        assert visitor and not re.search(r"\d|fps|DevTest|threshold|model", visitor), visitor
        assert window.status.fontMetrics().horizontalAdvance(visitor) <= window.status.contentsRect().width()
        # The name is read from a step back: no smaller than the banner's own text by much, at any size.
        assert small >= 24 and small >= 0.8 * window.banner.font().pixelSize()
        window.resize(1600, 1200)
        qtbot.waitUntil(lambda: window.width() == 1600, timeout=2_000)
        qtbot.waitUntil(lambda: window.banner_text.startswith("ACCESS GRANTED"), timeout=30_000)
        assert words_px(window) > small

        # The figures are in admin mode, refreshed while it is open.
        enter_admin_mode(qtbot, window, "2468")
        technical = window.admin_window.technical.text()
        assert "video her.avi" in technical and "fps" in technical and "threshold" in technical
        assert "model face_embedder (DevTest" in technical
    finally:
        window.close()


def test_a_face_too_far_away_is_told_to_come_closer(qtbot, tmp_path, enrolled):
    data_dir, probe = enrolled
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    KioskSettings(liveness=False).save(data)
    # Her face about 50 px wide in the middle of a 640x360 picture: someone standing back from the kiosk.
    far = np.full((360, 640, 3), 110, np.uint8)
    far[115:115 + 130, 255:255 + 130] = cv2.resize(probe, (130, 130))
    video = write_video(tmp_path / "far.avi", [far] * 10)
    window = open_window(qtbot, Camera(str(video), loop=True).start(), data)
    try:
        qtbot.waitUntil(lambda: bool(window.decisions), timeout=60_000)
        assert window.decisions[0].reason == "low_quality"
        assert window.banner_text == "ACCESS DENIED — face not clear — come closer"
    finally:
        window.close()


def test_a_long_reason_fits_the_banner_instead_of_running_off_the_screen(qtbot, tmp_path, enrolled):
    from PySide6.QtGui import QFont, QFontMetrics

    from kiosk.ui.banner import BannerState, Tone

    data_dir, probe = enrolled
    window = open_window(qtbot, Camera(str(write_video(tmp_path / "her.avi", [probe] * 5)), loop=True).start(),
                         data_dir)
    try:
        window.resize(1280, 720)
        qtbot.waitUntil(lambda: window.width() == 1280, timeout=2_000)
        reason = "ACCESS DENIED: liveness: the head turned left, not right, and the next move is running"
        window.banner.show_state(BannerState(f"Turn your head to the left (5 s) — {reason}", Tone.INFO,
                                             "Turn your head to the left (5 s)", reason))
        sizes = [int(px) for px in re.findall(r"font-size:(\d+)px", window.banner.text())]
        font = QFont(window.banner.font())
        font.setPixelSize(sizes[1])
        font.setWeight(QFont.Weight.Normal)  # the second line's weight
        assert QFontMetrics(font).horizontalAdvance(reason) <= window.banner.contentsRect().width()
        assert sizes[1] < window.banner.words_px  # made smaller to fit...
        assert sizes[0] == window.banner.font().pixelSize()  # ...while the short prompt keeps its size
    finally:
        window.close()
