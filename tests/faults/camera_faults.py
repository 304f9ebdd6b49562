"""Cameras that fail while in use: a folder deleted, a video cut short or deleted, a stream that
never connects, a stream that stalls, a FIFO given as a camera, a source that simply ends.

Each function sets one fault up with real files, sockets and processes, drives a real Camera
(and, when given an engine, the real KioskRunner) through it and returns what happened:
{"case", "ok", "frames", "states", "message", "detail"}. "ok" is the verdict on the behaviour
the kiosk promises: the right state, backoff between retries, no exception, no hang.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from .common import ROOT, child_env

W, H = 64, 48


def grey(i: int) -> np.ndarray:
    return np.full((H, W, 3), (20 + 6 * i) % 250, np.uint8)


def write_video(path: Path, frames: int, fps: float = 25.0, noise: bool = False) -> Path:
    """An MJPG .avi of grey frames, or of noise (large frames: a file FFmpeg cannot buffer whole)."""
    rng = np.random.default_rng(0)
    size = (320, 240) if noise else (W, H)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError("this OpenCV build cannot write MJPG .avi")
    for i in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), np.uint8) if noise else grey(i))
    writer.release()
    return path


def write_folder(folder: Path, frames: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), grey(i))
    return folder


class States:
    """An on_state callback that keeps every (state, message)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, state, message: str) -> None:
        with self._lock:
            self.events.append((state.value, message))

    def names(self) -> list[str]:
        with self._lock:
            return [state for state, _ in self.events]

    def messages(self, state: str) -> list[str]:
        with self._lock:
            return [message for s, message in self.events if s == state]


def _result(case: str, ok: bool, frames: int, states: States, camera, detail: str = "") -> dict:
    return {"case": case, "ok": bool(ok), "frames": frames, "states": _squeeze(states.names()),
            "message": camera.message, "detail": detail}


def _squeeze(names: list[str]) -> list[str]:
    return [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]


def _drain(camera, after: int = -1, timeout: float = 5.0) -> int:
    """Frames with index > `after` until the camera ends (or nothing comes for `timeout` s)."""
    count = 0
    while (frame := camera.latest(timeout, newer_than=after)) is not None:
        count, after = count + 1, frame.index
    return count


@contextlib.contextmanager
def _stream_timeouts(open_ms: int, read_ms: int) -> Iterator[None]:
    """Shorter FFmpeg timeouts for streams, so that a test waits half a second instead of ten."""
    import kiosk.camera as camera_module

    saved = camera_module.STREAM_OPEN_TIMEOUT_MS, camera_module.STREAM_READ_TIMEOUT_MS
    camera_module.STREAM_OPEN_TIMEOUT_MS, camera_module.STREAM_READ_TIMEOUT_MS = open_ms, read_ms
    try:
        yield
    finally:
        camera_module.STREAM_OPEN_TIMEOUT_MS, camera_module.STREAM_READ_TIMEOUT_MS = saved


# -- the faults -------------------------------------------------------------------------------


def folder_deleted(work: Path, engine=None) -> dict:
    """The image folder vanishes after three frames: the camera ends, the runner returns."""
    from kiosk.camera import Camera

    folder = write_folder(work / "folder", 20)
    states = States()
    camera = Camera(folder, realtime=False, loop=True, on_state=states).start()
    taken = [camera.latest(timeout=5, newer_than=i - 1) for i in range(3)]
    shutil.rmtree(folder)
    frames = 3 + _drain_or_run(camera, engine, after=2)
    camera.stop()
    ok = all(taken) and states.names()[-1] == "ended" and frames < 20
    return _result("image folder deleted mid-run", ok, frames, states, camera)


def video_truncated(work: Path, engine=None) -> dict:
    """The video file is cut to a third while being read: the camera ends early, cleanly."""
    from kiosk.camera import Camera

    video = write_video(work / "cut.avi", 120, noise=True)  # ~12 MB: FFmpeg reads it as it goes
    states = States()
    camera = Camera(video, realtime=False, on_state=states).start()
    first = [camera.latest(timeout=5, newer_than=i - 1) for i in range(5)]
    with open(video, "r+b") as stream:
        stream.truncate(video.stat().st_size // 3)
    frames = 5 + _drain_or_run(camera, engine, after=4)
    camera.stop()
    ok = all(first) and states.names()[-1] == "ended" and frames < 120
    return _result("video truncated while read", ok, frames, states, camera)


def video_deleted(work: Path, engine=None) -> dict:
    """The looping video is deleted while read: the open pass finishes, the loop cannot reopen: ENDED."""
    from kiosk.camera import Camera

    video = write_video(work / "gone.avi", 40)
    states = States()
    camera = Camera(video, realtime=False, loop=True, on_state=states).start()
    first = [camera.latest(timeout=5, newer_than=i - 1) for i in range(5)]
    video.unlink()
    frames = 5 + _drain_or_run(camera, engine, after=4)
    camera.stop()
    ok = all(first) and states.names()[-1] == "ended" and "could not be reopened" in camera.message
    return _result("looping video deleted while read", ok, frames, states, camera)


def stream_never_connects(seconds: float = 3.0, open_ms: int = 500) -> dict:
    """A server that accepts and never says a word: RECONNECTING, with growing waits, never LIVE."""
    from kiosk.camera import Camera

    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    states = States()
    with _stream_timeouts(open_ms, open_ms):
        camera = Camera(f"http://127.0.0.1:{server.getsockname()[1]}/live", reconnect_backoff=(0.05, 0.4),
                        on_state=states).start()
        frame = camera.latest(timeout=seconds)
        started = time.monotonic()
        camera.stop()
        stop_s = time.monotonic() - started
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()
    waits = [float(m.split("retrying in ")[1].split(" s")[0]) for m in states.messages("reconnecting")
             if "retrying in" in m]
    ok = (frame is None and "live" not in states.names() and len(waits) >= 2 and waits == sorted(waits)
          and waits[-1] > waits[0] and stop_s < 2.5 and states.names()[-1] == "stopped")
    return _result("stream that never connects", ok, 0, states, camera,
                   f"{len(accepted)} connection attempts, waits {waits}, stop took {stop_s:.2f} s")


class _StallingServer:
    """HTTP: sends the first part of a video, then holds the connection open in silence."""

    def __init__(self, video: bytes, fraction: float = 0.4) -> None:
        self._head = video[:int(len(video) * fraction)]
        self._length = len(video)
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}/stall.avi"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            self.connections += 1
            self._conns.append(conn)
            with contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/x-msvideo\r\n"
                             + f"Content-Length: {self._length}\r\n\r\n".encode() + self._head)
            # ...and then nothing: the connection stays open until close().

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._conns:
            conn.close()
        self._server.close()


def stream_stalls(work: Path, seconds: float = 6.0, read_ms: int = 700) -> dict:
    """A stream that freezes mid-way (no new frames, connection open): lost, then reconnected and live again."""
    from kiosk.camera import Camera

    server = _StallingServer(write_video(work / "stall.avi", 100).read_bytes())
    states = States()
    frames = 0
    with _stream_timeouts(read_ms, read_ms):
        camera = Camera(server.url, reconnect_backoff=(0.05, 0.4), on_state=states).start()
        deadline = time.monotonic() + seconds
        last = -1
        while time.monotonic() < deadline:
            frame = camera.latest(timeout=0.2, newer_than=last)
            if frame is not None:
                frames, last = frames + 1, frame.index
        camera.stop()
    server.close()
    lost = [m for m in states.messages("reconnecting") if "lost" in m]
    ok = frames > 0 and bool(lost) and states.names().count("live") >= 2 and server.connections >= 2
    return _result("stream that stalls", ok, frames, states, camera,
                   f"{server.connections} connections; frames keep their running index ({last})")


_FIFO_PROBE = """
import sys
from kiosk.camera import Camera, CameraError
try:
    Camera(sys.argv[1]).start()
    print("started")
except CameraError as exc:
    print("refused", exc)
"""


def fifo_camera(work: Path, timeout: float = 20.0) -> dict:
    """A FIFO given as the camera: refused at once (OpenCV would block the whole process opening it)."""
    import os

    fifo = work / "camera.avi"
    if not fifo.exists():
        os.mkfifo(fifo)
    started = time.monotonic()
    try:
        probe = subprocess.run([sys.executable, "-c", _FIFO_PROBE, str(fifo)], check=False, capture_output=True,
                               text=True, timeout=timeout, env=child_env(), cwd=ROOT)
        out, hung = probe.stdout.strip(), False
    except subprocess.TimeoutExpired:
        out, hung = "", True
    elapsed = time.monotonic() - started
    return {"case": "FIFO given as the camera", "ok": out.startswith("refused") and not hung, "frames": 0,
            "states": [], "message": out or ("hung" if hung else probe.stderr.strip()[-300:]),
            "detail": f"answered in {elapsed:.1f} s" if not hung else f"no answer in {timeout:.0f} s"}


def source_ends(work: Path, engine=None) -> dict:
    """A video that simply ends: every frame read, ENDED, the runner returns."""
    from kiosk.camera import Camera

    video = write_video(work / "short.avi", 15)
    states = States()
    camera = Camera(video, realtime=False, on_state=states).start()
    frames = _drain_or_run(camera, engine)
    camera.stop()
    ok = frames == 15 and states.names()[-1] == "ended" and camera.message.startswith("end of")
    return _result("source that ends", ok, frames, states, camera)


def _drain_or_run(camera, engine, after: int = -1) -> int:
    """Consume the camera to its end: directly, or through a real KioskRunner when an engine is given
    (which starts again from the newest frame, so its count may include one frame already taken)."""
    if engine is None:
        return _drain(camera, after)
    import tempfile

    from kiosk.accesslog import AccessLog
    from kiosk.database import database_path, open_database
    from kiosk.gallery import Gallery
    from kiosk.runner import KioskRunner

    with tempfile.TemporaryDirectory() as data_dir:
        conn = open_database(database_path(data_dir))
        try:
            runner = KioskRunner(camera, engine, Gallery(conn), AccessLog(conn))
            return sum(1 for _ in runner.run(every_frame=True))  # raises if the runner crashes
        finally:
            conn.close()


def all_cases(work: Path, engine=None) -> list[dict]:
    results = []
    for name, case in (("folder", lambda d: folder_deleted(d, engine)), ("cut", lambda d: video_truncated(d, engine)),
                       ("gone", lambda d: video_deleted(d, engine)), ("never", lambda d: stream_never_connects()),
                       ("stall", stream_stalls), ("fifo", fifo_camera), ("ends", lambda d: source_ends(d, engine))):
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            results.append(case(folder))
        except Exception as exc:  # noqa: BLE001 - a crash is a finding, reported like the others
            results.append({"case": name, "ok": False, "frames": 0, "states": [], "message": "",
                            "detail": f"crashed: {type(exc).__name__}: {exc}"})
    return results
