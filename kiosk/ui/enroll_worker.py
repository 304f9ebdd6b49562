"""The enrollment dialog's worker: face detection, embedding and the database, off the GUI thread.

It runs in a QThread the dialog owns: ``run()`` (started with the thread) takes jobs from a
queue until ``stop()``, and answers by signal. It builds (or borrows) the FaceEngine on first
use, on its own thread, so loading TensorFlow and the model never freezes a window, and opens
its own SQLite connection for each job (connections belong to one thread).

Why one long ``run()`` and not a queued slot per job: seen here (PySide6 6.12, TensorFlow
2.x), with one queued slot call per job a later TensorFlow call on the QThread hung for good,
the GUI thread and the worker both waiting for the GIL, the worker inside pybind11's
gil_scoped_acquire under another Python thread state than the one running its code. One call
that lives as long as the thread, as AnalysisWorker.run does, has not hung.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from kiosk.calibration import DEFAULT_RISK
from kiosk.enrollment import CaptureStep, IdentityCheck, Sample, assess_capture, assess_image, save_enrolment
from kiosk.errors import KioskError
from kiosk.gallery import Gallery
from kiosk.images import load_image
from kiosk.store import Store, connect

log = logging.getLogger(__name__)

EngineFactory = Callable[[], object]  # returns a FaceEngine


def default_engine() -> object:
    from kiosk.engine import shared_engine  # TensorFlow: imported on the worker thread, when first needed

    return shared_engine()


@dataclass(frozen=True)
class SaveRequest:
    name: str
    badge: str | None
    person_id: int | None  # add to this person; None = a new person
    samples: tuple[Sample, ...]


class EnrollWorker(QObject):
    """Jobs run on the worker thread, one at a time, in the order asked; ask from any thread."""

    sample_ready = Signal(object)  # Sample, one per file or captured frame
    files_done = Signal()
    capture_assessed = Signal(object)  # Sample for a camera frame (used or not)
    saved = Signal(object)  # Person
    failed = Signal(str)
    finished = Signal()  # run() returned

    def __init__(self, db_path: str | os.PathLike | Store, engine_factory: EngineFactory = default_engine,
                 risk: int = DEFAULT_RISK, person_id: int | None = None) -> None:
        super().__init__()
        self._db_path = db_path if isinstance(db_path, Store) else Path(db_path)  # a Store: a site's database
        self._engine_factory = engine_factory
        self._engine = None
        self._risk = risk  # the door's: a sample "already matches" someone when the door would let it in as them
        self._person_id = person_id  # the person samples are added to (not a "duplicate" of themselves)
        self._cancel = threading.Event()
        self._jobs: queue.Queue[tuple | None] = queue.Queue()
        self._last_error = ""

    # -- asking (any thread) ----------------------------------------------------------

    def analyse_files(self, paths: list[str]) -> None:
        """One ``sample_ready`` per path, then ``files_done``."""
        self._jobs.put((self._analyse_files, list(paths)))

    def assess_frame(self, rgb: np.ndarray, step: CaptureStep) -> None:
        """One ``capture_assessed``."""
        self._jobs.put((self._assess_frame, rgb, step))

    def save(self, request: SaveRequest) -> None:
        """``saved`` or ``failed``."""
        self._jobs.put((self._save_request, request))

    def stop(self) -> None:
        """Make run() return after the image in hand, dropping the jobs not started."""
        self._cancel.set()
        self._jobs.put(None)

    @Slot()
    def run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._cancel.is_set():
                break
            function, *args = job
            function(*args)
        self.finished.emit()

    # -- jobs (worker thread) ---------------------------------------------------------

    def _get_engine(self):
        if self._engine is None:
            self._engine = self._engine_factory()
        return self._engine

    def _analyse_files(self, paths: list[str]) -> None:
        try:
            engine = self._get_engine()
        except Exception as exc:  # no model yet, broken model...
            self._log_once(f"face engine unavailable: {exc}", exc)
            for path in paths:
                self.sample_ready.emit(Sample(Path(path).name, False, f"recognition unavailable: {exc}"))
            self.files_done.emit()
            return
        try:
            identity = self._identity(engine)
            for path in paths:
                if self._cancel.is_set():
                    break
                name = Path(path).name
                try:
                    sample = assess_image(engine, load_image(path), name)
                except KioskError as exc:  # unreadable or not an image
                    message = str(exc)
                    sample = Sample(name, False, message.removeprefix(f"{path}: "))
                except Exception as exc:
                    log.exception("enrollment analysis of %s failed", path)
                    sample = Sample(name, False, f"analysis failed: {exc}")
                self.sample_ready.emit(self._checked(sample, identity))
        except Exception as exc:
            log.exception("enrollment analysis failed")
            self.failed.emit(f"analysis failed: {exc}")
        finally:
            self.files_done.emit()

    def _assess_frame(self, rgb: np.ndarray, step: CaptureStep) -> None:
        try:
            engine = self._get_engine()
            sample = assess_capture(engine, rgb, step)
            if sample.used:
                sample = self._checked(sample, self._identity(engine))
        except Exception as exc:  # at frame rate: logged once, not for every frame
            self._log_once(f"capture analysis failed: {exc}", exc)
            sample = Sample(f"camera: {step.instruction.lower()}", False, f"analysis failed: {exc}")
        self.capture_assessed.emit(sample)

    def _save_request(self, request: SaveRequest) -> None:
        try:
            conn = connect(self._db_path)
            try:
                person = save_enrolment(Gallery(conn), self._get_engine(), request.samples, name=request.name,
                                        badge=request.badge, person_id=request.person_id)
            finally:
                conn.close()
        except Exception as exc:
            if not isinstance(exc, KioskError):
                log.exception("saving the enrollment failed")
            self.failed.emit(str(exc))
            return
        self.saved.emit(person)

    # -- helpers ---------------------------------------------------------------------

    def _log_once(self, message: str, exc: Exception) -> None:
        if message == self._last_error:
            return
        self._last_error = message
        if isinstance(exc, KioskError):  # a known condition (no model file...): no traceback
            log.warning("%s", message)
        else:
            log.error("%s", message, exc_info=exc)

    def _identity(self, engine) -> IdentityCheck:
        """The check of samples against the gallery as it is now (another process may have enrolled)."""
        conn = connect(self._db_path)
        try:
            return IdentityCheck(engine, Gallery(conn), self._risk, self._person_id)
        finally:
            conn.close()

    @staticmethod
    def _checked(sample: Sample, identity: IdentityCheck) -> Sample:
        """The sample, with the enrolled person it already matches (at the door's rule), if any."""
        if not sample.used or sample.embedding is None:
            return sample
        other = identity.lookalike(sample.embedding)
        return sample if other is None else sample.with_match(other.name, other.score, other.percent)
