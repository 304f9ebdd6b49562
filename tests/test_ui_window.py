"""The kiosk window end to end: a real video with a real face, the real detector, offscreen Qt."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QThread, QTimer
from windows import close_all_shown, shown

from kiosk import app
from kiosk.camera import Camera
from kiosk.ui.kiosk_window import KioskWindow
from kiosk.ui.startup_problem import StartupProblemWindow

REPO = Path(__file__).resolve().parents[1]
W, H, FPS = 320, 240, 10
FACE_FRAMES, BLANK_FRAMES = 25, 60  # 2.5 s with a face, then 6 s with nobody before the video ends
END_OF_VIDEO = "End of the video — nothing more to recognise"


def face_frame(astronaut: np.ndarray) -> np.ndarray:
    """Eileen Collins' head and shoulders at 4:3, her face about 80x100 px."""
    return cv2.resize(astronaut[0:270, 40:400], (W, H), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def video(tmp_path_factory, astronaut) -> Path:
    path = tmp_path_factory.mktemp("video") / "door.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi"
    face = cv2.cvtColor(face_frame(astronaut), cv2.COLOR_RGB2BGR)
    blank = np.full((H, W, 3), 128, np.uint8)
    for image in [face] * FACE_FRAMES + [blank] * BLANK_FRAMES:
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="module")
def warm_engine(detector, astronaut):
    """The shipped model loaded and traced now, not while the face is on screen."""
    from kiosk.modelcard import default_model_path

    if not default_model_path().exists():
        pytest.skip(f"no trained model at {default_model_path()}")
    from kiosk.engine import shared_engine

    engine = shared_engine()
    engine.embed(face_frame(astronaut))
    return engine


def test_window_shows_faces_then_nobody_and_leaves_no_thread(qtbot, video, warm_engine, astronaut, tmp_path):
    # Nobody is enrolled in tmp_path: a face is detected, then denied as not recognised.
    threads_before = set(threading.enumerate())
    seen: dict[str, object] = {}

    def drive() -> None:  # runs inside main()'s event loop, on the window main() opened
        window = shown(KioskWindow)
        try:
            qtbot.waitUntil(lambda: window.banner_text in ("Face detected", "ACCESS DENIED — not recognised")
                            and window.video.has_frame, timeout=15_000)
            seen["boxes"] = window.video.boxes
            # Nobody in view: the idle banner, or the end of the video when the denial's banner outlasts it.
            qtbot.waitUntil(lambda: window.banner_text in ("Look at the camera", END_OF_VIDEO)
                            and not window.video.boxes, timeout=15_000)
            seen["boxes_after"] = window.video.boxes
            seen["status"] = window.technical_text
        finally:
            close_all_shown()
            seen["threads_running"] = [t.isRunning() for t in window.findChildren(QThread)]

    QTimer.singleShot(0, drive)
    assert app.main(["--camera", str(video), "--data-dir", str(tmp_path)]) == 0

    assert "boxes_after" in seen, f"the face never came, then went: {seen}"
    assert len(seen["boxes"]) == 1
    x1, y1, x2, y2 = seen["boxes"][0]
    assert 100 < (x1 + x2) / 2 < 230 and 60 < (y1 + y2) / 2 < 160  # on her face, not somewhere else
    assert seen["boxes_after"] == []
    assert "display" in seen["status"] and "analysis" in seen["status"]
    assert seen["threads_running"] == [False]
    # threading.current_thread() on a QThread (Thread.join does it) registers a "Dummy" thread,
    # which Python 3.11 reports alive for ever.
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()
                and not isinstance(t, threading._DummyThread)]
    assert leftover == []


def test_failing_analysis_is_reported_and_fonts_follow_the_window(qtbot, video):
    def analyse(rgb: np.ndarray) -> object:
        raise ValueError("model file is corrupt")

    window = KioskWindow(Camera(str(video), loop=True).start(), analyse=analyse)
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitUntil(lambda: "analysis failed: model file is corrupt" in window.technical_text, timeout=5_000)
        assert window.banner_text == "Starting…"

        sizes = {}
        for width, height in ((1024, 600), (1920, 1080)):
            window.resize(width, height)
            qtbot.waitUntil(lambda: (window.width(), window.height()) == (width, height), timeout=2_000)
            sizes[width] = window.banner.font().pixelSize()
            assert window.video.height() > height / 2  # the picture stays the main thing on screen
        assert 30 <= sizes[1024] < sizes[1920]
    finally:
        window.close()  # the window owns a running thread: it must be closed, not just dropped


def test_bad_camera_source_exits_2_after_its_window_is_closed(capsys, tmp_path):
    QTimer.singleShot(0, lambda: shown(StartupProblemWindow).close())
    assert app.main(["--camera", "/no/such/file", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("face-kiosk: error:") and "/no/such/file" in err and "\n" not in err
    assert shown(KioskWindow) is None


def test_help_is_quick_and_does_not_load_tensorflow():
    started = time.monotonic()
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "--camera" in result.stdout and "--fullscreen" in result.stdout
    assert time.monotonic() - started < 10

    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, kiosk.app; print([m for m in ('tensorflow', 'mtcnn') if m in sys.modules])"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    assert heavy.stdout.strip() == "[]", heavy.stderr
