"""The end-to-end gallery: LFW people enrolled from three photos each, and who walks in.

People come from LFW's View 1 test people (never seen in training) with at least four photos,
in name order. Each is enrolled with their first three photos; the one who walks in is the
first of them whose fourth photo the model recognises (a match for them, clear of the
threshold) and who faces the camera in it. The end-to-end section measures speed, not
accuracy (benchmarks/identification.py does that), so a person the model knows is picked on purpose.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

from benchmarks.speed.options import BenchError
from benchmarks.speed.sources import Source, usable_face
from kiosk.faces import face_nearest_center
from kiosk.gallery import Gallery
from kiosk.images import load_image

ENROL_PHOTOS = 3
# The walker's photo must score this many of the card's ambiguity margins above the gallery's
# threshold: clear of it on whatever scale the model scores (cosines of dlib's model sit within 0.1).
PROBE_MARGINS = 3
MAX_CANDIDATES = 120  # people scanned before giving up


@dataclass(frozen=True)
class Cast:
    enrolled: dict[str, list[str]]  # name -> relpaths of the enrolment photos
    walker: str
    probe: Source  # the walker's photo that is not enrolled
    probe_score: float


def choose_cast(lfw, engine, people: int) -> Cast:
    """`people` enrolled people (more if needed to find a walker) and the walker among them."""
    candidates = sorted(name for name, count in lfw.people("devtest").items() if count > ENROL_PHOTOS)
    found: dict[str, tuple[list[str], np.ndarray, Source | None]] = {}
    for name in candidates[:MAX_CANDIDATES]:
        found.update(_embed_person(lfw, engine, name))
        if len(found) >= people:
            cast = _pick_walker(engine, found)
            if cast is not None:
                return cast
    raise BenchError(f"none of the first {MAX_CANDIDATES} LFW DevTest people with {ENROL_PHOTOS + 1}+ photos "
                     f"is recognised clearly from an unenrolled photo; cannot stage a walk-in")


def enrol(conn: sqlite3.Connection, lfw, engine, cast: Cast) -> int:
    """Enrol the cast's people with `engine` (its own detector) into the database; returns templates stored."""
    gallery = Gallery(conn)
    stored = 0
    for name, relpaths in cast.enrolled.items():
        photos = [load_image(lfw.images_dir / r) for r in relpaths]
        faces = [face_nearest_center(f, p.shape) for p, f in zip(photos, engine.detector.detect_batch(photos))]
        kept = [(p, f, r) for p, f, r in zip(photos, faces, relpaths) if f is not None]
        if not kept:
            continue
        vectors = engine.embed_each([p for p, _, _ in kept], [f for _, f, _ in kept])
        person = gallery.add_person(name.replace("_", " "))
        gallery.add_templates(person, list(vectors), [f.score for _, f, _ in kept], [r for _, _, r in kept])
        stored += len(kept)
    return stored


def _embed_person(lfw, engine, name: str) -> dict:
    """{name: (enrolment relpaths, 4 x D embeddings, probe Source or None)} if all four photos have a face."""
    refs = sorted(lfw.images_of(name), key=lambda r: r.number)[:ENROL_PHOTOS + 1]
    photos = [load_image(lfw.image_path(r)) for r in refs]
    detections = engine.detector.detect_batch(photos)
    faces = [face_nearest_center(f, p.shape) for p, f in zip(photos, detections)]
    if any(f is None for f in faces):
        return {}
    vectors = engine.embed_each(photos, faces)
    usable = usable_face(detections[-1])
    probe = None if usable is None else Source(refs[-1].relpath, usable.box, usable.landmarks)
    return {name: ([r.relpath for r in refs[:ENROL_PHOTOS]], vectors, probe)}


def _pick_walker(engine, found: dict) -> Cast | None:
    names = list(found)
    templates = np.concatenate([found[n][1][:ENROL_PHOTOS] for n in names])
    ids = np.repeat(np.arange(len(names)), ENROL_PHOTOS)
    for index, name in enumerate(names):
        _, vectors, probe = found[name]
        if probe is None:
            continue
        match = engine.match(vectors[ENROL_PHOTOS], templates, ids)[0]
        threshold = engine.door_rule(templates, ids).threshold  # what engine.match applied
        if match.verdict == "match" and match.person_id == index and match.score >= threshold + PROBE_MARGINS * engine.ambiguity_margin:
            enrolled = {n: found[n][0] for n in names}
            return Cast(enrolled, name, probe, round(float(match.score), 4))
    return None
