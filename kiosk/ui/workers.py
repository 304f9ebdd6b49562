"""Analysis off the GUI thread: a worker that runs on the newest camera frame it can take.

The worker takes a plain callable, so the detector used today can be swapped for the
full engine (recognition and decision) without touching the threading.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from kiosk.camera import Camera, CameraState, Frame
from kiosk.faces import Face, shared_detector

log = logging.getLogger(__name__)

Analyse = Callable[[np.ndarray], object]

# How long one wait for a frame may last: bounds how late the worker notices stop().
POLL_S = 0.2


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """The default analysis: every face, largest first (the detector is built on first use,
    on the worker thread, so loading TensorFlow never freezes the window)."""
    return shared_detector().detect(rgb)


@dataclass(frozen=True)
class Analysis:
    frame: Frame  # the frame analysed; its rgb is shared, so treat it as read-only
    result: object  # what the analyse callable returned
    seconds: float  # time the callable took


class AnalysisWorker(QObject):
    """Lives in its own QThread; ``run`` loops until ``stop()`` or until the camera ends."""

    analysed = Signal(object)  # Analysis
    failed = Signal(str)  # one line for the status bar
    finished = Signal()

    def __init__(self, camera: Camera, analyse: Analyse = detect_faces) -> None:
        super().__init__()
        self._camera = camera
        self._analyse = analyse
        # An Event, not a queued slot: run() never returns to the thread's event loop until done.
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask run() to return after the current analysis; safe from any thread."""
        self._stopping.set()

    @Slot()
    def run(self) -> None:
        last_index = -1
        last_error = ""
        while not self._stopping.is_set():
            frame = self._camera.latest(timeout=POLL_S, newer_than=last_index)
            if frame is None:
                if self._camera.state in (CameraState.ENDED, CameraState.STOPPED):
                    break
                continue  # no new frame yet (or the camera is reconnecting)
            last_index = frame.index
            started = time.perf_counter()
            try:
                result = self._analyse(frame.rgb)
            except Exception as exc:  # one bad frame (or a broken model) must not kill the worker
                error = f"analysis failed: {exc}"
                if error != last_error:  # log a persistent failure once, not at frame rate
                    log.exception("%s", error)
                last_error = error
                self.failed.emit(error)
                continue
            last_error = ""
            self.analysed.emit(Analysis(frame, result, time.perf_counter() - started))
        self.finished.emit()
