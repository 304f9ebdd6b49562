"""kiosk.camera against real files, folders, sockets and a missing device; no mocks.

Test videos are tiny MJPG .avi clips whose frame i is a solid grey of level
LEVEL0 + STEP * i, so every frame says which one it is even after JPEG loss.
"""

from __future__ import annotations

import functools
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from videos import write_video

from kiosk.camera import (
    Camera,
    CameraError,
    CameraState,
    Frame,
    SourceKind,
    parse_source,
)

W, H = 64, 48
N = 30  # frames per test clip
LEVEL0, STEP = 20, 6  # grey level of frame i; STEP well above MJPG's error on flat frames


def grey(i: int) -> np.ndarray:
    return np.full((H, W, 3), LEVEL0 + STEP * i, np.uint8)


def number_of(frame: Frame) -> int:
    return round((float(frame.rgb.mean()) - LEVEL0) / STEP)


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camera-reader")]


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Recorder:
    """An on_state callback that remembers what it was told, and from which thread."""

    def __init__(self) -> None:
        self.events: list[tuple[CameraState, str]] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, state: CameraState, message: str) -> None:
        with self._lock:
            self.events.append((state, message))
            self.threads.add(threading.current_thread().name)

    def states(self) -> list[CameraState]:
        with self._lock:
            return [state for state, _ in self.events]

    def count(self, state: CameraState) -> int:
        return self.states().count(state)


@pytest.fixture(autouse=True)
def no_leaked_readers() -> Iterator[None]:
    yield
    assert wait_until(lambda: not reader_threads(), 3.0), f"reader threads left: {reader_threads()}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", [grey(i) for i in range(N)], fps=25.0)


@pytest.fixture(scope="module")
def fast_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 200 fps: real-time playback takes 0.15 s, quicker than any test consumer.
    return write_video(tmp_path_factory.mktemp("video") / "fast.avi", [grey(i) for i in range(N)], fps=200.0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """frame_1.png .. frame_12.png (natural order matters), an upper-case .JPG, a broken PNG, a text file."""
    for i in range(1, 13):
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), grey(i))
    cv2.imwrite(str(tmp_path / "frame_13.JPG"), grey(13))
    (tmp_path / "frame_5b.png").write_bytes(b"not a png at all")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- parse_source ----------------------------------------------------------------


@pytest.mark.parametrize("spec, index", [("0", 0), (0, 0), (" 2 ", 2), (99, 99)])
def test_parse_device(spec, index) -> None:
    source = parse_source(spec)
    assert (source.kind, source.target, source.live) == (SourceKind.DEVICE, index, True)


@pytest.mark.parametrize("url", ["rtsp://cam.local/live", "http://10.0.0.5/mjpg", "HTTPS://x/y.m3u8"])
def test_parse_stream(url: str) -> None:
    assert parse_source(url).kind is SourceKind.STREAM


def test_stream_label_masks_password() -> None:
    label = parse_source("rtsp://admin:hunter2@10.0.0.9:554/live").label
    assert "hunter2" not in label and "admin:***@10.0.0.9:554" in label


def test_parse_file_and_folder(clip: Path, folder: Path) -> None:
    assert parse_source(str(clip)).kind is SourceKind.VIDEO
    source = parse_source(folder)
    assert source.kind is SourceKind.FOLDER
    names = [p.name for p in source.images]
    assert names[:3] == ["frame_1.png", "frame_2.png", "frame_3.png"]
    assert names.index("frame_5.png") < names.index("frame_5b.png") < names.index("frame_6.png")
    assert names[-2:] == ["frame_12.png", "frame_13.JPG"]
    assert "notes.txt" not in names


@pytest.mark.parametrize("spec", ["no/such/clip.avi", "-1", -1, True])
def test_parse_rejects_with_helpful_message(spec) -> None:
    with pytest.raises(CameraError) as caught:
        parse_source(spec)
    assert str(spec) in str(caught.value) and "rtsp://" in str(caught.value)


def test_missing_path_fails_at_construction() -> None:
    with pytest.raises(CameraError, match="no such file or folder: 'missing.avi'"):
        Camera("missing.avi")


def test_empty_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(CameraError, match="no images in folder"):
        Camera(tmp_path)


# -- playback --------------------------------------------------------------------


def test_corrupt_video_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.avi"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    camera = Camera(bad)
    with pytest.raises(CameraError, match="cannot open video corrupt.avi"):
        camera.start()
    assert not reader_threads()


def test_rgb_order(tmp_path: Path) -> None:
    red_bgr = np.zeros((H, W, 3), np.uint8)
    red_bgr[..., 2] = 255
    video = write_video(tmp_path / "red.avi", [red_bgr] * 3, fps=25.0)
    with Camera(video, realtime=False) as camera:
        frame = camera.latest(timeout=5)
    assert frame is not None and frame.rgb.dtype == np.uint8 and frame.rgb.shape == (H, W, 3)
    r, g, b = frame.rgb.reshape(-1, 3).mean(axis=0)
    assert r > 240 and g < 15 and b < 15

    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "red.png"), red_bgr)
    with Camera(images, realtime=False) as camera:
        frame = camera.latest(timeout=5)
    assert frame is not None and (frame.rgb == [255, 0, 0]).all()  # PNG is lossless: exact


def test_lossless_video_gives_every_frame_in_order(clip: Path) -> None:
    seen = []
    with Camera(clip, realtime=False) as camera:
        for frame in camera.frames():
            seen.append(frame)
            if frame.index % 7 == 0:
                time.sleep(0.02)  # a slow consumer must not lose anything either
        assert camera.state is CameraState.ENDED
    assert [f.index for f in seen] == list(range(N))
    assert [number_of(f) for f in seen] == list(range(N))
    assert all(a.timestamp <= b.timestamp for a, b in zip(seen, seen[1:]))


def test_ended_is_reported_from_the_reader_thread(clip: Path) -> None:
    recorder = Recorder()
    camera = Camera(clip, realtime=False, on_state=recorder).start()
    assert len(list(camera.frames())) == N
    assert wait_until(lambda: camera.state is CameraState.ENDED)
    assert recorder.events == [
        (CameraState.LIVE, "playing video clip.avi"),
        (CameraState.ENDED, "end of video clip.avi"),
    ]
    assert recorder.threads == {"camera-reader video clip.avi"}
    assert camera.message == "end of video clip.avi"
    camera.stop()
    assert camera.state is CameraState.ENDED  # stopping afterwards does not hide that it ended


def test_realtime_drops_frames_for_a_slow_consumer(fast_clip: Path) -> None:
    seen = []
    started = time.monotonic()
    with Camera(fast_clip) as camera:  # realtime is the default
        for frame in camera.frames():
            seen.append(frame)
            time.sleep(0.03)  # six frame periods per frame taken
    elapsed = time.monotonic() - started
    indices = [f.index for f in seen]
    assert indices == sorted(set(indices)) and len(indices) < N  # newest only, gaps where it was slow
    assert indices[-1] == N - 1 and number_of(seen[-1]) == N - 1
    assert all(number_of(f) == f.index for f in seen)
    assert elapsed > 0.8 * N / 200  # played at the clip's 200 fps, not as fast as it decodes


def test_latest_is_the_newest_frame(fast_clip: Path) -> None:
    ended = threading.Event()
    camera = Camera(fast_clip, on_state=lambda s, m: s is CameraState.ENDED and ended.set()).start()
    try:
        assert ended.wait(5)
        frame = camera.latest(timeout=1)
        assert frame is not None and frame.index == N - 1 and number_of(frame) == N - 1
        started = time.monotonic()
        assert camera.latest(timeout=3, newer_than=frame.index) is None
        assert time.monotonic() - started < 1  # ended: no point waiting out the timeout
    finally:
        camera.stop()


def test_loop_restarts_and_keeps_counting(clip: Path) -> None:
    recorder = Recorder()
    seen = []
    with Camera(clip, realtime=False, loop=True, on_state=recorder) as camera:
        for frame in camera.frames():
            seen.append(frame)
            if len(seen) == 2 * N + 5:
                break
        assert camera.state is CameraState.LIVE
    assert camera.state is CameraState.STOPPED
    assert [f.index for f in seen] == list(range(2 * N + 5))
    assert [number_of(f) for f in seen] == [i % N for i in range(2 * N + 5)]
    assert CameraState.ENDED not in recorder.states()


def test_folder_skips_unreadable_images_once(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kiosk.camera")
    seen = []
    with Camera(folder, realtime=False, loop=True) as camera:
        for frame in camera.frames():
            seen.append(number_of(frame))
            if len(seen) == 2 * 13:
                break
    assert seen == list(range(1, 14)) * 2
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "frame_5b.png" in warnings[0]


def test_folder_realtime_paces_at_folder_fps(folder: Path) -> None:
    started = time.monotonic()
    with Camera(folder, folder_fps=100.0) as camera:
        last = list(camera.frames())[-1]
    assert time.monotonic() - started > 0.8 * 13 / 100
    assert number_of(last) == 13


# -- live sources ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "stream"])
def test_unavailable_live_source_retries_and_stops_cleanly(kind: str) -> None:
    # Device 99 does not exist here; nothing listens on the stream's port.
    source = "99" if kind == "device" else f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live"
    recorder = Recorder()
    camera = Camera(source, reconnect_backoff=(0.02, 0.1), on_state=recorder).start()
    assert wait_until(lambda: recorder.count(CameraState.RECONNECTING) >= 6)  # several attempts
    assert camera.state is CameraState.RECONNECTING
    _, message = recorder.events[0]
    assert "unavailable; retrying in" in message and "hunter2" not in message
    assert ("camera 99" if kind == "device" else "stream rtsp://admin:***@127.0.0.1") in message
    assert camera.latest(timeout=0.05) is None
    started = time.monotonic()
    camera.stop()
    camera.stop()  # idempotent
    assert time.monotonic() - started < 1.0
    assert camera.state is CameraState.STOPPED and recorder.events[-1][0] is CameraState.STOPPED
    assert not reader_threads()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server(clip: Path) -> Iterator[str]:
    """Serves the clip's folder over HTTP: a 'stream' that ends every N frames."""
    handler = functools.partial(_QuietHandler, directory=str(clip.parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_port}"
        server.shutdown()


def test_stream_that_drops_reconnects_and_goes_live_again(http_server: str) -> None:
    recorder = Recorder()
    camera = Camera(f"{http_server}/clip.avi", reconnect_backoff=(0.02, 0.1), on_state=recorder).start()
    try:
        assert wait_until(lambda: recorder.count(CameraState.LIVE) >= 2)
        lost = [m for s, m in recorder.events if s is CameraState.RECONNECTING and "lost" in m]
        assert lost and lost[0].startswith("stream http://127.0.0.1")
        assert wait_until(lambda: (f := camera.latest(timeout=1)) is not None and f.index >= N)  # counting on
    finally:
        camera.stop()


def test_stop_returns_in_time_while_the_reader_is_blocked() -> None:
    # A server that accepts and never answers: the reader sits inside FFmpeg's open().
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    camera = Camera(f"http://127.0.0.1:{server.getsockname()[1]}/live").start()
    try:
        assert wait_until(lambda: bool(accepted))
        started = time.monotonic()
        camera.stop(timeout=0.3)
        assert time.monotonic() - started < 0.8
        assert camera.state is CameraState.STOPPED
    finally:
        for conn in accepted:
            conn.close()  # FFmpeg's open() fails now and the reader exits
        server.close()
    assert wait_until(lambda: not reader_threads())


# -- lifecycle -------------------------------------------------------------------


def test_stop_joins_the_reader_thread(clip: Path) -> None:
    camera = Camera(clip, loop=True)
    assert camera.start() is camera and camera.start() is camera  # second start: no second thread
    assert len(reader_threads()) == 1
    assert camera.latest(timeout=5) is not None
    camera.stop()
    assert not reader_threads()
    assert camera.state is CameraState.STOPPED and camera.message == "video clip.avi stopped"
    assert camera.latest(timeout=1, newer_than=10**9) is None
    with pytest.raises(RuntimeError):
        camera.start()


def test_stop_from_on_state_callback_does_not_deadlock(clip: Path) -> None:
    holder: list[Camera] = []
    camera = Camera(clip, realtime=False, on_state=lambda s, m: s is CameraState.ENDED and holder[0].stop())
    holder.append(camera)
    with camera:
        list(camera.frames())
    assert camera.state is CameraState.ENDED


def test_misuse_is_reported(clip: Path) -> None:
    with pytest.raises(RuntimeError, match="before start"):
        Camera(clip).latest()
    with pytest.raises(ValueError, match="live"):
        Camera(0, realtime=False)
    with pytest.raises(ValueError, match="reconnect_backoff"):
        Camera(0, reconnect_backoff=(2.0, 1.0))
