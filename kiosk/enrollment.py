"""Enrollment samples: is this photo (or camera frame) good enough to become a template?

No Qt and no SQL: the admin window's enrollment worker calls these on its own thread, and so
does ``face-kiosk-admin enroll`` (one face, QualityGates), down to the one save both use.

    sample = assess_image(engine, rgb, "ada1.jpg")
    if sample.used: samples.append(sample)
    else: print(sample.reason)          # "no face found", "2 faces found ...", "face too small ..."
    person = save_enrolment(Gallery(conn), engine, samples, name="Ada Lovelace", badge="1042")
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kiosk.errors import KioskError
from kiosk.faces import Face
from kiosk.gallery import Gallery, GalleryError, Person
from kiosk.images import encode_jpeg
from kiosk.matching import person_means
from kiosk.policy import QualityGates
from kiosk.scoring import CosineScoring, Scoring


@dataclass(frozen=True, eq=False)  # eq=False: the arrays cannot be compared with ==
class Sample:
    """One candidate template, used or not, and why."""

    source: str  # the file name, or "camera: <step>"
    used: bool
    reason: str | None  # why it is not used (None when used)
    embedding: np.ndarray | None = None  # unit vector, when used
    quality: float = 0.0  # detector confidence, stored with the template
    thumbnail: bytes | None = None  # JPEG of the aligned crop, when used
    face: Face | None = None
    match_name: str | None = None  # an enrolled person this face already matches...
    match_score: float | None = None  # ...with this similarity (set by the caller, see closest_person)
    match_percent: int | None = None  # ...shown as a 0-100 match (kiosk.calibration.match_percent)

    def with_match(self, name: str | None, score: float | None, percent: int | None = None) -> Sample:
        return Sample(self.source, self.used, self.reason, self.embedding, self.quality, self.thumbnail,
                      self.face, name, score, percent)


def rejection(faces: list[Face], gates: QualityGates) -> str | None:
    """Why these detected faces cannot give a template (None: faces[0] can)."""
    if not faces:
        return "no face found"
    if len(faces) > 1:
        return f"{len(faces)} faces found; use pictures with only this person in them"
    return gates.problem(faces[0].quality)


def assess_image(engine, rgb: np.ndarray, source: str, gates: QualityGates | None = None) -> Sample:
    """Detect, gate and (when usable) embed the face of one image. `engine` is a FaceEngine."""
    faces = engine.detect(rgb)
    reason = rejection(faces, gates or QualityGates())
    if reason is not None:
        return Sample(source, False, reason, face=faces[0] if len(faces) == 1 else None)
    return embed_sample(engine, rgb, faces[0], source)


def embed_sample(engine, rgb: np.ndarray, face: Face, source: str) -> Sample:
    crops = engine.align(rgb, [face])
    embedding = engine.embed_crops(crops, engine.crop_landmarks([face]))[0]
    return Sample(source, True, None, embedding=embedding, quality=face.score, thumbnail=encode_jpeg(crops[0]),
                  face=face)


def closest_person(
    embedding: np.ndarray, templates: np.ndarray, person_ids: np.ndarray, exclude: int | None = None,
    scoring: Scoring | None = None,
) -> tuple[int, float] | None:
    """(person id, similarity) of the template most like `embedding` (Gallery.matrix() arrays, or each
    person's mean template from kiosk.matching.person_means).

    Scored as the engine scores (`scoring`: the engine's; cosine when not given).
    `exclude` leaves out one person (the one samples are being added to).
    """
    if len(templates) == 0:
        return None
    scores = (scoring or CosineScoring()).matrix(np.asarray(embedding, np.float32)[None], templates)[0]
    if exclude is not None:
        scores = np.where(person_ids == exclude, -np.inf, scores)
    best = int(np.argmax(scores))
    if not np.isfinite(scores[best]):
        return None
    return int(person_ids[best]), float(scores[best])


@dataclass(frozen=True)
class Lookalike:
    """An enrolled person the door would let a sample in as."""

    person_id: int
    name: str
    score: float
    percent: int  # the match on the door rule's 0-100 scale


class IdentityCheck:
    """Whose face a sample shows, before it is stored under a person: checked against the gallery
    as it is now, at the door's rule for `risk`. `person_id`: the person samples are added to (not
    a lookalike of themselves)."""

    def __init__(self, engine, gallery: Gallery, risk: int, person_id: int | None = None) -> None:
        templates, person_ids = gallery.matrix()
        self.rule = engine.door_rule(templates, person_ids, risk)
        if engine.strategy == "mean" and len(templates):
            templates, person_ids = person_means(templates, person_ids)  # each person scored as the door scores them
        self._templates, self._person_ids = templates, person_ids
        self._names = {p.id: p.name for p in gallery.people()}
        self._exclude = person_id
        self.scoring: Scoring = getattr(engine, "scoring", None) or CosineScoring()

    def lookalike(self, embedding: np.ndarray) -> Lookalike | None:
        """The enrolled person (other than `person_id`) this face would be let in as, or None."""
        if not len(self._templates) or self._templates.shape[1] != embedding.size:
            return None  # nobody, or a gallery from another model (saving says so)
        closest = closest_person(embedding, self._templates, self._person_ids, exclude=self._exclude,
                                 scoring=self.scoring)
        if closest is None or closest[1] < self.rule.threshold:
            return None
        person_id, score = closest
        return Lookalike(person_id, self._names.get(person_id, f"person {person_id}"), score,
                         self.rule.match_percent(score))


# -- saving -------------------------------------------------------------------------


def check_badge(gallery: Gallery, person: Person | None, badge: str | None) -> None:
    """GalleryError unless `badge` (normalised) may go with this enrolment: a badge is given to a
    new person only (`person` None), and belongs to one person."""
    if badge is None:
        return
    if person is not None:
        if badge != person.external_id:
            raise GalleryError(f"{person.name} is already enrolled (badge {person.external_id or 'none'}); "
                               "a badge can only be given when enrolling a new person")
        return
    holder = next((p for p in gallery.people() if p.external_id == badge), None)
    if holder is not None:
        raise GalleryError(f"badge {badge} already belongs to {holder.name}")


def save_enrolment(gallery: Gallery, engine, samples: Sequence[Sample], *, name: str | None = None,
                   badge: str | None = None, person_id: int | None = None) -> Person:
    """Store the used samples as templates, all or none: a new person `name` (with `badge`), or
    more templates for `person_id`. Binds the gallery to the engine's model (GalleryError for
    another model's gallery); KioskError when no sample is usable."""
    used = [s for s in samples if s.used and s.embedding is not None]
    if not used:
        raise KioskError("no usable sample to save")
    check_badge(gallery, gallery.get_person(person_id) if person_id is not None else None, badge)
    gallery.bind_model(engine.embedding_size, engine.model_identity)
    templates = ([s.embedding for s in used], [s.quality for s in used], [f"enroll {s.source}" for s in used],
                 [s.thumbnail for s in used])
    if person_id is None:
        if name is None:
            raise ValueError("a new person needs a name")
        return gallery.enroll(name, badge, *templates)
    gallery.add_templates(person_id, *templates)
    return gallery.get_person(person_id)


# -- guided capture from the camera ------------------------------------------------


@dataclass(frozen=True)
class CaptureStep:
    """One pose to capture. Yaw as kiosk.quality measures it: positive = the person's right."""

    instruction: str
    min_yaw: float
    max_yaw: float

    def problem(self, face: Face) -> str | None:
        yaw = face.quality.yaw
        if yaw < self.min_yaw:
            return "turn a little to your right" if self.min_yaw > -5 else "turn a little further to your left"
        if yaw > self.max_yaw:
            return "turn a little to your left" if self.max_yaw < 5 else "turn a little further to your right"
        return None


CAPTURE_STEPS = (
    CaptureStep("Look straight at the camera", -8.0, 8.0),
    CaptureStep("Turn your head a little to your left", -28.0, -8.0),
    CaptureStep("Turn your head a little to your right", 8.0, 28.0),
)


def assess_capture(engine, rgb: np.ndarray, step: CaptureStep, gates: QualityGates | None = None) -> Sample:
    """A camera frame for one capture step: one face, the quality gates, then the pose."""
    faces = engine.detect(rgb)
    source = f"camera: {step.instruction.lower()}"
    reason = rejection(faces, gates or QualityGates())
    if reason is None:
        reason = step.problem(faces[0])
    if reason is not None:
        return Sample(source, False, reason, face=faces[0] if faces else None)
    return embed_sample(engine, rgb, faces[0], source)
