"""The analysis rate caps (kiosk.pacing): the rule on given times, then on a real KioskRunner
reading real image folders in real time with the shipped model."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.pacing import IDLE_AFTER_S, AnalysisPace
from kiosk.policy import DecisionPolicy


def test_pace_looks_often_at_a_face_and_seldom_at_an_empty_scene():
    pace = AnalysisPace(busy_fps=10, idle_fps=2)
    assert pace.idle and pace.wait_s(100.0) == 0.0  # the first frame is looked at at once
    pace.record(100.0, faces=0)
    assert pace.wait_s(100.1) == pytest.approx(0.4)  # nobody: 2 a second
    assert pace.wait_s(101.0) == 0.0  # overdue: no wait, and no catching up either
    pace.record(100.5, faces=1)
    assert not pace.idle and pace.wait_s(100.52) == pytest.approx(0.08)  # a face: 10 a second
    # A missed detection or two do not drop the rate while the person is still there...
    pace.record(100.5 + IDLE_AFTER_S, faces=0)
    assert not pace.idle and pace.wait_s(100.5 + IDLE_AFTER_S) == pytest.approx(0.1)
    # ...but nobody for longer than IDLE_AFTER_S does.
    pace.record(100.6 + IDLE_AFTER_S, faces=0)
    assert pace.idle and pace.wait_s(100.6 + IDLE_AFTER_S) == pytest.approx(0.5)
    pace.reset()
    assert pace.idle and pace.wait_s(0.0) == 0.0


def test_pace_zero_means_every_frame_and_bad_rates_are_refused():
    pace = AnalysisPace(busy_fps=0, idle_fps=0)
    pace.record(5.0, faces=1)
    assert pace.wait_s(5.0) == 0.0
    pace.record(9.0, faces=0)
    assert pace.idle and pace.wait_s(9.0) == 0.0
    assert AnalysisPace(15, 5).describe() == "analysis 15/s, 5/s with nobody in view"
    assert AnalysisPace(0, 0).describe() == "analysis every frame, every frame with nobody in view"
    for busy, idle in ((-1, 5), (15, 61), (float("nan"), 5)):
        with pytest.raises(ValueError, match="frames/s"):
            AnalysisPace(busy, idle)


def _folder(path, image: np.ndarray, count: int):
    path.mkdir()
    for index in range(count):
        cv2.imwrite(str(path / f"{index:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _analysed(tmp_path, engine, folder, pace: AnalysisPace | None) -> tuple[int, float]:
    """Frames a runner analysed over a real-time folder camera, and the seconds it ran."""
    from kiosk.runner import KioskRunner

    conn = open_database(database_path(tmp_path))
    try:
        runner = KioskRunner(Camera(str(folder), folder_fps=30), engine, Gallery(conn), AccessLog(conn),
                             DecisionPolicy(), None, pace=pace)
        started = time.monotonic()
        analysed = sum(1 for _ in runner.run(every_frame=True))
        return analysed, time.monotonic() - started
    finally:
        conn.close()


def test_runner_analyses_an_empty_scene_at_the_idle_rate(tmp_path, engine):
    folder = _folder(tmp_path / "wall", np.full((240, 320, 3), 100, np.uint8), 75)  # 2.5 s at 30 frames/s
    pace = AnalysisPace(busy_fps=30, idle_fps=2)
    analysed, seconds = _analysed(tmp_path, engine, folder, pace)
    # Starts are at least 0.5 s apart, whatever the machine's speed.
    assert pace.idle and 1 <= analysed <= seconds * 2 + 1, (analysed, seconds)


def test_runner_analyses_a_face_at_the_busy_rate(tmp_path, engine, astronaut):
    face = cv2.resize(astronaut, (256, 256))
    folder = _folder(tmp_path / "face", face, 90)  # 3 s at 30 frames/s
    pace = AnalysisPace(busy_fps=8, idle_fps=1)
    analysed, seconds = _analysed(tmp_path, engine, folder, pace)
    # The face switched the pace to busy (how many frames that allowed depends on the machine's
    # speed: pace.wait_s is checked above), and never more than 8 a second were analysed.
    assert not pace.idle and 1 <= analysed <= seconds * 8 + 1, (analysed, seconds)


def test_a_runner_whose_camera_was_stopped_before_it_began_ends_quietly(tmp_path, engine):
    # A kiosk window closed during start-up stops the camera before the analysis loop begins.
    from kiosk.runner import KioskRunner

    camera = Camera(str(_folder(tmp_path / "wall", np.full((240, 320, 3), 100, np.uint8), 3)))
    camera.stop()
    conn = open_database(database_path(tmp_path))
    try:
        runner = KioskRunner(camera, engine, Gallery(conn), AccessLog(conn), DecisionPolicy(), None)
        assert list(runner.run(every_frame=True)) == []
        with pytest.raises(RuntimeError, match="was stopped"):
            camera.start()  # starting a stopped camera by hand is still a mistake that says so
    finally:
        conn.close()
