"""Section "stages": latency of each step of a frame, median and p90, at 640x480 and 1280x720.

Every frame shows a different person (no tracking can help) and goes through the engine's own
calls, the ones KioskRunner.process makes: decode (JPEG bytes -> RGB), detect, align, embed,
match (against a gallery of 100 people x 3 random templates in a real SQLite file, through
Gallery.matrix() as the runner does) and log (thumbnail + AccessLog.record, committed and
synced to a real SQLite file). Frames where no face is found count only for decode and detect.
"""
from __future__ import annotations

import tempfile

import numpy as np

from benchmarks.speed.options import RESOLUTIONS
from benchmarks.speed.scenes import iou
from benchmarks.speed.stats import latency, timed
from kiosk.accesslog import AccessLog
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.images import decode_image
from kiosk.runner import face_thumbnail

PER_DETECTOR = True
STAGES = ("decode", "detect", "align", "embed", "match", "log")
GALLERY_PEOPLE, TEMPLATES_EACH = 100, 3


def run(ctx, detector: str) -> dict:
    engine = ctx.engine(detector)
    return {f"{w}x{h}": _measure(ctx, engine, (w, h)) for w, h in RESOLUTIONS}


def _measure(ctx, engine, size: tuple[int, int]) -> dict:
    frames = ctx.stills(size)
    warmup = ctx.options.warmup_frames
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals, overlaps, found = [], [], 0
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as folder:
        conn = open_database(database_path(folder))
        try:
            gallery, log = Gallery(conn), AccessLog(conn)
            _random_gallery(gallery, engine.embedding_size)
            for index, still in enumerate(frames):
                data = still.path.read_bytes()
                rgb, decode_s = timed(decode_image, data, name=still.path.name)
                faces, detect_s = timed(engine.detect, rgb)
                spent = {"decode": decode_s, "detect": detect_s}
                if faces:
                    crops, spent["align"] = timed(engine.align, rgb, faces)
                    vectors, spent["embed"] = timed(engine.embed_crops, crops, engine.crop_landmarks(faces))
                    matches, spent["match"] = timed(_match, engine, gallery, vectors)
                    _, spent["log"] = timed(_log, log, rgb, faces[0], matches[0])
                if index < warmup:  # first calls trace TensorFlow functions and warm caches
                    continue
                for stage, seconds in spent.items():
                    times[stage].append(seconds)
                if faces:
                    found += 1
                    totals.append(sum(spent.values()))
                    overlaps.append(max(iou(f.box, still.box) for f in faces))
        finally:
            conn.close()
    measured = len(frames) - warmup
    return {
        "frames": measured,
        "frames_with_face_found": found,
        "median_face_width_px": round(float(np.median([f.box[2] - f.box[0] for f in frames[warmup:]])), 1),
        "median_iou_with_placed_face": round(float(np.median(overlaps)), 3) if overlaps else None,
        "gallery_templates": GALLERY_PEOPLE * TEMPLATES_EACH,
        "stages": {stage: latency(times[stage]) for stage in STAGES},
        "frame_total": latency(totals),  # frames with a face: all six stages
    }


def _random_gallery(gallery: Gallery, dim: int) -> None:
    rng = np.random.default_rng(0)
    for person in range(GALLERY_PEOPLE):
        vectors = rng.normal(size=(TEMPLATES_EACH, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        added = gallery.add_person(f"person {person:03d}")
        gallery.add_templates(added, list(vectors), [1.0] * TEMPLATES_EACH, ["random"] * TEMPLATES_EACH)


def _match(engine, gallery: Gallery, vectors: np.ndarray) -> list:
    return engine.match(vectors, *gallery.matrix())  # as the runner: matrix() is cached, re-read on change


def _log(log: AccessLog, rgb: np.ndarray, face, match) -> None:
    granted = match.verdict == "match"
    log.record(camera="bench", decision="granted" if granted else "denied", reason=match.verdict,
               person_id=match.person_id if granted else None, score=match.score,
               thumbnail=face_thumbnail(rgb, face))
