"""Fault 2: cameras failing in use. The camera reports the right state, retries with backoff where
that makes sense, and neither the runner nor the kiosk window crashes."""
from __future__ import annotations

import shutil
import threading

import cv2
import pytest
from PySide6.QtCore import QThread

from kiosk.camera import Camera, CameraState

from . import camera_faults


def assert_ok(result: dict) -> dict:
    assert result["ok"], result
    return result


def test_image_folder_deleted_mid_run_ends_the_camera(tmp_path):
    result = assert_ok(camera_faults.folder_deleted(tmp_path))
    assert result["states"] == ["live", "ended"]


def test_video_truncated_while_read_ends_early_and_cleanly(tmp_path):
    result = assert_ok(camera_faults.video_truncated(tmp_path))
    assert 5 <= result["frames"] < 120


def test_looping_video_deleted_while_read_ends_when_it_cannot_reopen(tmp_path):
    assert_ok(camera_faults.video_deleted(tmp_path))


def test_stream_that_never_connects_retries_with_growing_waits():
    result = assert_ok(camera_faults.stream_never_connects(seconds=2.5))
    assert "live" not in result["states"]


def test_stream_that_stalls_is_lost_then_reconnected(tmp_path):
    result = assert_ok(camera_faults.stream_stalls(tmp_path, seconds=4.0))
    assert result["states"][:3] == ["live", "reconnecting", "live"]


def test_fifo_as_camera_is_refused_at_once(tmp_path):
    result = assert_ok(camera_faults.fifo_camera(tmp_path))
    assert "not a regular file" in result["message"]


def test_source_that_ends_is_read_to_its_last_frame(tmp_path):
    assert_ok(camera_faults.source_ends(tmp_path))


@pytest.mark.parametrize("fault", [camera_faults.folder_deleted, camera_faults.video_truncated,
                                   camera_faults.video_deleted, camera_faults.source_ends])
def test_the_runner_returns_normally_when_its_camera_fails(engine, tmp_path, fault):
    assert_ok(fault(tmp_path, engine))


def test_the_kiosk_window_survives_its_camera_folder_vanishing(qtbot, engine, tmp_path, astronaut):
    from kiosk.ui.kiosk_window import KioskWindow

    folder = tmp_path / "camera"
    folder.mkdir()
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    for i in range(40):
        cv2.imwrite(str(folder / f"frame_{i:03d}.jpg"), bgr)
    (tmp_path / "data").mkdir()
    camera = Camera(folder, folder_fps=10.0, loop=True).start()  # looping: frames wait for a slow start-up
    threads_before = set(threading.enumerate())
    window = KioskWindow(camera, data_dir=tmp_path / "data")
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.frames_analysed >= 2, timeout=60_000)
        shutil.rmtree(folder)
        qtbot.waitUntil(lambda: camera.state is CameraState.ENDED, timeout=10_000)
        qtbot.wait(500)  # the window keeps painting and the worker keeps waiting; nothing raises
        assert window.isVisible()
        assert camera.message in window.technical_text
    finally:
        window.close()
    assert not any(t.isRunning() for t in window.findChildren(QThread))
    # A QThread seen by threading registers a "Dummy" thread that Python 3.11 keeps alive for ever.
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()
                and not isinstance(t, threading._DummyThread)]
    assert leftover == []
    assert camera.state is CameraState.ENDED  # closing does not overwrite how it ended
