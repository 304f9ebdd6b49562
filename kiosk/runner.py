"""The headless kiosk loop: newest frame -> faces -> embeddings -> matches -> policy -> log -> door.

Driven by kiosk.loop, which builds it from the kiosk's settings for the kiosk window and for
``face-kiosk-admin run --headless`` alike. Per frame:

1. take the newest frame from the camera (older ones are dropped, never queued);
2. detect the faces (around the last face between full-frame searches: kiosk/tracking.py),
   embed them all in one batch, match them against the gallery
   (Gallery.matrix() is re-read only when the gallery changed, so enrolments made meanwhile
   by another process count at once);
3. feed the largest face's match, quality, landmarks and box to the DecisionPolicy, which with
   liveness on asks for a move first (the challenge in progress is in each FrameResult);
4. on a decision: record the event in the access log (committed to disk), only then open the
   door (on its own thread), then hand the decision to the caller.

With an AnalysisPace (kiosk.pacing), run() waits between frames so that at most so many are
analysed a second, fewer while nobody is in view; without one it analyses every frame it can.

Repeated denials lock out the face they were given to, never the kiosk (kiosk.ratelimit): each
denied face is remembered as a track (kiosk.facetracks) and counted on its own, and so is each
enrolled person a failed liveness challenge was for (the claimed person). While the largest
face in view is locked out (its track, or the person it matches), nothing is decided for it:
the first such frame of a lockout logs one denial with reason "rate_limited", and each
FrameResult says how long is left. Anyone else in front of the camera is recognised as usual.

The runner uses its Gallery and AccessLog (and so their SQLite connection) on the thread
that calls run() or process() only; door outcomes come back from the door's thread through
a queue and are written to the log by that same thread.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from kiosk.accesslog import AccessEvent, AccessLog
from kiosk.camera import Camera, CameraState, Frame
from kiosk.door import DoorAction
from kiosk.faces import Face
from kiosk.facetracks import FaceTracks
from kiosk.gallery import Gallery, GalleryError, Person
from kiosk.images import encode_jpeg
from kiosk.liveness import Challenge, LivenessGate
from kiosk.matching import Match
from kiosk.pacing import AnalysisPace
from kiosk.policy import DENIED, RATE_LIMITED, Decision, DecisionPolicy, Observation
from kiosk.ratelimit import RateLimits
from kiosk.tracking import FaceTracker

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 128  # longest side of the face thumbnail stored with an event
THUMBNAIL_MARGIN = 0.3  # fraction of the face box added on each side
POLL_S = 0.2  # how often a waiting run() checks for stop()


@dataclass(frozen=True)
class FrameResult:
    """What the kiosk made of one frame; `decision`/`event` are set when the frame settled one."""

    frame: Frame
    faces: list[Face]  # largest first
    matches: list[Match]  # one per face
    names: list[str | None]  # the matched person's name per face (None unless verdict "match")
    decision: Decision | None = None
    event: AccessEvent | None = None  # the logged event of the decision
    door: DoorAction | None = field(default=None, repr=False)  # triggered for this event, if any
    challenge: Challenge | None = None  # the liveness challenge in progress after this frame
    challenge_started: bool = False  # this frame started it: tell the person what to do
    challenge_left_s: float = 0.0  # seconds left to do it
    locked_s: float = 0.0  # seconds left of the largest face's lockout (nothing is decided for it meanwhile)
    paused: bool = False  # decisions were paused (an admin is enrolling someone): faces found, nothing decided
    analysis_s: float = 0.0  # time process() took for this frame


class KioskRunner:
    """Runs the recognition loop over a camera until the source ends or stop() is called.

    Without a policy the runner checks liveness (DecisionPolicy with a LivenessGate); without
    rate limits it uses RateLimiter's defaults for each face and each claimed person.
    """

    def __init__(
        self,
        camera: Camera,
        engine,  # kiosk.engine.FaceEngine (not imported here: it pulls in TensorFlow)
        gallery: Gallery,
        access_log: AccessLog,
        policy: DecisionPolicy | None = None,
        door: DoorAction | None = None,
        *,
        thumbnails: bool = False,
        denied_thumbnails: bool = False,
        camera_name: str | None = None,
        on_door_outcome: Callable[[int, str], None] | None = None,
        tracking: bool = True,
        rate_limits: RateLimits | None = None,
        pace: AnalysisPace | None = None,
    ) -> None:
        gallery.check_model(engine.embedding_size, engine.model_identity)  # before any frame: every match would fail
        self.camera = camera
        self.engine = engine
        self.gallery = gallery
        self.access_log = access_log
        self.policy = policy if policy is not None else DecisionPolicy(liveness=LivenessGate())
        self.rate_limits = rate_limits if rate_limits is not None else RateLimits()
        self.tracks = FaceTracks()  # the denied faces, the keys of per-face lockouts
        self._lockouts_logged: dict[tuple[str, int], float | None] = {}  # key -> the lockout's end, once logged
        self.door = door
        self.thumbnails = thumbnails  # a face thumbnail with every event
        self.denied_thumbnails = denied_thumbnails  # or with denials only (who tried)
        self.camera_name = camera_name or camera.spec.label
        self.on_door_outcome = on_door_outcome
        self.pace = pace  # None: every frame run() can take
        # Between full-frame searches, look for the face only around where it was (kiosk/tracking.py).
        self.tracker = FaceTracker(engine.detector) if tracking else None
        self.last_frame_index = -1  # the frame run() analysed (or tried to) most recently
        # Set from any thread while an admin enrols someone at this camera: faces are still found,
        # but nothing is decided, logged or counted against anyone.
        self.paused = False
        self._stop = threading.Event()
        self._door_outcomes: queue.Queue[tuple[int, str]] = queue.Queue()

    def stop(self) -> None:
        """Make run() return after the frame in progress (callable from any thread)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self, every_frame: bool = False, newer_than: int = -1) -> Iterator[FrameResult]:
        """Analyse each newest frame; yield the results that carry a decision or start a liveness
        challenge (all, if every_frame).

        Starts after frame index `newer_than`: to go on after process() raised, pass
        `last_frame_index`, so the frame that failed is not analysed again.
        Ends when the source has ended, the camera was stopped, or stop() was called; waits for
        door actions still in flight before the end so their outcomes get logged.
        """
        try:
            self.camera.start()
        except RuntimeError:
            if self.camera.stopped:  # stopped before the loop began (a window closed during start-up)
                return
            raise
        last = newer_than
        # One BLAS thread while the loop runs: its matrix products are a few faces' vectors, too
        # small to share, and an idle OpenBLAS helper thread spins for ~0.1 s after each call,
        # about half a core at 5 analysed frames a second (reports/speed_history.md).
        limit = threadpool_limits(limits=1, user_api="blas")
        try:
            while not self._stop.is_set():
                self._record_door_outcomes()
                if self.pace is not None and self._stop.wait(self.pace.wait_s(time.monotonic())):
                    break
                frame = self.camera.latest(timeout=POLL_S, newer_than=last)
                if frame is None:
                    if self.camera.state in (CameraState.ENDED, CameraState.STOPPED):
                        break
                    continue
                last = self.last_frame_index = frame.index
                started = time.monotonic()
                result = self.process(frame)
                if self.pace is not None:
                    self.pace.record(started, len(result.faces))
                if every_frame or result.decision is not None or result.challenge_started:
                    yield result
        finally:
            limit.restore_original_limits()
            self.finish()

    def warm_up(self, timeout: float = 2.0) -> None:
        """Run the detector (full frame and tracked region) and the embedder once on the camera's
        picture, so their one-off tracing (seconds) happens now, not in front of the first visitor."""
        try:
            self.camera.start()
        except RuntimeError:  # stopped meanwhile (the window is closing): nothing to warm up for
            return
        frame = self.camera.latest(timeout=timeout)
        rgb = frame.rgb if frame is not None else np.zeros((480, 640, 3), np.uint8)
        faces = self.engine.detect(rgb)
        if self.tracker is not None:
            side = min(rgb.shape[:2])
            self.engine.detector.detect_in_region(rgb, (0, 0, side, side), self.tracker.region_side)
        if faces:
            self.engine.embed_faces(rgb, faces[:1])

    def finish(self, timeout: float | None = None) -> None:
        """Wait for door actions in flight (up to their timeout) and log their outcomes."""
        if self.door is not None:
            self.door.wait(self.door.timeout + 2.0 if timeout is None else timeout)
        self._record_door_outcomes()

    def process(self, frame: Frame) -> FrameResult:
        """Analyse one frame, feed the policy, and log (then act on) a decision if it makes one."""
        started = time.perf_counter()
        result = self._analyse(frame)
        return replace(result, analysis_s=time.perf_counter() - started)

    def _analyse(self, frame: Frame) -> FrameResult:
        rgb = frame.rgb
        faces = self.tracker.detect(rgb) if self.tracker is not None else self.engine.detect(rgb)
        if self.paused:
            self.policy.reset()  # a visit seen during the pause must not count after it
            return FrameResult(frame, faces, [], [None] * len(faces), paused=True)
        matches: list[Match] = []
        people: list[Person | None] = []  # whom each face matched
        names: list[str | None] = []
        track = None  # the largest face's track, when it was denied before
        if faces:
            embeddings = self.engine.embed_faces(rgb, faces)
            templates, person_ids = self.gallery.matrix()
            matches = self.engine.match(embeddings, templates, person_ids)
            people = [self._person(m) for m in matches]
            names = [person.name if person is not None else None for person in people]
            track = self.tracks.find(embeddings[0], self.engine.threshold, self.engine.scoring)
            lockout = self._lockout(track, matches[0])
            if lockout is not None:
                return self._locked_out(frame, faces, matches, names, *lockout)
        observation = Observation(
            time=frame.timestamp,
            faces=len(faces),
            match=matches[0] if matches else None,
            quality=faces[0].quality if faces else None,
            name=names[0] if names else None,
            landmarks=faces[0].landmarks if faces else None,
            box=faces[0].box if faces else None,
            liveness_exempt=bool(people) and people[0] is not None and people[0].liveness_exempt,
        )
        before = self.policy.challenge
        decision = self.policy.update(observation)
        run = self.policy.challenge
        challenge = {
            "challenge": run.challenge if run is not None else None,
            "challenge_started": run is not None and run is not before,
            "challenge_left_s": run.time_left(frame.timestamp) if run is not None else 0.0,
        }
        if decision is None:
            return FrameResult(frame, faces, matches, names, **challenge)
        event = self._log(decision, rgb, faces)
        triggered = None
        if decision.granted and self.door is not None:
            self.door.trigger(event.id, decision.name, self._door_outcomes_put)
            triggered = self.door
        if not decision.granted:
            self._count_denial(decision, embeddings[0], track)
        return FrameResult(frame, faces, matches, names, decision, event, triggered, **challenge)

    def _count_denial(self, decision: Decision, embedding: np.ndarray, track: int | None) -> None:
        """Count a denial against the face it was given to and the person it claimed to be."""
        self.rate_limits.record_denial(("face", self.tracks.add(embedding, track)))
        if decision.person_id is not None:  # e.g. a failed liveness challenge: someone posed as them
            self.rate_limits.record_denial(("person", int(decision.person_id)))

    def _lockout(self, track: int | None, match: Match) -> tuple[tuple[str, int], float] | None:
        """The lockout the largest face is under (its key and seconds left), or None."""
        keys = [("face", track)] if track is not None else []
        if match.verdict == "match" and match.person_id is not None:
            keys.append(("person", int(match.person_id)))
        left = [(self.rate_limits.remaining(key), key) for key in keys]
        longest, key = max(left, default=(0.0, None))
        return (key, longest) if longest > 0 else None

    def _locked_out(self, frame: Frame, faces: list[Face], matches: list[Match], names: list[str | None],
                    key: tuple[str, int], locked: float) -> FrameResult:
        """A frame whose largest face is locked out: nothing is decided; the first one logs the lockout."""
        self.policy.reset()  # its visit ends here; after the lockout it starts afresh
        until = self.rate_limits.locked_until(key)
        if self._lockouts_logged.get(key) == until:
            return FrameResult(frame, faces, matches, names, locked_s=locked)
        self._lockouts_logged = {k: u for k, u in self._lockouts_logged.items() if self.rate_limits.remaining(k) > 0}
        self._lockouts_logged[key] = until
        person_id = key[1] if key[0] == "person" else None
        decision = Decision(DENIED, RATE_LIMITED, person_id, names[0] if person_id is not None else None, None,
                            frame.timestamp, detail=f"too many attempts, wait {math.ceil(locked)} s")
        return FrameResult(frame, faces, matches, names, decision, self._log(decision, frame.rgb, faces),
                           locked_s=locked)

    def _person(self, match: Match) -> Person | None:
        """The matched person (name, liveness exemption), or None."""
        if match.verdict != "match" or match.person_id is None:
            return None
        try:
            return self.gallery.get_person(int(match.person_id))
        except GalleryError:  # removed between matrix() and now
            return None

    def _log(self, decision: Decision, rgb: np.ndarray, faces: list[Face]) -> AccessEvent:
        keep = self.thumbnails or (self.denied_thumbnails and not decision.granted)
        thumbnail = face_thumbnail(rgb, faces[0]) if keep and faces else None
        return self.access_log.record(
            camera=self.camera_name,
            decision=decision.decision,
            reason=decision.reason,
            person_id=decision.person_id,
            name=decision.name,
            score=decision.score,
            liveness=decision.liveness,
            thumbnail=thumbnail,
        )

    def _door_outcomes_put(self, event_id: int, outcome: str) -> None:
        self._door_outcomes.put((event_id, outcome))  # from the door's thread

    def _record_door_outcomes(self) -> None:
        while True:
            try:
                event_id, outcome = self._door_outcomes.get_nowait()
            except queue.Empty:
                return
            try:
                self.access_log.set_door_outcome(event_id, outcome)
            except LookupError:  # the event was purged meanwhile
                log.warning("door outcome for vanished event %d: %s", event_id, outcome)
            if self.on_door_outcome is not None:
                self.on_door_outcome(event_id, outcome)


def face_thumbnail(rgb: np.ndarray, face: Face, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of the face with some context around it."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in face.box)
    pad_x, pad_y = (x2 - x1) * THUMBNAIL_MARGIN, (y2 - y1) * THUMBNAIL_MARGIN
    left, top = max(int(x1 - pad_x), 0), max(int(y1 - pad_y), 0)
    right, bottom = min(int(x2 + pad_x) + 1, width), min(int(y2 + pad_y) + 1, height)
    crop = rgb[top:bottom, left:right]
    if crop.size == 0:
        crop = rgb
    scale = side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(round(crop.shape[1] * scale), 1), max(round(crop.shape[0] * scale), 1)),
                          interpolation=cv2.INTER_AREA)
    return encode_jpeg(crop)
