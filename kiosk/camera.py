"""Frames from a camera, a video file, a folder of images or a network stream.

One reader thread per source keeps only the newest frame in a single slot (never
a queue), so a slow consumer always sees the present and what it missed shows up
as gaps in ``Frame.index``. Images leave this module as RGB uint8; OpenCV's BGR
never escapes it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from kiosk.errors import InvalidImageError
from kiosk.images import check_size, load_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
STREAM_SCHEMES = ("rtsp", "http", "https")
ACCEPTED_SOURCES = (
    "a camera index (0, 1, ...), a video file, a folder of images "
    f"({', '.join(IMAGE_SUFFIXES)}), or an rtsp://, http:// or https:// URL"
)
FALLBACK_FPS = 25.0  # for containers that report no usable frame rate
# Bounded so that a dead host or a stalled stream ends in RECONNECTING instead of
# a reader stuck inside FFmpeg for its default 30 s (or forever).
STREAM_OPEN_TIMEOUT_MS = 10_000
STREAM_READ_TIMEOUT_MS = 5_000


class CameraError(Exception):
    """A source that cannot be used: the message says what was given and what is accepted."""


class CameraState(str, Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    STOPPED = "stopped"


_FINAL_STATES = (CameraState.ENDED, CameraState.STOPPED)


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray  # HxWx3 uint8 RGB; shared by every consumer of this frame, so copy before drawing on it
    index: int  # running count of frames read from the source (gaps show drops)
    timestamp: float  # time.monotonic() when read


class SourceKind(str, Enum):
    DEVICE = "device"
    VIDEO = "video"
    FOLDER = "folder"
    STREAM = "stream"


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    target: int | Path | str  # device index, video/folder path, or stream URL
    images: tuple[Path, ...] = ()  # folder sources: the images in play order

    @property
    def live(self) -> bool:
        """Devices and streams run on their own clock; files and folders are played back."""
        return self.kind in (SourceKind.DEVICE, SourceKind.STREAM)

    @property
    def label(self) -> str:
        """Short human name for status lines and logs (stream passwords masked)."""
        if self.kind is SourceKind.DEVICE:
            return f"camera {self.target}"
        if self.kind is SourceKind.STREAM:
            return f"stream {_mask_password(str(self.target))}"
        name = Path(self.target).name or str(self.target)
        return f"video {name}" if self.kind is SourceKind.VIDEO else f"image folder {name}"


def parse_source(spec: str | int | os.PathLike[str]) -> SourceSpec:
    """Work out what kind of source ``spec`` names; raise CameraError if none fits."""
    if isinstance(spec, bool) or (isinstance(spec, int) and spec < 0):
        raise CameraError(f"not a camera index: {spec!r}; expected {ACCEPTED_SOURCES}")
    if isinstance(spec, int):
        return SourceSpec(SourceKind.DEVICE, spec)
    text = os.fspath(spec).strip()
    if text.isdigit():
        return SourceSpec(SourceKind.DEVICE, int(text))
    if urlsplit(text).scheme.lower() in STREAM_SCHEMES:
        return SourceSpec(SourceKind.STREAM, text)
    path = Path(text).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CameraError(f"no such file or folder: {text!r}; expected {ACCEPTED_SOURCES}") from None
    except OSError as exc:  # permission denied, a symbolic link loop...
        raise CameraError(f"cannot use {text!r} ({exc.strerror or exc}); expected {ACCEPTED_SOURCES}") from exc
    if stat.S_ISDIR(mode):
        try:
            images = sorted(
                (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                key=_natural_key,
            )
        except OSError as exc:
            raise CameraError(f"cannot list folder {text!r} ({exc.strerror or exc})") from exc
        if not images:
            raise CameraError(f"no images in folder: {text!r}; expected {ACCEPTED_SOURCES}")
        return SourceSpec(SourceKind.FOLDER, path, tuple(images))
    if not stat.S_ISREG(mode):
        # Opening a FIFO blocks until a writer comes, inside OpenCV and holding the GIL: the
        # whole process would freeze. Devices are opened by index.
        raise CameraError(
            f"not a regular file: {text!r} (a pipe, socket or device); expected {ACCEPTED_SOURCES}"
        )
    return SourceSpec(SourceKind.VIDEO, path)


def _natural_key(path: Path) -> list[int | str]:
    # frame_2.png before frame_10.png, as a person numbering files means it.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _Reader(Protocol):
    fps: float

    def read(self) -> np.ndarray | None:
        """The next BGR image, or None at the end of the source or when it fails."""

    def close(self) -> None: ...


class _CaptureReader:
    """A cv2.VideoCapture: devices, video files and streams."""

    def __init__(self, capture: cv2.VideoCapture) -> None:
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else FALLBACK_FPS

    def read(self) -> np.ndarray | None:
        try:
            ok, image = self._capture.read()
        except cv2.error as exc:  # a broken packet must not kill the reader thread
            log.warning("video read failed: %s", exc)
            return None
        return image if ok else None

    def close(self) -> None:
        self._capture.release()


class _FolderReader:
    """The images of a folder, in order, skipping files that do not decode."""

    def __init__(self, paths: list[Path], fps: float) -> None:
        self._paths = paths  # shared between loops and pruned, so a bad file is reported once
        self._next = 0
        self.fps = fps

    def read(self) -> np.ndarray | None:
        while self._next < len(self._paths):
            path = self._paths[self._next]
            try:
                rgb = load_image(path)  # the kiosk's checks: size before decoding, no pipes, no gigabytes
            except InvalidImageError as exc:  # unreadable, deleted meanwhile, too small or too large
                log.warning("skipping unreadable image %s", exc)
                del self._paths[self._next]
                continue
            self._next += 1
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        return None

    def close(self) -> None:
        """Nothing is held open between images."""


class Camera:
    """Reads a source on its own thread and hands out the newest frame.

    ``realtime`` (default True) plays files and folders at their own pace
    (the video's fps, ``folder_fps`` for folders) so they behave like a live
    camera; ``realtime=False`` makes a file or folder lossless: the reader waits
    until the consumer has taken each frame. Devices and streams are always
    real time. They never crash on failure: they go RECONNECTING and retry with
    exponential backoff. ``on_state(state, message)`` is called on every change
    of state or message, from the reader thread (STOPPED: from the thread that
    called ``stop()``); it must be quick and thread-safe.
    """

    def __init__(
        self,
        source: str | int | os.PathLike[str],
        *,
        realtime: bool | None = None,
        loop: bool = False,
        folder_fps: float = 10.0,
        reconnect_backoff: tuple[float, float] = (0.5, 8.0),
        on_state: Callable[[CameraState, str], None] | None = None,
    ) -> None:
        self.spec = parse_source(source)
        if realtime is False and self.spec.live:
            raise ValueError(f"realtime=False (lossless) needs a video file or image folder; {self.spec.label} is live")
        if not folder_fps > 0:
            raise ValueError(f"folder_fps must be positive, got {folder_fps}")
        low, high = reconnect_backoff
        if not 0 < low <= high:
            raise ValueError(f"reconnect_backoff must be (min, max) with 0 < min <= max, got {reconnect_backoff}")
        self._realtime = realtime is not False
        self._loop = loop
        self._folder_fps = folder_fps
        self._backoff = (low, high)
        self._on_state = on_state
        self._images = list(self.spec.images)
        self._refused: set[tuple[int, int]] = set()  # frame sizes skipped as unusable (reader thread only)

        self._cond = threading.Condition()  # guards everything below
        self._slot: Frame | None = None
        self._count = 0  # frames read so far; the next frame's index
        self._taken = -1  # highest index handed to a consumer (drives the lossless hand-off)
        self._state = CameraState.CONNECTING
        self._message = f"connecting to {self.spec.label}"
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- consumer side ---------------------------------------------------------

    @property
    def realtime(self) -> bool:
        """Frames come at the source's pace and the newest wins (False: a file read losslessly)."""
        return self._realtime

    def watch(self, on_state: Callable[[CameraState, str], None] | None) -> None:
        """Call `on_state` on every change from now on, instead of the callback given before; a
        camera already started (and past connecting) reports its current state to it at once."""
        with self._cond:
            self._on_state = on_state
            settled = self._thread is not None and self._state is not CameraState.CONNECTING
            state, message = self._state, self._message
        if settled:
            self._notify(state, message)

    def start(self) -> Camera:
        """Start the reader thread (once; later calls do nothing). A file OpenCV cannot open raises CameraError."""
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"{self.spec.label} was stopped; make a new Camera")
            if self._thread is not None:
                return self
            reader = None
            if not self.spec.live:
                # Opened here, not in the thread, so a corrupt file fails loudly at start-up.
                reader = self._open()
                if reader is None:
                    raise CameraError(
                        f"cannot open {self.spec.label} ({self.spec.target}): OpenCV cannot decode it "
                        f"as a video; expected {ACCEPTED_SOURCES}"
                    )
            self._thread = threading.Thread(
                target=self._run, args=(reader,), name=f"camera-reader {self.spec.label}", daemon=True
            )
            self._thread.start()
        return self

    def latest(self, timeout: float | None = None, newer_than: int = -1) -> Frame | None:
        """The newest frame with index > newer_than, waiting up to ``timeout`` seconds (None: no limit).

        None on timeout, or at once when the source has ended or been stopped and has nothing newer.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._thread is None and not self._stopping:
                raise RuntimeError("Camera.latest() called before start()")
            while True:
                frame = self._slot
                if frame is not None and frame.index > newer_than:
                    if frame.index > self._taken:
                        self._taken = frame.index
                        self._cond.notify_all()  # a lossless reader may be waiting for this
                    return frame
                if self._stopping or self._state in _FINAL_STATES:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def frames(self, timeout: float = 5.0) -> Iterator[Frame]:
        """Yield each newest frame (skipping what the consumer was too slow for) until the source
        ends or is stopped, or no new frame arrives within ``timeout`` seconds."""
        last = -1
        while (frame := self.latest(timeout, newer_than=last)) is not None:
            last = frame.index
            yield frame

    @property
    def state(self) -> CameraState:
        with self._cond:
            return self._state

    @property
    def message(self) -> str:
        """Human text for the status line, e.g. "camera 0 lost; retrying in 2.0 s"."""
        with self._cond:
            return self._message

    @property
    def stopped(self) -> bool:
        """Whether stop() was called (the camera cannot start again)."""
        with self._cond:
            return self._stopping

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and join the reader; idempotent, returns within ``timeout``.

        A reader stuck in a blocking device read is left behind as a daemon
        thread; it exits (and releases the device) as soon as the read returns.
        """
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():  # on_state may call stop()
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: reader still blocked after %.1f s; leaving it to exit on its own",
                            self.spec.label, timeout)
        with self._cond:
            if self._state is CameraState.ENDED:  # it finished by itself; keep saying so
                return
            message = f"{self.spec.label} stopped"
            self._state, self._message = CameraState.STOPPED, message
            self._cond.notify_all()
        self._notify(CameraState.STOPPED, message)

    def __enter__(self) -> Camera:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- reader thread ---------------------------------------------------------

    def _open(self) -> _Reader | None:
        spec = self.spec
        if spec.kind is SourceKind.FOLDER:
            return _FolderReader(self._images, self._folder_fps)
        try:
            if spec.kind is SourceKind.STREAM:
                capture = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_OPEN_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS,
                ])
            else:
                capture = cv2.VideoCapture(spec.target if spec.kind is SourceKind.DEVICE else str(spec.target))
        except cv2.error as exc:
            log.warning("%s: cannot open: %s", spec.label, exc)
            return None
        if not capture.isOpened():
            capture.release()
            return None
        return _CaptureReader(capture)

    def _run(self, reader: _Reader | None) -> None:
        try:
            if reader is None:
                self._run_live()
            else:
                self._run_playback(reader)
        except Exception:  # never leave consumers waiting on a dead thread
            log.exception("%s: reader failed", self.spec.label)
            self._set_state(CameraState.ENDED, f"{self.spec.label} failed (see log)")

    def _run_live(self) -> None:
        label = self.spec.label
        low, high = self._backoff
        delay = low
        while not self._stopping:
            reader = self._open()
            what = "unavailable"
            if reader is not None:
                self._set_state(CameraState.LIVE, f"{label} live")
                try:
                    if self._pump(reader, pace=None):
                        what, delay = "lost", low  # it worked for a while: start the backoff afresh
                finally:
                    reader.close()
            if self._stopping:
                return
            self._set_state(CameraState.RECONNECTING, f"{label} {what}; retrying in {delay:.1f} s")
            if self._sleep(delay):
                return
            delay = min(delay * 2, high)
            # Opening a stream can take seconds; the status line should not claim a countdown meanwhile.
            self._set_state(CameraState.RECONNECTING, f"reconnecting to {label}")

    def _run_playback(self, reader: _Reader) -> None:
        label = self.spec.label
        self._set_state(CameraState.LIVE, f"playing {label}")
        total = 0
        while True:
            try:
                read = self._pump(reader, pace=1.0 / reader.fps if self._realtime else None)
            finally:
                reader.close()
            total += read
            if self._stopping:
                return
            if not (self._loop and read):  # a pass without frames would loop without end
                break
            reopened = self._open()
            if reopened is None:
                self._set_state(CameraState.ENDED, f"{label} could not be reopened to loop")
                return
            reader = reopened
        self._set_state(CameraState.ENDED, f"end of {label}" if total else f"{label} has no readable frames")

    def _pump(self, reader: _Reader, pace: float | None) -> int:
        """Publish frames until the reader runs dry or stop() is called; return how many.

        ``pace``: seconds between frames for played-back sources, None when the
        source sets its own pace (live) or the hand-off is lossless.
        """
        lossless = not self._realtime
        read = 0
        due = time.monotonic()
        while not self._stopping:
            image = reader.read()
            if image is None:
                break
            if not self._usable(image):
                continue
            timestamp = time.monotonic()
            index = self._publish(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), timestamp)
            read += 1
            if lossless:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._taken >= index)
            elif pace is not None:
                due += pace
                now = time.monotonic()
                if due < now:
                    due = now  # fell behind (slow decode): carry on rather than burst to catch up
                elif self._sleep(due - now):
                    break
        return read

    def _usable(self, image: np.ndarray) -> bool:
        """False (logged once per size) for frames the detector would refuse: too small, too large."""
        height, width = image.shape[:2]
        try:
            check_size(width, height)
        except InvalidImageError as exc:
            if (width, height) not in self._refused:
                self._refused.add((width, height))
                log.warning("%s: skipping frames: %s", self.spec.label, exc)
            return False
        return True

    def _publish(self, rgb: np.ndarray, timestamp: float) -> int:
        with self._cond:
            index = self._count
            self._count += 1
            self._slot = Frame(rgb, index, timestamp)  # overwrite: the newest frame wins
            self._cond.notify_all()
        return index

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stop() comes first; True if it did."""
        with self._cond:
            return self._cond.wait_for(lambda: self._stopping, seconds)

    def _set_state(self, state: CameraState, message: str) -> None:
        with self._cond:
            # After stop() the last word is STOPPED, which stop() itself reports.
            if self._stopping or (state, message) == (self._state, self._message):
                return
            losing = state is CameraState.RECONNECTING and self._state is not CameraState.RECONNECTING
            self._state, self._message = state, message
            self._cond.notify_all()
        log.log(logging.WARNING if losing else logging.INFO, "%s", message)  # retries stay at INFO
        self._notify(state, message)

    def _notify(self, state: CameraState, message: str) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(state, message)
        except Exception:  # a faulty status line must not stop the camera
            log.exception("on_state callback failed")
