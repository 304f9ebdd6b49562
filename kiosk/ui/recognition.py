"""Recognition off the GUI thread: KioskRunner (detect -> embed -> match -> policy -> log -> door)
on the newest camera frame, inside one long-running ``run()`` on the worker's QThread.

Everything that touches TensorFlow or SQLite happens on that thread: the engine is loaded on
first use (the window says "Starting…" meanwhile), the database connection is opened there
(SQLite connections belong to the thread that made them), and the retention purge from the
settings runs there once at start. ``run()`` never returns to the thread's event loop until it
is done: a queued slot per frame deadlocks with TensorFlow on the GIL.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.database import database_path, open_database
from kiosk.door import DoorAction
from kiosk.gallery import Gallery
from kiosk.matching import match_many
from kiosk.modelcard import default_model_path
from kiosk.policy import DecisionPolicy
from kiosk.settings import KioskSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    """What the status line says about the recogniser once it is ready."""

    model: str  # the model file's stem, e.g. "face_embedder"
    devtest_accuracy: float | None  # from the model card
    threshold: float  # the threshold in use (the settings' override or the card's)
    purged: int  # access events removed by the retention purge at start
    sound: bool  # the settings' "sound on grant/deny"


@dataclass(frozen=True)
class Recognition:
    result: object  # kiosk.runner.FrameResult
    seconds: float  # time taken for this frame
    gallery_people: int  # enrolled people with templates, as matched against


class ThresholdEngine:
    """A FaceEngine seen through another accept threshold (the settings' override)."""

    def __init__(self, engine, threshold: float) -> None:
        self._engine = engine
        self.threshold = float(threshold)

    @property
    def detector(self):
        return self._engine.detector

    def detect(self, rgb: np.ndarray):
        return self._engine.detect(rgb)

    def embed_faces(self, rgb: np.ndarray, faces):
        return self._engine.embed_faces(rgb, faces)

    def match(self, embeddings: np.ndarray, templates: np.ndarray, person_ids: np.ndarray):
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim == 1:
            embeddings = embeddings[None]
        return match_many(embeddings, templates, person_ids, threshold=self.threshold,
                          ambiguity_margin=self._engine.ambiguity_margin, strategy=self._engine.strategy)


def load_engine(model_path: str | os.PathLike | None = None):
    """The process-wide engine (imports TensorFlow: call it on the worker thread)."""
    from kiosk.engine import shared_engine

    return shared_engine(model_path)


class RecognitionWorker(QObject):
    """Lives in its own QThread; ``run`` loops until ``stop()`` or until the camera ends."""

    ready = Signal(object)  # EngineInfo
    analysed = Signal(object)  # Recognition, one per analysed frame
    failed = Signal(str)  # one frame failed; one line for the status bar
    fatal = Signal(str, str)  # cannot recognise at all: (banner text, details for the status line)
    finished = Signal()

    def __init__(self, camera: Camera, data_dir: str | os.PathLike,
                 model_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        self._camera = camera
        self._data_dir = Path(data_dir)
        self._model_path = model_path
        self._stopping = threading.Event()
        self._runner = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ask run() to return after the current frame; safe from any thread."""
        self._stopping.set()
        with self._lock:
            if self._runner is not None:
                self._runner.stop()

    @Slot()
    def run(self) -> None:
        try:
            self._run()
        finally:
            self.finished.emit()

    def _run(self) -> None:
        settings = KioskSettings.load(self._data_dir)
        path = Path(self._model_path) if self._model_path else default_model_path()
        try:
            engine = load_engine(path)
        except Exception as exc:  # ModelCardError, a corrupt .keras file, a TensorFlow error
            log.exception("cannot load the face model %s", path)
            self.fatal.emit("Face model missing or broken — recognition is off", f"model {path}: {exc}")
            return
        if self._stopping.is_set():
            return
        try:
            conn = open_database(database_path(self._data_dir))
        except Exception as exc:  # a database from a newer kiosk, an unreadable file
            log.exception("cannot open the database in %s", self._data_dir)
            self.fatal.emit("Database unavailable — recognition is off", f"database in {self._data_dir}: {exc}")
            return
        try:
            self._recognise(conn, engine, settings)
        finally:
            conn.close()

    def _recognise(self, conn, engine, settings: KioskSettings) -> None:
        from kiosk.runner import KioskRunner

        access_log = AccessLog(conn)
        purged = 0
        if settings.retention_days > 0:
            try:
                purged = access_log.purge_older_than(settings.retention_days)
            except Exception:
                log.exception("retention purge failed")
        threshold = settings.threshold if settings.threshold is not None else engine.threshold
        try:
            door = DoorAction.from_config(settings.door_command, settings.door_url)
        except ValueError as exc:
            log.error("door action not usable (%s); the door will not be opened", exc)
            door = None
        gallery = Gallery(conn)
        runner = KioskRunner(self._camera, ThresholdEngine(engine, threshold), gallery, access_log,
                             DecisionPolicy(), door, thumbnails=settings.store_thumbnails)
        with self._lock:
            self._runner = runner
            if self._stopping.is_set():
                return
        devtest = engine.card.raw.get("devtest", {}) if isinstance(engine.card.raw, dict) else {}
        accuracy = devtest.get("accuracy") if isinstance(devtest, dict) else None
        self.ready.emit(EngineInfo(Path(engine.card.path).stem, accuracy, threshold, purged, settings.sound))
        started = time.perf_counter()
        last_error = ""
        results = runner.run(every_frame=True)
        while True:
            try:
                result = next(results)
            except StopIteration:
                break
            except RuntimeError as exc:  # the camera was stopped before the runner started it
                if self._stopping.is_set():
                    break
                raise exc
            except Exception as exc:  # one bad frame must not end recognition
                error = f"analysis failed: {exc}"
                if error != last_error:
                    log.exception("%s", error)
                last_error = error
                self.failed.emit(error)
                results = runner.run(every_frame=True)  # a generator that raised is finished
                started = time.perf_counter()
                continue
            last_error = ""
            now = time.perf_counter()
            _, person_ids = gallery.matrix()  # cached until the gallery changes
            people = int(np.unique(person_ids).size) if len(person_ids) else 0
            self.analysed.emit(Recognition(result, now - started, people))
            started = time.perf_counter()
