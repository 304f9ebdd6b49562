"""Recognition off the GUI thread: the kiosk loop (kiosk.loop: detect -> embed -> match -> policy ->
log -> door -> events out, with the kiosk's settings, as `run --headless` runs it) on the newest
camera frame, inside one long-running ``run()`` on the worker's QThread. The window only shows it.

Everything that touches the face model or SQLite happens on that thread: the engine is loaded on
first use, then the detector and embedder are warmed up on the camera's picture (their first
calls allocate their tensors) before the worker says it is ready; each step is reported
(``progress``) for the window's banner. The engine is not loaded any earlier on a thread of its
own: importing TensorFlow (for a .keras model, or where LiteRT has no wheel) holds the interpreter
lock, and beside the GUI thread's start it delayed the first video frame by 1-2 s
(benchmarks/startup.py). The database connection is opened there (SQLite connections belong to
the thread that made them), and the retention purge from the settings runs there at start, then
hourly on a thread of its own (kiosk.retention). ``run()`` never returns to the thread's event
loop until it is done: a queued slot per frame deadlocks with TensorFlow on the GIL.

Settings saved in the admin window while the kiosk runs reach this thread through a
SettingsMailbox (``apply_settings``, ``switch_camera``) and are applied between two frames
(kiosk.live_settings); ``reconfigured`` reports what changed.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from kiosk.calibration import DoorRule
from kiosk.camera import Camera, CameraState
from kiosk.connection import DatabaseUnavailable
from kiosk.gallery import GalleryError
from kiosk.live_settings import Applied, Pending, SettingsMailbox
from kiosk.loop import KioskLoop, open_events
from kiosk.modelcard import default_model_path
from kiosk.settings import KioskSettings
from kiosk.site_status import admin_words, site_state, visitor_words
from kiosk.store import Store

log = logging.getLogger(__name__)

POLL_S = 0.2  # between two sources: how often the waiting worker checks for stop()
SITE_RETRY_S = 2.0  # a site door with nothing to decide from: how often it tries the server again
SITE_STATE_S = 1.0  # how often the state of the site's server is looked at while recognising


@dataclass(frozen=True)
class EngineInfo:
    """What the status line says about the recogniser once it is ready."""

    model: str  # the model file's stem, e.g. "face_embedder"
    devtest_accuracy: float | None  # from the model card
    rule: DoorRule  # the door's rule in force at start, for the gallery as it was
    purged: int  # access events removed by the retention purge at start
    sound: bool  # the settings' "sound on grant/deny"


@dataclass(frozen=True)
class Recognition:
    result: object  # kiosk.runner.FrameResult
    seconds: float  # time the analysis of this frame took (not the pause before it)
    gallery_people: int  # enrolled people with templates, as matched against
    rule: DoorRule  # the door's rule this gallery was matched at


def load_engine(model_path: str | os.PathLike | None = None):
    """The process-wide engine (imports TensorFlow: call it off the GUI thread)."""
    from kiosk.engine import shared_engine

    return shared_engine(model_path)


class RecognitionWorker(QObject):
    """Lives in its own QThread; ``run`` loops until ``stop()`` or until the camera ends."""

    progress = Signal(str)  # the start-up step in progress, in words
    ready = Signal(object)  # EngineInfo
    analysed = Signal(object)  # Recognition, one per analysed frame
    failed = Signal(str)  # one frame failed; one line for the status bar
    fatal = Signal(str, str)  # cannot recognise at all: (banner text, details for the status line)
    reconfigured = Signal(object)  # kiosk.live_settings.Applied: new settings (or camera) in force
    site = Signal(str, str)  # a site database: (its state for the admin, a line for the visitor or "")
    finished = Signal()

    def __init__(self, camera: Camera, data_dir: str | os.PathLike | Store,
                 model_path: str | os.PathLike | None = None) -> None:
        """`data_dir`: the kiosk's data directory, or a Store (a site's database, kiosk.store)."""
        super().__init__()
        self._camera = camera
        self._store = data_dir if isinstance(data_dir, Store) else Store(Path(data_dir))
        self._data_dir = self._store.data_dir
        self._model_path = model_path
        self._stopping = threading.Event()
        self._runner = None
        self._paused = False
        self._lock = threading.Lock()
        self._site_conn = None  # a site database's connection: its site-wide settings and its server's state
        self._mailbox = SettingsMailbox()  # the GUI thread's way in: read between frames

    def apply_settings(self, settings: KioskSettings) -> None:
        """Use these settings from the next frame on; safe from any thread (never waits)."""
        self._mailbox.put_settings(settings)

    def switch_camera(self, camera: Camera) -> None:
        """Recognise on this (started) camera from the next frame on; safe from any thread.
        The caller then stops the old camera, which also ends a wait for its next frame."""
        self._mailbox.put_camera(camera)

    def pause(self, paused: bool) -> None:
        """Pause door decisions and their log (an admin is enrolling someone) or resume them;
        safe from any thread."""
        with self._lock:
            self._paused = paused
            if self._runner is not None:
                self._runner.paused = paused

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
        self.progress.emit("Starting — loading the face recogniser (step 1 of 3)…")
        try:
            engine = load_engine(path)
        except Exception as exc:  # ModelCardError, a corrupt .keras file, a TensorFlow error
            log.exception("cannot load the face model %s", path)
            self.fatal.emit("Face model missing or broken — recognition is off", f"model {path}: {exc}")
            return
        if self._stopping.is_set():
            return
        self.progress.emit("Starting — opening the database (step 2 of 3)…")
        conn = self._open_database()
        if conn is None:
            return
        if self._store.is_site:
            from kiosk.site_settings import with_site

            settings = with_site(settings, conn)  # the site-wide risk and retention
            self._site_conn = conn
        events = self._events(settings)
        try:
            kiosk = KioskLoop(self._camera, engine, conn, self._data_dir, settings, events=events)
        except GalleryError as exc:  # enrolled with another model
            if events is not None:
                events.close(0)
            conn.close()
            log.error("the gallery does not fit the face model: %s", exc)
            self.fatal.emit("Enrolled faces are from another face model — re-enrol, recognition is off", str(exc))
            return
        try:
            self._recognise(kiosk, engine, purged=kiosk.start())
        finally:
            kiosk.close()
            conn.close()

    def _site_wide(self, saved: KioskSettings, running: KioskSettings) -> KioskSettings:
        """Settings saved at this door with the site's values over them, as at start: a door's
        settings tab never loosens the site's risk (the server away: the values in force stay)."""
        from kiosk.site_settings import SITE_WIDE, with_site

        try:
            return with_site(saved, self._site_conn)
        except DatabaseUnavailable:
            return replace(saved, **{name: getattr(running, name) for name in SITE_WIDE})

    def _open_database(self):
        """The connection (None: said by `fatal`, or stopped). A site door whose server is away and
        that holds no copy of the site's gallery cannot decide: it says so and tries again."""
        said = False
        while not self._stopping.is_set():
            try:
                return self._store.open()
            except DatabaseUnavailable as exc:
                if not said:
                    log.warning("cannot decide yet: %s; trying again every %g s", exc, SITE_RETRY_S)
                    self.progress.emit("Cannot decide yet — waiting for the connection to the site…")
                    self.site.emit(f"cannot decide yet: {exc}", "")
                    said = True
                self._stopping.wait(SITE_RETRY_S)
            except Exception as exc:  # a database from a newer kiosk, an unreadable file, the site key missing
                log.exception("cannot open the database %s", self._store.describe())
                self.fatal.emit("Database unavailable — recognition is off",
                                f"database {self._store.describe()}: {exc}")
                return None
        return None

    def _events(self, settings: KioskSettings):
        """The settings' events out (None: none, or unusable, which is logged: recognition goes on)."""
        try:
            return open_events(settings, self._data_dir)
        except ValueError as exc:
            log.error("events not sent: %s", exc)
            return None

    def _recognise(self, kiosk: KioskLoop, engine, purged: int) -> None:
        """On a site, the state of its server is reported too (``site``)."""
        runner = kiosk.runner
        with self._lock:
            self._runner = runner
            runner.paused = self._paused
            if self._stopping.is_set():
                return
        self.progress.emit("Starting — warming up (step 3 of 3)…")
        runner.warm_up()
        devtest = engine.card.raw.get("devtest", {}) if isinstance(engine.card.raw, dict) else {}
        accuracy = devtest.get("accuracy") if isinstance(devtest, dict) else None
        self.ready.emit(EngineInfo(Path(engine.card.path).stem, accuracy, kiosk.rule, purged, kiosk.settings.sound))
        last_error = ""
        counted_ids, people = None, 0  # the gallery's person ids, and how many people they name
        results = kiosk.results(every_frame=True)
        site_said, site_at = None, 0.0
        while True:
            if self._site_conn is not None and time.monotonic() - site_at > SITE_STATE_S:
                site_at = time.monotonic()
                state = site_state(self._site_conn)
                words = (admin_words(state), visitor_words(state))
                if words != site_said:
                    site_said = words
                    self.site.emit(*words)
            try:
                result = next(results)
            except (StopIteration, RuntimeError) as exc:
                # RuntimeError: the camera was stopped before the runner started it.
                if isinstance(exc, RuntimeError) and not self._stopping.is_set() \
                        and runner.camera.state not in (CameraState.STOPPED, CameraState.ENDED):
                    raise
                # The source ended, or its camera was stopped: closing, or replaced by a new one.
                if not self._await_camera(kiosk):
                    break
                results = kiosk.results(every_frame=True)
                continue
            except Exception as exc:  # one bad frame must not end recognition
                error = f"analysis failed: {exc}"
                if error != last_error:
                    log.exception("%s", error)
                last_error = error
                self.failed.emit(error)
                # A generator that raised is finished; go on after the frame that failed.
                results = kiosk.results(every_frame=True, newer_than=runner.last_frame_index)
                continue
            last_error = ""
            templates, person_ids = runner.gallery.matrix()  # cached until the gallery changes
            if person_ids is not counted_ids:  # a new matrix: count its people once, not every frame
                counted_ids, people = person_ids, int(np.unique(person_ids).size)
            # The rule is measured once per gallery (FaceEngine caches it), so this is a lookup per frame.
            self.analysed.emit(Recognition(result, result.analysis_s, people,
                                           runner.engine.door_rule(templates, person_ids)))
            pending = self._mailbox.take()
            if pending and self._apply(kiosk, pending).camera is not None:
                results.close()  # the old camera's frame loop; go on with the new one
                results = kiosk.results(every_frame=True)

    def _apply(self, kiosk: KioskLoop, pending: Pending) -> Applied:
        if pending.settings is not None and self._site_conn is not None:
            pending = replace(pending, settings=self._site_wide(pending.settings, kiosk.settings))
        applied = kiosk.apply(pending)
        self.reconfigured.emit(applied)
        return applied

    def _await_camera(self, kiosk: KioskLoop) -> bool:
        """No source to read: apply settings as they come until a new camera arrives (True)
        or stop() is called (False)."""
        while not self._stopping.is_set():
            if self._mailbox.wait(POLL_S):
                if self._apply(kiosk, self._mailbox.take()).camera is not None:
                    return True
        return False
